package kvindex

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-zeromq/zmq4"

	"github.com/kthena/kthena/internal/sim/kvevents"
)

// DefaultPort is vLLM's default KV-event publisher port.
const DefaultPort = 5557

// Target is one engine's KV-event publisher.
type Target struct {
	// Pod is the endpoint key (namespace/name).
	Pod string
	// Endpoint is the ZMQ address, such as tcp://10.0.0.5:5557.
	Endpoint string
	// Topic filters messages by topic prefix ("" takes every topic:
	// vLLM's "kv-events" and SGLang's "").
	Topic string
}

// Subscriptions keeps one ZMQ subscriber per pod and feeds the index. Each
// subscriber reconnects with backoff; every (re)connection resynchronises
// the pod (drops its entries), because events sent while it was away are
// lost.
type Subscriptions struct {
	x   *Index
	log logr.Logger
	ctx context.Context

	mu   sync.Mutex
	subs map[string]*sub
	// view is an immutable pod -> endpoint snapshot for Ensure's fast path.
	view atomic.Pointer[map[string]string]
}

type sub struct {
	t         Target
	cancel    context.CancelFunc
	done      chan struct{}
	connected atomic.Bool
}

// NewSubscriptions returns subscriptions feeding x; they stop with ctx.
func NewSubscriptions(ctx context.Context, x *Index, log logr.Logger) *Subscriptions {
	s := &Subscriptions{x: x, log: log, ctx: ctx, subs: map[string]*sub{}}
	empty := map[string]string{}
	s.view.Store(&empty)
	return s
}

// Index is the index the subscriptions feed.
func (s *Subscriptions) Index() *Index { return s.x }

// Ensure subscribes to t unless the pod already has a subscription to the
// same endpoint; a changed endpoint replaces the old subscription. The
// common case (already subscribed) takes no lock.
func (s *Subscriptions) Ensure(t Target) {
	if ep, ok := (*s.view.Load())[t.Pod]; ok && ep == t.Endpoint {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		return
	}
	if old := s.subs[t.Pod]; old != nil {
		if old.t == t {
			return
		}
		s.stopLocked(t.Pod)
	}
	ctx, cancel := context.WithCancel(s.ctx)
	sb := &sub{t: t, cancel: cancel, done: make(chan struct{})}
	s.subs[t.Pod] = sb
	w := s.x.AddPod(t.Pod)
	go s.run(ctx, sb, w)
	s.publishLocked()
}

// Remove stops the pod's subscription and drops its entries.
func (s *Subscriptions) Remove(pod string) {
	s.mu.Lock()
	s.stopLocked(pod)
	s.publishLocked()
	s.mu.Unlock()
	s.x.RemovePod(pod)
}

// Connected reports whether the pod's subscriber is connected.
func (s *Subscriptions) Connected(pod string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	sb := s.subs[pod]
	return sb != nil && sb.connected.Load()
}

// Targets lists the current subscriptions.
func (s *Subscriptions) Targets() []Target {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Target, 0, len(s.subs))
	for _, sb := range s.subs {
		out = append(out, sb.t)
	}
	return out
}

// Close stops every subscriber and waits for them.
func (s *Subscriptions) Close() {
	s.mu.Lock()
	var done []chan struct{}
	for pod, sb := range s.subs {
		sb.cancel()
		done = append(done, sb.done)
		delete(s.subs, pod)
	}
	s.publishLocked()
	s.mu.Unlock()
	for _, d := range done {
		<-d
	}
}

func (s *Subscriptions) stopLocked(pod string) {
	if sb := s.subs[pod]; sb != nil {
		sb.cancel()
		delete(s.subs, pod)
	}
}

func (s *Subscriptions) publishLocked() {
	v := make(map[string]string, len(s.subs))
	for pod, sb := range s.subs {
		v[pod] = sb.t.Endpoint
	}
	s.view.Store(&v)
}

const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
)

func (s *Subscriptions) run(ctx context.Context, sb *sub, w *Writer) {
	defer close(sb.done)
	log := s.log.WithValues("pod", sb.t.Pod, "endpoint", sb.t.Endpoint)
	backoff := minBackoff
	for ctx.Err() == nil {
		wasConnected := false
		err := s.session(ctx, sb, w, func() { backoff, wasConnected = minBackoff, true })
		sb.connected.Store(false)
		if ctx.Err() != nil {
			return
		}
		if wasConnected {
			// A lost connection is usually an engine going away (restart,
			// crash): its cache may be gone, so its blocks are not trusted
			// until it is heard from again.
			w.Resync()
			s.x.stats.Resyncs.Add(1)
		}
		log.V(4).Info("kv events subscription lost; retrying", "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// session dials once and applies messages until the connection fails.
func (s *Subscriptions) session(ctx context.Context, sb *sub, w *Writer, connected func()) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sock := zmq4.NewSub(sctx, zmq4.WithDialerMaxRetries(0), zmq4.WithDialerTimeout(2*time.Second))
	defer sock.Close()
	if err := sock.Dial(sb.t.Endpoint); err != nil {
		return err
	}
	if err := sock.SetOption(zmq4.OptionSubscribe, sb.t.Topic); err != nil {
		return err
	}
	// Whatever the pod published while we were not listening is lost.
	w.Resync()
	sb.connected.Store(true)
	connected()
	for {
		msg, err := sock.Recv()
		if err != nil {
			return err
		}
		seq, b, err := decode(msg)
		if err != nil {
			s.x.stats.Malformed.Add(1)
			if errors.Is(err, kvevents.ErrMalformed) {
				continue
			}
			return err
		}
		w.Apply(seq, b)
	}
}

func decode(msg zmq4.Msg) (uint64, kvevents.Batch, error) {
	if len(msg.Frames) != 3 || len(msg.Frames[1]) != 8 {
		return 0, kvevents.Batch{}, kvevents.ErrMalformed
	}
	b, err := kvevents.Decode(msg.Frames[2])
	return binary.BigEndian.Uint64(msg.Frames[1]), b, err
}
