package nodeagent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// serviceAccountDir is where a kubelet mounts a pod's API credentials.
const serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// saTokenSeconds is the lifetime of the token written for a pod's service
// account; the agent does not rotate it.
const saTokenSeconds = 24 * 3600

// APIAccess is how pods reach the API server: its URL and CA, written into
// the kubeconfig of pods that name a service account.
type APIAccess struct {
	Host   string
	CAData []byte
}

// podFiles are a pod's volumes materialised on the host: processes cannot
// have their own mount namespace here, so a container's paths are rewritten
// to the host directories instead.
type podFiles struct {
	volumes map[string]string // volume name → host path
	// kubeconfig authenticates as the pod's service account ("" if none).
	kubeconfig string
	saDir      string
}

// materialise writes the pod's configMap, secret, downwardAPI, projected
// and emptyDir volumes under dir, uses hostPath volumes as they are, and,
// for a pod that names a service account, writes its credentials (a token
// bound to the pod) and a kubeconfig. Volume kinds with no local meaning
// (persistent volumes, CSI, ...) are skipped, and their mount paths stay as
// written. It returns a note per skipped volume.
func materialise(ctx context.Context, c kubernetes.Interface, pod *corev1.Pod, dir string, api *APIAccess) (podFiles, []string, error) {
	pf := podFiles{volumes: map[string]string{}}
	var notes []string
	for _, v := range pod.Spec.Volumes {
		path := filepath.Join(dir, "volumes", v.Name)
		var files map[string][]byte
		var err error
		switch {
		case v.HostPath != nil:
			pf.volumes[v.Name] = v.HostPath.Path
			continue
		case v.EmptyDir != nil:
		case v.ConfigMap != nil:
			files, err = configMapFiles(ctx, c, pod.Namespace, v.ConfigMap.Name, v.ConfigMap.Items, v.ConfigMap.Optional)
		case v.Secret != nil:
			files, err = secretFiles(ctx, c, pod.Namespace, v.Secret.SecretName, v.Secret.Items, v.Secret.Optional)
		case v.DownwardAPI != nil:
			files, err = downwardFiles(pod, v.DownwardAPI.Items)
		case v.Projected != nil:
			files = map[string][]byte{}
			for _, src := range v.Projected.Sources {
				var part map[string][]byte
				switch {
				case src.ConfigMap != nil:
					part, err = configMapFiles(ctx, c, pod.Namespace, src.ConfigMap.Name, src.ConfigMap.Items, src.ConfigMap.Optional)
				case src.Secret != nil:
					part, err = secretFiles(ctx, c, pod.Namespace, src.Secret.Name, src.Secret.Items, src.Secret.Optional)
				case src.DownwardAPI != nil:
					part, err = downwardFiles(pod, src.DownwardAPI.Items)
				case src.ServiceAccountToken != nil:
					var tok string
					tok, err = podToken(ctx, c, pod, src.ServiceAccountToken.Audience, src.ServiceAccountToken.ExpirationSeconds)
					part = map[string][]byte{src.ServiceAccountToken.Path: []byte(tok)}
				}
				if err != nil {
					break
				}
				for k, b := range part {
					files[k] = b
				}
			}
		default:
			notes = append(notes, fmt.Sprintf("volume %s: this kind is not materialised locally", v.Name))
			continue
		}
		if err != nil {
			return pf, notes, fmt.Errorf("volume %s: %w", v.Name, err)
		}
		if err := writeFiles(path, files); err != nil {
			return pf, notes, fmt.Errorf("volume %s: %w", v.Name, err)
		}
		pf.volumes[v.Name] = path
	}
	if pod.Spec.ServiceAccountName != "" && api != nil && (pod.Spec.AutomountServiceAccountToken == nil || *pod.Spec.AutomountServiceAccountToken) {
		tok, err := podToken(ctx, c, pod, "", nil)
		if err != nil {
			return pf, notes, fmt.Errorf("service account %s: %w", pod.Spec.ServiceAccountName, err)
		}
		pf.saDir = filepath.Join(dir, "serviceaccount")
		if err := writeFiles(pf.saDir, map[string][]byte{"token": []byte(tok), "ca.crt": api.CAData, "namespace": []byte(pod.Namespace)}); err != nil {
			return pf, notes, err
		}
		cfg := clientcmdapi.NewConfig()
		cfg.Clusters["local"] = &clientcmdapi.Cluster{Server: api.Host, CertificateAuthority: filepath.Join(pf.saDir, "ca.crt")}
		cfg.AuthInfos["sa"] = &clientcmdapi.AuthInfo{TokenFile: filepath.Join(pf.saDir, "token")}
		cfg.Contexts["local"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: "sa", Namespace: pod.Namespace}
		cfg.CurrentContext = "local"
		pf.kubeconfig = filepath.Join(dir, "kubeconfig")
		if err := clientcmd.WriteToFile(*cfg, pf.kubeconfig); err != nil {
			return pf, notes, err
		}
	}
	return pf, notes, nil
}

// mounts is a container's table of container path → host path, longest
// container path first so that nested mounts win.
func (pf podFiles) mounts(ctr *corev1.Container) [][2]string {
	var out [][2]string
	for _, m := range ctr.VolumeMounts {
		host, ok := pf.volumes[m.Name]
		if !ok {
			continue
		}
		if m.SubPath != "" {
			host = filepath.Join(host, m.SubPath)
		}
		out = append(out, [2]string{filepath.Clean(m.MountPath), host})
	}
	if pf.saDir != "" {
		out = append(out, [2]string{serviceAccountDir, pf.saDir})
	}
	sort.SliceStable(out, func(i, j int) bool { return len(out[i][0]) > len(out[j][0]) })
	return out
}

// rewritePaths replaces, in s, every container path under a mount with its
// host path. A path counts where it starts s or follows '=', ':', ',' or a
// space, and ends at s's end or a '/', so that "--config=/etc/app/c.yaml"
// is rewritten but "/etc/application" is not taken for "/etc/app".
func rewritePaths(s string, mounts [][2]string) string {
	if len(mounts) == 0 || !strings.Contains(s, "/") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if i == 0 || strings.ContainsRune("=:, ", rune(s[i-1])) {
			matched := false
			for _, m := range mounts {
				if strings.HasPrefix(s[i:], m[0]) {
					end := i + len(m[0])
					if end == len(s) || s[end] == '/' || strings.ContainsRune(", ", rune(s[end])) {
						b.WriteString(m[1])
						i = end
						matched = true
						break
					}
				}
			}
			if matched {
				continue
			}
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String()
}

func rewriteAll(words []string, mounts [][2]string) []string {
	for i, w := range words {
		words[i] = rewritePaths(w, mounts)
	}
	return words
}

func configMapFiles(ctx context.Context, c kubernetes.Interface, ns, name string, items []corev1.KeyToPath, opt *bool) (map[string][]byte, error) {
	cm, err := c.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) && optional(opt) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("configMap %s: %w", name, err)
	}
	data := map[string][]byte{}
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return project(data, items, "configMap "+name, opt)
}

func secretFiles(ctx context.Context, c kubernetes.Interface, ns, name string, items []corev1.KeyToPath, opt *bool) (map[string][]byte, error) {
	s, err := c.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) && optional(opt) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("secret %s: %w", name, err)
	}
	return project(s.Data, items, "secret "+name, opt)
}

// project picks the listed keys (all when items is empty) as files.
func project(data map[string][]byte, items []corev1.KeyToPath, what string, opt *bool) (map[string][]byte, error) {
	if len(items) == 0 {
		return data, nil
	}
	out := map[string][]byte{}
	for _, it := range items {
		b, ok := data[it.Key]
		if !ok {
			if optional(opt) {
				continue
			}
			return nil, fmt.Errorf("key %s not in %s", it.Key, what)
		}
		out[it.Path] = b
	}
	return out, nil
}

func downwardFiles(pod *corev1.Pod, items []corev1.DownwardAPIVolumeFile) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, it := range items {
		if it.FieldRef == nil {
			continue // resource fields have no meaning for local processes
		}
		var v string
		switch it.FieldRef.FieldPath {
		case "metadata.name":
			v = pod.Name
		case "metadata.namespace":
			v = pod.Namespace
		case "metadata.uid":
			v = string(pod.UID)
		case "metadata.labels":
			v = formatMap(pod.Labels)
		case "metadata.annotations":
			v = formatMap(pod.Annotations)
		default:
			return nil, fmt.Errorf("downward API field %s is not supported locally", it.FieldRef.FieldPath)
		}
		out[it.Path] = []byte(v)
	}
	return out, nil
}

func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%q\n", k, m[k])
	}
	return b.String()
}

// podToken is a token of the pod's service account bound to the pod.
func podToken(ctx context.Context, c kubernetes.Interface, pod *corev1.Pod, audience string, seconds *int64) (string, error) {
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	exp := int64(saTokenSeconds)
	if seconds != nil {
		exp = *seconds
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: &exp,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	if audience != "" {
		req.Spec.Audiences = []string{audience}
	}
	res, err := c.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		return "", err
	}
	return res.Status.Token, nil
}

// writeFiles creates dir and writes each file (relative paths) into it.
func writeFiles(dir string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for rel, b := range files {
		p := filepath.Join(dir, filepath.Clean("/"+rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			return err
		}
	}
	return nil
}
