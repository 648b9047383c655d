// Command dockerwatch measures how fast a container that starts or stops
// reaches what follows it: pilot's `discovery: docker` watch rendering an
// nginx upstream to a file, side by side with Traefik's own Docker
// provider routing requests, both on the same private dockerd, in one run.
//
// It starts a dockerd of its own (test/e2e/dockerd.sh start, stopped at the
// end whatever happens, ^C included), imports a tiny image made of the
// machine's static busybox (sh + httpd answering its own hostname on
// :8080, exiting 0 on SIGTERM), creates a user network labelled as compose
// would, and starts:
//
//   - pilot (a host process) with a main job `sleep` and one watch:
//     `service: api, discovery: docker, docker: {project: bench, network,
//     port: 8080}, debounce: {min: 0s, max: 0s}`, rendering nginx to a file;
//   - Traefik (the pinned build of test/traefik.sh) with its Docker provider
//     on the daemon's socket (exposedByDefault false, the network) at its
//     defaults, and, unless -throttle0=false, a second Traefik with
//     providers.providersThrottleDuration 0s; each has a web entrypoint on a
//     free loopback port and its API/ping on another.
//
// The containers carry the compose labels (project bench, service api) and
// traefik.enable, a Host(`api.bench`) rule and the port label. One of them
// is started first and stays up, so that routing never goes empty. Then,
// after one warm-up round, for each of -n rounds:
//
//   - add: one more container is created and started (Engine API); t0 is
//     its `start` event's timeNano on the events stream, which the harness
//     subscribed to before anything started. The rendered file is read
//     every -file-poll (1 ms); pilot's figure is the first read that lists
//     the new IP:8080. Each Traefik's API (/api/http/services/api@docker)
//     is asked every -api-poll (5 ms, one request at a time); its figure is
//     the first answer that lists the server. The API is served by the
//     router table the entrypoints switch to, so that is when Traefik
//     routes to it. As a cross-check, requests with the Host header go
//     through each Traefik's web entrypoint one at a time, -http-pause
//     (3 ms) apart, given up after -http-timeout (250 ms): the send time of
//     the first one the new container answered (the body is its hostname).
//   - after a pause uniform in [gap/2, 3·gap/2), remove: the container is
//     stopped (`docker stop`, it exits on SIGTERM at once); t0 is its `die`
//     event. pilot's figure is the first read of the file without it, and
//     Traefik's the first API answer without it, each for good (no later
//     look in the round lists it again). Requests Traefik still routes to
//     the stopped container hang or fail with 502: they are counted. Then
//     the container is removed and, after another such pause, the next
//     round begins.
//
// A figure not seen within -timeout is a miss. The output is a Markdown
// table of n, p50, p99, min and max for each measure, the ratios of the
// medians pilot/Traefik, the failed requests through each Traefik, and a
// PASS/FAIL line for the target: pilot's add p50 ≤ 100 ms. Raw samples go
// to test/bench/results/dockerwatch-<UTC time>.json.
//
//	sudo go run ./test/bench/dockerwatch -n 20 -pilot /tmp/pilot-bench   # from the repository root
//	go run ./test/bench/dockerwatch -n 20 -gap 3s -strict
//
// Needs root (dockerd), busybox-static and docker.io (dockerd.sh install
// installs them), and the Traefik binary ($PILOT_TRAEFIK_BIN, or the one
// `bash test/traefik.sh` builds). pilot is built from ./cmd/pilot unless
// -pilot or $PILOT names a binary. Exit code 2 on harness errors, 1 with
// -strict when the target is missed, else 0. See test/bench/README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"
	"time"

	"github.com/nodepilot/pilot/test/bench/benchkit"
	"github.com/nodepilot/pilot/test/consulagent"
	"github.com/nodepilot/pilot/test/toolbin"
	"github.com/nodepilot/pilot/test/traefikproc"
)

const targetAddP50 = 100 * time.Millisecond

// setup is what the containers and the watchers share.
type setup struct {
	project, service, network, host, image string
	port                                   int
}

// round is one container added then removed; figures in ms after the
// event (t0), -1 when not seen.
type round struct {
	Container   container `json:"container"`
	StartCallMs float64   `json:"start_call_ms"` // the start call returned, after the start event
	StopCallMs  float64   `json:"stop_call_ms"`  // the stop call was made, before the die event (negative)
	GapAddMs    float64   `json:"gap_before_add_ms"`
	GapRemoveMs float64   `json:"gap_before_remove_ms"`
	PilotAdd    float64   `json:"pilot_add_ms"`
	PilotRemove float64   `json:"pilot_remove_ms"`
	// One per Traefik, in the order of "traefiks":
	TraefikAdd    []float64 `json:"traefik_add_ms"`     // first request the new container answered
	TraefikAPIAdd []float64 `json:"traefik_api_add_ms"` // its API lists the server
	TraefikRm     []float64 `json:"traefik_remove_ms"`  // its API no longer lists the server
	Failed        []int     `json:"traefik_failed"`     // requests not answered 200 in the round
	Sent          []int     `json:"traefik_sent"`
	Events        []string  `json:"events"` // the container's events, ms after its start event

	tCreate, tStart, tStop, tDie, tEnd time.Time
}

type stats struct {
	Measure string  `json:"measure"`
	N       int     `json:"n"`
	Missed  int     `json:"missed"`
	P50     float64 `json:"p50_ms"`
	P99     float64 `json:"p99_ms"`
	Min     float64 `json:"min_ms"`
	Max     float64 `json:"max_ms"`
}

func main() { os.Exit(run()) }

func run() int {
	n := flag.Int("n", 20, "rounds measured (each adds one container and removes it), after one warm-up round")
	gap := flag.Duration("gap", time.Second, "mean pause before each change, once every watcher has caught up with the last (uniform in [gap/2, 3·gap/2))")
	filePoll := flag.Duration("file-poll", time.Millisecond, "read the rendered file this often")
	httpPause := flag.Duration("http-pause", 3*time.Millisecond, "pause between two requests through one Traefik (one at a time)")
	httpTimeout := flag.Duration("http-timeout", 250*time.Millisecond, "a request through Traefik not answered by then has failed (one routed to a stopped container hangs)")
	apiPoll := flag.Duration("api-poll", 5*time.Millisecond, "ask each Traefik's API for the service's servers this often (one request at a time)")
	timeout := flag.Duration("timeout", 15*time.Second, "a watcher not caught up by then misses the change")
	throttle0 := flag.Bool("throttle0", true, "run a second Traefik with providersThrottleDuration 0s beside the one at its defaults")
	noPilot := flag.Bool("no-pilot", false, "measure the Traefik side alone (pilot's figures are then all missed)")
	common := benchkit.CommonFlags()
	flag.Parse()
	fail := benchkit.Failer("dockerwatch")
	if *n < 1 || *filePoll <= 0 || *httpPause <= 0 || *apiPoll <= 0 {
		return fail("need -n ≥ 1, -file-poll, -http-pause and -api-poll > 0")
	}
	if os.Geteuid() != 0 {
		return fail("needs root (it starts its own dockerd)")
	}
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()

	root, err := toolbin.RepoRoot()
	if err != nil {
		return fail("%v", err)
	}
	traefikBin, err := traefikproc.Tool.Path()
	if err != nil {
		return fail("%v", err)
	}
	dir, err := os.MkdirTemp("", "pilot-bench-dockerwatch-")
	if err != nil {
		return fail("%v", err)
	}
	defer os.RemoveAll(dir)
	pilotBin, err := benchkit.BuildPilot(dir, *common.Pilot)
	if err != nil {
		return fail("%v", err)
	}

	d, err := startDaemon(filepath.Join(root, "test", "e2e", "dockerd.sh"))
	if err != nil {
		return fail("dockerd: %v", err)
	}
	defer d.stop()
	eng := newEngine(d.sock)
	o := setup{project: "bench", service: "api", network: "bench_net", host: "api.bench", image: "pilot-bench-httpd:latest", port: 8080}
	dockerVersion, err := eng.version(ctx)
	if err != nil {
		return fail("dockerd: %v", err)
	}
	if err := d.importHTTPD(o.image); err != nil {
		return fail("image: %v", err)
	}
	if _, err := d.cli(nil, "network", "create", "--label", "com.docker.compose.project="+o.project,
		"--label", "com.docker.compose.network=net", o.network); err != nil {
		return fail("%v", err)
	}
	evCtx, cancelEvents := context.WithCancel(ctx)
	defer cancelEvents()
	ev, err := eng.subscribe(evCtx, o.project)
	if err != nil {
		return fail("events: %v", err)
	}
	var started []*container
	defer func() { // before the daemon stops: its shutdown would stop them one by one
		for _, c := range started {
			_ = eng.remove(context.Background(), c)
		}
	}()
	startOne := func(num int) (*container, error) {
		c, err := eng.create(ctx, o, fmt.Sprintf("%s-%s-%d", o.project, o.service, num), num)
		if err != nil {
			return nil, err
		}
		started = append(started, c)
		if err := eng.start(ctx, c); err != nil {
			return nil, err
		}
		return c, eng.address(ctx, c, o.network, o.port)
	}

	// The container that stays up all along.
	base, err := startOne(1)
	if err != nil {
		return fail("base container: %v", err)
	}

	dest := filepath.Join(dir, "conf.d", "api.conf")
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return fail("%v", err)
	}
	cfg := fmt.Sprintf(`log: {level: debug, format: json}
docker: {host: "unix://%s"}
jobs:
  - name: main
    main: true
    exec: [sleep, "1000000"]
watches:
  - service: %s
    discovery: docker
    docker: {project: %s, network: %s, port: %d}
    debounce: {min: 0s, max: 0s}
    onChange:
      render: {format: nginx, dest: %q}
`, d.sock, o.service, o.project, o.network, o.port, dest)
	pilotLog := func() string { return "(not started)" }
	if !*noPilot {
		env := &benchkit.Env{Dir: dir, Pilot: pilotBin}
		pilot, err := env.StartPilot(cfg)
		if err != nil {
			return fail("%v", err)
		}
		defer pilot.Stop()
		pilotLog = func() string { return consulagent.Tail(pilot.Log(), 4000) }
	}

	var traefiks []*traefikProc
	defer func() {
		for _, t := range traefiks {
			t.stop()
		}
	}()
	variants := [][2]string{{"Traefik (defaults)", ""}}
	if *throttle0 {
		variants = append(variants, [2]string{"Traefik (throttle 0)", "0s"})
	}
	for i, v := range variants {
		t, err := startTraefik(traefikBin, filepath.Join(dir, fmt.Sprintf("traefik%d", i)), v[0], d.sock, o.network, v[1])
		if err != nil {
			return fail("%v", err)
		}
		traefiks = append(traefiks, t)
	}

	probeCtx, stopProbes := context.WithCancel(ctx)
	defer stopProbes()
	file := &setLog{}
	go watchFile(probeCtx, file, dest, *filePoll)
	probers := make([]*prober, len(traefiks))
	apis := make([]*setLog, len(traefiks))
	for i, t := range traefiks {
		probers[i], apis[i] = &prober{t: t}, &setLog{}
		go probers[i].run(probeCtx, o.host, *httpPause, *httpTimeout)
		go watchAPI(probeCtx, apis[i], t, o.service+"@docker", *apiPoll)
	}

	// waitFor polls cond every 5 ms until it holds, at most limit.
	waitFor := func(limit time.Duration, cond func() bool) bool {
		deadline := time.Now().Add(limit)
		for ctx.Err() == nil && time.Now().Before(deadline) {
			if cond() {
				return true
			}
			time.Sleep(5 * time.Millisecond)
		}
		return cond()
	}
	t0 := time.Now()
	if !*noPilot && !waitFor(60*time.Second, func() bool {
		_, ok := file.added(base.Addr, t0.Add(-time.Hour))
		return ok
	}) {
		if ctx.Err() != nil {
			return fail("interrupted")
		}
		return fail("pilot's file never listed the base container %s (file: %v); pilot's log:\n%s", base.Addr, file.current(), pilotLog())
	}
	for _, p := range probers {
		if !waitFor(60*time.Second, func() bool { _, ok := p.added(base.Name, t0); return ok }) {
			if ctx.Err() != nil {
				return fail("interrupted")
			}
			return fail("%s never routed to the base container:\n%s", p.t.label, p.t.logTail())
		}
	}

	traefikVer := traefikVersion(traefikBin)
	fmt.Fprintf(os.Stderr, "dockerwatch: dockerd %s, Traefik %s, pilot %s; %d rounds + 1 warm-up, gap %s\n",
		dockerVersion, traefikVer, pilotBin, *n, *gap)

	pause := func() (time.Duration, bool) {
		g := *gap/2 + rand.N(*gap)
		select {
		case <-ctx.Done():
			return g, false
		case <-time.After(g):
			return g, true
		}
	}
	busy := benchkit.StartBusy()
	var rounds []*round
	for i := -1; i < *n; i++ {
		r := &round{}
		g, ok := pause()
		if !ok {
			return fail("interrupted")
		}
		r.GapAddMs = ms(g)
		r.tCreate = time.Now()
		c, err := eng.create(ctx, o, fmt.Sprintf("%s-%s-%d", o.project, o.service, i+3), i+3)
		if err != nil {
			return fail("round %d: %v", i, err)
		}
		started = append(started, c)
		if err := eng.start(ctx, c); err != nil {
			return fail("round %d: start: %v", i, err)
		}
		startReturned := time.Now()
		if r.tStart, err = ev.wait(ctx, c.ID, "start", *timeout); err != nil {
			return fail("round %d: %v", i, err)
		}
		r.StartCallMs = ms(startReturned.Sub(r.tStart))
		if err := eng.address(ctx, c, o.network, o.port); err != nil {
			return fail("round %d: %v", i, err)
		}
		r.Container = *c
		waitFor(*timeout, func() bool {
			if _, ok := file.added(c.Addr, r.tCreate); !ok && !*noPilot {
				return false
			}
			for i, p := range probers {
				if _, ok := p.added(c.Name, r.tCreate); !ok {
					return false
				}
				if _, ok := apis[i].added(c.Addr, r.tCreate); !ok {
					return false
				}
			}
			return true
		})

		if g, ok = pause(); !ok {
			return fail("interrupted")
		}
		r.GapRemoveMs = ms(g)
		r.tStop = time.Now()
		if err := eng.stop(ctx, c); err != nil {
			return fail("round %d: stop: %v", i, err)
		}
		if r.tDie, err = ev.wait(ctx, c.ID, "die", *timeout); err != nil {
			return fail("round %d: %v", i, err)
		}
		r.StopCallMs = ms(r.tStop.Sub(r.tDie))
		waitFor(*timeout, func() bool {
			now := time.Now()
			if _, ok := file.removed(c.Addr, r.tStop, now); !ok && !*noPilot {
				return false
			}
			for _, api := range apis {
				if _, ok := api.removed(c.Addr, r.tStop, now); !ok {
					return false
				}
			}
			return true
		})
		if err := eng.remove(ctx, c); err != nil {
			return fail("round %d: remove: %v", i, err)
		}
		started = slices.DeleteFunc(started, func(x *container) bool { return x == c })
		if i >= 0 {
			rounds = append(rounds, r)
		}
		if ctx.Err() != nil {
			return fail("interrupted")
		}
	}
	end := time.Now()
	machineBusy := busy.Busy()
	time.Sleep(*httpTimeout + 100*time.Millisecond) // every request sent before end has its answer
	stopProbes()

	// The figures, now that each round's window is closed: a removal holds
	// until the next round's create (or the end).
	for k, r := range rounds {
		r.tEnd = end
		if k+1 < len(rounds) {
			r.tEnd = rounds[k+1].tCreate
		}
		c := r.Container
		r.PilotAdd, r.PilotRemove = -1, -1
		if at, ok := file.added(c.Addr, r.tCreate); ok && at.Before(r.tStop) {
			r.PilotAdd = ms(at.Sub(r.tStart))
		}
		if at, ok := file.removed(c.Addr, r.tStop, r.tEnd); ok {
			r.PilotRemove = ms(at.Sub(r.tDie))
		}
		for i, p := range probers {
			add, apiAdd, rm := -1.0, -1.0, -1.0
			if at, ok := p.added(c.Name, r.tCreate); ok && at.Before(r.tStop) {
				add = ms(at.Sub(r.tStart))
			}
			if at, ok := apis[i].added(c.Addr, r.tCreate); ok && at.Before(r.tStop) {
				apiAdd = ms(at.Sub(r.tStart))
			}
			if at, ok := apis[i].removed(c.Addr, r.tStop, r.tEnd); ok {
				rm = ms(at.Sub(r.tDie))
			}
			sent, failed := p.counts(r.tCreate, r.tEnd)
			r.TraefikAdd, r.TraefikAPIAdd = append(r.TraefikAdd, add), append(r.TraefikAPIAdd, apiAdd)
			r.TraefikRm = append(r.TraefikRm, rm)
			r.Sent, r.Failed = append(r.Sent, sent), append(r.Failed, failed)
		}
		for _, e := range ev.of(c.ID) {
			r.Events = append(r.Events, fmt.Sprintf("%s %+.1f", e.Action, ms(e.At.Sub(r.tStart))))
		}
	}

	collect := func(name string, pick func(*round) float64) stats {
		s := stats{Measure: name, N: len(rounds)}
		var v []float64
		for _, r := range rounds {
			if x := pick(r); x >= 0 {
				v = append(v, x)
			} else {
				s.Missed++
			}
		}
		slices.Sort(v)
		if len(v) > 0 {
			s.P50, s.P99, s.Min, s.Max = benchkit.Rank(v, 0.50), benchkit.Rank(v, 0.99), v[0], v[len(v)-1]
		}
		return s
	}
	pilotAdd := collect("start → pilot's file lists it", func(r *round) float64 { return r.PilotAdd })
	pilotRm := collect("die → out of pilot's file", func(r *round) float64 { return r.PilotRemove })
	var trAdd, trAPIAdd, trRm []stats
	for i, t := range traefiks {
		trAdd = append(trAdd, collect("start → "+t.label+": a request answered by it", func(r *round) float64 { return r.TraefikAdd[i] }))
		trAPIAdd = append(trAPIAdd, collect("start → "+t.label+": its API lists it", func(r *round) float64 { return r.TraefikAPIAdd[i] }))
		trRm = append(trRm, collect("die → "+t.label+": out of its API", func(r *round) float64 { return r.TraefikRm[i] }))
	}
	startCall := collect("(start event → the start call returned)", func(r *round) float64 { return r.StartCallMs })
	dieAfterStop := collect("(stop call → die event)", func(r *round) float64 { return -r.StopCallMs })

	fmt.Printf("Docker watch: pilot's rendered file beside Traefik's Docker provider; dockerd %s, Traefik %s; %d rounds (+1 warm-up), pause before each change %s ± %s; file read every %s, a request through each Traefik every %s (given up after %s); %d CPUs, %.0f %% busy\n\n",
		dockerVersion, traefikVer, *n, *gap, *gap/2, *filePoll, *httpPause, *httpTimeout, runtime.NumCPU(), machineBusy)
	fmt.Println("| ms after the container's event | n | p50 | p99 | min | max | missed |")
	fmt.Println("|---|---|---|---|---|---|---|")
	row := func(s stats) {
		fmt.Printf("| %s | %d | %.1f | %.1f | %.1f | %.1f | %d |\n", s.Measure, s.N, s.P50, s.P99, s.Min, s.Max, s.Missed)
	}
	for _, s := range slices.Concat([]stats{pilotAdd}, trAPIAdd, trAdd, []stats{pilotRm}, trRm) {
		row(s)
	}
	row(startCall)
	row(dieAfterStop)
	fmt.Println()
	for i, t := range traefiks {
		var sent, failed int
		for _, r := range rounds {
			sent, failed = sent+r.Sent[i], failed+r.Failed[i]
		}
		fmt.Printf("pilot/%s, ratio of medians: add %s (API), %s (requests); remove %s (API). Requests through it that failed: %d of %d %v\n",
			t.label, ratio(pilotAdd.P50, trAPIAdd[i].P50), ratio(pilotAdd.P50, trAdd[i].P50), ratio(pilotRm.P50, trRm[i].P50), failed, sent, probers[i].errors())
	}
	fmt.Println()
	pass := pilotAdd.Missed == 0 && pilotAdd.P50 <= ms(targetAddP50)
	verdict := "PASS"
	if !pass {
		verdict = "FAIL"
	}
	fmt.Printf("%s: container start → pilot's file p50 %.1f ms (target ≤ %s, no miss; %d missed)\n", verdict, pilotAdd.P50, targetAddP50, pilotAdd.Missed)

	var labels []string
	for _, t := range traefiks {
		labels = append(labels, t.label+" providersThrottleDuration="+cmpOr(t.throttle, "default"))
	}
	benchkit.WriteResults(*common.Results, "dockerwatch", map[string]any{
		"when": time.Now().UTC().Format(time.RFC3339), "dockerd": dockerVersion, "traefik": traefikVer,
		"traefiks": labels, "pilot": pilotBin, "go": runtime.Version(), "cpus": runtime.NumCPU(), "busy_pct": machineBusy,
		"rounds_n": *n, "gap": gap.String(), "file_poll": filePoll.String(), "http_pause": httpPause.String(), "api_poll": apiPoll.String(), "http_timeout": httpTimeout.String(),
		"timeout": timeout.String(),
		"summary": slices.Concat([]stats{pilotAdd, pilotRm}, trAPIAdd, trAdd, trRm, []stats{startCall, dieAfterStop}),
		"rounds":  rounds, "target_add_p50_ms": ms(targetAddP50), "pass": pass,
	})
	if !pass && *common.Strict {
		return 1
	}
	return 0
}

func ratio(a, b float64) string {
	if b <= 0 || a <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.3f", a/b)
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
