// Command watch measures how fast a Consul change reaches a file that a
// pilot watch renders: from just before the HTTP call that changes the
// catalog (register an instance, flip its TTL check to critical or back to
// passing, deregister it) to the moment the rendered nginx upstream on disk
// lists exactly the passing instances. It reports p50/p90/p99/max against
// the targets p50 ≤ 50 ms and p99 ≤ 200 ms (plus debounce.min), and splits
// the time into its stages.
//
//	go run ./test/bench/watch                  # from the repository root
//	go run ./test/bench/watch -n 200 -debounce 100ms,1s -strict
//
// See test/bench/README.md.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nodepilot/pilot/test/bench/benchkit"
	"github.com/nodepilot/pilot/test/consulagent"
)

const service = "bench-backend"

func main() { os.Exit(bench()) }

// trial is one change and what each stage saw of it, in ms from t0 (just
// before the HTTP call); -1 where a stage was not seen.
type trial struct {
	Kind      string  `json:"kind"`
	Instance  string  `json:"instance"`
	APIMs     float64 `json:"api_ms"`     // the Consul HTTP call's round trip
	CatalogMs float64 `json:"catalog_ms"` // an independent blocking query returned the new set
	WatcherMs float64 `json:"watcher_ms"` // pilot logged "consul: watch changed" (ms resolution)
	TempMs    float64 `json:"temp_ms"`    // pilot created its temporary file (inotify)
	FileMs    float64 `json:"file_ms"`    // the file on disk lists the new set
	TimedOut  bool    `json:"timed_out,omitempty"`
	Fallback  bool    `json:"fallback,omitempty"` // caught by the fallback poll, not by an inotify event

	t0  time.Time
	set string
}

type stats struct {
	Measure string  `json:"measure"`
	N       int     `json:"n"`
	Missing int     `json:"missing"`
	P50Ms   float64 `json:"p50_ms"`
	P90Ms   float64 `json:"p90_ms"`
	P99Ms   float64 `json:"p99_ms"`
	MaxMs   float64 `json:"max_ms"`
}

func bench() int {
	n := flag.Int("n", 60, "changes measured (after one warm-up cycle of 4); kinds rotate register, critical, passing, deregister")
	debounce := flag.String("debounce", "0s,0s", "the watch's debounce as MIN,MAX")
	gap := flag.Duration("gap", 100*time.Millisecond, "mean pause between changes (uniform in [gap/2, 3·gap/2))")
	poll := flag.Duration("poll", 0, "poll the file with os.ReadFile every POLL instead of waiting for inotify events")
	timeout := flag.Duration("timeout", 5*time.Second, "a change not on disk by then is a miss")
	dir := flag.String("dir", "", "directory for the rendered file's own subdirectory (default: the system temp directory; try /dev/shm)")
	common := benchkit.CommonFlags()
	flag.Parse()

	fail := benchkit.Failer("bench/watch")
	dmin, dmax, err := parseDebounce(*debounce)
	if err != nil {
		return fail("-debounce: %v", err)
	}
	if *n < 1 {
		return fail("-n must be ≥ 1")
	}
	env, err := benchkit.Setup("pilot-bench-watch-", *common.Pilot)
	if err != nil {
		return fail("%v", err)
	}
	defer env.Close()
	agent := env.Agent

	// The rendered file lives alone in its own directory, which inotify
	// watches for pilot's temporary file (IN_CREATE) and its rename over
	// the destination (IN_MOVED_TO).
	outDirRender := filepath.Join(env.Dir, "conf.d")
	if *dir != "" {
		if outDirRender, err = os.MkdirTemp(*dir, "pilot-bench-watch-conf.d-"); err != nil {
			return fail("-dir: %v", err)
		}
		defer os.RemoveAll(outDirRender)
	}
	if err := os.Mkdir(outDirRender, 0o755); err != nil && !os.IsExist(err) {
		return fail("%v", err)
	}
	fsType := fsTypeOf(outDirRender)
	dest := filepath.Join(outDirRender, "backend.conf")
	var events chan benchkit.FileEvent
	if *poll <= 0 {
		events = make(chan benchkit.FileEvent, 256)
		if err := benchkit.WatchDir(outDirRender, filepath.Base(dest), events); err != nil {
			return fail("inotify: %v (use -poll 1ms)", err)
		}
	}

	cfg := fmt.Sprintf(`consul: {address: %q}
log: {level: debug, format: json}
jobs:
  - name: main
    main: true
    exec: [sleep, "3600"]
watches:
  - service: %s
    debounce: {min: %s, max: %s}
    onChange:
      render: {format: nginx, dest: %q}
`, agent.Addr(), service, dmin, dmax, dest)
	pilot, err := env.StartPilot(cfg)
	if err != nil {
		return fail("%v", err)
	}
	defer pilot.Stop()
	pilotLog := func() string { return consulagent.Tail(pilot.Log(), 4000) }

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	api := &consulAPI{base: "http://" + agent.Addr(), client: &http.Client{Timeout: 5 * time.Second}}
	cat := &catalog{}
	go cat.observe(ctx, api.base)

	// The model: every registered instance and whether its check passes.
	type inst struct {
		id, addr string
		passing  bool
	}
	var pool []*inst
	next := 0
	want := func() string {
		var s []string
		for _, in := range pool {
			if in.passing {
				s = append(s, in.addr+":8080")
			}
		}
		return benchkit.Canonical(s)
	}
	// waitFile waits until dest lists exactly set; it returns when that was
	// seen, when pilot's temporary file appeared (zero if not seen), and
	// whether only the fallback poll caught it.
	waitFile := func(set string, limit time.Duration) (t1, temp time.Time, ok, fallback bool) {
		matches := func() bool { return benchkit.UpstreamServers(dest) == set }
		deadline := time.NewTimer(limit)
		defer deadline.Stop()
		if events == nil {
			tick := time.NewTicker(*poll)
			defer tick.Stop()
			for {
				if matches() {
					return time.Now(), temp, true, false
				}
				select {
				case <-tick.C:
				case <-deadline.C:
					return time.Time{}, temp, false, false
				}
			}
		}
		// late handles a match found without its rename's event (the
		// check right after the HTTP call, or the safety poll): the event
		// may be on its way, so wait a little for it and keep the earlier
		// of the two times. Without it, the poll's time stands.
		late := func(fallback bool) (time.Time, time.Time, bool, bool) {
			seen := time.Now()
			limit := time.NewTimer(10 * time.Millisecond)
			defer limit.Stop()
			for {
				select {
				case ev := <-events:
					if !ev.Moved {
						temp = ev.At
						continue
					}
					if ev.At.Before(seen) {
						return ev.At, temp, true, false
					}
					return seen, temp, true, false
				case <-limit.C:
					return seen, temp, true, fallback
				}
			}
		}
		if matches() { // already there when the HTTP call returned
			return late(false)
		}
		// t1 is when the rename's event was read: the file held the new
		// content from then on (the read after it checks that).
		safety := time.NewTicker(50 * time.Millisecond) // in case an event is lost
		defer safety.Stop()
		for {
			select {
			case ev := <-events:
				if !ev.Moved {
					temp = ev.At
					continue
				}
				if matches() {
					return ev.At, temp, true, false
				}
			case <-safety.C:
				if !matches() {
					continue
				}
				// The tick may just have won the race against the event.
				return late(true)
			case <-deadline.C:
				return time.Time{}, temp, false, false
			}
		}
	}
	drain := func() {
		for events != nil && len(events) > 0 {
			<-events
		}
	}

	// A base pool of three passing instances, in place before measuring.
	for range 3 {
		next++
		in := &inst{id: fmt.Sprintf("%s-%d", service, next), addr: addrOf(next), passing: true}
		if err := api.register(in.id, in.addr); err != nil {
			return fail("registering %s: %v", in.id, err)
		}
		pool = append(pool, in)
	}
	if _, _, ok, _ := waitFile(want(), 20*time.Second); !ok {
		return fail("the rendered file never listed the base pool (want %q, have %q); pilot's log:\n%s", want(), benchkit.UpstreamServers(dest), pilotLog())
	}

	kinds := []string{"register", "critical", "passing", "deregister"}
	cpu := benchkit.StartBusy()
	var trials []*trial
	var flipped *inst
	for i := -len(kinds); i < *n; i++ { // i < 0: one warm-up cycle, not recorded
		time.Sleep(*gap/2 + rand.N(*gap))
		kind := kinds[(i+len(kinds))%len(kinds)]
		drain()
		var call func() error
		var subject *inst
		switch kind {
		case "register":
			next++
			subject = &inst{id: fmt.Sprintf("%s-%d", service, next), addr: addrOf(next), passing: true}
			pool = append(pool, subject)
			call = func() error { return api.register(subject.id, subject.addr) }
		case "critical":
			subject = pool[rand.N(len(pool))]
			subject.passing, flipped = false, subject
			call = func() error { return api.put("/v1/agent/check/fail/ttl-" + subject.id) }
		case "passing":
			subject = flipped
			subject.passing = true
			call = func() error { return api.put("/v1/agent/check/pass/ttl-" + subject.id) }
		case "deregister":
			k := rand.N(len(pool))
			subject = pool[k]
			pool = slices.Delete(pool, k, k+1)
			call = func() error { return api.put("/v1/agent/service/deregister/" + subject.id) }
		}
		set := want()
		t := &trial{Kind: kind, Instance: subject.id, CatalogMs: -1, WatcherMs: -1, TempMs: -1, FileMs: -1}
		t.t0 = time.Now()
		err := call()
		t.APIMs = ms(time.Since(t.t0))
		if err != nil {
			return fail("%s %s: %v", kind, subject.id, err)
		}
		t1, temp, ok, fallback := waitFile(set, *timeout)
		if ok {
			t.FileMs, t.Fallback = ms(t1.Sub(t.t0)), fallback
		} else {
			t.TimedOut = true
			if _, _, ok, _ := waitFile(set, 10*time.Second); !ok { // settle before the next change
				return fail("%s %s: the file never caught up (want %q, have %q); pilot's log:\n%s", kind, subject.id, set, benchkit.UpstreamServers(dest), pilotLog())
			}
		}
		if !temp.IsZero() {
			t.TempMs = ms(temp.Sub(t.t0))
		}
		t.set = set
		if i >= 0 {
			trials = append(trials, t)
		}
	}
	time.Sleep(100 * time.Millisecond) // let the observer catch up
	cancel()
	busy := cpu.Busy()

	// Pilot's own view, from its JSON log: when its watcher's blocking query
	// returned with the change. slog stamps whole milliseconds (truncated).
	changed, err := logTimes(pilot.LogPath, "consul: watch changed")
	if err != nil {
		return fail("reading pilot's log: %v", err)
	}
	for k, t := range trials {
		end := time.Now()
		if k+1 < len(trials) {
			end = trials[k+1].t0
		}
		if at, ok := cat.seen(t.t0, end, t.set); ok {
			t.CatalogMs = ms(at.Sub(t.t0))
		}
		for _, at := range changed {
			if !at.Before(t.t0.Truncate(time.Millisecond)) && at.Before(end) {
				t.WatcherMs = ms(at.Sub(t.t0))
				break
			}
		}
	}

	target50, target99 := 50*time.Millisecond+dmin, 200*time.Millisecond+dmin
	collect := func(name string, pick func(*trial) float64, only string) stats {
		s := stats{Measure: name}
		var v []float64
		for _, t := range trials {
			if only != "" && t.Kind != only {
				continue
			}
			s.N++
			if x := pick(t); x >= 0 && !t.TimedOut {
				v = append(v, x)
			} else {
				s.Missing++
			}
		}
		slices.Sort(v)
		if len(v) > 0 {
			s.P50Ms, s.P90Ms, s.P99Ms, s.MaxMs = benchkit.Rank(v, 0.50), benchkit.Rank(v, 0.90), benchkit.Rank(v, 0.99), v[len(v)-1]
		}
		return s
	}
	file := func(t *trial) float64 { return t.FileMs }
	all := collect("Consul change → file on disk", file, "")
	var byKind []stats
	for _, k := range kinds {
		byKind = append(byKind, collect("  "+k, file, k))
	}
	stages := []stats{
		collect("Consul HTTP call returned", func(t *trial) float64 { return t.APIMs }, ""),
		collect("independent blocking query saw it", func(t *trial) float64 { return t.CatalogMs }, ""),
		collect("pilot's watcher saw it (log, 1 ms)", func(t *trial) float64 { return t.WatcherMs }, ""),
		collect("pilot created its temp file", func(t *trial) float64 { return t.TempMs }, ""),
		collect("pilot renamed it into place (t1)", file, ""),
	}
	write := collect("pilot: temp file created → renamed (write, rename)", func(t *trial) float64 {
		if t.TempMs < 0 || t.FileMs < 0 {
			return -1
		}
		return t.FileMs - t.TempMs
	}, "")

	mode := "inotify (IN_MOVED_TO)"
	if events == nil {
		mode = fmt.Sprintf("os.ReadFile every %s", *poll)
	}
	fallbacks := 0
	for _, t := range trials {
		if t.Fallback {
			fallbacks++
		}
	}
	fmt.Printf("Watch propagation: real `consul agent -dev` (loopback), watch debounce {min: %s, max: %s}, nginx render, file watched by %s, %d changes (+%d warm-up), %d CPUs\n\n",
		dmin, dmax, mode, *n, len(kinds), runtime.NumCPU())
	fmt.Println("| change → file on disk | n | p50 | p90 | p99 | max | missed |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, s := range append([]stats{all}, byKind...) {
		fmt.Printf("| %s | %d | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %d |\n", s.Measure, s.N, s.P50Ms, s.P90Ms, s.P99Ms, s.MaxMs, s.Missing)
	}
	fmt.Println()
	fmt.Println("| stage, ms after t0 (all kinds) | p50 | p90 | p99 | max | not seen |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, s := range stages {
		fmt.Printf("| %s | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %d |\n", s.Measure, s.P50Ms, s.P90Ms, s.P99Ms, s.MaxMs, s.Missing)
	}
	fmt.Printf("| *%s* | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %d |\n", write.Measure, write.P50Ms, write.P90Ms, write.P99Ms, write.MaxMs, write.Missing)
	fmt.Printf("\nThe file is on %s (%s). The machine was %.0f %% busy during the changes (%d CPUs, all processes: this harness, pilot and Consul included).\n",
		outDirRender, fsType, busy, runtime.NumCPU())
	if fallbacks > 0 {
		fmt.Printf("\n%d change(s) were caught by the 50 ms safety poll rather than an inotify event: their figures are late by up to 50 ms.\n", fallbacks)
	}
	fmt.Println()
	missed := false
	verdict := func(name string, got float64, base time.Duration) {
		v := "PASS"
		if all.Missing > 0 || got > ms(base+dmin) {
			v, missed = "FAIL", true
		}
		note := ""
		if dmin > 0 {
			note = fmt.Sprintf(", i.e. %s + debounce.min", base)
		}
		fmt.Printf("%s: change → file %s %.1f ms (target ≤ %s%s)\n", v, name, got, base+dmin, note)
	}
	verdict("p50", all.P50Ms, target50-dmin)
	verdict("p99", all.P99Ms, target99-dmin)

	benchkit.WriteResults(*common.Results, "watch", map[string]any{
		"when": time.Now().UTC().Format(time.RFC3339), "debounce_min": dmin.String(), "debounce_max": dmax.String(),
		"mode": mode, "gap": gap.String(), "changes": *n, "go": runtime.Version(), "cpus": runtime.NumCPU(),
		"summary": append(append(append([]stats{all}, byKind...), stages...), write), "trials": trials,
		"fs": fsType, "busy_pct": busy,
		"target_p50_ms": ms(target50), "target_p99_ms": ms(target99), "pass": !missed,
	})
	if missed && *common.Strict {
		return 1
	}
	return 0
}

func parseDebounce(s string) (lo, hi time.Duration, err error) {
	a, b, ok := strings.Cut(s, ",")
	if !ok {
		return 0, 0, fmt.Errorf("%q: want MIN,MAX such as 100ms,1s", s)
	}
	if lo, err = time.ParseDuration(strings.TrimSpace(a)); err != nil {
		return 0, 0, err
	}
	if hi, err = time.ParseDuration(strings.TrimSpace(b)); err != nil {
		return 0, 0, err
	}
	if lo < 0 || hi < 0 || (hi != 0 && lo > hi) {
		return 0, 0, fmt.Errorf("%q: want 0 ≤ MIN ≤ MAX (MAX 0 means MIN)", s)
	}
	return lo, hi, nil
}

// addrOf gives instance k its own address, so that each one is a distinct
// line of the upstream.
func addrOf(k int) string { return fmt.Sprintf("10.1.%d.%d", k/250, k%250+1) }

type consulAPI struct {
	base   string
	client *http.Client
}

func (c *consulAPI) put(path string) error { return c.do(path, nil) }

// register adds a passing instance with a long TTL check, which the flips
// then drive.
func (c *consulAPI) register(id, addr string) error {
	body, _ := json.Marshal(map[string]any{
		"ID": id, "Name": service, "Address": addr, "Port": 8080,
		"Check": map[string]any{"CheckID": "ttl-" + id, "Name": "ttl", "TTL": "30m", "Status": "passing"},
	})
	return c.do("/v1/agent/service/register", body)
}

func (c *consulAPI) do(path string, body []byte) error {
	req, err := http.NewRequest(http.MethodPut, c.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("PUT %s: %d %s", path, resp.StatusCode, bytes.TrimSpace(b))
	}
	return nil
}

// catalog is an independent observer: its own blocking query on
// /v1/health/service/NAME?passing, like pilot's watcher, records when each
// new set of passing instances came back.
type catalog struct {
	mu  sync.Mutex
	obs []catalogSeen
}

type catalogSeen struct {
	at  time.Time
	set string
}

func (c *catalog) observe(ctx context.Context, base string) {
	client := &http.Client{}
	index := "0"
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet,
			base+"/v1/health/service/"+service+"?passing&stale&wait=30s&index="+index, nil)
		resp, err := client.Do(req)
		if err != nil {
			index = "0"
			time.Sleep(50 * time.Millisecond)
			continue
		}
		var entries []struct {
			Service struct {
				Address string
				Port    int
			}
		}
		err = json.NewDecoder(resp.Body).Decode(&entries)
		resp.Body.Close()
		at := time.Now()
		if err != nil {
			index = "0"
			time.Sleep(50 * time.Millisecond)
			continue
		}
		var s []string
		for _, e := range entries {
			s = append(s, fmt.Sprintf("%s:%d", e.Service.Address, e.Service.Port))
		}
		c.mu.Lock()
		c.obs = append(c.obs, catalogSeen{at, benchkit.Canonical(s)})
		c.mu.Unlock()
		if i := resp.Header.Get("X-Consul-Index"); i != "" && i != "0" && i != index {
			index = i
		} else { // no progress: do not spin
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// seen returns when the observer first got set back in [t0, end).
func (c *catalog) seen(t0, end time.Time, set string) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.obs {
		if !s.at.Before(t0) && s.at.Before(end) && s.set == set {
			return s.at, true
		}
	}
	return time.Time{}, false
}

// logTimes returns the times of pilot's JSON log records whose msg is msg.
func logTimes(path, msg string) ([]time.Time, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []time.Time
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var rec struct {
			Time time.Time `json:"time"`
			Msg  string    `json:"msg"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == msg {
			out = append(out, rec.Time)
		}
	}
	return out, sc.Err()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// fsTypeOf names the file system holding dir (ext4, tmpfs, …), from
// /proc/self/mountinfo: the longest mount point that prefixes dir.
func fsTypeOf(dir string) string {
	dir, _ = filepath.EvalSymlinks(dir)
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "?"
	}
	best, typ := "", "?"
	for line := range strings.Lines(string(b)) {
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 1 {
			continue
		}
		mp := f[4]
		if (dir == mp || strings.HasPrefix(dir, strings.TrimSuffix(mp, "/")+"/")) && len(mp) >= len(best) {
			best, typ = mp, g[0]
		}
	}
	return typ
}
