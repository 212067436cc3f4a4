package webhook

import (
	"strings"
	"testing"
)

func TestConfigurationsSplitByGroup(t *testing.T) {
	for _, tc := range []struct {
		group          Group
		wantValidating int
		wantMutating   int
	}{
		{WorkloadGroup, 3, 2},   // modelserving, modelbooster, autoscalingpolicy / modelbooster, autoscalingpolicy
		{NetworkingGroup, 3, 1}, // modelroute, modelserver, externalmodelprovider / externalmodelprovider
	} {
		v, m, err := Configurations(tc.group, URLClientConfig("https://127.0.0.1:9443", []byte("ca")))
		if err != nil {
			t.Fatal(err)
		}
		if len(v.Webhooks) != tc.wantValidating || len(m.Webhooks) != tc.wantMutating {
			t.Fatalf("%s: %d validating and %d mutating webhooks, want %d and %d", tc.group, len(v.Webhooks), len(m.Webhooks), tc.wantValidating, tc.wantMutating)
		}
		for _, w := range v.Webhooks {
			if !strings.Contains(w.Name, string(tc.group)) {
				t.Errorf("%s: webhook %s belongs to another group", tc.group, w.Name)
			}
			if w.ClientConfig.URL == nil || !strings.HasPrefix(*w.ClientConfig.URL, "https://127.0.0.1:9443/validate-") || string(w.ClientConfig.CABundle) != "ca" {
				t.Errorf("%s: client config not rewritten: %+v", w.Name, w.ClientConfig)
			}
		}
		if !strings.HasPrefix(v.Name, "kthena-") || v.Name == m.Name {
			t.Errorf("configuration names %q and %q", v.Name, m.Name)
		}
	}
}
