//go:build e2e

package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// containerHealth is what `docker inspect` says of a container's health.
type containerHealth struct {
	Status string
	Log    []struct {
		ExitCode int
		Output   string
	}
}

func inspectHealth(t *testing.T, name string) containerHealth {
	t.Helper()
	var h containerHealth
	out, err := run(30*time.Second, dockerCLI, "inspect", "-f", "{{json .State.Health}}", name)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(out), &h); err != nil {
		t.Fatalf("docker inspect %s: .State.Health = %q: %v", name, out, err)
	}
	return h
}

// lastOutput is the output of the latest probe, "" before the first.
func (h containerHealth) lastOutput() string {
	if len(h.Log) == 0 {
		return ""
	}
	return strings.TrimSpace(h.Log[len(h.Log)-1].Output)
}

// Docker's health status follows pilot's: the example image's HEALTHCHECK
// runs `pilot health`, so the container is starting, then healthy once the
// app's check passes; unhealthy (after the HEALTHCHECK's retries) once the
// app's /health fails, with pilot health's line as the probe's output;
// healthy again once it passes. The app fails its check while
// /tmp/app-down exists (examples/nodejs/server.js).
func TestHealthStatusFollowsPilot(t *testing.T) {
	needEngine(t)
	const name = "pilot-e2e-health"
	run(time.Minute, dockerCLI, "rm", "-f", name)
	docker(t, "run", "-d", "--name", name, "--label", "pilot-e2e", "--network", netName, exampleImg)
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := run(time.Minute, dockerCLI, "logs", "--tail", "60", name)
			t.Logf("logs of %s:\n%s", name, logs)
		}
		run(time.Minute, dockerCLI, "rm", "-f", name)
	})
	start := time.Now()

	// seen lists the statuses in the order they came, each once.
	var seen []string
	await := func(want string, timeout time.Duration) containerHealth {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for {
			h := inspectHealth(t, name)
			if len(seen) == 0 || seen[len(seen)-1] != h.Status {
				seen = append(seen, h.Status)
				t.Logf("%5.1fs  %s  (last probe: %q)", time.Since(start).Seconds(), h.Status, h.lastOutput())
			}
			if h.Status == want {
				return h
			}
			if time.Now().After(deadline) {
				t.Fatalf("health status not %s within %v; seen %v; last probe: %q", want, timeout, seen, h.lastOutput())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	// The first probe comes an interval (5 s) after the start.
	h := await("healthy", 60*time.Second)
	if seen[0] != "starting" {
		t.Errorf("statuses %v: want starting first", seen)
	}
	if out := h.lastOutput(); out != "healthy (1 job checked)" {
		t.Errorf("the healthy probe said %q, want %q", out, "healthy (1 job checked)")
	}

	docker(t, "exec", name, "touch", "/tmp/app-down")
	failed := time.Now()
	// pilot's check fails twice (1 s apart), then three probes in a row.
	h = await("unhealthy", 60*time.Second)
	t.Logf("unhealthy %.1fs after the app's /health began failing", time.Since(failed).Seconds())
	want := "pilot health: unhealthy: app (health check failing: GET http://127.0.0.1:3000/health: status 503 Service Unavailable: down (/tmp/app-down exists))"
	if out := h.lastOutput(); out != want {
		t.Errorf("the failing probe said\n  %q\nwant\n  %q", out, want)
	}
	if code := h.Log[len(h.Log)-1].ExitCode; code != 1 {
		t.Errorf("the failing probe exited %d, want 1", code)
	}

	docker(t, "exec", name, "rm", "/tmp/app-down")
	recovered := time.Now()
	await("healthy", 30*time.Second)
	t.Logf("healthy again %.1fs after /health passed again", time.Since(recovered).Seconds())
	if want := []string{"starting", "healthy", "unhealthy", "healthy"}; strings.Join(seen, " ") != strings.Join(want, " ") {
		t.Errorf("statuses %v, want %v", seen, want)
	}
}
