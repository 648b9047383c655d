// Command nodeagent measures what pilot's Node agent (telemetry/nodejs)
// costs an HTTP app under load: it runs examples/nodejs/server.js with and
// without the agent's NODE_OPTIONS (from nodejs.Agents.Env, with a live
// Agents collecting the reports), alternating the two, and drives each run
// with wrk. It prints the median requests/s of each side and their ratio.
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
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodepilot/pilot/telemetry/nodejs"
)

func main() {
	n := flag.Int("n", 5, "runs per side")
	dur := flag.Duration("d", 10*time.Second, "wrk duration of one run")
	warm := flag.Duration("warmup", 2*time.Second, "wrk warm-up before each run (not recorded)")
	conns := flag.Int("c", 50, "wrk connections")
	threads := flag.Int("t", 2, "wrk threads")
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
	agents, err := nodejs.New(dir, reg, log, func(string) int { return int(appPid.Load()) })
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
		strings.TrimSpace(string(nodeV)), firstLine(string(wrkV)), n, dur, warm, threads, conns, server, path, numCPU())

	var without, with []float64
	for i := range n {
		order := []bool{false, true}
		if i%2 == 1 {
			order = []bool{true, false}
		}
		for _, agent := range order {
			env := base
			if agent {
				env = withAgent
			}
			pids := &appPid
			if !agent {
				pids = &atomic.Int64{} // not "the job": pilot expects no agent
			}
			rps, reported, err := oneRun(node, wrk, server, path, env, warm, dur, conns, threads, pids, reg)
			if err != nil {
				return err
			}
			label := "without"
			if agent {
				label = "with   "
				with = append(with, rps)
				if !reported {
					return errors.New("the agent did not report during a run with it")
				}
			} else {
				without = append(without, rps)
			}
			fmt.Printf("run %d %s agent: %9.0f req/s\n", i+1, label, rps)
		}
	}
	mw, mo := median(with), median(without)
	fmt.Printf("\n| | median req/s | runs |\n|---|---|---|\n")
	fmt.Printf("| without agent | %.0f | %s |\n| with agent | %.0f | %s |\n", mo, list(without), mw, list(with))
	fmt.Printf("\nratio with/without %.4f: %+.2f %% throughput (target: loss ≤ 3 %%)\n", mw/mo, (mw/mo-1)*100)
	return nil
}

// oneRun starts the app, waits for /health, warms up, measures with wrk and
// stops the app. reported tells whether pilot held the app's Node series.
func oneRun(node, wrk, server, path string, env []string, warm, dur time.Duration, conns, threads int, appPid *atomic.Int64, reg *prometheus.Registry) (float64, bool, error) {
	port, err := freePort()
	if err != nil {
		return 0, false, err
	}
	cmd := exec.Command(node, filepath.Base(server))
	cmd.Dir = filepath.Dir(server)
	cmd.Env = append(slices.Clone(env), "PORT="+strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = nil, os.Stderr
	if err := cmd.Start(); err != nil {
		return 0, false, err
	}
	appPid.Store(int64(cmd.Process.Pid))
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		waited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-waited
		}
	}()
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url + "/health")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			return 0, false, fmt.Errorf("the app did not answer /health within 10s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if warm > 0 {
		if _, err := wrkRun(wrk, url+path, warm, conns, threads); err != nil {
			return 0, false, err
		}
	}
	rps, err := wrkRun(wrk, url+path, dur, conns, threads)
	if err != nil {
		return 0, false, err
	}
	reported := false
	if mfs, err := reg.Gather(); err == nil {
		for _, mf := range mfs {
			if mf.GetName() == "pilot_nodejs_heap_used_bytes" && len(mf.GetMetric()) > 0 {
				reported = true
			}
		}
	}
	return rps, reported, nil
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

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func list(xs []float64) string {
	var parts []string
	for _, x := range xs {
		parts = append(parts, strconv.FormatFloat(x, 'f', 0, 64))
	}
	return strings.Join(parts, ", ")
}

func firstLine(s string) string {
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Scan()
	return strings.TrimSpace(sc.Text())
}

func numCPU() int {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	return strings.Count(string(data), "processor\t:")
}
