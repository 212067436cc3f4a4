package cli

import (
	"testing"

	"github.com/spf13/cobra"
)

// TestUpDemoFlag: a bare --demo keeps deploying the aggregated demo;
// --demo=pd and --demo pd choose the PD demo, and likewise every other
// demo kind (booster: the ModelBooster demo).
func TestUpDemoFlag(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		want    string
		wantErr bool
	}{
		{args: nil, want: ""},
		{args: []string{"--demo"}, want: "aggregated"},
		{args: []string{"--demo", "--router-port", "9090"}, want: "aggregated"},
		{args: []string{"--router-port", "9090", "--demo"}, want: "aggregated"},
		{args: []string{"--demo=aggregated"}, want: "aggregated"},
		{args: []string{"--demo=pd"}, want: "pd"},
		{args: []string{"--demo", "pd"}, want: "pd"},
		{args: []string{"--demo", "pd", "--router-port", "9090"}, want: "pd"},
		{args: []string{"--demo=booster"}, want: "booster"},
		{args: []string{"--demo", "booster"}, want: "booster"},
		{args: []string{"--demo=autoscaling"}, want: "autoscaling"},
		{args: []string{"--demo=bogus"}, wantErr: true},
		{args: []string{"--demo="}, wantErr: true},
		{args: []string{"--demo", "bogus"}, wantErr: true},
		{args: []string{"--demo", "pd", "extra"}, wantErr: true},
		{args: []string{"pd"}, wantErr: true},
	} {
		cmd := newUp()
		err := cmd.ParseFlags(tc.args)
		var got string
		if err == nil {
			f := cmd.Flags()
			v, _ := f.GetString("demo")
			var rest []string
			got, rest, err = resolveDemo(v, f.Changed("demo"), f.Args())
			if err == nil {
				err = cobra.NoArgs(cmd, rest)
			}
		}
		if (err != nil) != tc.wantErr || (err == nil && got != tc.want) {
			t.Errorf("kthena up %v: demo %q, err %v; want %q, error %v", tc.args, got, err, tc.want, tc.wantErr)
		}
	}
}
