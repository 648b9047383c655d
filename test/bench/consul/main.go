// Command consul measures how fast pilot's health changes reach a real
// Consul agent: failure→critical (the app's /health starts failing → the
// instance is gone from /v1/health/service/NAME?passing) and
// recovery→passing (it answers 200 again → back in ?passing), over N trials
// each, with p50/p99 against the target p99 ≤ interval + 100 ms. Then the
// start: exec of pilot → the instance passing in Consul, for an app that
// takes a realistic time to start (the example Node app), with
// health.startInterval at its default and with startInterval: 1s (off),
// against the app's own start (exec → first 200 on /health); target: the
// median with the default ≤ the app's own median + 100 ms.
//
//	go run ./test/bench/consul                 # from the repository root
//	go run ./test/bench/consul -n 200 -interval 500ms -strict
//	go run ./test/bench/consul -n 0 -start-n 11  # the start measure only
//
// See test/bench/README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"
	"time"

	"github.com/nodepilot/pilot/test/bench/benchkit"
	"github.com/nodepilot/pilot/test/consulagent"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "app" {
		os.Exit(app(os.Args[2:]))
	}
	os.Exit(bench())
}

// app is "app PORT MARKER [DELAY]": /health answers 500 while MARKER
// exists, else 200; with DELAY it sleeps that long before it listens (a
// stand-in for an app's start when node is missing).
func app(args []string) int {
	port, marker := args[0], args[1]
	if len(args) > 2 {
		d, err := time.ParseDuration(args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, "app:", err)
			return 2
		}
		time.Sleep(d)
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		fmt.Fprintln(os.Stderr, "app:", err)
		return 1
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) {
		if _, err := os.Stat(marker); err == nil {
			http.Error(w, "unhealthy", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	<-sigs
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	return 0
}

type result struct {
	Measure    string    `json:"measure"`
	SamplesMs  []float64 `json:"samples_ms"`
	P50Ms      float64   `json:"p50_ms"`
	P99Ms      float64   `json:"p99_ms"`
	MaxMs      float64   `json:"max_ms"`
	TargetP99  float64   `json:"target_p99_ms"`
	Pass       bool      `json:"pass"`
	TimedOutOf int       `json:"timed_out"`
}

func bench() int {
	n := flag.Int("n", 50, "trials per measure (after one warm-up)")
	interval := flag.Duration("interval", 200*time.Millisecond, "health check interval")
	poll := flag.Duration("poll", 2*time.Millisecond, "pause between ?passing polls")
	startN := flag.Int("start-n", 7, "runs of each start measure (0: skip them)")
	startApp := flag.String("start-app", "node", `the app of the start measure: "node" (examples/nodejs/server.js) or "go" (this binary, listening after 150 ms)`)
	common := benchkit.CommonFlags()
	flag.Parse()

	fail := benchkit.Failer("bench/consul")
	env, err := benchkit.Setup("pilot-bench-consul-", *common.Pilot)
	if err != nil {
		return fail("%v", err)
	}
	defer env.Close()

	self, err := os.Executable()
	if err != nil {
		return fail("%v", err)
	}
	raw := map[string]any{
		"when": time.Now().UTC().Format(time.RFC3339), "interval": interval.String(), "poll": poll.String(),
		"trials": *n, "go": runtime.Version(), "cpus": runtime.NumCPU(),
	}
	missed := false
	if *n > 0 {
		results, miss, code := propagation(env, self, *n, *interval, *poll, fail)
		if code != 0 {
			return code
		}
		raw["results"], missed = results, miss
	}
	if *startN > 0 {
		starts, miss, code := startMeasure(env, self, *startApp, *startN, *poll, fail)
		if code != 0 {
			return code
		}
		raw["start"], missed = starts, missed || miss
	}
	benchkit.WriteResults(*common.Results, "consul", raw)
	if missed && *common.Strict {
		return 1
	}
	return 0
}

// propagation measures failure → critical and recovery → passing over n
// trials each, prints the table and the verdicts, and returns the results,
// whether a target was missed, and a non-zero code on a harness error.
func propagation(env *benchkit.Env, self string, n int, interval, poll time.Duration, fail func(string, ...any) int) ([]*result, bool, int) {
	agent := env.Agent
	ports, err := consulagent.FreePorts(1)
	if err != nil {
		return nil, false, fail("%v", err)
	}
	port, marker, name := ports[0], filepath.Join(env.Dir, "unhealthy"), "bench-web"
	cfg := fmt.Sprintf(`consul: {address: %q}
jobs:
  - name: app
    main: true
    exec: [%q, app, "%d", %q]
    health:
      http: {port: %d, path: /health}
      interval: %s
      timeout: %s
      healthyThreshold: 1
      unhealthyThreshold: 1
    service:
      name: %s
      port: %d
      address: {static: 127.0.0.1}
`, agent.Addr(), self, port, marker, port, interval, interval*3/4, name, port)
	pilot, err := env.StartPilot(cfg)
	if err != nil {
		return nil, false, fail("%v", err)
	}
	defer pilot.Stop()

	count := func() int {
		es, err := agent.Health(name, true)
		if err != nil {
			return -1
		}
		return len(es)
	}
	// wait polls ?passing until it shows want instances; it returns the time
	// from start, or false after limit.
	wait := func(start time.Time, want int, limit time.Duration) (time.Duration, bool) {
		for {
			if count() == want {
				return time.Since(start), true
			}
			if time.Since(start) > limit {
				return 0, false
			}
			time.Sleep(poll)
		}
	}
	if _, ok := wait(time.Now(), 1, 15*time.Second); !ok {
		return nil, false, fail("the service never became passing; pilot's log:\n%s", pilot.Log())
	}

	limit := 10*interval + 2*time.Second
	fails := &result{Measure: "failure → critical (gone from ?passing)"}
	recs := &result{Measure: "recovery → passing"}
	for i := -1; i < n; i++ { // i = -1: warm-up, not recorded
		// A random phase against the check schedule, so the trials sample
		// the whole interval rather than one point of it.
		time.Sleep(rand.N(interval))
		start := time.Now()
		if err := os.WriteFile(marker, nil, 0o644); err != nil {
			return nil, false, fail("%v", err)
		}
		d, ok := wait(start, 0, limit)
		if i >= 0 {
			record(fails, d, ok)
		}
		if !ok { // settle before measuring recovery
			wait(time.Now(), 0, limit)
		}
		time.Sleep(rand.N(interval))
		start = time.Now()
		if err := os.Remove(marker); err != nil {
			return nil, false, fail("%v", err)
		}
		d, ok = wait(start, 1, limit)
		if i >= 0 {
			record(recs, d, ok)
		}
		if !ok {
			wait(time.Now(), 1, limit)
		}
	}

	target := interval + 100*time.Millisecond
	fmt.Printf("Consul health propagation: real `consul agent -dev` (loopback), health interval %s, thresholds 1/1, ?passing polled every %s, %d trials each (+1 warm-up)\n\n", interval, poll, n)
	fmt.Println("| measure | p50 | p99 | max | timed out | target p99 |")
	fmt.Println("|---|---|---|---|---|---|")
	missed := false
	for _, r := range []*result{fails, recs} {
		summarize(r, target)
		fmt.Printf("| %s | %.1f ms | %.1f ms | %.1f ms | %d | ≤ %.0f ms |\n", r.Measure, r.P50Ms, r.P99Ms, r.MaxMs, r.TimedOutOf, r.TargetP99)
	}
	fmt.Println()
	for _, r := range []*result{fails, recs} {
		verdict := "PASS"
		if !r.Pass {
			verdict, missed = "FAIL", true
		}
		fmt.Printf("%s: %s p99 %.1f ms (target ≤ interval + 100 ms = %.0f ms)\n", verdict, r.Measure, r.P99Ms, r.TargetP99)
	}
	fmt.Println()
	return []*result{fails, recs}, missed, 0
}

func record(r *result, d time.Duration, ok bool) {
	if !ok {
		r.TimedOutOf++
		return
	}
	r.SamplesMs = append(r.SamplesMs, float64(d.Microseconds())/1000)
}

// summarize fills the percentiles (nearest rank); a timed-out trial counts
// as a miss.
func summarize(r *result, target time.Duration) {
	s := slices.Sorted(slices.Values(r.SamplesMs))
	r.TargetP99 = float64(target.Milliseconds())
	if len(s) > 0 {
		r.P50Ms, r.P99Ms, r.MaxMs = benchkit.Rank(s, 0.50), benchkit.Rank(s, 0.99), s[len(s)-1]
	}
	r.Pass = len(s) > 0 && r.TimedOutOf == 0 && r.P99Ms <= r.TargetP99
}
