package controller

import (
	"context"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// BadImage is an image the fake kubelet never makes ready.
const BadImage = "example.invalid/does-not-exist:1"

// kubelet plays the node agent for the pods of one namespace: it marks each
// pod Running and Ready after delay, except pods whose image is BadImage or
// whose name is held.
type kubelet struct {
	ns    string
	delay time.Duration
	mu    sync.Mutex
	held  map[string]bool
	stop  chan struct{}
	done  chan struct{}
}

func startKubelet(t *testing.T, ns string, delay time.Duration) *kubelet {
	k := &kubelet{ns: ns, delay: delay, held: map[string]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
	go k.run()
	t.Cleanup(k.halt)
	return k
}

func (k *kubelet) halt() {
	select {
	case <-k.stop:
		return
	default:
	}
	close(k.stop)
	<-k.done
}

// hold keeps the named pods from becoming ready.
func (k *kubelet) hold(names ...string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, n := range names {
		k.held[n] = true
	}
}

func (k *kubelet) release(names ...string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, n := range names {
		delete(k.held, n)
	}
}

func (k *kubelet) isHeld(name string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.held[name]
}

func (k *kubelet) run() {
	defer close(k.done)
	ctx := context.Background()
	for {
		select {
		case <-k.stop:
			return
		case <-time.After(100 * time.Millisecond):
		}
		var list corev1.PodList
		if err := env.Client.List(ctx, &list, client.InNamespace(k.ns)); err != nil {
			continue
		}
		for i := range list.Items {
			p := &list.Items[i]
			if p.DeletionTimestamp != nil || podIsReady(p) || k.isHeld(p.Name) || time.Since(p.CreationTimestamp.Time) < k.delay {
				continue
			}
			if slices.ContainsFunc(p.Spec.Containers, func(c corev1.Container) bool { return c.Image == BadImage }) {
				continue
			}
			if p.Status.Phase == corev1.PodFailed {
				continue
			}
			setPodStatus(ctx, p, corev1.PodRunning, true, 0)
		}
	}
}

func podIsReady(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// setPodStatus writes the status a kubelet would: phase, Ready condition and
// the container's restart count.
func setPodStatus(ctx context.Context, p *corev1.Pod, phase corev1.PodPhase, ready bool, restarts int32) error {
	p = p.DeepCopy()
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	p.Status.Phase = phase
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status, LastTransitionTime: metav1.Now()}}
	p.Status.ContainerStatuses = nil
	for _, c := range p.Spec.Containers {
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, Ready: ready, RestartCount: restarts,
		})
	}
	err := env.Client.Status().Update(ctx, p)
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}

func sortStrings(s []string) []string {
	sort.Strings(s)
	return s
}

func joinNames(s []string) string { return strings.Join(s, ",") }
