package nodeagent

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// containerEnv resolves a container's environment as a kubelet does:
// envFrom first, then env in order, with $(VAR) references to earlier
// variables expanded and downward-API fields resolved against the pod.
func containerEnv(ctx context.Context, c kubernetes.Interface, pod *corev1.Pod, ctr *corev1.Container, podIP, nodeName string) (map[string]string, []string, error) {
	env := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := env[k]; !ok {
			order = append(order, k)
		}
		env[k] = v
	}
	for _, from := range ctr.EnvFrom {
		var data map[string]string
		switch {
		case from.ConfigMapRef != nil:
			cm, err := c.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, from.ConfigMapRef.Name, metav1.GetOptions{})
			if err != nil {
				if optional(from.ConfigMapRef.Optional) {
					continue
				}
				return nil, nil, fmt.Errorf("envFrom configMap %s: %w", from.ConfigMapRef.Name, err)
			}
			data = cm.Data
		case from.SecretRef != nil:
			s, err := c.CoreV1().Secrets(pod.Namespace).Get(ctx, from.SecretRef.Name, metav1.GetOptions{})
			if err != nil {
				if optional(from.SecretRef.Optional) {
					continue
				}
				return nil, nil, fmt.Errorf("envFrom secret %s: %w", from.SecretRef.Name, err)
			}
			data = map[string]string{}
			for k, v := range s.Data {
				data[k] = string(v)
			}
		}
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			set(from.Prefix+k, data[k])
		}
	}
	for _, e := range ctr.Env {
		if e.ValueFrom == nil {
			set(e.Name, expand(e.Value, env))
			continue
		}
		v, err := valueFrom(ctx, c, pod, e.ValueFrom, podIP, nodeName)
		if err != nil {
			return nil, nil, fmt.Errorf("env %s: %w", e.Name, err)
		}
		set(e.Name, v)
	}
	return env, order, nil
}

func optional(b *bool) bool { return b != nil && *b }

func valueFrom(ctx context.Context, c kubernetes.Interface, pod *corev1.Pod, src *corev1.EnvVarSource, podIP, nodeName string) (string, error) {
	switch {
	case src.FieldRef != nil:
		return fieldValue(pod, src.FieldRef.FieldPath, podIP, nodeName)
	case src.ResourceFieldRef != nil:
		return resourceValue(pod, src.ResourceFieldRef), nil
	case src.ConfigMapKeyRef != nil:
		r := src.ConfigMapKeyRef
		cm, err := c.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, r.Name, metav1.GetOptions{})
		if err != nil {
			if optional(r.Optional) {
				return "", nil
			}
			return "", err
		}
		v, ok := cm.Data[r.Key]
		if !ok && !optional(r.Optional) {
			return "", fmt.Errorf("key %s not in configMap %s", r.Key, r.Name)
		}
		return v, nil
	case src.SecretKeyRef != nil:
		r := src.SecretKeyRef
		s, err := c.CoreV1().Secrets(pod.Namespace).Get(ctx, r.Name, metav1.GetOptions{})
		if err != nil {
			if optional(r.Optional) {
				return "", nil
			}
			return "", err
		}
		v, ok := s.Data[r.Key]
		if !ok && !optional(r.Optional) {
			return "", fmt.Errorf("key %s not in secret %s", r.Key, r.Name)
		}
		return string(v), nil
	}
	return "", nil
}

var subscript = regexp.MustCompile(`^metadata\.(labels|annotations)\['(.+)'\]$`)

// fieldValue resolves a downward-API field path.
func fieldValue(pod *corev1.Pod, path, podIP, nodeName string) (string, error) {
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		return nodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.podIP", "status.podIPs":
		return podIP, nil
	case "status.hostIP", "status.hostIPs":
		return "127.0.0.1", nil
	}
	if m := subscript.FindStringSubmatch(path); m != nil {
		if m[1] == "labels" {
			return pod.Labels[m[2]], nil
		}
		return pod.Annotations[m[2]], nil
	}
	return "", fmt.Errorf("unsupported fieldRef %q", path)
}

func resourceValue(pod *corev1.Pod, r *corev1.ResourceFieldSelector) string {
	for _, c := range pod.Spec.Containers {
		if r.ContainerName != "" && c.Name != r.ContainerName {
			continue
		}
		kind, name, _ := strings.Cut(r.Resource, ".")
		list := c.Resources.Limits
		if kind == "requests" {
			list = c.Resources.Requests
		}
		if q, ok := list[corev1.ResourceName(name)]; ok {
			return q.String()
		}
	}
	return "0"
}

var varRef = regexp.MustCompile(`\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)`)

// expand replaces $(VAR) with earlier variables; $$ escapes a dollar and
// unknown references stay as written.
func expand(s string, env map[string]string) string {
	return varRef.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		if v, ok := env[m[2:len(m)-1]]; ok {
			return v
		}
		return m
	})
}

func expandAll(words []string, env map[string]string) []string {
	out := make([]string, len(words))
	for i, w := range words {
		out[i] = expand(w, env)
	}
	return out
}
