package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/printers"
	"k8s.io/client-go/util/jsonpath"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

func newDescribe() *cobra.Command {
	var kf *kubeFlags
	cmd := &cobra.Command{
		Use:   "describe KIND NAME",
		Short: "Show one Kthena object: a summary of its spec, its status and conditions, and its recent events",
		Example: `  kthena describe ms demo
  kthena describe modelbooster qwen3-8b -n models
  kthena describe template Qwen/Qwen3-8B`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if isTemplateKind(args[0]) {
				return describeTemplate(cmd.OutOrStdout(), args[1])
			}
			k, err := lookupKind(args[0])
			if err != nil {
				return err
			}
			if err := kf.useLocalPlatform(cmd); err != nil {
				return err
			}
			ns, err := kf.namespace()
			if err != nil {
				return err
			}
			c, err := kf.client()
			if err != nil {
				return err
			}
			return describeObject(cmd.Context(), c, cmd.OutOrStdout(), k, ns, args[1])
		},
	}
	kf = addKubeFlags(cmd)
	return cmd
}

// specSummary names, per kind, the spec fields worth a line in describe
// (client-go JSONPath templates; empty results are left out).
var specSummary = map[string][][2]string{
	"ModelBooster": {
		{"Model Name", "{.spec.name}"},
		{"Owner", "{.spec.owner}"},
		{"Backend", "{.spec.backend.name} ({.spec.backend.type})"},
		{"Model URI", "{.spec.backend.modelURI}"},
		{"Cache URI", "{.spec.backend.cacheURI}"},
		{"Replicas", "{.spec.backend.replicas}"},
		{"Workers", "{range .spec.backend.workers[*]}{.type}: image {.image}, replicas {.replicas}, pods {.pods}; {end}"},
	},
	"ModelServing": {
		{"Replicas", "{.spec.replicas}"},
		{"Scheduler", "{.spec.schedulerName}"},
		{"Recovery Policy", "{.spec.recoveryPolicy}"},
		{"Rollout Strategy", "{.spec.rolloutStrategy.type}"},
		{"Roles", "{range .spec.template.roles[*]}{.name}: replicas {.replicas}, workers {.workerReplicas}; {end}"},
	},
	"ModelServer": {
		{"Model", "{.spec.model}"},
		{"Engine", "{.spec.inferenceEngine}"},
		{"Port", "{.spec.workloadPort.port} {.spec.workloadPort.protocol}"},
		{"Selector", "{.spec.workloadSelector.matchLabels}"},
		{"PD Group", "{.spec.workloadSelector.pdGroup.groupKey}"},
		{"KV Connector", "{.spec.kvConnector.type}"},
	},
	"ModelRoute": {
		{"Model", "{.spec.modelName}"},
		{"LoRA Adapters", "{.spec.loraAdapters}"},
		{"Rules", "{range .spec.rules[*]}{.name} -> {range .targetModels[*]}{.modelServerName}{.externalModelProviderName} (weight {.weight}) {end}; {end}"},
		{"Rate Limit", "{.spec.rateLimit}"},
	},
	"AutoscalingPolicy": {
		{"Target", "{.spec.homogeneousTarget.target.targetRef.name}{.spec.disaggregatedTarget.targetRef.name}{range .spec.heterogeneousTarget.params[*]}{.target.targetRef.name} {end}"},
		{"Replicas", "{.spec.homogeneousTarget.minReplicas}-{.spec.homogeneousTarget.maxReplicas}"},
		{"Metrics", "{range .spec.metrics[*]}{.name}={.targetValue} {end}"},
		{"Tolerance Percent", "{.spec.tolerancePercent}"},
	},
	"ExternalModelProvider": {
		{"Provider Type", "{.spec.providerType}"},
		{"Base URL", "{.spec.baseURL}"},
		{"Auth", "{.spec.auth.scheme} from secret {.spec.auth.secretRef.name}/{.spec.auth.secretRef.key}"},
	},
}

func describeObject(ctx context.Context, c client.Client, out io.Writer, k kind, ns, name string) error {
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(k.Resource.GroupVersion().WithKind(k.Kind))
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj); err != nil {
		return err
	}
	w := printers.GetNewTabWriter(out)
	defer func() { _ = w.Flush() }()
	line := func(format string, a ...any) { _, _ = fmt.Fprintf(w, format+"\n", a...) }
	line("Name:\t%s", obj.GetName())
	line("Namespace:\t%s", obj.GetNamespace())
	line("Kind:\t%s", k.Kind)
	line("Labels:\t%s", joinMap(obj.GetLabels()))
	line("Annotations:\t%s", joinMap(obj.GetAnnotations()))
	created := obj.GetCreationTimestamp()
	line("Created:\t%s (%s ago)", created.UTC().Format(time.RFC3339), age(created))

	line("Spec:")
	for _, f := range specSummary[k.Kind] {
		if v := evalPath(obj.Object, f[1]); v != "" {
			line("  %s:\t%s", f[0], v)
		}
	}
	status, _, _ := unstructured.NestedMap(obj.Object, "status")
	fields := flatten("", status)
	if len(fields) > 0 {
		line("Status:")
		for _, f := range fields {
			line("  %s:\t%s", f[0], f[1])
		}
	}

	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	if len(conds) == 0 {
		line("Conditions:\t<none>")
	} else {
		line("Conditions:")
		line("  Type\tStatus\tReason\tMessage\tLast Transition")
		for _, c := range conds {
			m, _ := c.(map[string]any)
			line("  %v\t%v\t%v\t%v\t%v", m["type"], m["status"], m["reason"], m["message"], m["lastTransitionTime"])
		}
	}

	var events corev1.EventList
	if err := c.List(ctx, &events, client.InNamespace(ns), client.MatchingFields{"involvedObject.uid": string(obj.GetUID())}); err != nil {
		return err
	}
	if len(events.Items) == 0 {
		line("Events:\t<none>")
		return nil
	}
	sort.Slice(events.Items, func(i, j int) bool { return lastSeen(&events.Items[i]).Before(lastSeen(&events.Items[j])) })
	const recent = 20
	if n := len(events.Items); n > recent {
		events.Items = events.Items[n-recent:]
	}
	line("Events:")
	line("  Type\tReason\tAge\tFrom\tMessage")
	for i := range events.Items {
		e := &events.Items[i]
		from := e.Source.Component
		if from == "" {
			from = e.ReportingController
		}
		line("  %s\t%s\t%s\t%s\t%s", e.Type, e.Reason, age(metav1.NewTime(lastSeen(e))), from, strings.TrimSpace(e.Message))
	}
	return nil
}

func lastSeen(e *corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}

func age(t metav1.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(time.Since(t.Time))
}

func joinMap(m map[string]string) string {
	if len(m) == 0 {
		return "<none>"
	}
	var kv []string
	for k, v := range m {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return strings.Join(kv, ", ")
}

// evalPath renders a JSONPath template; a path that is absent gives "".
func evalPath(obj map[string]any, tmpl string) string {
	jp := jsonpath.New("describe").AllowMissingKeys(true)
	if err := jp.Parse(tmpl); err != nil {
		return ""
	}
	var buf bytes.Buffer
	if err := jp.Execute(&buf, obj); err != nil {
		return ""
	}
	s := strings.TrimSpace(buf.String())
	s = strings.TrimSuffix(s, ";")
	// Templates of several parts leave only their punctuation when every
	// part is absent.
	if strings.Trim(s, " -()/;") == "" || strings.HasPrefix(s, "from secret /") {
		return ""
	}
	return s
}

// flatten lists the status fields other than conditions as dotted names
// and values, sorted by name.
func flatten(prefix string, m map[string]any) [][2]string {
	var out [][2]string
	for k, v := range m {
		name := k
		if prefix != "" {
			name = prefix + "." + k
		}
		if prefix == "" && k == "conditions" {
			continue
		}
		switch v := v.(type) {
		case map[string]any:
			out = append(out, flatten(name, v)...)
		case []any:
			data, _ := json.Marshal(v)
			out = append(out, [2]string{name, string(data)})
		default:
			out = append(out, [2]string{name, fmt.Sprint(v)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}
