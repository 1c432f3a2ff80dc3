package trainer

import (
	"slices"
	"strings"
	"testing"
)

// The admin token has one environment name across the platform, MLOPS_ADMIN_TOKEN (what
// mlopsctl sends). The old ADMIN_TOKEN still works for now, with a deprecation warning that
// the runtime logs at startup.
func TestAdminTokenEnv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		want     string
		wantWarn bool
	}{
		{name: "MLOPS_ADMIN_TOKEN", env: map[string]string{"MLOPS_ADMIN_TOKEN": "new"}, want: "new"},
		{name: "deprecated ADMIN_TOKEN", env: map[string]string{"ADMIN_TOKEN": "old"}, want: "old", wantWarn: true},
		{name: "new name wins", env: map[string]string{"MLOPS_ADMIN_TOKEN": "new", "ADMIN_TOKEN": "old"}, want: "new", wantWarn: true},
		{name: "flag wins", args: []string{"-admin.token", "flag"}, env: map[string]string{"MLOPS_ADMIN_TOKEN": "new"}, want: "flag"},
		{name: "unset", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := ParseConfig(tt.args, func(k string) string { return tt.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			if c.AdminToken.Reveal() != tt.want {
				t.Errorf("AdminToken = %q, want %q", c.AdminToken.Reveal(), tt.want)
			}
			warned := slices.ContainsFunc(c.Warnings, func(w string) bool {
				return strings.Contains(w, "ADMIN_TOKEN is deprecated") && strings.Contains(w, "MLOPS_ADMIN_TOKEN")
			})
			if warned != tt.wantWarn {
				t.Errorf("warnings %q: deprecation warning = %v, want %v", c.Warnings, warned, tt.wantWarn)
			}
		})
	}
}
