package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

func newCreate() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create Kthena objects",
	}
	cmd.AddCommand(newCreateManifest())
	return cmd
}

// manifestOptions are the flags of `kthena create manifest`.
type manifestOptions struct {
	template   string
	valuesFile string
	sets       []string
	name       string
	dryRun     bool
}

func newCreateManifest() *cobra.Command {
	var o manifestOptions
	var kf *kubeFlags
	cmd := &cobra.Command{
		Use:   "manifest -t TEMPLATE [--set name=value ...] [-f values.yaml] [--name NAME] [-n NS] [--dry-run]",
		Short: "Render a model template into a ModelBooster and create it",
		Long: `manifest renders one of the embedded model templates (kthena get templates)
into a ModelBooster and creates it. A template's values and their defaults
are listed by "kthena describe template NAME". Values come from, in
increasing precedence: the template's defaults, the YAML file of -f (a map
of value names to values), then --set name=value (repeatable; several
name=value pairs may be joined with commas). --name sets the value "name".
A value that the template does not have is an error.

With --dry-run the ModelBooster is printed as YAML instead of created; when
a cluster is reachable it is also sent as a server-side dry run, so the API
server's schema and admission webhooks check it.`,
		Example: `  kthena create manifest -t Qwen/Qwen3-8B --dry-run
  kthena create manifest -t Qwen/Qwen3-32B --set replicas=2,cacheURI=pvc://models -n llm
  kthena create manifest -t deepseek-ai/DeepSeek-R1-Distill-Qwen-7B -f values.yaml --name r1-7b`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.template == "" {
				return errors.New("--template (-t) is required: see kthena get templates")
			}
			t, err := findTemplate(o.template)
			if err != nil {
				return err
			}
			values, err := o.values(t)
			if err != nil {
				return err
			}
			obj, err := t.render(values)
			if err != nil {
				return err
			}
			noCluster := kf.useLocalPlatform(cmd)
			if noCluster != nil && !o.dryRun {
				return noCluster
			}
			ns, err := kf.namespace()
			if err != nil {
				return err
			}
			obj.SetNamespace(ns)
			if o.dryRun {
				// A manifest the API server rejects is not printed: the
				// error line is the whole answer.
				if noCluster != nil {
					_, _ = fmt.Fprintln(cmd.ErrOrStderr(), "no cluster configured: rendered only, not checked by an API server")
				} else if err := serverDryRun(cmd, kf, obj); err != nil {
					return err
				}
				return printManifest(cmd.OutOrStdout(), obj)
			}
			c, err := kf.client()
			if err != nil {
				return err
			}
			if err := c.Create(cmd.Context(), obj); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "modelbooster.workload.serving.volcano.sh/%s created\n", obj.GetName())
			return err
		},
	}
	kf = addKubeFlags(cmd)
	f := cmd.Flags()
	f.StringVarP(&o.template, "template", "t", "", "template name, as listed by kthena get templates (for example Qwen/Qwen3-8B)")
	f.StringVarP(&o.valuesFile, "values", "f", "", "YAML file of values, overriding the template's defaults")
	f.StringArrayVar(&o.sets, "set", nil, "name=value, overriding -f and the defaults (repeatable; pairs may be joined with commas)")
	f.StringVar(&o.name, "name", "", "the ModelBooster's and the model's name (the value \"name\")")
	f.BoolVar(&o.dryRun, "dry-run", false, "print the ModelBooster instead of creating it (checked by a server-side dry run when a cluster is reachable)")
	return cmd
}

// values merges the template's defaults, -f and --set, in that order.
func (o *manifestOptions) values(t *manifestTemplate) (map[string]any, error) {
	values := t.defaults()
	known := func(name, from string) error {
		if _, ok := values[name]; ok {
			return nil
		}
		names := make([]string, 0, len(values))
		for n := range values {
			names = append(names, n)
		}
		sort.Strings(names)
		return fmt.Errorf("template %s has no value %q (from %s): its values are %s", t.Name, name, from, strings.Join(names, ", "))
	}
	if o.valuesFile != "" {
		data, err := os.ReadFile(o.valuesFile)
		if err != nil {
			return nil, err
		}
		file := map[string]any{}
		if err := yaml.Unmarshal(data, &file); err != nil {
			return nil, fmt.Errorf("values file %s: %w", o.valuesFile, err)
		}
		for k, v := range file {
			if err := known(k, o.valuesFile); err != nil {
				return nil, err
			}
			values[k] = v
		}
	}
	for _, kv := range splitSets(o.sets) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--set %q: want name=value", kv)
		}
		if err := known(k, "--set"); err != nil {
			return nil, err
		}
		values[k] = scalar(v)
	}
	if o.name != "" {
		values["name"] = o.name
	}
	return values, nil
}

// splitSets splits "a=1,b=2" into pairs; a part without "=" belongs to the
// previous value, so values may contain commas.
func splitSets(sets []string) []string {
	var out []string
	for _, s := range sets {
		for i, part := range strings.Split(s, ",") {
			if i > 0 && !strings.Contains(part, "=") && len(out) > 0 {
				out[len(out)-1] += "," + part
				continue
			}
			out = append(out, part)
		}
	}
	return out
}

// scalar reads a --set value as YAML does (2 is a number, true a bool),
// keeping anything else as the string typed.
func scalar(s string) any {
	var v any
	if err := yaml.Unmarshal([]byte(s), &v); err != nil || v == nil {
		return s
	}
	switch v.(type) {
	case map[string]any, []any:
		return s
	}
	return v
}

// serverDryRun sends obj to the API server as a dry run when one is
// reachable; a dry run is a check, never a requirement of --dry-run.
func serverDryRun(cmd *cobra.Command, kf *kubeFlags, obj *unstructured.Unstructured) error {
	stderr := cmd.ErrOrStderr()
	cfg, err := kf.ToRESTConfig()
	if err != nil {
		_, _ = fmt.Fprintln(stderr, "no cluster configured: rendered only, not checked by an API server")
		return nil
	}
	cfg.Timeout = 10 * time.Second
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
	defer cancel()
	err = c.Create(ctx, obj.DeepCopy(), client.DryRunAll)
	var status apierrors.APIStatus
	switch {
	case err == nil:
		_, _ = fmt.Fprintf(stderr, "server-side dry run passed at %s\n", cfg.Host)
		return nil
	case meta.IsNoMatchError(err):
		_, _ = fmt.Fprintf(stderr, "the cluster at %s has no ModelBooster CRD: rendered only\n", cfg.Host)
		return nil
	case errors.As(err, &status):
		return fmt.Errorf("server-side dry run: %w", err)
	}
	_, _ = fmt.Fprintf(stderr, "cluster not reachable (%v): rendered only, not checked by an API server\n", err)
	return nil
}
