package autoscalebench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// watcher records, with the local clock at millisecond precision, when
// the bench model's pods were created, started, became ready, began to
// terminate and were deleted, and every change of the ModelServing's
// spec.replicas. The API server's own timestamps have second precision,
// too coarse to split a cold start.
type watcher struct {
	c   client.WithWatch
	log logr.Logger

	mu      sync.Mutex
	pods    map[types.UID]*Pod
	order   []types.UID
	changes []ReplicaChange
}

func newWatcher(c client.WithWatch, log logr.Logger) *watcher {
	return &watcher{c: c, log: log, pods: map[types.UID]*Pod{}}
}

// start begins both watches; they run until ctx ends, reconnecting if the
// server closes them.
func (w *watcher) start(ctx context.Context) error {
	podW, err := w.c.Watch(ctx, &corev1.PodList{}, client.InNamespace("default"), client.MatchingLabels{"modelserving.volcano.sh/name": benchModel})
	if err != nil {
		return fmt.Errorf("watching pods: %w", err)
	}
	msW, err := w.c.Watch(ctx, &workloadv1alpha1.ModelServingList{}, client.InNamespace("default"))
	if err != nil {
		podW.Stop()
		return fmt.Errorf("watching ModelServings: %w", err)
	}
	go w.loop(ctx, podW, func() (watch.Interface, error) {
		return w.c.Watch(ctx, &corev1.PodList{}, client.InNamespace("default"), client.MatchingLabels{"modelserving.volcano.sh/name": benchModel})
	})
	go w.loop(ctx, msW, func() (watch.Interface, error) {
		return w.c.Watch(ctx, &workloadv1alpha1.ModelServingList{}, client.InNamespace("default"))
	})
	return nil
}

func (w *watcher) loop(ctx context.Context, wi watch.Interface, again func() (watch.Interface, error)) {
	for {
		for ev := range wi.ResultChan() {
			w.handle(ev, time.Now())
		}
		wi.Stop()
		for {
			if ctx.Err() != nil {
				return
			}
			var err error
			if wi, err = again(); err == nil {
				break
			}
			w.log.V(1).Info("watch ended; reconnecting", "err", err.Error())
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
}

func (w *watcher) handle(ev watch.Event, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch o := ev.Object.(type) {
	case *corev1.Pod:
		p := w.pods[o.UID]
		if p == nil {
			p = &Pod{Name: o.Name, Created: o.CreationTimestamp.Time, Seen: now}
			w.pods[o.UID] = p
			w.order = append(w.order, o.UID)
		}
		if p.Running.IsZero() {
			for _, cs := range o.Status.ContainerStatuses {
				if cs.State.Running != nil {
					p.Running = now
				}
			}
		}
		if p.Ready.IsZero() {
			for _, c := range o.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
					p.Ready = now
				}
			}
		}
		if p.Terminating.IsZero() && o.DeletionTimestamp != nil {
			p.Terminating = now
		}
		if ev.Type == watch.Deleted && p.Deleted.IsZero() {
			p.Deleted = now
			if p.Terminating.IsZero() {
				p.Terminating = now
			}
		}
	case *workloadv1alpha1.ModelServing:
		if o.Name != benchModel || ev.Type == watch.Deleted {
			return
		}
		n := int32(1)
		if o.Spec.Replicas != nil {
			n = *o.Spec.Replicas
		}
		if len(w.changes) == 0 || w.changes[len(w.changes)-1].Replicas != n {
			w.changes = append(w.changes, ReplicaChange{At: now, Replicas: n})
		}
	}
}

func (w *watcher) snapshot() ([]Pod, []ReplicaChange) {
	w.mu.Lock()
	defer w.mu.Unlock()
	pods := make([]Pod, 0, len(w.order))
	for _, uid := range w.order {
		pods = append(pods, *w.pods[uid])
	}
	return pods, slices.Clone(w.changes)
}

func (w *watcher) readyNow() int {
	pods, _ := w.snapshot()
	return ReadyCount(pods, time.Now())
}

func (w *watcher) replicasNow() int32 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.changes) == 0 {
		return -1
	}
	return w.changes[len(w.changes)-1].Replicas
}

// waitReady waits until n pods are ready and the ModelServing has been
// seen.
func (w *watcher) waitReady(ctx context.Context, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if w.readyNow() >= n && w.replicasNow() >= 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d replicas ready after %s", w.readyNow(), n, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// scaleEvents counts the events recorded on the bench's AutoscalingPolicy
// by reason.
func scaleEvents(ctx context.Context, c client.Client) map[string]int {
	var list corev1.EventList
	if err := c.List(ctx, &list, client.InNamespace("default")); err != nil {
		return nil
	}
	out := map[string]int{}
	for _, e := range list.Items {
		if e.InvolvedObject.Kind == "AutoscalingPolicy" && e.InvolvedObject.Name == benchModel {
			out[e.Reason] += max(int(e.Count), 1)
		}
	}
	return out
}
