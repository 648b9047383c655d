package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"
)

// Metric keys (JSON and table).
const (
	mStartSh        = "start_sh_ms"
	mStartNode      = "start_node_ms"
	mIdleRSSMedian  = "idle_rss_median_mib"
	mIdleRSSPeak    = "idle_rss_peak_mib"
	mIdleCPU        = "idle_cpu_ms"
	mIdleCPUTicks   = "idle_cpu_ticks_ms"
	mIdleProcs      = "idle_supervisor_processes"
	mIdleChildRSS   = "idle_child_rss_median_mib"
	mTermHandler    = "term_handler_ms"
	mExitAfterLine  = "exit_after_line_ms"
	mExitAfterChild = "exit_after_child_ms"
	mTermToExit     = "term_to_exit_ms"
	mOrphansReap    = "orphans_reap_ms"
	mOrphansZombies = "orphans_zombies_left"
)

type Sample struct {
	Rep   int      `json:"rep"`
	Value *float64 `json:"value"` // null when never or error
	Never bool     `json:"never,omitempty"`
	Err   string   `json:"error,omitempty"`
	Note  string   `json:"note,omitempty"`
}

type IdleRun struct {
	Rep        int       `json:"rep"`
	TMs        []float64 `json:"t_ms"`
	RSSMiB     []float64 `json:"supervisor_rss_mib"`
	ChildMiB   []float64 `json:"child_rss_mib"`
	Procs      []int     `json:"supervisor_processes"`
	CPUMs      float64   `json:"cpu_ms"`
	CPUTicksMs float64   `json:"cpu_ticks_ms"`
}

func fp(v float64) *float64 { return &v }

func (b *Bench) record(metric string, s *Sup, smp Sample) {
	if smp.Rep < 0 && smp.Err == "" {
		return // warm-up run
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.res.Metrics[metric] == nil {
		b.res.Metrics[metric] = map[string][]Sample{}
	}
	b.res.Metrics[metric][s.Name] = append(b.res.Metrics[metric][s.Name], smp)
}

// fail records an error for the metrics of one measure. A column whose
// warm-up fails, or that fails twice, is not run again for that measure (a
// broken supervisor would only time out again); a single failure on a busy
// machine is just recorded.
func (b *Bench) fail(measure string, metrics []string, s *Sup, rep int, err error) {
	fmt.Fprintf(os.Stderr, "  %s / %s run %d: ERROR: %v\n", measure, s.Name, rep+1, err)
	for _, m := range metrics {
		b.record(m, s, Sample{Rep: rep, Err: err.Error()})
	}
	b.mu.Lock()
	k := measure + "/" + s.Name
	b.failures[k]++
	if rep < 0 || b.failures[k] >= 2 {
		b.broken[k] = true
	}
	b.mu.Unlock()
}

func (b *Bench) isBroken(measure string, s *Sup) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.broken[measure+"/"+s.Name]
}

// order rotates the columns each repetition so that slow drift of a shared
// machine does not always favour the same supervisor.
func (b *Bench) order(rep int, withNone bool) []*Sup {
	var live []*Sup
	for _, s := range b.sups {
		if s.Skip != "" || (!withNone && s.Name == "none") {
			continue
		}
		live = append(live, s)
	}
	if len(live) == 0 {
		return nil
	}
	k := rep % len(live)
	return append(append([]*Sup{}, live[k:]...), live[:k]...)
}

func progress(measure string, rep, n int) {
	if rep < 0 {
		fmt.Fprintf(os.Stderr, "%-10s warm-up\n", measure)
		return
	}
	fmt.Fprintf(os.Stderr, "%-10s run %d/%d\n", measure, rep+1, n)
}

// repeat runs one() for every column, n times (after the warm-up runs,
// which are not recorded), rotating the column order each time.
func (b *Bench) repeat(measure string, metrics []string, warmup int, one func(s *Sup, rep int) error) {
	for rep := -warmup; rep < b.n; rep++ {
		progress(measure, rep, b.n)
		order := rep
		if order < 0 {
			order = 0
		}
		for _, s := range b.order(order, true) {
			b.mu.Lock()
			skip := b.broken[measure+"/"+s.Name] || (measure == "orphans" && b.neverReaps[s.Name])
			b.mu.Unlock()
			if skip {
				continue
			}
			if err := one(s, rep); err != nil {
				b.fail(measure, metrics, s, rep, err)
			}
			time.Sleep(b.cooldown)
		}
	}
}

// ---- 1. start latency ------------------------------------------------------

func (b *Bench) measureStart(kind string) {
	metric, measure := mStartSh, "start-sh"
	mk := b.shChild(shStart)
	if kind == "node" {
		metric, measure, mk = mStartNode, "start-node", b.nodeChild("start")
	}
	b.repeat(measure, []string{metric}, b.warmup, func(s *Sup, rep int) error {
		r, err := b.startRun(s, measure, mk)
		if err != nil {
			return err
		}
		l, err := r.WaitLine("start", 30*time.Second)
		r.Kill()
		if err != nil {
			return err
		}
		b.record(metric, s, Sample{Rep: rep, Value: fp(float64(r.Since(l)) / 1e6),
			Note: fmt.Sprintf("line received +%.2f ms", float64(l.RecvMono-r.T0Mono)/1e6)})
		return nil
	})
}

// ---- 3 + 4. SIGTERM → handler, child exit → supervisor exit -----------------

func (b *Bench) measureTerm() {
	const measure = "sigterm"
	metrics := []string{mTermHandler, mExitAfterLine, mExitAfterChild, mTermToExit}
	b.repeat(measure, metrics, b.warmup, b.termRun)
}

func (b *Bench) termRun(s *Sup, rep int) error {
	r, err := b.startRun(s, "sigterm", b.nodeChild("term"))
	if err != nil {
		return err
	}
	defer r.Kill()
	ready, err := r.WaitLine("ready", 30*time.Second)
	if err != nil {
		return err
	}
	pid1, err := r.Pid1(5 * time.Second)
	if err != nil {
		return err
	}
	child, err := hostPidOf(pid1, ready.NSPid)
	if err != nil {
		return err
	}
	time.Sleep(b.settle) // let the supervisor finish its own start-up work
	pids := []int{pid1}
	if child != pid1 {
		pids = append(pids, child)
	}
	exits, err := exitWatch(pids, 15*time.Second)
	if err != nil {
		return err
	}
	tSend := monoNow()
	if err := syscall.Kill(pid1, syscall.SIGTERM); err != nil {
		return fmt.Errorf("kill(%d, SIGTERM): %w", pid1, err)
	}
	sig, err := r.WaitLine("sig", 10*time.Second)
	if err != nil {
		return fmt.Errorf("after SIGTERM to PID 1: %w", err)
	}
	ex, err := r.WaitLine("exit", 5*time.Second)
	if err != nil {
		return err
	}
	t := <-exits
	tSup, tChild := t[0], t[len(t)-1] // no supervisor: the child is PID 1
	return b.termRecord(s, rep, r, tSend, sig, ex, tChild, tSup)
}

func (b *Bench) termRecord(s *Sup, rep int, r *Run, tSend int64, sig, ex Line, tChild, tSup int64) error {
	if tChild < 0 {
		return fmt.Errorf("child did not exit within the limit")
	}
	if tSup < 0 {
		return fmt.Errorf("supervisor did not exit within 15 s of its child%s", r.logTail())
	}
	ms := func(d int64) *float64 { return fp(float64(d) / 1e6) }
	b.record(mTermHandler, s, Sample{Rep: rep, Value: ms(sig.T - tSend), Note: sig.Extra})
	b.record(mExitAfterLine, s, Sample{Rep: rep, Value: ms(tSup - ex.T)})
	b.record(mExitAfterChild, s, Sample{Rep: rep, Value: ms(tSup - tChild)})
	b.record(mTermToExit, s, Sample{Rep: rep, Value: ms(tSup - tSend)})
	return nil
}

// ---- 5. orphans ------------------------------------------------------------

func (b *Bench) measureOrphans() {
	const measure = "orphans"
	// No warm-up: a column that never reaps would cost a full timeout for nothing.
	b.repeat(measure, []string{mOrphansReap, mOrphansZombies}, 0, b.orphanRun)
}

func (b *Bench) orphanRun(s *Sup, rep int) error {
	var mkErr error
	release := ""
	mk := func(fifo string) Child {
		release = filepath.Join(filepath.Dir(fifo), "release.fifo")
		mkErr = syscall.Mkfifo(release, 0o666)
		return b.shChild(shOrphans, release, itoa(b.orphans))(fifo)
	}
	r, err := b.startRun(s, "orphans", mk)
	if err != nil {
		return err
	}
	defer r.Kill()
	if mkErr != nil {
		return mkErr
	}
	l, err := r.WaitLine("orphans", 60*time.Second)
	if err != nil {
		return err
	}
	pid1, err := r.Pid1(5 * time.Second)
	if err != nil {
		return err
	}
	child, err := hostPidOf(pid1, l.NSPid)
	if err != nil {
		return err
	}
	// Wait until all grandchildren exist and are blocked opening the FIFO.
	var grand []int
	var desc []int
	deadline := time.Now().Add(20 * time.Second)
	for {
		desc = descendants(pid1, nil)
		grand = grand[:0]
		for _, p := range desc {
			if p == child {
				continue
			}
			if st, err := readStat(p); err == nil && st.Comm == "sh" {
				grand = append(grand, p)
			}
		}
		if len(grand) > b.orphans {
			return fmt.Errorf("found %d grandchildren, expected %d", len(grand), b.orphans)
		}
		if len(grand) == b.orphans {
			blocked := 0
			for _, p := range grand {
				if wchan(p) == "wait_for_partner" {
					blocked++
				}
			}
			if blocked == b.orphans {
				break
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d grandchildren appeared blocked on the FIFO", len(grand), b.orphans)
		}
		time.Sleep(10 * time.Millisecond)
	}
	gset := make(map[int]bool, len(grand))
	for _, p := range grand {
		gset[p] = true
	}
	// Possible parents of a grandchild: PID 1 and the other (non-grandchild)
	// processes of the namespace (a supervisor may reap through a helper).
	parents := []int{pid1}
	for _, p := range desc {
		if !gset[p] {
			parents = append(parents, p)
		}
	}
	// Open each grandchild's stat now: reads on these fds fail with ESRCH
	// once that very process is reaped (immune to pid reuse).
	stats := make([]*os.File, 0, len(grand))
	defer func() {
		for _, f := range stats {
			f.Close()
		}
	}()
	for _, p := range grand {
		f, err := os.Open(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			return fmt.Errorf("grandchild %d vanished before release: %w", p, err)
		}
		stats = append(stats, f)
	}
	time.Sleep(b.settle)

	tRel := monoNow()
	wfd, err := syscall.Open(release, syscall.O_WRONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open release FIFO: %w", err)
	}
	defer syscall.Close(wfd)
	const period = 5 * time.Millisecond
	// census reads every grandchild's state through its stat fd.
	buf := make([]byte, 512)
	census := func() (zombies, alive, gone int) {
		for _, f := range stats {
			n, err := f.ReadAt(buf, 0)
			if err != nil && n == 0 {
				gone++
				continue
			}
			st, perr := parseStat(buf[:n])
			switch {
			case perr != nil:
				gone++
			case st.State == 'Z':
				zombies++
			default:
				alive++
			}
		}
		return
	}
	// Give up when nothing was reaped for orphanTimeout (and for at least
	// half the polls that span should hold) while every grandchild had
	// already exited (a starved machine only delays them), or after a hard cap.
	stall := b.orphanTimeout.Nanoseconds()
	hardCap := (30 * time.Second).Nanoseconds()
	tDone := int64(-1)
	polls := 0
	lastRemaining, lastProgress, lastProgressPoll := len(grand), tRel, 0
	stallPolls := int(stall / period.Nanoseconds() / 2) // a starved harness polls less often: also count polls
	for k := int64(1); ; k++ {
		remaining := 0
		for _, p := range parents {
			for _, c := range childrenOf(p) {
				if gset[c] {
					remaining++
				}
			}
		}
		polls++
		now := monoNow()
		if remaining == 0 {
			tDone = now
			break
		}
		if remaining < lastRemaining {
			lastRemaining, lastProgress, lastProgressPoll = remaining, now, polls
		}
		if now-tRel > hardCap {
			break
		}
		if now-lastProgress > stall && polls-lastProgressPoll >= stallPolls {
			if _, alive, _ := census(); alive == 0 {
				break
			}
			lastProgress, lastProgressPoll = now, polls // some have not even run yet: keep waiting
		}
		if d := time.Duration(tRel + k*period.Nanoseconds() - monoNow()); d > 0 {
			time.Sleep(d)
		}
	}
	// Census of the grandchildren, then of the whole namespace, at the end.
	zombies, alive, gone := census()
	otherZ := 0
	for _, p := range append([]int{pid1}, descendants(pid1, gset)...) {
		if gset[p] {
			continue
		}
		if st, err := readStat(p); err == nil && st.State == 'Z' {
			otherZ++
		}
	}
	note := fmt.Sprintf("%d polls; at end: %d reaped, %d zombie, %d not exited; other zombies in namespace: %d", polls, gone, zombies, alive, otherZ)
	b.record(mOrphansZombies, s, Sample{Rep: rep, Value: fp(float64(zombies + otherZ)), Note: note})
	if tDone < 0 {
		b.record(mOrphansReap, s, Sample{Rep: rep, Never: true, Note: note})
		if gone == 0 {
			fmt.Fprintf(os.Stderr, "  orphans / %s: reaps none (%s); not repeating\n", s.Name, note)
			b.mu.Lock()
			b.neverReaps[s.Name] = true
			b.mu.Unlock()
		} else {
			fmt.Fprintf(os.Stderr, "  orphans / %s: stopped reaping (%s)\n", s.Name, note)
		}
		return nil
	}
	if gone != len(grand) {
		note += " (WARNING: children lists and stat disagree)"
	}
	b.record(mOrphansReap, s, Sample{Rep: rep, Value: fp(float64(tDone-tRel) / 1e6), Note: note})
	return nil
}

// ---- 2. idle RSS and CPU -----------------------------------------------------

type procSample struct {
	NSPid, PPid int
	RSSKiB      int64
	CPUNs       uint64
	Ticks       uint64
}

func (b *Bench) measureIdle() {
	const measure = "idle"
	metrics := []string{mIdleRSSMedian, mIdleRSSPeak, mIdleCPU, mIdleCPUTicks, mIdleProcs, mIdleChildRSS}
	for rep := 0; rep < b.idleN; rep++ {
		progress(measure, rep, b.idleN)
		var wg sync.WaitGroup
		// Start the light supervisors first, 200 ms apart, and pm2-runtime
		// (whose start-up burns ~0.5 s of CPU) a second after the last of
		// them, so no start-up burst overlaps another column's start-up.
		cols := b.order(rep, false)
		sort.SliceStable(cols, func(i, j int) bool { return cols[j].Name == "pm2-runtime" && cols[i].Name != "pm2-runtime" })
		for i, s := range cols {
			if b.isBroken(measure, s) {
				continue
			}
			run := func(s *Sup) {
				if ir, err := b.idleRun(s, rep); err != nil {
					b.fail(measure, metrics, s, rep, err)
				} else {
					b.mu.Lock()
					b.res.Idle[s.Name] = append(b.res.Idle[s.Name], ir)
					b.mu.Unlock()
				}
				time.Sleep(b.cooldown)
			}
			if b.idleSerial {
				run(s)
				continue
			}
			delay := time.Duration(i) * 200 * time.Millisecond
			if s.Name == "pm2-runtime" {
				delay += time.Second
			}
			wg.Add(1)
			go func(s *Sup, delay time.Duration) {
				defer wg.Done()
				time.Sleep(delay)
				run(s)
			}(s, delay)
		}
		wg.Wait()
	}
}

func (b *Bench) idleRun(s *Sup, rep int) (IdleRun, error) {
	ir := IdleRun{Rep: rep}
	r, err := b.startRun(s, "idle", b.nodeChild("idle"))
	if err != nil {
		return ir, err
	}
	defer r.Kill()
	const period = 100 * time.Millisecond
	steps := int(b.idleDur / period)
	type sample struct {
		t     int64
		procs map[int]procSample
	}
	var samples []sample
	for k := 1; k <= steps; k++ {
		if d := time.Duration(r.T0Mono + int64(k)*period.Nanoseconds() - monoNow()); d > 0 {
			time.Sleep(d)
		}
		if r.Exited() {
			return ir, fmt.Errorf("supervisor exited during the idle run%s", r.logTail())
		}
		if r.pid1 == 0 {
			if c := childrenOf(r.cmd.Process.Pid); len(c) > 0 {
				r.pid1 = c[0]
			}
		}
		smp := sample{t: monoNow() - r.T0Mono, procs: map[int]procSample{}}
		if r.pid1 != 0 {
			for _, p := range append([]int{r.pid1}, descendants(r.pid1, nil)...) {
				si, err := readStatus(p)
				if err != nil {
					continue
				}
				st, _ := readStat(p)
				smp.procs[p] = procSample{NSPid: si.NSPid, PPid: si.PPid, RSSKiB: si.RSSKiB,
					CPUNs: cpuNs(p), Ticks: st.UTime + st.STime}
			}
		}
		samples = append(samples, smp)
	}
	ready, ok := r.TryLine("ready")
	if !ok {
		return ir, fmt.Errorf("the child never wrote its ready line%s", r.logTail())
	}
	// The child is the process with the child's namespace pid, plus its own
	// descendants; everything else in the namespace is the supervisor's.
	isChild := func(procs map[int]procSample) map[int]bool {
		c := map[int]bool{}
		for p, ps := range procs {
			if ps.NSPid == ready.NSPid {
				c[p] = true
			}
		}
		for changed := true; changed; {
			changed = false
			for p, ps := range procs {
				if !c[p] && c[ps.PPid] {
					c[p], changed = true, true
				}
			}
		}
		return c
	}
	maxCPU := map[int]uint64{}
	maxTicks := map[int]uint64{}
	for _, smp := range samples {
		if len(smp.procs) == 0 {
			continue
		}
		child := isChild(smp.procs)
		var rss, crss int64
		n := 0
		for p, ps := range smp.procs {
			if child[p] {
				crss += ps.RSSKiB
				continue
			}
			n++
			rss += ps.RSSKiB
			if ps.CPUNs > maxCPU[p] {
				maxCPU[p] = ps.CPUNs
			}
			if ps.Ticks > maxTicks[p] {
				maxTicks[p] = ps.Ticks
			}
		}
		ir.TMs = append(ir.TMs, round3(float64(smp.t)/1e6))
		ir.RSSMiB = append(ir.RSSMiB, round3(float64(rss)/1024))
		ir.ChildMiB = append(ir.ChildMiB, round3(float64(crss)/1024))
		ir.Procs = append(ir.Procs, n)
	}
	if len(ir.RSSMiB) == 0 {
		return ir, fmt.Errorf("no samples")
	}
	var cpu, ticks uint64
	for _, v := range maxCPU {
		cpu += v
	}
	for _, v := range maxTicks {
		ticks += v
	}
	ir.CPUMs = float64(cpu) / 1e6
	ir.CPUTicksMs = float64(ticks) * 10 // USER_HZ is 100 on Linux
	procs := make([]float64, len(ir.Procs))
	for i, n := range ir.Procs {
		procs[i] = float64(n)
	}
	b.record(mIdleRSSMedian, s, Sample{Rep: rep, Value: fp(median(ir.RSSMiB))})
	b.record(mIdleRSSPeak, s, Sample{Rep: rep, Value: fp(maxf(ir.RSSMiB))})
	b.record(mIdleCPU, s, Sample{Rep: rep, Value: fp(ir.CPUMs)})
	b.record(mIdleCPUTicks, s, Sample{Rep: rep, Value: fp(ir.CPUTicksMs)})
	b.record(mIdleProcs, s, Sample{Rep: rep, Value: fp(median(procs))})
	b.record(mIdleChildRSS, s, Sample{Rep: rep, Value: fp(median(ir.ChildMiB))})
	return ir, nil
}

// ---- stats -------------------------------------------------------------------

func round3(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }

func median(v []float64) float64 { return quantile(v, 0.5) }

// quantile: linear interpolation between closest ranks (q=0.5 is the median).
func quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	pos := q * float64(len(s)-1)
	i := int(pos)
	if i+1 >= len(s) {
		return s[len(s)-1]
	}
	f := pos - float64(i)
	return s[i]*(1-f) + s[i+1]*f
}

func maxf(v []float64) float64 {
	m := v[0]
	for _, x := range v {
		if x > m {
			m = x
		}
	}
	return m
}
