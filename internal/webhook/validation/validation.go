// Package validation holds field checks shared by Kthena's admission webhooks.
// Each check returns a field.ErrorList so that messages name the offending field.
package validation

import (
	"fmt"
	"strings"
	"unicode"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// IntOrPercent checks that v is a non-negative integer or a percentage in [0%, 100%].
func IntOrPercent(v *intstr.IntOrString, path *field.Path) field.ErrorList {
	if v == nil {
		return nil
	}
	if v.Type == intstr.Int {
		if v.IntVal < 0 {
			return field.ErrorList{field.Invalid(path, v.IntVal, "must be greater than or equal to 0")}
		}
		return nil
	}
	p, err := Percent(v.StrVal)
	if err != nil {
		return field.ErrorList{field.Invalid(path, v.StrVal, err.Error())}
	}
	if p < 0 || p > 100 {
		return field.ErrorList{field.Invalid(path, v.StrVal, "percentage must be between 0% and 100%")}
	}
	return nil
}

// Percent parses "NN%" into NN.
func Percent(s string) (int, error) {
	num, ok := strings.CutSuffix(s, "%")
	if !ok || num == "" {
		return 0, fmt.Errorf("must be an integer or a percentage such as \"25%%\"")
	}
	var n int
	if _, err := fmt.Sscanf(num, "%d", &n); err != nil || fmt.Sprint(n) != num {
		return 0, fmt.Errorf("must be an integer or a percentage such as \"25%%\"")
	}
	return n, nil
}

// IsZero reports whether v is 0 or "0%".
func IsZero(v *intstr.IntOrString) bool {
	if v == nil {
		return false
	}
	if v.Type == intstr.Int {
		return v.IntVal == 0
	}
	p, err := Percent(v.StrVal)
	return err == nil && p == 0
}

// Image checks a container image reference.
func Image(image string, path *field.Path) field.ErrorList {
	if image == "" {
		return field.ErrorList{field.Required(path, "an image is required")}
	}
	if strings.IndexFunc(image, unicode.IsSpace) >= 0 {
		return field.ErrorList{field.Invalid(path, image, "must not contain whitespace")}
	}
	return nil
}

// PodSpec checks the parts of a pod spec that the API server would only
// reject when the controller creates the pod, too late for the user to see.
func PodSpec(spec *corev1.PodSpec, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(spec.Containers) == 0 {
		errs = append(errs, field.Required(path.Child("containers"), "at least one container is required"))
	}
	names := map[string]bool{}
	check := func(c *corev1.Container, p *field.Path) {
		for _, msg := range utilvalidation.IsDNS1123Label(c.Name) {
			errs = append(errs, field.Invalid(p.Child("name"), c.Name, msg))
		}
		if names[c.Name] {
			errs = append(errs, field.Duplicate(p.Child("name"), c.Name))
		}
		names[c.Name] = true
		errs = append(errs, Image(c.Image, p.Child("image"))...)
		for i, e := range c.Env {
			for _, msg := range utilvalidation.IsEnvVarName(e.Name) {
				errs = append(errs, field.Invalid(p.Child("env").Index(i).Child("name"), e.Name, msg))
			}
		}
		for i, port := range c.Ports {
			for _, msg := range utilvalidation.IsValidPortNum(int(port.ContainerPort)) {
				errs = append(errs, field.Invalid(p.Child("ports").Index(i).Child("containerPort"), port.ContainerPort, msg))
			}
		}
	}
	for i := range spec.InitContainers {
		check(&spec.InitContainers[i], path.Child("initContainers").Index(i))
	}
	for i := range spec.Containers {
		check(&spec.Containers[i], path.Child("containers").Index(i))
	}
	return errs
}

// Labels checks label keys and values.
func Labels(labels map[string]string, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for k, v := range labels {
		for _, msg := range utilvalidation.IsQualifiedName(k) {
			errs = append(errs, field.Invalid(path.Key(k), k, "label key: "+msg))
		}
		for _, msg := range utilvalidation.IsValidLabelValue(v) {
			errs = append(errs, field.Invalid(path.Key(k), v, "label value: "+msg))
		}
	}
	return errs
}
