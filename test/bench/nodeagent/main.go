// Command nodeagent measures what pilot's Node agent (telemetry/nodejs)
// costs an HTTP app under load: it runs examples/nodejs/server.js with and
// without the agent's NODE_OPTIONS (from nodejs.Agents.Env, with a live
// Agents collecting the reports) side by side, both at once, each driven
// by its own wrk. It prints each run's requests/s and CPU per request, and
// the median of the runs' with/without throughput ratios.
//
//	go run ./test/bench/nodeagent -n 5 -d 10s      # from the repo root
//
// Needs node and wrk (Debian package wrk) on PATH.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodepilot/pilot/telemetry/nodejs"
	"github.com/nodepilot/pilot/test/bench/benchkit"
	"github.com/nodepilot/pilot/test/consulagent"
)

func main() {
	n := flag.Int("n", 5, "runs (each loads both apps at once)")
	dur := flag.Duration("d", 10*time.Second, "wrk duration of one run")
	warm := flag.Duration("warmup", 2*time.Second, "wrk warm-up before each run (not recorded)")
	conns := flag.Int("c", 50, "connections of each wrk")
	threads := flag.Int("t", 1, "threads of each wrk")
	server := flag.String("server", "examples/nodejs/server.js", "the app")
	path := flag.String("path", "/", "request path")
	flag.Parse()
	if err := run(*n, *dur, *warm, *conns, *threads, *server, *path); err != nil {
		fmt.Fprintln(os.Stderr, "nodeagent:", err)
		os.Exit(1)
	}
}

func run(n int, dur, warm time.Duration, conns, threads int, server, path string) error {
	node, err := exec.LookPath("node")
	if err != nil {
		return err
	}
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		return fmt.Errorf("%w (apt-get install wrk)", err)
	}
	dir, err := os.MkdirTemp("", "pilot-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	var appPid atomic.Int64
	reg := prometheus.NewRegistry()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	agents, err := nodejs.New(dir, reg, log, nodejs.Options{Pids: func(string) []int { return []int{int(appPid.Load())} }})
	if err != nil {
		return err
	}
	if !agents.Enabled() {
		return errors.New("agent not enabled (see the warning above)")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { agents.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	base := os.Environ()
	withAgent := agents.Env("app", base)
	nodeV, _ := exec.Command(node, "--version").Output()
	wrkV, _ := exec.Command(wrk, "--version").CombinedOutput()
	fmt.Printf("node %s, %s, %d × %v per side (+%v warm-up), wrk -t%d -c%d, %s%s, %d CPUs\n",
		strings.TrimSpace(string(nodeV)), firstLine(string(wrkV)), n, dur, warm, threads, conns, server, path, runtime.NumCPU())

	// Both apps run at once, each loaded by its own wrk, so that whatever
	// else the shared machine does hits both sides alike: on these machines
	// two runs one after the other differ by up to ±40 %, two runs side by
	// side by a few per cent.
	var without, with, withoutCPU, withCPU, ratios []float64
	for i := range n {
		plain, err := startApp(node, server, base, &atomic.Int64{}) // not "the job": pilot expects no agent
		if err != nil {
			return err
		}
		agented, err := startApp(node, server, withAgent, &appPid)
		if err != nil {
			plain.stop()
			return err
		}
		results, err := loadBoth(wrk, path, warm, dur, conns, threads, plain, agented)
		agentReported := reported(reg) // before the stop, which removes its series
		plain.stop()
		agented.stop()
		if err != nil {
			return err
		}
		if !agentReported {
			return errors.New("the agent did not report during a run with it")
		}
		without, withoutCPU = append(without, results[0].rps), append(withoutCPU, results[0].cpuPerRequest)
		with, withCPU = append(with, results[1].rps), append(withCPU, results[1].cpuPerRequest)
		ratios = append(ratios, results[1].rps/results[0].rps)
		fmt.Printf("run %d: without agent %7.0f req/s, %6.1f µs CPU/request; with agent %7.0f req/s, %6.1f µs CPU/request; ratio %.3f\n",
			i+1, results[0].rps, results[0].cpuPerRequest, results[1].rps, results[1].cpuPerRequest, ratios[i])
	}
	mw, mo, mr := median(with), median(without), median(ratios)
	fmt.Printf("\n| | median req/s | runs |\n|---|---|---|\n")
	fmt.Printf("| without agent | %.0f | %s |\n| with agent | %.0f | %s |\n", mo, listF(without, 0), mw, listF(with, 0))
	fmt.Printf("\nmedian of the side-by-side ratios with/without %.4f: %+.2f %% throughput (target: loss ≤ 3 %%); ratios %s\n", mr, (mr-1)*100, listF(ratios, 3))
	cw, co := median(withCPU), median(withoutCPU)
	fmt.Printf("app CPU per request, medians: without %.1f µs, with %.1f µs (%+.2f %%)\n", co, cw, (cw/co-1)*100)
	return nil
}

// app is one running example app.
type app struct {
	url  string
	pid  int
	stop func()
}

// startApp starts the app with env and waits for /health. pid receives its
// pid (what pilot's pidOf reads).
func startApp(node, server string, env []string, pid *atomic.Int64) (*app, error) {
	ports, err := consulagent.FreePorts(1)
	if err != nil {
		return nil, err
	}
	port := ports[0]
	cmd := exec.Command(node, filepath.Base(server))
	cmd.Dir = filepath.Dir(server)
	cmd.Env = append(slices.Clone(env), "PORT="+strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = nil, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	pid.Store(int64(cmd.Process.Pid))
	a := &app{url: fmt.Sprintf("http://127.0.0.1:%d", port), pid: cmd.Process.Pid, stop: func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		waited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-waited
		}
	}}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(a.url + "/health")
		if err == nil {
			resp.Body.Close()
			return a, nil
		}
		if time.Now().After(deadline) {
			a.stop()
			return nil, fmt.Errorf("the app did not answer /health within 10s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type result struct{ rps, cpuPerRequest float64 }

// loadBoth warms up, then loads every app at once with its own wrk, and
// returns each one's requests/s and CPU µs per request.
func loadBoth(wrk, path string, warm, dur time.Duration, conns, threads int, apps ...*app) ([]result, error) {
	each := func(d time.Duration) ([]result, error) {
		out := make([]result, len(apps))
		errs := make([]error, len(apps))
		var wg sync.WaitGroup
		for i, a := range apps {
			wg.Go(func() {
				before, err := benchkit.CPUTicks(a.pid)
				if err != nil {
					errs[i] = err
					return
				}
				rps, err := wrkRun(wrk, a.url+path, d, conns, threads)
				if err != nil {
					errs[i] = err
					return
				}
				after, err := benchkit.CPUTicks(a.pid)
				if err != nil {
					errs[i] = err
					return
				}
				// utime+stime are in ticks of 10 ms.
				out[i] = result{rps: rps, cpuPerRequest: float64(after-before) * 10e3 / (rps * d.Seconds())}
			})
		}
		wg.Wait()
		return out, errors.Join(errs...)
	}
	if warm > 0 {
		if _, err := each(warm); err != nil {
			return nil, err
		}
	}
	return each(dur)
}

// reported tells whether pilot holds the agent's Node series.
func reported(reg *prometheus.Registry) bool {
	mfs, err := reg.Gather()
	if err != nil {
		return false
	}
	for _, mf := range mfs {
		if mf.GetName() == "pilot_nodejs_heap_used_bytes" && len(mf.GetMetric()) > 0 {
			return true
		}
	}
	return false
}

var rpsRE = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)

func wrkRun(wrk, url string, d time.Duration, conns, threads int) (float64, error) {
	out, err := exec.Command(wrk, "-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns),
		"-d", fmt.Sprintf("%ds", int(d.Seconds())), url).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("wrk: %v\n%s", err, out)
	}
	m := rpsRE.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("wrk: no Requests/sec in\n%s", out)
	}
	if strings.Contains(string(out), "Non-2xx") {
		return 0, fmt.Errorf("wrk: errors\n%s", out)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

func listF(xs []float64, decimals int) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.FormatFloat(x, 'f', decimals, 64)
	}
	return strings.Join(parts, ", ")
}

func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func firstLine(s string) string {
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Scan()
	return strings.TrimSpace(sc.Text())
}
