package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGet: every kind lists with the CRD's printer columns, under each of
// its names.
func TestGet(t *testing.T) {
	ns := namespace(t, "cli-get")
	createSamples(t, ns)
	for _, k := range kinds {
		t.Run(k.Kind, func(t *testing.T) {
			out := kthenaOK(t, "get", k.Resource.Resource, "-n", ns)
			golden(t, "get-"+k.singular(), out)
			for _, name := range append([]string{k.singular(), k.Kind}, k.Aliases...) {
				if again := kthenaOK(t, "get", name, "-n", ns); ages.ReplaceAllString(again, "") != ages.ReplaceAllString(out, "") {
					t.Errorf("get %s differs from get %s:\n%s", name, k.Resource.Resource, again)
				}
			}
		})
	}
	golden(t, "get-modelserving-wide", kthenaOK(t, "get", "ms", "deepseek-pd", "-n", ns, "-o", "wide"))
}

func TestGetAllNamespaces(t *testing.T) {
	for _, ns := range []string{"cli-get-a", "cli-get-b"} {
		namespace(t, ns)
		obj := sample(t, "networking_v1alpha1_modelroute.yaml")
		obj.SetNamespace(ns)
		obj.SetLabels(map[string]string{"test": "all-namespaces"})
		if err := env.Client.Create(t.Context(), obj); err != nil {
			t.Fatal(err)
		}
	}
	golden(t, "get-modelroutes-all-namespaces", kthenaOK(t, "get", "mroute", "-A", "-l", "test=all-namespaces"))
}

func TestGetYAMLAndJSON(t *testing.T) {
	ns := namespace(t, "cli-get-yaml")
	createSamples(t, ns)
	out := kthenaOK(t, "get", "mb", "qwen-8b", "-n", ns, "-o", "yaml")
	for _, want := range []string{"kind: ModelBooster", "name: qwen-8b", "modelURI: hf://Qwen/Qwen3-8B"} {
		if !strings.Contains(out, want) {
			t.Errorf("-o yaml lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "managedFields") {
		t.Errorf("-o yaml prints managedFields:\n%s", out)
	}
	var list struct {
		Kind  string `json:"kind"`
		Items []struct {
			Metadata struct{ Name string } `json:"metadata"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(kthenaOK(t, "get", "modelservers", "-n", ns, "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	if list.Kind != "List" || len(list.Items) != 1 || list.Items[0].Metadata.Name != "deepseek-pd" {
		t.Errorf("-o json of the list = %+v", list)
	}
}

func TestGetEmpty(t *testing.T) {
	ns := namespace(t, "cli-get-empty")
	out, errOut, code := kthena(t, "get", "ms", "-n", ns, "--kubeconfig", env.Kubeconfig)
	if code != 0 || out != "" || errOut != "No resources found in cli-get-empty namespace.\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestLocalPlatformKubeconfig: with no --kubeconfig, $KUBECONFIG or
// ~/.kube/config, the CLI uses the local platform's kubeconfig.
func TestLocalPlatformKubeconfig(t *testing.T) {
	ns := namespace(t, "cli-local")
	createSamples(t, ns)
	state := t.TempDir()
	data, err := os.ReadFile(env.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(state, "kubeconfig"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := kthena(t, "get", "ms", "-n", ns, "--state-dir", state)
	if code != 0 || !strings.Contains(out, "deepseek-pd") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	// Without it there is no cluster: one error line.
	oneLineError(t, "no cluster configured", "get", "ms", "-n", ns, "--state-dir", t.TempDir())
}

func TestGetErrors(t *testing.T) {
	kc := []string{"--kubeconfig", env.Kubeconfig}
	oneLineError(t, `unknown kind "pods": use one of`, append([]string{"get", "pods"}, kc...)...)
	oneLineError(t, `unknown output format "xml"`, append([]string{"get", "ms", "-o", "xml"}, kc...)...)
	oneLineError(t, `"nope" not found`, append([]string{"get", "ms", "nope"}, kc...)...)
	oneLineError(t, "unknown flag: --bogus", append([]string{"get", "ms", "--bogus"}, kc...)...)
	oneLineError(t, "requires at least 1 arg", append([]string{"get"}, kc...)...)
	oneLineError(t, "unknown command", "frobnicate")
}
