package modelbooster

import (
	"fmt"
	"reflect"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// buildModelServing generates the ModelServing: one serving group per
// backend replica, one role per worker (server, or prefill and decode),
// each role replica an entry pod plus pods-1 worker pods.
func buildModelServing(p *plan) *workloadv1alpha1.ModelServing {
	mb := p.mb
	b := &mb.Spec.Backend
	ms := &workloadv1alpha1.ModelServing{
		TypeMeta:   metav1.TypeMeta{APIVersion: workloadv1alpha1.GroupVersion.String(), Kind: "ModelServing"},
		ObjectMeta: metav1.ObjectMeta{Name: servingName(mb), Namespace: mb.Namespace, Labels: generatedLabels(mb)},
		Spec: workloadv1alpha1.ModelServingSpec{
			Replicas:      ptrTo(b.Replicas),
			SchedulerName: b.SchedulerName,
		},
	}
	for _, w := range p.workers {
		replicas := w.wk.Replicas
		if replicas == 0 {
			replicas = 1 // unset: a role without replicas would serve nothing
		}
		pods := max(w.wk.Pods, 1)
		role := workloadv1alpha1.Role{
			Name:           w.role,
			Replicas:       ptrTo(replicas),
			EntryTemplate:  podTemplate(p, w, true),
			WorkerReplicas: pods - 1,
		}
		if pods > 1 {
			t := podTemplate(p, w, false)
			role.WorkerTemplate = &t
		}
		ms.Spec.Template.Roles = append(ms.Spec.Template.Roles, role)
	}
	return ms
}

// Drained exits. When an entry pod is deleted, routers stop picking it as
// soon as they see its deletion timestamp; its preStop hook holds SIGTERM
// back until they (and slower load balancers) have, and, for vLLM, until
// the engine has no running or waiting request: vLLM aborts in-flight
// requests on SIGTERM unless started with --shutdown-timeout (recent
// versions only), while SGLang drains on SIGTERM by itself. The grace
// period bounds it all.
const (
	drainDelaySeconds       = 5
	terminationGraceSeconds = 120
)

// vllmDrainHook waits drainDelaySeconds, then until the engine's metrics
// show no running or waiting request (or stop answering). It uses the
// image's own Python, which every vLLM image has.
const vllmDrainHook = `import time, urllib.request
time.sleep(%d)
while True:
    try:
        text = urllib.request.urlopen("http://127.0.0.1:%d/metrics", timeout=2).read().decode()
    except Exception:
        break
    busy = sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
               if l.startswith(("vllm:num_requests_running", "vllm:num_requests_waiting")))
    if busy == 0:
        break
    time.sleep(1)
`

// drainHook is the preStop hook of an entry pod's engine.
func drainHook(p *plan) *corev1.Lifecycle {
	if p.engine == networkingv1alpha1.SGLang {
		return &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: drainDelaySeconds}}}
	}
	script := fmt.Sprintf(vllmDrainHook, drainDelaySeconds, p.port)
	return &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"python3", "-c", script}}}}
}

// podTemplate is an entry (serving) or worker pod of a role.
func podTemplate(p *plan, w workerPlan, entry bool) workloadv1alpha1.PodTemplateSpec {
	b := &p.mb.Spec.Backend
	shmVol, shmMount := shm()
	c := corev1.Container{
		Name:         engineContainer,
		Image:        w.wk.Image,
		Env:          b.Env,
		EnvFrom:      b.EnvFrom,
		Resources:    w.wk.Resources,
		VolumeMounts: []corev1.VolumeMount{p.source.mount, shmMount},
	}
	c.Command, c.Args = engineCommand(p, w, entry)
	if entry {
		c.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: p.port, Protocol: corev1.ProtocolTCP}}
		c.ReadinessProbe = &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/health", Port: intstr.FromString("http")}},
			PeriodSeconds: 10,
		}
		c.Lifecycle = drainHook(p)
	}
	spec := corev1.PodSpec{
		Containers:       []corev1.Container{c},
		Volumes:          []corev1.Volume{p.source.volume, shmVol},
		Tolerations:      w.wk.Tolerations,
		RuntimeClassName: b.RuntimeClassName,
		// Every pod of a role replica, so that workers outlast the
		// entry's drain when the kubelet is slow to stop them.
		TerminationGracePeriodSeconds: ptrTo(int64(terminationGraceSeconds)),
	}
	if p.source.downloader != nil {
		spec.InitContainers = []corev1.Container{*p.source.downloader}
	}
	if !reflect.DeepEqual(w.wk.Affinity, corev1.Affinity{}) {
		spec.Affinity = w.wk.Affinity.DeepCopy()
	}
	return workloadv1alpha1.PodTemplateSpec{
		Metadata: &workloadv1alpha1.Metadata{Labels: generatedLabels(p.mb)},
		Spec:     spec,
	}
}

// engineCommand starts the engine. Flags the controller derives (model
// path, served name, port) are added only where the config does not set
// them, so the config always wins.
func engineCommand(p *plan, w workerPlan, entry bool) (command, args []string) {
	multiNode := w.wk.Pods > 1
	if p.engine == networkingv1alpha1.SGLang {
		return sglangCommand(p, w, multiNode)
	}
	if !entry {
		// A vLLM multi-node worker only joins the entry pod's Ray cluster;
		// the entry's engine places its shards there.
		return []string{"sh", "-c", `exec ray start --address="${ENTRY_ADDRESS}:6379" --block`}, nil
	}
	args = baseArgs(p, w, "--model")
	if len(p.loras) > 0 && !w.cfg.Has("enable-lora") {
		args = append(args, "--enable-lora")
	}
	if multiNode && !w.cfg.Has("distributed-executor-backend") {
		args = append(args, "--distributed-executor-backend", "ray")
	}
	args = append(args, configArgs(w)...)
	vllm := []string{"python3", "-m", "vllm.entrypoints.openai.api_server"}
	if !multiNode {
		return vllm, args
	}
	return []string{"sh", "-c", "ray start --head --port=6379 && exec " + shellJoin(append(vllm, args...))}, nil
}

// sglangCommand runs the same launcher on every pod of a role replica:
// SGLang forms its multi-node group from the node rank and the entry
// pod's address, which the ModelServing controller injects.
func sglangCommand(p *plan, w workerPlan, multiNode bool) (command, args []string) {
	args = baseArgs(p, w, "--model-path")
	if !w.cfg.Has("host") {
		args = append(args, "--host", "0.0.0.0") // SGLang listens on loopback by default
	}
	if !w.cfg.Has("enable-metrics") {
		args = append(args, "--enable-metrics") // the router and the autoscaler read /metrics
	}
	if multiNode {
		args = append(args, "--nnodes", "$("+workloadv1alpha1.GroupSizeEnv+")",
			"--node-rank", "$("+workloadv1alpha1.WorkerIndexEnv+")",
			"--dist-init-addr", "$("+workloadv1alpha1.EntryAddressEnv+"):20000")
	}
	args = append(args, configArgs(w)...)
	return []string{"python3", "-m", "sglang.launch_server"}, args
}

func baseArgs(p *plan, w workerPlan, modelFlag string) []string {
	var args []string
	if !w.cfg.Has("model") && !w.cfg.Has("model-path") {
		args = append(args, modelFlag, p.source.path)
	}
	if !w.cfg.Has("served-model-name") {
		args = append(args, "--served-model-name", p.servedName)
	}
	if !w.cfg.Has("port") {
		args = append(args, "--port", itoa(p.port))
	}
	return args
}

// configArgs renders the worker's config; newPlan already decoded it, so
// it cannot fail here.
func configArgs(w workerPlan) []string {
	args, _ := w.cfg.Args()
	return args
}
