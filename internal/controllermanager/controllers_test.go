package controllermanager

import (
	"reflect"
	"testing"
)

func TestEnabledControllers(t *testing.T) {
	known := map[string]bool{"modelserving": true, "extra": false}
	cases := []struct {
		spec    []string
		want    []string
		wantErr bool
	}{
		{[]string{"*"}, []string{"modelserving"}, false},
		{[]string{"*", "-modelserving"}, []string{}, false},
		{[]string{"*", "+extra"}, []string{"extra", "modelserving"}, false},
		{[]string{"extra"}, []string{"extra"}, false},
		{[]string{"-extra", "*"}, []string{"modelserving"}, false},
		{[]string{"bogus"}, nil, true},
		{[]string{"-bogus"}, nil, true},
	}
	for _, c := range cases {
		got, err := enabledControllers(c.spec, known)
		if (err != nil) != c.wantErr {
			t.Fatalf("%v: err = %v", c.spec, err)
		}
		if c.wantErr {
			continue
		}
		if keys := sortedKeys(got); !reflect.DeepEqual(keys, c.want) {
			t.Errorf("%v: got %v, want %v", c.spec, keys, c.want)
		}
	}
}

// TestModelBoosterOnByDefault guards the registration: "*" runs the
// ModelBooster controller and it has a setup.
func TestModelBoosterOnByDefault(t *testing.T) {
	got, err := enabledControllers([]string{"*"}, knownControllers)
	if err != nil {
		t.Fatal(err)
	}
	if !got["modelbooster"] {
		t.Fatalf("'*' enables %v, want modelbooster among them", sortedKeys(got))
	}
	if setups()["modelbooster"] == nil {
		t.Fatal("no setup registered for modelbooster")
	}
	if o := DefaultOptions(); o.ModelBoosterDownloaderImage == "" {
		t.Fatal("no default downloader image")
	}
}
