package kvevents

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go-zeromq/zmq4"
)

// Publisher sends batches on a ZMQ PUB socket with vLLM's three frames.
type Publisher struct {
	codec Codec
	topic []byte

	mu   sync.Mutex
	sock zmq4.Socket
	seq  uint64
}

// NewPublisher binds (endpoint with "*" or a port only) or connects a PUB
// socket, as vLLM does.
func NewPublisher(ctx context.Context, endpoint, topic string, codec Codec) (*Publisher, error) {
	sock := zmq4.NewPub(ctx)
	ep := strings.Replace(endpoint, "://*:", "://0.0.0.0:", 1)
	var err error
	if strings.Contains(endpoint, "*") || strings.HasPrefix(endpoint, "ipc://") || strings.HasPrefix(endpoint, "inproc://") {
		err = sock.Listen(ep)
	} else {
		err = sock.Dial(ep)
	}
	if err != nil {
		_ = sock.Close()
		return nil, fmt.Errorf("kv events publisher on %s: %w", endpoint, err)
	}
	return &Publisher{codec: codec, topic: []byte(topic), sock: sock}, nil
}

// Addr is the bound address, when the publisher listens.
func (p *Publisher) Addr() string {
	if a := p.sock.Addr(); a != nil {
		return a.String()
	}
	return ""
}

// Publish encodes and sends one batch. A PUB socket drops messages when no
// subscriber is connected, as ZMQ does.
func (p *Publisher) Publish(b Batch) error {
	payload, err := p.codec.Encode(b)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var seq [8]byte
	binary.BigEndian.PutUint64(seq[:], p.seq)
	p.seq++
	if err := p.sock.SendMulti(zmq4.NewMsgFrom(p.topic, seq[:], payload)); err != nil {
		return fmt.Errorf("publish kv events: %w", err)
	}
	return nil
}

// Close closes the socket.
func (p *Publisher) Close() error { return p.sock.Close() }

// Message is one received batch with its envelope.
type Message struct {
	Topic string
	Seq   uint64
	Batch Batch
}

// Subscriber receives batches from one or more publishers.
type Subscriber struct {
	sock zmq4.Socket
}

// NewSubscriber dials endpoint and subscribes to topic ("" for all).
func NewSubscriber(ctx context.Context, endpoint, topic string) (*Subscriber, error) {
	sock := zmq4.NewSub(ctx, zmq4.WithDialerRetry(100*time.Millisecond))
	if err := sock.Dial(endpoint); err != nil {
		_ = sock.Close()
		return nil, fmt.Errorf("kv events subscriber to %s: %w", endpoint, err)
	}
	if err := sock.SetOption(zmq4.OptionSubscribe, topic); err != nil {
		_ = sock.Close()
		return nil, fmt.Errorf("subscribe %q: %w", topic, err)
	}
	return &Subscriber{sock: sock}, nil
}

// Recv blocks for the next message. Malformed payloads return an error
// wrapping ErrMalformed; the subscriber stays usable.
func (s *Subscriber) Recv() (Message, error) {
	msg, err := s.sock.Recv()
	if err != nil {
		return Message{}, fmt.Errorf("receive kv events: %w", err)
	}
	if len(msg.Frames) != 3 {
		return Message{}, fmt.Errorf("%w: %d frames, want 3", ErrMalformed, len(msg.Frames))
	}
	if len(msg.Frames[1]) != 8 {
		return Message{}, fmt.Errorf("%w: sequence frame of %d bytes", ErrMalformed, len(msg.Frames[1]))
	}
	b, err := Decode(msg.Frames[2])
	if err != nil {
		return Message{}, err
	}
	return Message{Topic: string(msg.Frames[0]), Seq: binary.BigEndian.Uint64(msg.Frames[1]), Batch: b}, nil
}

// Close closes the socket.
func (s *Subscriber) Close() error { return s.sock.Close() }
