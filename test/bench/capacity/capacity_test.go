package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodepilot/pilot/test/consulagent"
)

// TestSmoke runs the benchmark as users do, on 10 pilots with windows of
// a second or two (-short), so that it cannot rot: a real 3-server,
// 2-client Consul cluster, the fleet, every window and the tables. It
// checks that the run completed and that its tables carry every measure,
// not the figures. A missing consul binary fails it (test/toolbin).
func TestSmoke(t *testing.T) {
	_, err := consulagent.Consul.Path()
	consulagent.Consul.Require(t, err)

	bin := filepath.Join(t.TempDir(), "capacity")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, bin, "-n", "10", "-short", "-results", "").CombinedOutput()
	if err != nil {
		t.Fatalf("capacity -n 10 -short: %v\n%s", err, out)
	}
	t.Logf("took %s", time.Since(start).Round(time.Second))
	for _, want := range []string{
		"| **all 10 passing** |",
		"| distinct default service ids | 10 of 10 |",
		"| PUT v1_agent_check_update_ |",
		"| pilot, per instance |",
		"| steady: no watches |",
		"| steady: 11 blocking watches, pilot's default consistency |",
		"| churn: 11 blocking watches, stale |",
		"| churn: no watches |",
		"| idle: 10 pollers every 500ms |",
		"| churn: 10 pollers every 500ms |",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the output lacks %q:\n%s", want, out)
		}
	}
}
