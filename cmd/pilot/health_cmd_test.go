package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodepilot/pilot/pilot/control"
)

// pilot health against a real pilot, as Docker's HEALTHCHECK runs it: a
// process of its own that knows only the socket. The app's /health is
// flipped with its marker file: 0 while it passes, 1 with the failing
// check in one line while it fails, 0 again once it passes; a failing
// periodic job never counts; 1 ("stopping") during the shutdown; 1 with a
// clear line once no pilot runs. Every request is counted in
// pilot_control_requests_total.
func TestPilotHealthCommand(t *testing.T) {
	t.Parallel()
	appPort, metricsPort := freePort(t), freePort(t)
	marker := filepath.Join(t.TempDir(), "unhealthy")
	cfg := writeConfig(t, fmt.Sprintf(`
telemetry: {listen: "127.0.0.1:%d"}
stopTimeout: 9s
jobs:
  - name: app
    main: true
    exec: %s
    preStop: {shell: "sleep 1.5"}
    health:
      http: {port: %d, path: /health}
      interval: 100ms
      timeout: 100ms
      unhealthyThreshold: 2
  - name: tick
    shell: "exit 1"
    every: 200ms
`, metricsPort, yamlArgv(helperArgv(t, "http", strconv.Itoa(appPort), marker)...), appPort))
	p := startPilot(t, pilotOpts{}, "run", "--config", cfg)

	exe := self(t)
	env := append(os.Environ(), roleEnv+"=pilot", raceOptions, "PILOT_SOCKET="+p.socket)
	// As runPilotCommand, with raceOptions: under -race every exit of
	// the test binary would otherwise sleep a second.
	health := func() (int, string) {
		t.Helper()
		cmd := execCommand(exe, env, "health")
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		code := 0
		if err := cmd.Run(); err != nil {
			ee, ok := err.(*exec.ExitError)
			if !ok {
				t.Fatal(err)
			}
			code = ee.ExitCode()
		}
		if code == 0 && stderr.Len() > 0 || code != 0 && stdout.Len() > 0 {
			t.Errorf("pilot health: exit %d with stdout %q, stderr %q", code, stdout.String(), stderr.String())
		}
		return code, stdout.String() + stderr.String()
	}
	until := func(what string, want int, line *regexp.Regexp) string {
		t.Helper()
		var last string
		return waitFor(t, 10*time.Second, what, func() (string, bool) {
			code, out := health()
			if code == want && line.MatchString(out) {
				return out, true
			}
			if out != last {
				t.Logf("pilot health: exit %d: %s", code, strings.TrimSpace(out))
				last = out
			}
			return out, false
		})
	}

	until("pilot health exit 0", 0, regexp.MustCompile(`^healthy \(1 job checked\)\n$`))
	p.errLog.waitLine(t, 5*time.Second, `job=tick .*state=idle|state=idle .*job=tick|msg=exited.*job=tick`)

	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	out := until("pilot health exit 1 for the failing check", 1, regexp.MustCompile(
		`^pilot health: unhealthy: app \(health check failing: GET http://127\.0\.0\.1:`+strconv.Itoa(appPort)+`/health: status 500 Internal Server Error: unhealthy\)\n$`))
	t.Logf("unhealthy: %s", strings.TrimSpace(out))

	if err := os.Remove(marker); err != nil {
		t.Fatal(err)
	}
	until("pilot health exit 0 again", 0, regexp.MustCompile(`^healthy \(1 job checked\)\n$`))

	// The round trip as a HEALTHCHECK makes it: exec of the binary, the
	// request, the answer. The test binary stands in for pilot (bigger,
	// and slower under -race); BenchmarkPilotHealth measures the same.
	var took []time.Duration
	for range 15 {
		start := time.Now()
		if code, out := health(); code != 0 {
			t.Fatalf("pilot health: exit %d: %s", code, out)
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	t.Logf("pilot health round trip (exec + answer), 15 runs: median %v, min %v, max %v", took[len(took)/2], took[0], took[len(took)-1])

	// The shutdown: unhealthy from its start (the app's preStop holds it
	// for 1.5 s), with the reason.
	p.signal(syscall.SIGTERM)
	until("pilot health exit 1 while stopping", 1, regexp.MustCompile(`^pilot health: stopping: signal SIGTERM\n$`))
	scrapeUntil(t, fmt.Sprintf("http://127.0.0.1:%d", metricsPort), 5*time.Second, "/v1/health counted, 200 and 503", func(s scrape) bool {
		return s.has(`pilot_control_requests_total{code="200",endpoint="/v1/health"}`) &&
			s.has(`pilot_control_requests_total{code="503",endpoint="/v1/health"}`)
	})
	if code := p.wait(10 * time.Second); code != 0 {
		t.Errorf("pilot exited %d", code)
	}

	// No pilot: 1, and the line says so.
	code, out := health()
	if want := "pilot health: pilot is not running, or listens elsewhere: no control socket at " + p.socket; code != 1 || !strings.HasPrefix(out, want) {
		t.Errorf("no pilot: exit %d, %q; want 1 and %q…", code, out, want)
	}
}

// BenchmarkPilotHealth is pilot health's round trip as Docker's HEALTHCHECK
// makes it — exec: the binary (the test binary, standing in for pilot)
// started, the request on the socket, the verdict, the exit — and the
// request alone (socket: GET /v1/health from a client in this process).
// Each reports its median in ms.
func BenchmarkPilotHealth(b *testing.B) {
	dir := b.TempDir()
	cfg := filepath.Join(dir, "pilot.yaml")
	if err := os.WriteFile(cfg, []byte(`jobs:
  - name: app
    main: true
    shell: "sleep 600"
    health: {exec: ["true"], interval: 1s}
`), 0o644); err != nil {
		b.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	socket := filepath.Join(dir, "pilot.sock")
	env := append(os.Environ(), roleEnv+"=pilot", raceOptions, "PILOT_SOCKET="+socket)
	pilot := execCommand(exe, env, "run", "--config", cfg)
	if err := pilot.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = pilot.Process.Signal(syscall.SIGTERM)
		_ = pilot.Wait()
	})
	client := control.NewClient(socket, 5*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if r, err := client.Health(context.Background()); err == nil && r.Healthy {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("pilot not healthy within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	median := func(b *testing.B, ask func() error) {
		took := make([]time.Duration, 0, b.N)
		for b.Loop() {
			start := time.Now()
			if err := ask(); err != nil {
				b.Fatal(err)
			}
			took = append(took, time.Since(start))
		}
		slices.Sort(took)
		b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "median-ms")
	}
	b.Run("exec", func(b *testing.B) {
		median(b, func() error { return execCommand(exe, env, "health").Run() })
	})
	b.Run("socket", func(b *testing.B) {
		median(b, func() error {
			r, err := client.Health(context.Background())
			if err == nil && !r.Healthy {
				err = errors.New(r.Reason)
			}
			return err
		})
	})
}

func execCommand(exe string, env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(exe, args...)
	cmd.Env = env
	return cmd
}
