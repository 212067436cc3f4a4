package nodeagent

import (
	"os"
	"path/filepath"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
)

func TestMaterialise(t *testing.T) {
	c := fake.NewClientset(
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "cfg"}, Data: map[string]string{"config.yaml": "a: 1", "other": "x"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "tls"}, Data: map[string][]byte{"tls.crt": []byte("CERT"), "tls.key": []byte("KEY")}},
	)
	var bound *authenticationv1.BoundObjectReference
	c.PrependReactor("create", "serviceaccounts", func(a k8stesting.Action) (bool, runtime.Object, error) {
		req := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenRequest)
		bound = req.Spec.BoundObjectRef
		req.Status.Token = "token-of-" + a.(k8stesting.CreateActionImpl).Name
		return true, req, nil
	})
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", UID: "u1", Labels: map[string]string{"app": "x"}},
		Spec: corev1.PodSpec{
			ServiceAccountName: "robot",
			Volumes: []corev1.Volume{
				{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
					LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Items: []corev1.KeyToPath{{Key: "config.yaml", Path: "config.yaml"}}}}},
				{Name: "tls", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "tls"}}},
				{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "info", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
					{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}}}}}},
				{Name: "models", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/srv/models"}}},
				{Name: "claim", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "c"}}},
				{Name: "missing", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
					LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}, Optional: ptr.To(true)}}},
			},
		},
	}
	dir := t.TempDir()
	pf, notes, err := materialise(t.Context(), c, pod, dir, &APIAccess{Host: "https://127.0.0.1:6443", CAData: []byte("CA")})
	if err != nil {
		t.Fatal(err)
	}
	if len(notes) != 1 {
		t.Errorf("notes %q, want one for the claim", notes)
	}
	for path, want := range map[string]string{
		"volumes/cfg/config.yaml":  "a: 1",
		"volumes/tls/tls.key":      "KEY",
		"volumes/info/labels":      "app=\"x\"\n",
		"serviceaccount/token":     "token-of-robot",
		"serviceaccount/namespace": "ns",
		"serviceaccount/ca.crt":    "CA",
	} {
		got, err := os.ReadFile(filepath.Join(dir, path))
		if err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", path, got, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "volumes/cfg/other")); !os.IsNotExist(err) {
		t.Error("configMap key outside items written")
	}
	if bound == nil || bound.Kind != "Pod" || bound.UID != "u1" {
		t.Errorf("token not bound to the pod: %+v", bound)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", pf.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "https://127.0.0.1:6443" || cfg.BearerTokenFile != filepath.Join(dir, "serviceaccount", "token") {
		t.Errorf("kubeconfig host %s token file %s", cfg.Host, cfg.BearerTokenFile)
	}

	ctr := &corev1.Container{VolumeMounts: []corev1.VolumeMount{
		{Name: "cfg", MountPath: "/etc/app"}, {Name: "tls", MountPath: "/etc/app/tls"},
		{Name: "models", MountPath: "/models", SubPath: "qwen"}, {Name: "claim", MountPath: "/data"},
	}}
	m := pf.mounts(ctr)
	for in, want := range map[string]string{
		"--config=/etc/app/config.yaml":  "--config=" + dir + "/volumes/cfg/config.yaml",
		"/etc/app/tls/tls.crt":           dir + "/volumes/tls/tls.crt",
		"--model /models/m":              "--model /srv/models/qwen/m",
		"/etc/application":               "/etc/application",
		"--cert=/etc/app/tls,/etc/app/x": "--cert=" + dir + "/volumes/tls," + dir + "/volumes/cfg/x",
		"/data/x":                        "/data/x", // not materialised: left as written
		serviceAccountDir + "/token":     dir + "/serviceaccount/token",
	} {
		if got := rewritePaths(in, m); got != want {
			t.Errorf("rewritePaths(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMaterialiseMissingConfigMap(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p"}, Spec: corev1.PodSpec{Volumes: []corev1.Volume{
		{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "gone"}}}}}}}
	if _, _, err := materialise(t.Context(), fake.NewClientset(), pod, t.TempDir(), nil); err == nil {
		t.Fatal("a pod mounting a missing configMap started")
	}
}
