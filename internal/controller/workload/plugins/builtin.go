package plugins

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
)

// Names of the built-in plugins.
const (
	DemoPodTweaksName     = "demo-pod-tweaks"
	LWSStandardLabelsName = "lws-standard-labels"
)

func decodeStrict(raw []byte, into any) error {
	if len(raw) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(into)
}

// DemoPodTweaksConfig is the config of demo-pod-tweaks.
type DemoPodTweaksConfig struct {
	RuntimeClassName string            `json:"runtimeClassName,omitempty"`
	Annotations      map[string]string `json:"annotations,omitempty"`
	Env              []corev1.EnvVar   `json:"env,omitempty"`
}

type demoPodTweaks struct{ cfg DemoPodTweaksConfig }

// NewDemoPodTweaks builds demo-pod-tweaks: it sets the runtime class, adds
// annotations and sets env vars on every container.
func NewDemoPodTweaks(raw []byte) (Plugin, error) {
	p := &demoPodTweaks{}
	if err := decodeStrict(raw, &p.cfg); err != nil {
		return nil, fmt.Errorf("decoding config: %w", err)
	}
	for _, e := range p.cfg.Env {
		if e.Name == "" {
			return nil, fmt.Errorf("env entry without a name")
		}
	}
	return p, nil
}

func (p *demoPodTweaks) Name() string { return DemoPodTweaksName }

func (p *demoPodTweaks) OnPodCreate(_ context.Context, req *HookRequest) error {
	pod := req.Pod
	if p.cfg.RuntimeClassName != "" {
		rc := p.cfg.RuntimeClassName
		pod.Spec.RuntimeClassName = &rc
	}
	if len(p.cfg.Annotations) > 0 && pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	for k, v := range p.cfg.Annotations {
		pod.Annotations[k] = v
	}
	for i := range pod.Spec.Containers {
		pod.Spec.Containers[i].Env = SetEnv(pod.Spec.Containers[i].Env, p.cfg.Env...)
	}
	return nil
}

func (p *demoPodTweaks) OnPodReady(context.Context, *HookRequest) error { return nil }

// SetEnv replaces variables of the same name in env, or appends them.
func SetEnv(env []corev1.EnvVar, vars ...corev1.EnvVar) []corev1.EnvVar {
	for _, v := range vars {
		replaced := false
		for i := range env {
			if env[i].Name == v.Name {
				env[i] = v
				replaced = true
			}
		}
		if !replaced {
			env = append(env, v)
		}
	}
	return env
}

// Labels set by lws-standard-labels (LeaderWorkerSet's well-known keys).
const (
	LWSNameLabel        = "leaderworkerset.sigs.k8s.io/name"
	LWSGroupIndexLabel  = "leaderworkerset.sigs.k8s.io/group-index"
	LWSWorkerIndexLabel = "leaderworkerset.sigs.k8s.io/worker-index"
	LWSGroupKeyLabel    = "leaderworkerset.sigs.k8s.io/group-key"
)

type lwsStandardLabels struct{}

// NewLWSStandardLabels builds lws-standard-labels: it labels pods the way
// LeaderWorkerSet does, so tools written for LWS find them. It takes no config.
func NewLWSStandardLabels(raw []byte) (Plugin, error) {
	var cfg struct{}
	if err := decodeStrict(raw, &cfg); err != nil {
		return nil, fmt.Errorf("decoding config: %w", err)
	}
	return lwsStandardLabels{}, nil
}

func (lwsStandardLabels) Name() string { return LWSStandardLabelsName }

func (lwsStandardLabels) OnPodCreate(_ context.Context, req *HookRequest) error {
	pod := req.Pod
	if pod.Labels == nil {
		pod.Labels = map[string]string{}
	}
	ms := req.ModelServing
	sum := sha1.Sum([]byte(ms.Namespace + "/" + ms.Name + "/" + req.ServingGroup + "/" + req.RoleID))
	pod.Labels[LWSNameLabel] = ms.Name
	pod.Labels[LWSGroupIndexLabel] = strconv.Itoa(req.GroupIndex)
	pod.Labels[LWSWorkerIndexLabel] = strconv.Itoa(req.WorkerIndex)
	pod.Labels[LWSGroupKeyLabel] = hex.EncodeToString(sum[:])
	return nil
}

func (lwsStandardLabels) OnPodReady(context.Context, *HookRequest) error { return nil }
