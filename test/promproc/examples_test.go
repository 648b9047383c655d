package promproc

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodepilot/pilot/test/toolbin"
)

// The example Prometheus config and alert rules (examples/prometheus) pass
// promtool's checks, and the rules' unit tests pass: each alert fires when
// it should and stays quiet when it should not.
func TestExamplePrometheusConfigAndRules(t *testing.T) {
	_, err := PromtoolPath()
	Require(t, err)
	root, err := toolbin.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "examples", "prometheus")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, args := range [][]string{
		{"check", "config", "prometheus.yml"}, // also checks the rule files it names
		{"check", "rules", "alerts.yml"},
		{"test", "rules", "alerts_test.yml"},
	} {
		out, err := Promtool(ctx, dir, args...)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if !strings.Contains(out, "SUCCESS") {
			t.Errorf("promtool %s: no SUCCESS in\n%s", strings.Join(args, " "), out)
		}
		t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
	}
}
