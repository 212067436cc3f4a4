package cli

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"
	"text/template"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/cli-runtime/pkg/printers"
	"sigs.k8s.io/yaml"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// The manifest templates of `kthena create manifest`, one file per model
// under templates/<vendor>/<model>.yaml: a YAML document describing the
// template and its values, "---", then a text/template of a ModelBooster.
//
//go:embed templates
var templateFS embed.FS

// manifestTemplate is one parsed template file.
type manifestTemplate struct {
	Name        string
	Description string     `json:"description"`
	Values      []valueDoc `json:"values"`
	body        string
	source      []byte
}

// valueDoc documents one value a template takes.
type valueDoc struct {
	Name        string `json:"name"`
	Default     any    `json:"default"`
	Description string `json:"description"`
}

func isTemplateKind(s string) bool {
	switch strings.ToLower(s) {
	case "templates", "template", "tpl":
		return true
	}
	return false
}

// loadTemplates reads every embedded template, sorted by name.
func loadTemplates() ([]*manifestTemplate, error) {
	var out []*manifestTemplate
	err := fs.WalkDir(templateFS, "templates", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") {
			return err
		}
		data, err := templateFS.ReadFile(path)
		if err != nil {
			return err
		}
		t, err := parseTemplate(strings.TrimSuffix(strings.TrimPrefix(path, "templates/"), ".yaml"), data)
		if err != nil {
			return err
		}
		out = append(out, t)
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

func parseTemplate(name string, data []byte) (*manifestTemplate, error) {
	head, body, ok := strings.Cut(string(data), "\n---\n")
	if !ok {
		return nil, fmt.Errorf("template %s: no \"---\" between its description and its manifest", name)
	}
	t := &manifestTemplate{Name: name, body: body, source: data}
	if err := yaml.UnmarshalStrict([]byte(head), t); err != nil {
		return nil, fmt.Errorf("template %s: %w", name, err)
	}
	return t, nil
}

// findTemplate looks a template up by name, ignoring case.
func findTemplate(name string) (*manifestTemplate, error) {
	all, err := loadTemplates()
	if err != nil {
		return nil, err
	}
	for _, t := range all {
		if strings.EqualFold(t.Name, name) {
			return t, nil
		}
	}
	return nil, fmt.Errorf("unknown template %q: see kthena get templates", name)
}

func (t *manifestTemplate) defaults() map[string]any {
	v := map[string]any{}
	for _, d := range t.Values {
		v[d.Name] = d.Default
	}
	return v
}

// render executes the template with values (complete: defaults merged in)
// and checks the result decodes strictly as a ModelBooster, so that a value
// of the wrong type fails here rather than at the API server. The object
// returned is the manifest as the template wrote it.
func (t *manifestTemplate) render(values map[string]any) (*unstructured.Unstructured, error) {
	tmpl, err := template.New(t.Name).Option("missingkey=error").Funcs(template.FuncMap{
		// json quotes a value so that YAML reads it back unchanged.
		"json": func(v any) (string, error) {
			b, err := json.Marshal(v)
			return string(b), err
		},
	}).Parse(t.body)
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", t.Name, err)
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, values); err != nil {
		return nil, fmt.Errorf("template %s: %w", t.Name, err)
	}
	if err := yaml.UnmarshalStrict(buf.Bytes(), &workloadv1alpha1.ModelBooster{}); err != nil {
		return nil, fmt.Errorf("template %s rendered an invalid ModelBooster (check the values' types): %w", t.Name, err)
	}
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(buf.Bytes(), &obj.Object); err != nil {
		return nil, fmt.Errorf("template %s: %w", t.Name, err)
	}
	return obj, nil
}

// getTemplates lists the templates, or prints the named ones' source.
func getTemplates(out io.Writer, names []string, output string) error {
	if len(names) > 0 {
		for _, n := range names {
			t, err := findTemplate(n)
			if err != nil {
				return err
			}
			if _, err := out.Write(t.source); err != nil {
				return err
			}
		}
		return nil
	}
	if output != "" && output != "table" && output != "wide" {
		return fmt.Errorf("templates print as a table; see kthena get template NAME for one template's source")
	}
	all, err := loadTemplates()
	if err != nil {
		return err
	}
	table := &metav1.Table{ColumnDefinitions: []metav1.TableColumnDefinition{
		{Name: "Name", Type: "string"}, {Name: "Description", Type: "string"},
	}}
	for _, t := range all {
		table.Rows = append(table.Rows, metav1.TableRow{Cells: []any{t.Name, t.Description}})
	}
	return printers.NewTablePrinter(printers.PrintOptions{}).PrintObj(table, out)
}

// describeTemplate prints a template's description, its values and the
// manifest it renders with the defaults.
func describeTemplate(out io.Writer, name string) error {
	t, err := findTemplate(name)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(out, "Name:         %s\nDescription:  %s\nValues (override with -f values.yaml, then --set name=value):\n", t.Name, t.Description); err != nil {
		return err
	}
	table := &metav1.Table{ColumnDefinitions: []metav1.TableColumnDefinition{
		{Name: "Name", Type: "string"}, {Name: "Default", Type: "string"}, {Name: "Description", Type: "string"},
	}}
	for _, v := range t.Values {
		def, _ := json.Marshal(v.Default)
		table.Rows = append(table.Rows, metav1.TableRow{Cells: []any{v.Name, string(def), v.Description}})
	}
	if err := printers.NewTablePrinter(printers.PrintOptions{}).PrintObj(table, out); err != nil {
		return err
	}
	obj, err := t.render(t.defaults())
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintln(out, "\nManifest with the defaults:"); err != nil {
		return err
	}
	return printManifest(out, obj)
}

// printManifest prints a manifest as YAML.
func printManifest(out io.Writer, obj *unstructured.Unstructured) error {
	data, err := yaml.Marshal(obj.Object)
	if err != nil {
		return err
	}
	_, err = out.Write(data)
	return err
}
