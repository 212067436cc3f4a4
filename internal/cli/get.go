package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/printers"
	"k8s.io/cli-runtime/pkg/resource"
	"k8s.io/client-go/rest"
)

func newGet() *cobra.Command {
	var output, selector string
	var allNamespaces bool
	var kf *kubeFlags
	cmd := &cobra.Command{
		Use:   "get KIND [NAME...]",
		Short: "List Kthena objects, or show some by name, as kubectl get does",
		Long: `get lists objects of one Kthena kind with the columns the API server
defines for it (the CRDs' printer columns), or prints them as YAML or JSON.

Kinds: ` + kindNames() + `; the singular, the plural, the
kind and upstream kthena's names (model-servings, ...) are accepted.
"kthena get templates" lists the manifest templates of "kthena create manifest";
"kthena get template NAME" prints one.`,
		Example: `  kthena get ms
  kthena get modelservings demo -o wide
  kthena get mroute -A
  kthena get modelbooster qwen3-8b -o yaml
  kthena get templates`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if isTemplateKind(args[0]) {
				return getTemplates(cmd.OutOrStdout(), args[1:], output)
			}
			k, err := lookupKind(args[0])
			if err != nil {
				return err
			}
			if err := kf.useLocalPlatform(cmd); err != nil {
				return err
			}
			p, err := newPrinter(output)
			if err != nil {
				return err
			}
			ns, err := kf.namespace()
			if err != nil {
				return err
			}
			return getObjects(kf, cmd, k, args[1:], ns, allNamespaces, selector, p)
		},
	}
	kf = addKubeFlags(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: table (default), wide, yaml or json")
	cmd.Flags().BoolVarP(&allNamespaces, "all-namespaces", "A", false, "list across all namespaces")
	cmd.Flags().StringVarP(&selector, "selector", "l", "", "label selector, as kubectl -l")
	return cmd
}

// objectPrinter prints what get finds: tables as the server renders them,
// or whole objects.
type objectPrinter struct {
	table bool
	wide  bool
	obj   printers.ResourcePrinter
}

func newPrinter(output string) (objectPrinter, error) {
	switch output {
	case "", "table":
		return objectPrinter{table: true}, nil
	case "wide":
		return objectPrinter{table: true, wide: true}, nil
	case "yaml":
		return objectPrinter{obj: &printers.OmitManagedFieldsPrinter{Delegate: &printers.YAMLPrinter{}}}, nil
	case "json":
		return objectPrinter{obj: &printers.OmitManagedFieldsPrinter{Delegate: &printers.JSONPrinter{}}}, nil
	}
	return objectPrinter{}, fmt.Errorf("unknown output format %q: use table, wide, yaml or json", output)
}

func getObjects(kf *kubeFlags, cmd *cobra.Command, k kind, names []string, ns string, all bool, selector string, p objectPrinter) error {
	b := resource.NewBuilder(kf).Unstructured().
		NamespaceParam(ns).DefaultNamespace().AllNamespaces(all).
		LabelSelectorParam(selector).
		ResourceTypeOrNameArgs(true, append([]string{k.qualified()}, names...)...).
		ContinueOnError().Flatten()
	if p.table {
		b = b.TransformRequests(asTable)
	}
	infos, err := b.Do().Infos()
	out := cmd.OutOrStdout()
	if p.table {
		table, terr := mergeTables(infos)
		if terr != nil {
			return terr
		}
		if len(table.Rows) == 0 && err == nil {
			noneFound(cmd.ErrOrStderr(), ns, all)
			return nil
		}
		if perr := printers.NewTablePrinter(printers.PrintOptions{Wide: p.wide, WithNamespace: all}).PrintObj(table, out); perr != nil {
			return perr
		}
		return err
	}
	if len(names) == 1 && len(infos) == 1 {
		if perr := p.obj.PrintObj(infos[0].Object, out); perr != nil {
			return perr
		}
		return err
	}
	list := &unstructured.UnstructuredList{Object: map[string]any{"apiVersion": "v1", "kind": "List", "metadata": map[string]any{"resourceVersion": ""}}}
	for _, info := range infos {
		if u, ok := info.Object.(*unstructured.Unstructured); ok {
			list.Items = append(list.Items, *u)
		}
	}
	if perr := p.obj.PrintObj(list, out); perr != nil {
		return perr
	}
	return err
}

func noneFound(w io.Writer, ns string, all bool) {
	if all {
		_, _ = fmt.Fprintln(w, "No resources found")
		return
	}
	_, _ = fmt.Fprintf(w, "No resources found in %s namespace.\n", ns)
}

// asTable asks the API server for its Table rendering (the CRD's printer
// columns), falling back to the object if it cannot render one.
func asTable(req *rest.Request) {
	req.SetHeader("Accept", strings.Join([]string{
		"application/json;as=Table;v=v1;g=meta.k8s.io",
		"application/json",
	}, ","))
}

// mergeTables joins the tables of several requests (get KIND a b) into one,
// decoding each row's object so the printer can read its namespace.
func mergeTables(infos []*resource.Info) (*metav1.Table, error) {
	merged := &metav1.Table{}
	for _, info := range infos {
		u, ok := info.Object.(*unstructured.Unstructured)
		if !ok || u.GetKind() != "Table" {
			return nil, fmt.Errorf("the API server did not return a table for %s", info.Mapping.Resource.Resource)
		}
		var t metav1.Table
		data, err := u.MarshalJSON()
		if err == nil {
			err = json.Unmarshal(data, &t)
		}
		if err != nil {
			return nil, err
		}
		for i := range t.Rows {
			if raw := t.Rows[i].Object.Raw; raw != nil && t.Rows[i].Object.Object == nil {
				obj, err := runtime.Decode(unstructured.UnstructuredJSONScheme, raw)
				if err != nil {
					return nil, err
				}
				t.Rows[i].Object.Object = obj
			}
		}
		if merged.ColumnDefinitions == nil {
			merged.ColumnDefinitions = t.ColumnDefinitions
		}
		merged.Rows = append(merged.Rows, t.Rows...)
	}
	return merged, nil
}
