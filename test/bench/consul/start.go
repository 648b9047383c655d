package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nodepilot/pilot/test/bench/benchkit"
	"github.com/nodepilot/pilot/test/consulagent"
)

// startResult is one start measure over its runs.
type startResult struct {
	Measure   string    `json:"measure"`
	SamplesMs []float64 `json:"samples_ms"`
	MedianMs  float64   `json:"median_ms"`
	MinMs     float64   `json:"min_ms"`
	MaxMs     float64   `json:"max_ms"`
}

func (r *startResult) summarize() {
	s := slices.Sorted(slices.Values(r.SamplesMs))
	if len(s) > 0 {
		r.MedianMs, r.MinMs, r.MaxMs = benchkit.Rank(s, 0.5), s[0], s[len(s)-1]
	}
}

// startInterval is health's check interval in the start measure: checks
// every second once passing, as a production config would have it.
const startInterval = time.Second

// startMeasure measures, n runs each, one warm-up dropped: the app's own
// start (exec → first 200 on /health, polled every poll), and exec of pilot
// → the instance in ?passing (polled every poll) with startInterval at its
// default and with startInterval: 1s (off). It prints the table and the
// verdict: the default's median ≤ the app's own + 100 ms.
func startMeasure(env *benchkit.Env, self, appKind string, n int, poll time.Duration, fail func(string, ...any) int) ([]*startResult, bool, int) {
	argv, desc, err := startApp(appKind, self)
	if err != nil {
		return nil, false, fail("%v", err)
	}
	own := &startResult{Measure: "the app's own start: exec → first 200 on /health"}
	withDefault := &startResult{Measure: "exec of pilot → passing in Consul, startInterval at its default"}
	off := &startResult{Measure: "exec of pilot → passing in Consul, startInterval: 1s (off)"}
	limit := 10 * time.Second
	for i := -1; i < n; i++ { // i = -1: warm-up, not recorded
		d, err := appStart(argv, poll, limit)
		if err != nil {
			return nil, false, fail("the app alone: %v", err)
		}
		if i >= 0 {
			own.SamplesMs = append(own.SamplesMs, ms(d))
		}
		for _, m := range []struct {
			r     *startResult
			extra string
		}{{withDefault, ""}, {off, "      startInterval: 1s\n"}} {
			d, err := pilotStart(env, argv, m.extra, fmt.Sprintf("bench-start-%d", i+1), poll, limit)
			if err != nil {
				return nil, false, fail("%s: %v", m.r.Measure, err)
			}
			if i >= 0 {
				m.r.SamplesMs = append(m.r.SamplesMs, ms(d))
			}
		}
	}
	results := []*startResult{own, withDefault, off}
	fmt.Printf("Start → routable: %s; health {http, interval: %s, healthyThreshold: 1}; real `consul agent -dev` (loopback), ?passing and /health polled every %s; %d runs each (+1 warm-up), a fresh pilot and service name per run\n\n", desc, startInterval, poll, n)
	fmt.Println("| measure | median | min | max |")
	fmt.Println("|---|---|---|---|")
	for _, r := range results {
		r.summarize()
		fmt.Printf("| %s | %.1f ms | %.1f ms | %.1f ms |\n", r.Measure, r.MedianMs, r.MinMs, r.MaxMs)
	}
	fmt.Println()
	target := own.MedianMs + 100
	verdict, missed := "PASS", false
	if withDefault.MedianMs > target {
		verdict, missed = "FAIL", true
	}
	fmt.Printf("%s: exec → passing median %.1f ms with startInterval at its default (target ≤ the app's own start + 100 ms = %.0f ms; with it off: %.1f ms)\n",
		verdict, withDefault.MedianMs, target, off.MedianMs)
	return results, missed, 0
}

// startApp returns the argv of the start measure's app, with PORT (and,
// for the Go stand-in, the marker) still to be filled: "node" is the
// example app (run from the repository root).
func startApp(kind, self string) (argv []string, desc string, err error) {
	switch kind {
	case "node":
		node, err := exec.LookPath("node")
		if err != nil {
			return nil, "", fmt.Errorf("-start-app node: %v (or -start-app go)", err)
		}
		script, err := filepath.Abs("examples/nodejs/server.js")
		if err != nil {
			return nil, "", err
		}
		if _, err := os.Stat(script); err != nil {
			return nil, "", fmt.Errorf("-start-app node: %v (run from the repository root)", err)
		}
		return []string{node, script}, "the example Node app (examples/nodejs/server.js)", nil
	case "go":
		return []string{self, "app", "PORT", os.DevNull + "/none", "150ms"}, "a Go app that listens 150 ms after its exec", nil
	}
	return nil, "", fmt.Errorf("-start-app %q: want node or go", kind)
}

// withPort fills argv's PORT placeholder (the Go app) and returns the
// environment that names the port (the Node app reads PORT).
func withPort(argv []string, port int) ([]string, []string) {
	out := slices.Clone(argv)
	for i, a := range out {
		if a == "PORT" {
			out[i] = strconv.Itoa(port)
		}
	}
	return out, append(os.Environ(), "PORT="+strconv.Itoa(port))
}

// appStart runs the app alone and returns exec → its first 200 on /health.
func appStart(argv []string, poll, limit time.Duration) (time.Duration, error) {
	ports, err := consulagent.FreePorts(1)
	if err != nil {
		return 0, err
	}
	args, env := withPort(argv, ports[0])
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	url := fmt.Sprintf("http://127.0.0.1:%d/health", ports[0])
	client := &http.Client{Timeout: time.Second}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	for time.Since(start) < limit {
		if resp, err := client.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return time.Since(start), nil
			}
		}
		time.Sleep(poll)
	}
	return 0, fmt.Errorf("no 200 on %s within %s", url, limit)
}

// pilotStart runs pilot on the app (health interval 1 s, extra added to
// its health block) and returns exec of pilot → the instance in ?passing.
func pilotStart(env *benchkit.Env, argv []string, extra, name string, poll, limit time.Duration) (time.Duration, error) {
	ports, err := consulagent.FreePorts(1)
	if err != nil {
		return 0, err
	}
	port := ports[0]
	args, _ := withPort(argv, port)
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = strconv.Quote(a)
	}
	cfg := fmt.Sprintf(`consul: {address: %q}
jobs:
  - name: app
    main: true
    exec: [%s]
    env: {PORT: "%d"}
    health:
      http: {port: %d, path: /health}
      interval: %s
      timeout: 500ms
      healthyThreshold: 1
%s    service:
      name: %s
      port: %d
      address: {static: 127.0.0.1}
`, env.Agent.Addr(), strings.Join(quoted, ", "), port, port, startInterval, extra, name, port)
	start := time.Now()
	pilot, err := env.StartPilot(cfg)
	if err != nil {
		return 0, err
	}
	defer pilot.Stop()
	for time.Since(start) < limit {
		if es, err := env.Agent.Health(name, true); err == nil && len(es) == 1 {
			return time.Since(start), nil
		}
		time.Sleep(poll)
	}
	return 0, fmt.Errorf("%s not passing within %s; pilot's log:\n%s", name, limit, pilot.Log())
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
