// Command supervisor benchmarks pilot side by side with tini, dumb-init,
// pm2-runtime and no supervisor, each run as PID 1 of a fresh PID namespace
// (unshare --pid --fork --mount-proc). See test/bench/README.md.
//
// Needs root (for unshare --pid). Standard library only.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

type Bench struct {
	tmp, unshare, node, childJS string
	sups                        []*Sup
	n, idleN, orphans           int
	idleDur, orphanTimeout      time.Duration
	settle, cooldown            time.Duration
	warmup                      int
	idleSerial                  bool

	mu         sync.Mutex
	res        *Results
	broken     map[string]bool
	failures   map[string]int
	neverReaps map[string]bool
}

type Results struct {
	Meta        map[string]any                 `json:"meta"`
	Supervisors []*Sup                         `json:"supervisors"`
	Metrics     map[string]map[string][]Sample `json:"metrics"`
	Idle        map[string][]IdleRun           `json:"idle_series"`
	Targets     []Target                       `json:"targets"`
}

func main() { os.Exit(run()) }

func harnessErr(format string, a ...any) int {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", a...)
	return 2
}

func run() int {
	var (
		pilot    = flag.String("pilot", "", "pilot binary (column skipped if missing)")
		before   = flag.String("pilot-before", "", "another pilot build (an earlier commit), measured beside --pilot as the column pilot-before")
		tini     = flag.String("tini", "/usr/bin/tini", "tini binary (required)")
		dumb     = flag.String("dumb-init", "/usr/bin/dumb-init", "dumb-init binary (column skipped if missing)")
		goFloor  = flag.String("go-floor", "", "the minimal Go PID 1 of test/bench/gofloor (column skipped if missing)")
		pm2      = flag.String("pm2-runtime", "", "pm2-runtime script (required; default: pm2-runtime on PATH)")
		node     = flag.String("node", "/usr/bin/node", "node binary used for the Node child")
		supsFlag = flag.String("sups", "none,tini,dumb-init,go-floor,pilot,pm2-runtime", "columns to run")
		measFlag = flag.String("measures", "start-sh,start-node,sigterm,orphans,idle", "measures to run")
		n        = flag.Int("n", 11, "repetitions of each latency measure")
		idleN    = flag.Int("idle-n", 5, "repetitions of the idle run")
		idleSecs = flag.Duration("idle-duration", 10*time.Second, "length of each idle run (RSS sampled every 100 ms)")
		orphans  = flag.Int("orphans", 1000, "grandchildren orphaned in the reaping measure")
		orphTO   = flag.Duration("orphan-timeout", 2*time.Second, "orphans: give up when none was reaped for this long after all had exited (reported as never)")
		settle   = flag.Duration("settle", 100*time.Millisecond, "pause after the child is ready, before signalling/releasing")
		cooldown = flag.Duration("cooldown", 30*time.Millisecond, "pause after each run")
		warmup   = flag.Int("warmup", 1, "untimed runs per column before each latency measure")
		serial   = flag.Bool("idle-serial", false, "run the idle runs of the columns one after another instead of together")
		jsonOut  = flag.String("json", "", "write raw samples here (default: bench-<time>.json in the temp dir's parent)")
		strict   = flag.Bool("strict", false, "exit 1 when a pilot target is missed or cannot be checked")
		quiet    = flag.Duration("quiet-wait", 0, "first wait up to this long for the machine to be under 25% CPU busy")
		keep     = flag.Bool("keep", false, "keep the temp dir (per-run supervisor logs)")
	)
	flag.Parse()

	if os.Geteuid() != 0 {
		return harnessErr("must run as root (unshare --pid)")
	}
	b := &Bench{n: *n, idleN: *idleN, orphans: *orphans, idleDur: *idleSecs, orphanTimeout: *orphTO,
		settle: *settle, cooldown: *cooldown, warmup: *warmup, idleSerial: *serial, broken: map[string]bool{}, failures: map[string]int{}, neverReaps: map[string]bool{}}
	var err error
	if b.unshare, err = exec.LookPath("unshare"); err != nil {
		return harnessErr("unshare not found (util-linux)")
	}
	if b.node, err = exec.LookPath(*node); err != nil {
		return harnessErr("node not found at %s", *node)
	}
	b.node, _ = filepath.Abs(b.node)
	want := map[string]bool{}
	for _, s := range strings.Split(*supsFlag, ",") {
		want[strings.TrimSpace(s)] = true
	}
	meas := map[string]bool{}
	for _, m := range strings.Split(*measFlag, ",") {
		meas[strings.TrimSpace(m)] = true
	}

	// Columns, in table order.
	add := func(s *Sup) {
		if want[s.Name] {
			b.sups = append(b.sups, s)
		}
	}
	add(&Sup{Name: "none"})
	if want["tini"] {
		p, err := exec.LookPath(*tini)
		if err == nil {
			p, err = filepath.Abs(p)
		}
		if err != nil {
			return harnessErr("tini not found at %s (apt-get install -y tini)", *tini)
		}
		add(&Sup{Name: "tini", Path: p, Version: version(p, "--version")})
	}
	if want["dumb-init"] {
		if p, err := exec.LookPath(*dumb); err == nil {
			p, _ = filepath.Abs(p)
			add(&Sup{Name: "dumb-init", Path: p, Version: version(p, "--version")})
		} else {
			add(&Sup{Name: "dumb-init", Path: *dumb, Skip: "not installed"})
		}
	}
	if want["go-floor"] {
		if fi, err := os.Stat(*goFloor); *goFloor != "" && err == nil && !fi.IsDir() {
			p, _ := filepath.Abs(*goFloor)
			add(&Sup{Name: "go-floor", Path: p, Version: runtime.Version()})
		} else {
			add(&Sup{Name: "go-floor", Path: *goFloor, Skip: "no --go-floor binary (go build ./test/bench/gofloor)"})
		}
	}
	if *before != "" {
		want["pilot-before"] = true
		add(pilotSup("pilot-before", *before))
	}
	if want["pilot"] {
		add(pilotSup("pilot", *pilot))
	}
	if want["pm2-runtime"] {
		p := *pm2
		if p == "" {
			p = "pm2-runtime"
		}
		lp, err := exec.LookPath(p)
		if err == nil {
			lp, err = filepath.Abs(lp)
		}
		if err != nil {
			return harnessErr("pm2-runtime not found at %s (test/bench/run.sh installs it)", p)
		}
		add(&Sup{Name: "pm2-runtime", Path: lp, Version: pm2Version(lp)})
	}
	for _, s := range b.sups {
		if s.Skip != "" {
			fmt.Fprintf(os.Stderr, "bench: %s column SKIPPED: %s\n", s.Name, s.Skip)
		}
	}

	if b.tmp, err = os.MkdirTemp("", "pilot-bench-"); err != nil {
		return harnessErr("%v", err)
	}
	if !*keep {
		defer os.RemoveAll(b.tmp)
	}
	if err := b.writeChildren(); err != nil {
		return harnessErr("%v", err)
	}

	// A closed stdout (| head) must not kill the harness before it cleans up:
	// with SIGPIPE notified, writes just fail. (Notify installs a handler,
	// which exec resets, so the supervisors and children are unaffected; an
	// ignored SIGPIPE would be inherited.)
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		fmt.Fprintln(os.Stderr, "bench: interrupted, tearing down namespaces")
		killAll()
		if !*keep {
			os.RemoveAll(b.tmp)
		}
		os.Exit(130)
	}()

	busy := cpuBusy(time.Second)
	for deadline := time.Now().Add(*quiet); busy > 0.25 && time.Now().Before(deadline); {
		fmt.Fprintf(os.Stderr, "bench: machine %.0f%% busy, waiting for it to quieten\n", busy*100)
		busy = cpuBusy(2 * time.Second)
	}
	if busy > 0.25 {
		fmt.Fprintf(os.Stderr, "bench: WARNING: the machine is already %.0f%% busy; figures will be noisy (ratios within this run still hold best)\n", busy*100)
	}
	b.res = &Results{
		Meta: map[string]any{
			"started":         time.Now().UTC().Format(time.RFC3339),
			"kernel":          strings.TrimSpace(cmdOut("uname", "-r")),
			"cpus":            runtime.NumCPU(),
			"node":            strings.TrimSpace(cmdOut(b.node, "--version")),
			"go":              runtime.Version(),
			"n":               b.n,
			"idle_n":          b.idleN,
			"idle_duration":   b.idleDur.String(),
			"orphans":         b.orphans,
			"orphan_timeout":  b.orphanTimeout.String(),
			"settle":          b.settle.String(),
			"idle_parallel":   !b.idleSerial,
			"cooldown":        b.cooldown.String(),
			"warmup":          b.warmup,
			"loadavg_start":   strings.TrimSpace(readFirst("/proc/loadavg")),
			"cpu_busy_before": busy,
			"clocks":          "sh child: CLOCK_REALTIME (date +%s%N) vs harness CLOCK_REALTIME; node child: process.hrtime (CLOCK_MONOTONIC) vs harness CLOCK_MONOTONIC; both read right before fork+exec of unshare",
		},
		Supervisors: b.sups,
		Metrics:     map[string]map[string][]Sample{},
		Idle:        map[string][]IdleRun{},
	}

	t0 := time.Now()
	if meas["start-sh"] {
		b.measureStart("sh")
	}
	if meas["start-node"] {
		b.measureStart("node")
	}
	if meas["sigterm"] {
		b.measureTerm()
	}
	if meas["orphans"] {
		b.measureOrphans()
	}
	if meas["idle"] {
		b.measureIdle()
	}
	b.res.Meta["duration"] = time.Since(t0).Round(time.Second).String()
	b.res.Meta["loadavg_end"] = strings.TrimSpace(readFirst("/proc/loadavg"))
	b.res.Meta["cpu_busy_after"] = cpuBusy(time.Second)

	table := b.table()
	targets, missed := b.targets()
	b.res.Targets = targets
	out := *jsonOut
	if out == "" {
		out = filepath.Join(filepath.Dir(b.tmp), "pilot-bench-"+time.Now().UTC().Format("20060102T150405Z")+".json")
	}
	if j, err := json.MarshalIndent(b.res, "", " "); err == nil {
		err := os.MkdirAll(filepath.Dir(out), 0o755)
		if err == nil {
			err = os.WriteFile(out, j, 0o644)
		}
		if err != nil {
			return harnessErr("writing %s: %v", out, err)
		}
		fmt.Fprintf(os.Stderr, "bench: raw samples in %s (took %s)\n", out, b.res.Meta["duration"])
	}
	fmt.Print(table)
	fmt.Println()
	for _, t := range targets {
		fmt.Printf("%-4s  %s: %s\n", t.Status, t.Name, t.Detail)
	}

	if *keep {
		fmt.Fprintf(os.Stderr, "bench: per-run logs kept in %s\n", b.tmp)
	}
	if *strict && missed {
		return 1
	}
	return 0
}

func cmdOut(name string, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return ""
	}
	return string(out)
}

func readFirst(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// version runs BIN --version (outside any namespace) and keeps a version-ish token.
// pilotSup is a pilot column: the binary at path, its version from
// `pilot version` (every build has it).
func pilotSup(name, path string) *Sup {
	s := &Sup{Name: name, Path: path}
	if path == "" {
		s.Skip = "no --pilot given"
	} else if p, err := filepath.Abs(path); err != nil {
		s.Skip = err.Error()
	} else if fi, err := os.Stat(p); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		s.Skip = "binary not found at " + p + " (build it: go build -o bin/pilot ./cmd/pilot)"
	} else {
		s.Path, s.SHA256 = p, fileSHA256(p)
		if f := strings.Fields(cmdOut(p, "version")); len(f) >= 2 {
			s.Version = f[1]
		}
	}
	return s
}

func version(bin, flag string) string {
	out := strings.TrimSpace(cmdOut(bin, flag))
	if i := strings.IndexByte(out, '\n'); i >= 0 {
		out = out[:i]
	}
	for _, f := range strings.Fields(out) {
		f = strings.TrimPrefix(f, "v")
		if len(f) > 0 && f[0] >= '0' && f[0] <= '9' && strings.Contains(f, ".") {
			return f
		}
	}
	if len(out) > 30 {
		out = out[:30]
	}
	return out
}

func fileSHA256(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%x", sha256.Sum256(b))
}

func pm2Version(bin string) string {
	p, err := filepath.EvalSymlinks(bin)
	if err != nil {
		return ""
	}
	b, err := os.ReadFile(filepath.Join(filepath.Dir(p), "..", "package.json"))
	if err != nil {
		return ""
	}
	var pkg struct{ Version string }
	if json.Unmarshal(b, &pkg) != nil {
		return ""
	}
	return pkg.Version
}
