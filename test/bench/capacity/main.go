// Command capacity measures what N pilots cost a real Consul cluster and
// the machine, and what their watches cost beside ContainerPilot's polling
// design. Against 3 servers and 2 client agents (test/consulcluster), it
// starts N pilots at once (default 300), each supervising a tiny static Go
// HTTP app (./app) with an HTTP health check and registering `web` (ids at
// their default) through one client agent or the other. Then, in one run:
//
//   - start: from the first exec until all N are passing in a server's
//     /v1/health/service/web?passing;
//   - steady, without watches and then with -watchers of the pilots and one
//     more, the watcher, watching `web`, over -steady (60 s): the client
//     agents' HTTP requests by endpoint (Consul's consul_api_http_count),
//     the RPCs they send the servers, every agent's CPU (utime+stime) and
//     RSS, the pilots' and apps' CPU, RSS and PSS per instance;
//   - churn, per consistency mode (-modes): the watches reloaded with
//     watches[].consistency MODE; -rate changes a second (an instance into
//     or out of Consul's maintenance mode, on its own agent) for -churn; the
//     watcher renders an nginx upstream without debounce and each change is
//     timed from just before its HTTP call to the rename of the file that
//     reflects it (inotify); the same counters, the leader apart;
//   - baseline: no watches, under the same churn;
//   - ContainerPilot emulation: -watchers pollers, one per instance, each
//     polling /v1/health/service/web?passing through its instance's agent
//     every interval (-poll-intervals 5s,1s), idle and under churn, with
//     the change → seen latency of every (poller, change) pair.
//
// Every answer is the whole service, so N watchers of N instances under
// churn cost N² and do not fit 2 CPUs at N = 300: -watchers 0 leaves only
// the watcher. -tmpdir /dev/shm puts the agents' data dirs on tmpfs: a
// client agent fsyncs each registration under one lock, and on a slow
// shared disk 150 at once never drain.
//
//	go run ./test/bench/capacity -tmpdir /dev/shm -watchers 0 -runs 3   # from inside the repository; ~8 min a run
//	go run ./test/bench/capacity -tmpdir /dev/shm -watchers 10          # with the ContainerPilot emulation
//	go run ./test/bench/capacity -streaming=false -watchers 3 -poll-intervals ""
//	go run ./test/bench/capacity -n 10 -short -results ""              # the smoke run the package test makes
//
// See test/bench/README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/nodepilot/pilot/test/bench/benchkit"
)

func main() { os.Exit(bench()) }

// settings are the flags, once parsed.
type settings struct {
	n             int
	runs          int
	settle        time.Duration
	steady        time.Duration
	churn         time.Duration
	rate          float64
	modes         []string
	pollIntervals []time.Duration
	streaming     bool
	maxConns      int
	startTimeout  time.Duration
	startRate     float64
	clients       int
	agentNice     int
	hcl           string
	watchers      int
}

func bench() int {
	var s settings
	flag.IntVar(&s.n, "n", 300, "pilots, each with its app")
	flag.IntVar(&s.watchers, "watchers", -1, "how many of the pilots also watch `web`, and how many pollers emulate ContainerPilot (-1: all N; 0: only the measuring pilot watches, and no polling)")
	flag.IntVar(&s.runs, "runs", 1, "whole runs, each on a fresh cluster and fleet; the tables give medians")
	flag.DurationVar(&s.settle, "settle", 10*time.Second, "pause before each measured window")
	flag.DurationVar(&s.steady, "steady", 60*time.Second, "the steady-state window")
	flag.DurationVar(&s.churn, "churn", 30*time.Second, "each churn and each baseline or polling window")
	flag.Float64Var(&s.rate, "rate", 10, "changes per second during churn")
	modes := flag.String("modes", "stale,default,consistent", "watches[].consistency modes measured under churn")
	polls := flag.String("poll-intervals", "5s,1s", "intervals of the ContainerPilot emulation (\"\" for none)")
	flag.BoolVar(&s.streaming, "streaming", true, "the agents' use_streaming_backend (Consul's default: true)")
	flag.IntVar(&s.maxConns, "http-max-conns-per-client", 4096, "the agents' limits.http_max_conns_per_client (Consul's default 200 counts every connection from 127.0.0.1 as one client)")
	flag.Float64Var(&s.startRate, "start-rate", 0, "pilots started per second (0: all at once)")
	flag.IntVar(&s.agentNice, "agent-nice", -10, "nice value given to every Consul agent's threads (0: leave them as the workload): production servers have CPUs of their own, and agents run as system daemons")
	flag.StringVar(&s.hcl, "hcl", "", "more configuration for every agent, e.g. 'enable_debug = true' (then /debug/pprof)")
	flag.IntVar(&s.clients, "clients", 2, "client agents; the pilots are spread evenly over them")
	flag.DurationVar(&s.startTimeout, "start-timeout", 3*time.Minute, "how long all N may take to pass")
	keep := flag.Bool("keep", false, "keep the temp dir (configs, every pilot's log) and name it on stderr")
	tmpdir := flag.String("tmpdir", "", "where the agents' data dirs and the pilots' files go (default: the system's temp dir; /dev/shm takes the disk's fsync out of the agents' registrations)")
	short := flag.Bool("short", false, "smoke mode: windows of 0.5–1 s, one mode, one polling interval (500ms)")
	common := benchkit.CommonFlags()
	flag.Parse()

	fail := benchkit.Failer("bench/capacity")
	if *short {
		s.settle, s.steady, s.churn = 200*time.Millisecond, 500*time.Millisecond, time.Second
		*modes, *polls = strings.Split(*modes, ",")[0], "500ms"
	}
	s.modes = strings.Split(*modes, ",")
	if *polls != "" && s.watchers != 0 {
		for _, p := range strings.Split(*polls, ",") {
			d, err := time.ParseDuration(p)
			if err != nil || d <= 0 {
				return fail("-poll-intervals: %q is not a duration > 0", p)
			}
			s.pollIntervals = append(s.pollIntervals, d)
		}
	}
	if s.watchers < 0 {
		s.watchers = s.n
	}
	if s.n < 4 || s.runs < 1 || s.rate <= 0 || s.watchers > s.n {
		return fail("want -n ≥ 4, -runs ≥ 1, -rate > 0, 0 ≤ -watchers ≤ -n")
	}

	if *tmpdir != "" {
		os.Setenv("TMPDIR", *tmpdir) // os.MkdirTemp's, and so test/consulcluster's
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	dir, err := os.MkdirTemp("", "pilot-bench-capacity-")
	if err != nil {
		return fail("%v", err)
	}
	if *keep {
		defer fmt.Fprintf(os.Stderr, "kept %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	pilotBin, err := benchkit.BuildPilot(dir, *common.Pilot)
	if err != nil {
		return fail("%v", err)
	}
	app, err := buildApp(dir)
	if err != nil {
		return fail("%v", err)
	}
	renders := filepath.Join(dir, "watcher")
	if err := os.Mkdir(renders, 0o755); err != nil {
		return fail("%v", err)
	}
	events := make(chan benchkit.FileEvent, 1024)
	if err := benchkit.WatchDir(renders, "backend.conf", events); err != nil {
		return fail("inotify: %v", err)
	}

	var results []*runResult
	raw := map[string]any{
		"when": time.Now().UTC().Format(time.RFC3339), "n": s.n, "runs": &results,
		"settle": s.settle.String(), "steady": s.steady.String(), "churn": s.churn.String(), "rate": s.rate,
		"modes": s.modes, "poll_intervals": fmt.Sprint(s.pollIntervals), "streaming": s.streaming,
		"http_max_conns_per_client": s.maxConns, "go": runtime.Version(), "cpus": runtime.NumCPU(),
	}
	for r := range s.runs {
		fmt.Fprintf(os.Stderr, "run %d of %d (load %s)\n", r+1, s.runs, loadavg())
		res, err := runOnce(ctx, &s, filepath.Join(dir, fmt.Sprintf("run%d", r)), pilotBin, app, renders, events)
		results = append(results, res)
		if err != nil {
			res.Error = err.Error()
			benchkit.WriteResults(*common.Results, "capacity", raw) // what was measured before it failed
			return fail("run %d: %v", r+1, err)
		}
		fmt.Fprintf(os.Stderr, "run %d: all %d passing after %.1f s (load %s → %s)\n", r+1, s.n, res.Start.AllS, res.LoadAvg[0], res.LoadAvg[1])
	}
	printTables(os.Stdout, &s, results)
	benchkit.WriteResults(*common.Results, "capacity", raw)
	return 0
}

// buildApp builds ./app static and stripped into dir.
func buildApp(dir string) (string, error) {
	bin := filepath.Join(dir, "app")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "github.com/nodepilot/pilot/test/bench/capacity/app")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("building the app (run inside the repository): %v", err)
	}
	return bin, nil
}
