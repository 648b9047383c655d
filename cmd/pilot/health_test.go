package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// RELIABILITY D25, D27: a job waiting for `healthy` starts only after the
// first passing check; `onUnhealthy: restart` restarts the job once the
// unhealthy threshold is reached — after exactly that many failures, not
// before.
func TestHealthGatesAndRestarts(t *testing.T) {
	t.Parallel()
	marker := filepath.Join(t.TempDir(), "healthy")
	cfg := writeConfig(t, fmt.Sprintf(`jobs:
  - name: app
    main: true
    exec: %s
    health:
      shell: test -f %s
      interval: 100ms
      timeout: 100ms
      unhealthyThreshold: 3
      onUnhealthy: restart
    restart: {backoff: {initial: 100ms}}
  - name: after-healthy
    after: [{job: app, state: healthy}]
    shell: echo dependant-started
`, yamlArgv(helperArgv(t, "signals", "exit:0")...), marker))
	// No wait for the app's "ready" here: until the marker exists each run
	// is restarted after three 100 ms checks, which under load can come
	// before a run prints anything.
	p := startPilot(t, pilotOpts{pid1: true}, "run", "--config", cfg)
	waitFor(t, 5*time.Second, "failing checks", func() (int, bool) {
		n := p.errLog.count(`msg="health check failed"`)
		return n, n >= 2
	})
	if p.out.count(`dependant-started`) != 0 {
		t.Fatal("the dependant started before the first passing check")
	}
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	p.out.waitLine(t, 2*time.Second, `^dependant-started`)

	if err := os.Remove(marker); err != nil {
		t.Fatal(err)
	}
	p.errLog.waitLine(t, 3*time.Second, `msg="unhealthy: restarting"`)
	failuresSinceHealthy := 0
	for _, l := range p.errLog.Lines() {
		switch {
		// Before the marker exists the app may already have been restarted
		// for failing (under load its checks outpace the test): each run
		// starts its count afresh.
		case strings.Contains(l, `job=app state=healthy`) || strings.Contains(l, `job=app state=starting`):
			failuresSinceHealthy = 0
		case strings.Contains(l, `msg="health check failed"`) || strings.Contains(l, `msg="health check failing"`):
			failuresSinceHealthy++
		case strings.Contains(l, `msg="unhealthy: restarting"`):
			if failuresSinceHealthy != 3 {
				t.Fatalf("restarted after %d failed checks, want the threshold 3", failuresSinceHealthy)
			}
		}
	}
	// pilot's own line: under load the run may not have printed "ready"
	// (installed its handlers) before it is stopped
	p.errLog.waitLine(t, 3*time.Second, `msg="sending signal" logger=pilot job=app signal=SIGTERM`)
	readyBefore := p.out.count(`^ready`)
	// Healthy again, so that the restarted run is not itself restarted
	// before it is ready (its checks start within 100 ms of its start).
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the app running again", func() (int, bool) {
		n := p.out.count(`^ready`)
		return n, n > readyBefore
	})
	p.signal(syscall.SIGTERM)
	if code := p.wait(5 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
