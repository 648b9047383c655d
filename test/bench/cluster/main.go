// Command cluster measures pilot's rolling reload of a clustered Node app
// side by side with pm2's cluster mode (`pm2 reload`), in one run, on the
// same app under the same load. The app (written into a temp dir) is a
// plain http.createServer answering 200 after a tiny bit of work, with
// keep-alive defaults, ready through process.send('ready') once listening,
// and closing its server on SIGINT/SIGTERM. pilot runs it as one job with
// `instances`, `listen` (pilot binds the port and hands it down as fd 3),
// `readiness: message`; pm2 7 runs it under pm2-runtime (its own PM2_HOME)
// with exec_mode cluster, wait_ready, listen_timeout 30000 and kill_timeout
// equal to pilot's stopTimeout (8 s).
//
// For -n runs, alternating pilot, pm2, pilot, pm2 …, each on a fresh
// supervisor with -instances workers, it loads the app with wrk
// (keep-alive, `-t2 -c32 --latency`) and, at the same time, a loop of
// non-keep-alive requests (Go, DisableKeepAlives, -loop goroutines); after
// -reload-after it runs `pilot reload-app app` or `pm2 reload app`; the
// load lasts -duration, and at least -tail (3 s) after the command returned
// (wrk is then ended with SIGINT, on which it prints its figures). It
// measures:
//
//   - failed requests during the reload: wrk's socket errors (connect,
//     read, write, timeout) and non-2xx; the loop's connection refused,
//     connection reset, other errors and non-2xx;
//   - the reload's wall time, until the command returns, and that every
//     worker was replaced (the app's pids under the supervisor, from /proc,
//     all new and ready afterwards);
//   - p99 latency of the loop's answered requests started while the reload
//     command ran, and wrk's p99 over the whole load;
//   - the supervisor's RSS (VmRSS from /proc over its process tree minus
//     the workers: pilot's process alone; pm2-runtime 7 is one process, its
//     God daemon runs inside it), once ready and at its peak during the load.
//
// Then, -n times, the throughput with -tput-instances workers (default 2)
// and no reload, pilot and pm2 side by side, both at once, each under its
// own wrk with half the threads and connections, after a 2 s warm-up: wrk
// requests/s, and the median of the runs' pilot/pm2 ratios. It prints a Markdown table of medians and PASS/FAIL lines for
// pilot's targets: 0 failed requests (pm2's count beside it); reload time
// ≤ pm2's; RSS ≤ 1/4 of pm2's; throughput at N=2 ≥ 95 % of pm2's. Raw
// samples go to test/bench/results/cluster-<UTC time>.json.
//
//	go run ./test/bench/cluster                          # from the repo root; ~5 min
//	go run ./test/bench/cluster -n 5 -instances 4 -duration 20s -strict
//	go run ./test/bench/cluster -only pm2 -n 1 -duration 10s -tput-duration 5s
//
// Needs node, wrk (Debian package wrk; installed with apt-get when missing)
// and pm2 7.0.4 (-pm2, default test/bench/.cache/node_modules/.bin/pm2,
// installed there with npm when missing, as test/bench/run.sh does). pilot
// is built from ./cmd/pilot unless -pilot or $PILOT names a binary. Exit
// code 2 on harness errors (pilot not measurable included), 1 with -strict
// when a target is missed, else 0.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nodepilot/pilot/test/bench/benchkit"
)

const (
	pm2Version    = "7.0.4"
	defaultPM2    = "test/bench/.cache/node_modules/.bin/pm2"
	targetRSSPart = 4               // pilot's RSS ≤ pm2's / 4
	targetTput    = 0.95            // pilot's req/s at N=2 ≥ 95 % of pm2's
	maxReload     = 2 * time.Minute // wrk's -d beyond -duration, which the reload's end cuts
)

func main() { os.Exit(run()) }

// reloadRec is one reload run's raw figures.
type reloadRec struct {
	Sup         string     `json:"sup"`
	Run         int        `json:"run"`
	ReloadMs    float64    `json:"reloadMs"`
	LoadS       float64    `json:"loadS"`            // the load's length
	TailS       float64    `json:"loadAfterReloadS"` // load left once the reload returned
	PidsBefore  []int      `json:"pidsBefore"`
	PidsAfter   []int      `json:"pidsAfter"`
	Replaced    bool       `json:"replaced"`
	ReplacedErr string     `json:"replacedError,omitempty"`
	Wrk         wrkResult  `json:"wrk"`
	Loop        loopResult `json:"loop"`
	RSSKiB      int        `json:"rssKiB"`
	RSSPeakKiB  int        `json:"rssPeakKiB"`
	RSSProcs    []string   `json:"rssProcesses"`
}

func (r reloadRec) failures() int { return r.Wrk.failures() + r.Loop.failures() }

// tputRec is one throughput run's raw figures.
type tputRec struct {
	Sup string    `json:"sup"`
	Run int       `json:"run"`
	Wrk wrkResult `json:"wrk"`
}

type opts struct {
	n, instances, tputN, threads, conns, loopG int
	dur, reloadAt, tail, tputDur               time.Duration
	wrk                                        string
}

func run() int {
	common := benchkit.CommonFlags()
	var o opts
	flag.IntVar(&o.n, "n", 3, "runs per supervisor (reload runs, then as many throughput runs)")
	flag.IntVar(&o.instances, "instances", 4, "workers during the reload runs")
	flag.DurationVar(&o.dur, "duration", 20*time.Second, "load of one reload run (longer if the reload returns later than -tail before its end)")
	flag.DurationVar(&o.reloadAt, "reload-after", 5*time.Second, "reload this long into the load")
	flag.DurationVar(&o.tail, "tail", 3*time.Second, "load at least this long after the reload returned")
	flag.IntVar(&o.tputN, "tput-instances", 2, "workers during the throughput runs")
	flag.DurationVar(&o.tputDur, "tput-duration", 10*time.Second, "wrk -d of one throughput run (0: none)")
	flag.IntVar(&o.threads, "t", 2, "wrk threads")
	flag.IntVar(&o.conns, "c", 32, "wrk connections (keep-alive)")
	flag.IntVar(&o.loopG, "loop", 2, "goroutines of the non-keep-alive loop")
	pm2Flag := flag.String("pm2", "", "pm2 CLI (default "+defaultPM2+", installed with npm when missing)")
	only := flag.String("only", "", "pilot or pm2: measure one side alone")
	flag.Parse()
	fail := benchkit.Failer("cluster")
	if *only != "" && *only != "pilot" && *only != "pm2" {
		return fail("-only is pilot or pm2, not %q", *only)
	}
	if o.n < 1 || o.instances < 1 || o.reloadAt >= o.dur {
		return fail("need -n ≥ 1, -instances ≥ 1 and -reload-after < -duration")
	}

	// ctrl-C or SIGTERM: cancel, let the run unwind and clean up; a second
	// one cleans up at once and exits.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		fmt.Fprintln(os.Stderr, "cluster: interrupted; stopping the supervisors")
		cancel()
		<-sigs
		cleanupAll()
		os.Exit(130)
	}()

	base, err := os.MkdirTemp("", "pilot-bench-cluster-")
	if err != nil {
		return fail("%v", err)
	}
	defer os.RemoveAll(base)
	defer cleanupAll()
	_ = os.Chmod(base, 0o755)

	nodeJS, err := exec.LookPath("node")
	if err != nil {
		return fail("node not found: %v", err)
	}
	if o.wrk, err = ensureWrk(); err != nil {
		return fail("%v", err)
	}
	versions := map[string]string{"node": firstLine(output(nodeJS, "--version")), "wrk": firstLine(output(o.wrk, "--version")),
		"go": runtime.Version(), "cpus": strconv.Itoa(runtime.NumCPU())}

	var kinds []*kind
	var pilotErr error // pilot could not be measured
	if *only != "pm2" {
		k := &kind{name: "pilot", nodeJS: nodeJS}
		if k.pilot, err = benchkit.BuildPilot(base, *common.Pilot); err != nil {
			return fail("%v", err)
		}
		versions["pilot"] = firstLine(output(k.pilot, "version"))
		versions["pilotSha256"] = sha(k.pilot)
		if pilotErr = validatePilot(k, base, o.instances); pilotErr != nil {
			fmt.Fprintf(os.Stderr, "cluster: PILOT NOT MEASURED: %v\n", pilotErr)
		} else {
			kinds = append(kinds, k)
		}
	}
	if *only != "pilot" {
		k := &kind{name: "pm2", nodeJS: nodeJS}
		if k.pm2, err = ensurePM2(*pm2Flag); err != nil {
			return fail("%v", err)
		}
		k.pm2rt = filepath.Join(filepath.Dir(k.pm2), "pm2-runtime")
		if _, err := os.Stat(k.pm2rt); err != nil {
			return fail("pm2-runtime not found beside %s: %v", k.pm2, err)
		}
		versions["pm2"] = pm2Installed(k.pm2)
		kinds = append(kinds, k)
	}
	fmt.Printf("cluster reload: node %s, pm2 %s, %s, %d CPUs; %d instances, %d × %v of load per side, reload at %v, wrk -t%d -c%d, %d non-keep-alive loop(s)\n\n",
		versions["node"], orDash(versions["pm2"]), versions["wrk"], runtime.NumCPU(), o.instances, o.n, o.dur, o.reloadAt, o.threads, o.conns, o.loopG)

	// Reload runs, alternating.
	var reloads []reloadRec
	for i := range o.n {
		for _, k := range kinds {
			if k.name == "pilot" && pilotErr != nil {
				continue
			}
			rec, err := reloadRun(ctx, k, base, o, i+1)
			if ctx.Err() != nil {
				return fail("interrupted")
			}
			if err != nil {
				if k.name == "pilot" {
					pilotErr = err
					fmt.Fprintf(os.Stderr, "cluster: PILOT NOT MEASURED (reload run %d): %v\n", i+1, err)
					continue
				}
				return fail("%s, reload run %d: %v", k.name, i+1, err)
			}
			fmt.Fprintf(os.Stderr, "reload %s #%d: %.0f ms, replaced %v, failures %d (wrk c/r/w/t/non2xx %d/%d/%d/%d/%d; loop refused/reset/other/non2xx %d/%d/%d/%d), window p99 %.1f ms (%d req), wrk p99 %.1f ms, RSS %d KiB (peak %d)\n",
				k.name, i+1, rec.ReloadMs, rec.Replaced, rec.failures(), rec.Wrk.Connect, rec.Wrk.Read, rec.Wrk.Write, rec.Wrk.Timeout, rec.Wrk.Non2xx,
				rec.Loop.Refused, rec.Loop.Reset, rec.Loop.Other, rec.Loop.Non2xx, rec.Loop.WindowP99ms, rec.Loop.WindowRequests, rec.Wrk.P99ms, rec.RSSKiB, rec.RSSPeakKiB)
			reloads = append(reloads, rec)
		}
	}
	// Throughput runs: both supervisors at once, each under its own wrk
	// (half the threads and connections each), so that both see the same
	// machine; one after the other, two runs here differ by up to ±40 %.
	var tputs []tputRec
	for i := range o.n {
		if o.tputDur <= 0 || len(kinds) < 2 || pilotErr != nil {
			break
		}
		ws, err := tputPair(ctx, kinds, base, o)
		if ctx.Err() != nil {
			return fail("interrupted")
		}
		if err != nil {
			return fail("throughput run %d: %v", i+1, err)
		}
		for j, k := range kinds {
			fmt.Fprintf(os.Stderr, "throughput %s #%d (N=%d, side by side): %.0f req/s, failures %d\n", k.name, i+1, o.tputN, ws[j].RPS, ws[j].failures())
			tputs = append(tputs, tputRec{Sup: k.name, Run: i + 1, Wrk: ws[j]})
		}
	}

	ok := report(o, reloads, tputs, pilotErr, *only)
	raw := map[string]any{
		"versions": versions, "n": o.n, "instances": o.instances, "durationS": o.dur.Seconds(), "reloadAfterS": o.reloadAt.Seconds(),
		"wrkThreads": o.threads, "wrkConns": o.conns, "loopGoroutines": o.loopG, "tputInstances": o.tputN, "tputDurationS": o.tputDur.Seconds(),
		"reloads": reloads, "throughput": tputs,
	}
	if pilotErr != nil {
		raw["pilotError"] = pilotErr.Error()
	}
	benchkit.WriteResults(*common.Results, "cluster", raw)
	switch {
	case pilotErr != nil:
		return 2
	case !ok && *common.Strict:
		return 1
	}
	return 0
}

// reloadRun starts k with o.instances workers, loads it for o.dur, reloads
// it o.reloadAt into the load, and stops it.
func reloadRun(ctx context.Context, k *kind, base string, o opts, i int) (reloadRec, error) {
	rec := reloadRec{Sup: k.name, Run: i}
	s, err := start(ctx, k, base, o.instances)
	if s != nil {
		defer s.stop()
	}
	if err != nil {
		return rec, err
	}
	rec.PidsBefore, _ = s.workers()
	time.Sleep(time.Second) // settle
	rec.RSSKiB, rec.RSSProcs = s.rss()
	url := fmt.Sprintf("http://127.0.0.1:%d/", s.port)

	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var samples []sample
	loopDone := make(chan struct{})
	go func() { samples = loop(loadCtx, url, o.loopG); close(loopDone) }()
	peak := rec.RSSKiB
	peakDone := make(chan struct{})
	go func() {
		defer close(peakDone)
		for {
			select {
			case <-loadCtx.Done():
				return
			case <-time.After(100 * time.Millisecond):
				peak = max(peak, func() int { r, _ := s.rss(); return r }())
			}
		}
	}()
	type wrkOut struct {
		r   wrkResult
		err error
	}
	wrkCh := make(chan wrkOut, 1)
	stopWrk := make(chan struct{})
	t0 := time.Now()
	go func() {
		r, err := runWrk(ctx, o.wrk, url, o.dur+maxReload, o.threads, o.conns, stopWrk)
		wrkCh <- wrkOut{r, err}
	}()
	select {
	case <-time.After(o.reloadAt):
	case <-ctx.Done():
	}
	w0 := time.Now()
	d, rerr := s.reload(ctx)
	w1 := time.Now()
	rec.ReloadMs = float64(d) / float64(time.Millisecond)
	// The load runs -duration, and at least -tail after the reload returned.
	end := t0.Add(o.dur)
	if w1.Add(o.tail).After(end) {
		end = w1.Add(o.tail)
	}
	select {
	case <-time.After(time.Until(end)):
	case <-ctx.Done():
	}
	close(stopWrk)
	w := <-wrkCh
	rec.LoadS = time.Since(t0).Seconds()
	rec.TailS = time.Since(w1).Seconds()
	stopLoad()
	<-loopDone
	<-peakDone
	rec.RSSPeakKiB = peak
	if rerr != nil {
		return rec, fmt.Errorf("%v\n%s's output:\n%s", rerr, k.name, s.log())
	}
	if w.err != nil {
		return rec, w.err
	}
	rec.Wrk, rec.Loop = w.r, count(samples, w0, w1)
	after, err := s.waitWorkers(ctx, rec.PidsBefore, 30*time.Second)
	rec.Replaced, rec.PidsAfter = err == nil, after
	if err != nil {
		rec.ReplacedErr = err.Error()
		rec.PidsAfter, _ = s.workers()
	}
	return rec, nil
}

// tputPair starts every kind with o.tputN workers, warms each up for 2 s,
// then runs one wrk per kind at once for o.tputDur, each with half of
// -t and -c.
func tputPair(ctx context.Context, kinds []*kind, base string, o opts) ([]wrkResult, error) {
	urls := make([]string, len(kinds))
	for i, k := range kinds {
		s, err := start(ctx, k, base, o.tputN)
		if s != nil {
			defer s.stop()
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %v", k.name, err)
		}
		urls[i] = fmt.Sprintf("http://127.0.0.1:%d/", s.port)
	}
	threads, conns := max(o.threads/len(kinds), 1), max(o.conns/len(kinds), 1)
	results := make([]wrkResult, len(kinds))
	errs := make([]error, len(kinds))
	for _, d := range []time.Duration{2 * time.Second, o.tputDur} {
		var wg sync.WaitGroup
		for i := range kinds {
			wg.Go(func() { results[i], errs[i] = runWrk(ctx, o.wrk, urls[i], d, threads, conns, nil) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
	}
	return results, nil
}

// validatePilot runs `pilot validate` on the cluster config this benchmark
// writes, so that a pilot without cluster mode is named at once.
func validatePilot(k *kind, base string, n int) error {
	dir := filepath.Join(base, "validate")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cfg := filepath.Join(dir, "pilot.yaml")
	app := filepath.Join(dir, "app.js")
	_ = os.WriteFile(app, []byte(fmt.Sprintf(appJS, 8080)), 0o644)
	if err := os.WriteFile(cfg, []byte(pilotConfig(k.nodeJS, app, n, 8080)), 0o644); err != nil {
		return err
	}
	out, err := exec.Command(k.pilot, "validate", "--config", cfg).CombinedOutput()
	if err != nil {
		problems := strings.Split(strings.TrimSpace(string(out)), "\n")
		short := strings.TrimPrefix(problems[0], cfg+":")
		if len(problems) > 1 {
			short += fmt.Sprintf(" (+%d more)", len(problems)-1)
		}
		return fmt.Errorf("`pilot validate` rejects the cluster config (%v; no cluster mode in this build?): %s\npilot %s, its output:\n%s\nthe config:\n%s",
			err, short, k.pilot, strings.TrimSpace(string(out)), pilotConfig(k.nodeJS, app, n, 8080))
	}
	return nil
}

// --- report ---

type side struct {
	recs                               []reloadRec
	tput                               []float64
	reloadMs                           []float64
	failures                           []float64
	wrkP99                             []float64
	winP99                             []float64
	rss, peak                          []float64
	wrkReq                             []float64
	loopReq                            []float64
	replaced                           int
	total                              int
	wc, wr, ww, wt, wn, lf, lr, lo, ln int
}

func collect(name string, reloads []reloadRec, tputs []tputRec) *side {
	s := &side{}
	for _, r := range reloads {
		if r.Sup != name {
			continue
		}
		s.recs = append(s.recs, r)
		s.reloadMs = append(s.reloadMs, r.ReloadMs)
		s.failures = append(s.failures, float64(r.failures()))
		s.total += r.failures()
		s.wrkP99 = append(s.wrkP99, r.Wrk.P99ms)
		s.winP99 = append(s.winP99, r.Loop.WindowP99ms)
		s.rss = append(s.rss, float64(r.RSSKiB)/1024)
		s.peak = append(s.peak, float64(r.RSSPeakKiB)/1024)
		s.wrkReq = append(s.wrkReq, float64(r.Wrk.Requests))
		s.loopReq = append(s.loopReq, float64(r.Loop.Requests))
		if r.Replaced {
			s.replaced++
		}
		s.wc, s.wr, s.ww, s.wt, s.wn = s.wc+r.Wrk.Connect, s.wr+r.Wrk.Read, s.ww+r.Wrk.Write, s.wt+r.Wrk.Timeout, s.wn+r.Wrk.Non2xx
		s.lf, s.lr, s.lo, s.ln = s.lf+r.Loop.Refused, s.lr+r.Loop.Reset, s.lo+r.Loop.Other, s.ln+r.Loop.Non2xx
	}
	for _, t := range tputs {
		if t.Sup == name {
			s.tput = append(s.tput, t.Wrk.RPS)
		}
	}
	return s
}

func (s *side) measured() bool { return len(s.recs) > 0 }

// report prints the table and the PASS/FAIL lines; it returns whether every
// target was met.
func report(o opts, reloads []reloadRec, tputs []tputRec, pilotErr error, only string) bool {
	p, m := collect("pilot", reloads, tputs), collect("pm2", reloads, tputs)
	cell := func(s *side, xs []float64, dec int, unit string) string {
		if len(xs) == 0 {
			return "—"
		}
		return fmt.Sprintf("%s%s (%s)", strconv.FormatFloat(median(xs), 'f', dec, 64), unit, listF(xs, dec))
	}
	ratio := func(a, b []float64) string {
		if len(a) == 0 || len(b) == 0 || median(b) == 0 {
			return "—"
		}
		return fmt.Sprintf("%.3f", median(a)/median(b))
	}
	counts := func(s *side, f string, a ...any) string {
		if !s.measured() {
			return "—"
		}
		return fmt.Sprintf(f, a...)
	}
	fmt.Printf("| measure (%d instances; median, runs in brackets) | pilot | pm2 | pilot/pm2 |\n|---|---|---|---|\n", o.instances)
	row := func(what, a, b, r string) { fmt.Printf("| %s | %s | %s | %s |\n", what, a, b, r) }
	row("failed requests during the reload, wrk + loop", cell(p, p.failures, 0, ""), cell(m, m.failures, 0, ""), "—")
	row("wrk keep-alive, all runs: connect/read/write/timeout/non-2xx",
		counts(p, "%d/%d/%d/%d/%d", p.wc, p.wr, p.ww, p.wt, p.wn), counts(m, "%d/%d/%d/%d/%d", m.wc, m.wr, m.ww, m.wt, m.wn), "—")
	row("non-keep-alive loop, all runs: refused/reset/other/non-2xx",
		counts(p, "%d/%d/%d/%d", p.lf, p.lr, p.lo, p.ln), counts(m, "%d/%d/%d/%d", m.lf, m.lr, m.lo, m.ln), "—")
	row("requests per run: wrk", cell(p, p.wrkReq, 0, ""), cell(m, m.wrkReq, 0, ""), ratio(p.wrkReq, m.wrkReq))
	row("requests per run: loop", cell(p, p.loopReq, 0, ""), cell(m, m.loopReq, 0, ""), ratio(p.loopReq, m.loopReq))
	row("reload duration (command's wall time)", cell(p, p.reloadMs, 0, " ms"), cell(m, m.reloadMs, 0, " ms"), ratio(p.reloadMs, m.reloadMs))
	row("workers all replaced", counts(p, "%d/%d runs", p.replaced, len(p.recs)), counts(m, "%d/%d runs", m.replaced, len(m.recs)), "—")
	row("p99 in the reload window (loop, 2xx)", cell(p, p.winP99, 1, " ms"), cell(m, m.winP99, 1, " ms"), ratio(p.winP99, m.winP99))
	row("p99 over the whole load (wrk)", cell(p, p.wrkP99, 2, " ms"), cell(m, m.wrkP99, 2, " ms"), ratio(p.wrkP99, m.wrkP99))
	row("supervisor RSS, ready", cell(p, p.rss, 1, " MiB"), cell(m, m.rss, 1, " MiB"), ratio(p.rss, m.rss))
	row("supervisor RSS, peak during the load", cell(p, p.peak, 1, " MiB"), cell(m, m.peak, 1, " MiB"), ratio(p.peak, m.peak))
	row(fmt.Sprintf("throughput, %d instances, no reload, side by side (wrk req/s, half of -t and -c each)", o.tputN), cell(p, p.tput, 0, ""), cell(m, m.tput, 0, ""), ratio(p.tput, m.tput))
	fmt.Println()
	if pilotErr != nil {
		fmt.Printf("pilot not measured: %s\n\n", firstLine(pilotErr.Error()))
	}

	ok := true
	verdict := func(pass bool, line string, a ...any) {
		ok = ok && pass
		fmt.Printf("%s "+line+"\n", append([]any{map[bool]string{true: "PASS", false: "FAIL"}[pass]}, a...)...)
	}
	notChecked := func(what string) {
		if only != "" && pilotErr == nil {
			fmt.Printf("SKIP %s (-only %s)\n", what, only)
			return
		}
		ok = false
		why := "pm2 not measured"
		if pilotErr != nil {
			why = "pilot not measured: " + firstLine(pilotErr.Error())
		}
		fmt.Printf("FAIL %s — not checked (%s)\n", what, why)
	}
	both := p.measured() && m.measured()
	if both {
		verdict(p.total == 0, "failed requests during a reload: pilot %d in %d runs, pm2 %d in %d runs (target: pilot 0)", p.total, len(p.recs), m.total, len(m.recs))
		verdict(median(p.reloadMs) <= median(m.reloadMs) && p.replaced == len(p.recs),
			"reload duration: pilot %.0f ms ≤ pm2 %.0f ms (medians), pilot replaced every worker in %d/%d runs", median(p.reloadMs), median(m.reloadMs), p.replaced, len(p.recs))
		verdict(median(p.rss)*targetRSSPart <= median(m.rss), "supervisor RSS: pilot %.1f MiB ≤ 1/%d of pm2's %.1f MiB", median(p.rss), targetRSSPart, median(m.rss))
	} else {
		notChecked("pilot 0 failed requests during a reload")
		notChecked("pilot reload duration ≤ pm2's")
		notChecked("pilot RSS ≤ 1/4 of pm2's")
	}
	if len(p.tput) > 0 && len(p.tput) == len(m.tput) {
		ratios := make([]float64, len(p.tput))
		for i := range p.tput {
			ratios[i] = p.tput[i] / m.tput[i]
		}
		r := median(ratios)
		verdict(r >= targetTput, "throughput at N=%d, side by side: pilot/pm2 median of %d runs' ratios %.3f ≥ %.2f (medians %.0f and %.0f req/s)", o.tputN, len(ratios), r, targetTput, median(p.tput), median(m.tput))
	} else if o.tputDur > 0 {
		notChecked(fmt.Sprintf("pilot throughput at N=%d ≥ 95 %% of pm2's", o.tputN))
	}
	if m.measured() && m.replaced < len(m.recs) {
		fmt.Printf("NOTE pm2 did not replace every worker in %d of %d runs\n", len(m.recs)-m.replaced, len(m.recs))
	}
	return ok
}

// --- tools ---

// ensureWrk finds wrk, else installs the Debian package (apt-get update only
// if the first try fails, as test/bench/run.sh does).
func ensureWrk() (string, error) {
	if p, err := exec.LookPath("wrk"); err == nil {
		return p, nil
	}
	fmt.Fprintln(os.Stderr, "cluster: installing wrk (apt-get)")
	install := func() error {
		c := exec.Command("apt-get", "install", "-y", "-q", "wrk")
		c.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		return c.Run()
	}
	if install() != nil {
		_ = exec.Command("apt-get", "update", "-q").Run()
		if err := install(); err != nil {
			return "", fmt.Errorf("wrk not found and apt-get install wrk failed: %v", err)
		}
	}
	return exec.LookPath("wrk")
}

// ensurePM2 returns the pm2 CLI: flagPath, or the default under
// test/bench/.cache, which it installs (pm2@7.0.4, npm) when missing.
func ensurePM2(flagPath string) (string, error) {
	if flagPath != "" {
		if _, err := os.Stat(flagPath); err != nil {
			return "", fmt.Errorf("-pm2: %v", err)
		}
		return filepath.Abs(flagPath)
	}
	p, _ := filepath.Abs(defaultPM2)
	if pm2Installed(p) == pm2Version {
		return p, nil
	}
	cache := filepath.Dir(filepath.Dir(filepath.Dir(p))) // test/bench/.cache
	if _, err := os.Stat(filepath.Dir(cache)); err != nil {
		return "", fmt.Errorf("run from the repository root or set -pm2: %v", err)
	}
	fmt.Fprintf(os.Stderr, "cluster: installing pm2@%s into %s\n", pm2Version, cache)
	_ = os.MkdirAll(cache, 0o755)
	if _, err := os.Stat(filepath.Join(cache, "package.json")); err != nil {
		_ = os.WriteFile(filepath.Join(cache, "package.json"), []byte("{\"private\":true}\n"), 0o644)
	}
	c := exec.Command("npm", "install", "--prefix", cache, "--no-audit", "--no-fund", "--loglevel=error", "pm2@"+pm2Version)
	c.Stdout, c.Stderr = os.Stderr, os.Stderr
	if err := c.Run(); err != nil {
		return "", fmt.Errorf("npm install pm2@%s: %v", pm2Version, err)
	}
	return p, nil
}

// pm2Installed is the version in the package.json of the pm2 that the CLI
// at p belongs to ("" if none).
func pm2Installed(p string) string {
	real, err := filepath.EvalSymlinks(p) // …/node_modules/pm2/bin/pm2
	if err != nil {
		return ""
	}
	b, err := os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(real)), "package.json"))
	if err != nil {
		return ""
	}
	var pkg struct{ Version string }
	_ = json.Unmarshal(b, &pkg)
	return pkg.Version
}

func pilotConfig(nodeJS, app string, n, port int) string {
	return fmt.Sprintf(`log: {level: warn}
jobs:
  - name: app
    main: true
    exec: [%q, %q]
    instances: %d
    listen: ["127.0.0.1:%d"]
    readiness: message
    readyTimeout: 30s
    stopTimeout: %s
`, nodeJS, app, n, port, stopTimeout)
}

func output(bin string, args ...string) string {
	out, _ := exec.Command(bin, args...).CombinedOutput()
	return string(out)
}

func sha(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%x", sha256.Sum256(b))
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func listF(xs []float64, decimals int) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.FormatFloat(x, 'f', decimals, 64)
	}
	return strings.Join(parts, ", ")
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// rank is the nearest-rank percentile q of xs.
func rank(xs []float64, q float64) float64 {
	return benchkit.Rank(slices.Sorted(slices.Values(xs)), q)
}
