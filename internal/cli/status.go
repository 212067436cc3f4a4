package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/printers"
	"sigs.k8s.io/controller-runtime/pkg/client"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

func newStatus() *cobra.Command {
	var allNamespaces bool
	var kf *kubeFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show what is deployed: models, their engines, routes and autoscaling, on one screen",
		Example: `  kthena status
  kthena status -A`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
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
			if allNamespaces {
				ns = ""
			}
			return status(cmd.Context(), c, cmd.OutOrStdout(), ns)
		},
	}
	kf = addKubeFlags(cmd)
	cmd.Flags().BoolVarP(&allNamespaces, "all-namespaces", "A", false, "show every namespace")
	return cmd
}

// section is one kind's table in `kthena status`.
type section struct {
	title   string
	columns []string
	rows    []metav1.TableRow
}

func (s *section) add(obj runtime.Object, cells ...any) {
	s.rows = append(s.rows, metav1.TableRow{Cells: cells, Object: runtime.RawExtension{Object: obj}})
}

// status prints one table per kind; ns "" means every namespace.
func status(ctx context.Context, c client.Client, out io.Writer, ns string) error {
	var sections []*section
	for _, build := range []func(context.Context, client.Client, string) (*section, error){
		boosterSection, servingSection, serverSection, routeSection, policySection,
	} {
		s, err := build(ctx, c, ns)
		if err != nil {
			return err
		}
		sections = append(sections, s)
	}
	for i, s := range sections {
		if i > 0 {
			if _, err := fmt.Fprintln(out); err != nil {
				return err
			}
		}
		if len(s.rows) == 0 {
			if _, err := fmt.Fprintf(out, "%s: none\n", s.title); err != nil {
				return err
			}
			continue
		}
		if _, err := fmt.Fprintf(out, "%s:\n", s.title); err != nil {
			return err
		}
		table := &metav1.Table{Rows: s.rows}
		for _, col := range s.columns {
			table.ColumnDefinitions = append(table.ColumnDefinitions, metav1.TableColumnDefinition{Name: col, Type: "string"})
		}
		if err := printers.NewTablePrinter(printers.PrintOptions{WithNamespace: ns == ""}).PrintObj(table, out); err != nil {
			return err
		}
	}
	return nil
}

func listIn(ctx context.Context, c client.Client, list client.ObjectList, ns string) error {
	if err := c.List(ctx, list, client.InNamespace(ns)); err != nil {
		return fmt.Errorf("listing %T: %w", list, err)
	}
	return nil
}

func boosterSection(ctx context.Context, c client.Client, ns string) (*section, error) {
	var list workloadv1alpha1.ModelBoosterList
	s := &section{title: "ModelBoosters", columns: []string{"Name", "Model", "Backend", "Replicas", "Active", "Age"}}
	if err := listIn(ctx, c, &list, ns); err != nil {
		return nil, err
	}
	for i := range list.Items {
		mb := &list.Items[i]
		model := mb.Spec.Name
		if model == "" {
			model = mb.Name
		}
		active := "Unknown"
		if cond := meta.FindStatusCondition(mb.Status.Conditions, string(workloadv1alpha1.ModelStatusConditionTypeActive)); cond != nil {
			active = string(cond.Status)
		}
		s.add(mb, mb.Name, model, string(mb.Spec.Backend.Type), strconv.Itoa(int(mb.Spec.Backend.Replicas)), active, age(mb.CreationTimestamp))
	}
	return s, nil
}

func servingSection(ctx context.Context, c client.Client, ns string) (*section, error) {
	var list workloadv1alpha1.ModelServingList
	s := &section{title: "ModelServings", columns: []string{"Name", "Ready", "Updated", "Roles", "Age"}}
	if err := listIn(ctx, c, &list, ns); err != nil {
		return nil, err
	}
	for i := range list.Items {
		ms := &list.Items[i]
		desired := int32(1)
		if ms.Spec.Replicas != nil {
			desired = *ms.Spec.Replicas
		}
		var roles []string
		for _, r := range ms.Spec.Template.Roles {
			roles = append(roles, r.Name)
		}
		s.add(ms, ms.Name, fmt.Sprintf("%d/%d", ms.Status.AvailableReplicas, desired),
			strconv.Itoa(int(ms.Status.UpdatedReplicas)), strings.Join(roles, ","), age(ms.CreationTimestamp))
	}
	return s, nil
}

func serverSection(ctx context.Context, c client.Client, ns string) (*section, error) {
	var list networkingv1alpha1.ModelServerList
	s := &section{title: "ModelServers", columns: []string{"Name", "Model", "Engine", "Ready Pods", "Age"}}
	if err := listIn(ctx, c, &list, ns); err != nil {
		return nil, err
	}
	for i := range list.Items {
		srv := &list.Items[i]
		ready, total := 0, 0
		if sel := srv.Spec.WorkloadSelector; sel != nil && len(sel.MatchLabels) > 0 {
			var pods corev1.PodList
			if err := c.List(ctx, &pods, client.InNamespace(srv.Namespace), client.MatchingLabels(sel.MatchLabels)); err != nil {
				return nil, fmt.Errorf("listing the pods of ModelServer %s: %w", srv.Name, err)
			}
			for j := range pods.Items {
				total++
				if podReady(&pods.Items[j]) {
					ready++
				}
			}
		}
		model := ""
		if srv.Spec.Model != nil {
			model = *srv.Spec.Model
		}
		s.add(srv, srv.Name, model, string(srv.Spec.InferenceEngine), fmt.Sprintf("%d/%d", ready, total), age(srv.CreationTimestamp))
	}
	return s, nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func routeSection(ctx context.Context, c client.Client, ns string) (*section, error) {
	var list networkingv1alpha1.ModelRouteList
	s := &section{title: "ModelRoutes", columns: []string{"Name", "Model", "Targets", "Age"}}
	if err := listIn(ctx, c, &list, ns); err != nil {
		return nil, err
	}
	for i := range list.Items {
		r := &list.Items[i]
		model := r.Spec.ModelName
		if len(r.Spec.LoraAdapters) > 0 {
			model = strings.TrimPrefix(model+",", ",") + strings.Join(r.Spec.LoraAdapters, ",")
		}
		seen := map[string]bool{}
		var targets []string
		for _, rule := range r.Spec.Rules {
			if rule == nil {
				continue
			}
			for _, t := range rule.TargetModels {
				name := t.ModelServerName
				if name == "" {
					name = "external:" + t.ExternalModelProviderName
				}
				if !seen[name] {
					seen[name] = true
					targets = append(targets, name)
				}
			}
		}
		sort.Strings(targets)
		s.add(r, r.Name, model, strings.Join(targets, ","), age(r.CreationTimestamp))
	}
	return s, nil
}

func policySection(ctx context.Context, c client.Client, ns string) (*section, error) {
	var list workloadv1alpha1.AutoscalingPolicyList
	s := &section{title: "AutoscalingPolicies", columns: []string{"Name", "Target", "Current", "Desired", "Ready", "Age"}}
	if err := listIn(ctx, c, &list, ns); err != nil {
		return nil, err
	}
	for i := range list.Items {
		p := &list.Items[i]
		target, current, desired := policyReplicas(p)
		ready := "Unknown"
		if cond := meta.FindStatusCondition(p.Status.Conditions, "Ready"); cond != nil {
			ready = string(cond.Status)
		}
		s.add(p, p.Name, target, current, desired, ready, age(p.CreationTimestamp))
	}
	return s, nil
}

// policyReplicas summarises a policy's target and its current and desired
// replicas: a number for one ModelServing, the sum over a heterogeneous
// target's ModelServings, role=count for a disaggregated target.
func policyReplicas(p *workloadv1alpha1.AutoscalingPolicy) (target, current, desired string) {
	st := &p.Status
	switch {
	case p.Spec.HomogeneousTarget != nil:
		target = p.Spec.HomogeneousTarget.Target.TargetRef.Name
		if h := st.HomogeneousStatus; h != nil {
			return target, strconv.Itoa(int(h.CurrentReplicas)), strconv.Itoa(int(h.DesiredReplicas))
		}
	case p.Spec.HeterogeneousTarget != nil:
		var names []string
		for _, t := range p.Spec.HeterogeneousTarget.Params {
			names = append(names, t.Target.TargetRef.Name)
		}
		target = strings.Join(names, ",")
		if len(st.HeterogeneousStatus) > 0 {
			var cur, des int32
			for _, h := range st.HeterogeneousStatus {
				cur += h.CurrentReplicas
				des += h.DesiredReplicas
			}
			return target, strconv.Itoa(int(cur)), strconv.Itoa(int(des))
		}
	case p.Spec.DisaggregatedTarget != nil:
		target = p.Spec.DisaggregatedTarget.TargetRef.Name
		if d := st.DisaggregatedStatus; d != nil && len(d.Roles) > 0 {
			var cur, des []string
			for _, r := range d.Roles {
				cur = append(cur, fmt.Sprintf("%s=%d", r.Name, r.CurrentReplicas))
				des = append(des, fmt.Sprintf("%s=%d", r.Name, r.DesiredReplicas))
			}
			return target, strings.Join(cur, ","), strings.Join(des, ",")
		}
	}
	return target, "-", "-"
}
