// Command control measures pilot's control socket with many jobs: it starts
// the real pilot with -jobs `sleep` jobs, waits until every job runs, then
// times, one after the other (after a warm-up):
//
//   - the status round trip: GET /v1/status through the control client, and
//     the whole `pilot status` command (a process start included), as an
//     operator or `docker exec` runs it;
//   - reload to applied: `POST /v1/reload` of the unchanged config, which
//     answers once the generation is applied;
//   - the health round trip: GET /v1/health through the client, and the
//     whole `pilot health` command, as Docker's HEALTHCHECK runs it.
//
// It reports p50, p90, p99 and max of each. Targets: status p50 ≤ 5 ms,
// reload of an unchanged config p50 ≤ 20 ms, with 50 jobs. With -pm2 (a
// pm2 binary), it also times `pm2 jlist` on a pm2 daemon holding the same
// jobs, the peer's way to read the same table, for a ratio.
//
//	go run ./test/bench/control                  # builds ./cmd/pilot
//	go run ./test/bench/control -jobs 50 -n 500 -strict -pm2 test/bench/.cache/node_modules/.bin/pm2
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/nodepilot/pilot/pilot/control"
	"github.com/nodepilot/pilot/test/bench/benchkit"
)

const (
	targetStatusP50 = 5 * time.Millisecond
	targetReloadP50 = 20 * time.Millisecond
)

func main() { os.Exit(run()) }

type result struct {
	what                string
	n                   int
	p50, p90, p99, maxv float64
	samples             []float64
}

func measure(what string, n, warmup int, f func() error) (result, error) {
	for range warmup {
		if err := f(); err != nil {
			return result{}, fmt.Errorf("%s: %v", what, err)
		}
	}
	samples := make([]float64, 0, n)
	for range n {
		start := time.Now()
		if err := f(); err != nil {
			return result{}, fmt.Errorf("%s: %v", what, err)
		}
		samples = append(samples, float64(time.Since(start))/float64(time.Millisecond))
	}
	sorted := slices.Clone(samples)
	slices.Sort(sorted)
	return result{what: what, n: n, p50: benchkit.Rank(sorted, .5), p90: benchkit.Rank(sorted, .9),
		p99: benchkit.Rank(sorted, .99), maxv: sorted[len(sorted)-1], samples: samples}, nil
}

func run() int {
	common := benchkit.CommonFlags()
	nJobs := flag.Int("jobs", 50, "sleep jobs under pilot")
	n := flag.Int("n", 300, "requests measured per measure")
	nCLI := flag.Int("cli-n", 100, "`pilot status` commands measured")
	warmup := flag.Int("warmup", 20, "requests before measuring")
	pm2 := flag.String("pm2", "", "a pm2 binary: also time `pm2 jlist` with the same jobs")
	flag.Parse()
	fail := benchkit.Failer("control")

	dir, err := os.MkdirTemp("", "pilot-bench-control-")
	if err != nil {
		return fail("%v", err)
	}
	defer os.RemoveAll(dir)
	bin, err := benchkit.BuildPilot(dir, *common.Pilot)
	if err != nil {
		return fail("%v", err)
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "log: {level: warn}\njobs:\n")
	for i := range *nJobs {
		fmt.Fprintf(&cfg, "  - name: job%03d\n    exec: [\"sleep\", \"3600\"]\n", i)
	}
	env := &benchkit.Env{Dir: dir, Pilot: bin}
	pilot, err := env.StartPilot(cfg.String())
	if err != nil {
		return fail("%v", err)
	}
	defer pilot.Stop()
	client := control.NewClient(pilot.Socket, 5*time.Second)
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := client.Status(ctx)
		running := 0
		for _, j := range st.Jobs {
			if j.Pid != 0 {
				running++
			}
		}
		if err == nil && running == *nJobs {
			break
		}
		if time.Now().After(deadline) {
			return fail("not every job running within 30s (last error %v); pilot log:\n%s", err, pilot.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}

	var results []result
	add := func(r result, err error) bool {
		if err != nil {
			fail("%v", err)
			return false
		}
		results = append(results, r)
		return true
	}
	if !add(measure("GET /v1/status (client)", *n, *warmup, func() error { _, err := client.Status(ctx); return err })) {
		return 2
	}
	if !add(measure("`pilot status` (command)", *nCLI, 5, func() error {
		return exec.Command(bin, "status", "--socket", pilot.Socket).Run()
	})) {
		return 2
	}
	if !add(measure("reload, unchanged config", *n, *warmup, func() error {
		res, err := client.Reload(ctx)
		if err == nil && res != nil && res.Unchanged != *nJobs {
			err = fmt.Errorf("reload changed something: %+v", res)
		}
		return err
	})) {
		return 2
	}
	healthy := func(r control.HealthReport, err error) error {
		if err == nil && !r.Healthy {
			err = fmt.Errorf("not healthy: %s", r.Reason)
		}
		return err
	}
	if !add(measure("GET /v1/health (client)", *n, *warmup, func() error { return healthy(client.Health(ctx)) })) {
		return 2
	}
	if !add(measure("`pilot health` (command)", *nCLI, 5, func() error {
		return exec.Command(bin, "health", "--socket", pilot.Socket).Run()
	})) {
		return 2
	}
	if *pm2 != "" {
		r, err := measurePM2(*pm2, dir, *nJobs, *nCLI)
		if !add(r, err) {
			return 2
		}
	}

	fmt.Printf("| measure (%d jobs) | n | p50 | p90 | p99 | max |\n|---|---|---|---|---|---|\n", *nJobs)
	for _, r := range results {
		fmt.Printf("| %s | %d | %.2f ms | %.2f ms | %.2f ms | %.2f ms |\n", r.what, r.n, r.p50, r.p90, r.p99, r.maxv)
	}
	if *pm2 != "" {
		fmt.Printf("ratio `pilot status` / `pm2 jlist` p50: %.3f\n", results[1].p50/results[len(results)-1].p50)
	}
	ok := true
	check := func(r result, target time.Duration) {
		pass := r.p50 <= float64(target)/float64(time.Millisecond)
		ok = ok && pass
		verdict := map[bool]string{true: "PASS", false: "FAIL"}[pass]
		fmt.Printf("%s %s p50 %.2f ms ≤ %v with %d jobs\n", verdict, r.what, r.p50, target, *nJobs)
	}
	check(results[0], targetStatusP50)
	check(results[2], targetReloadP50)
	raw := map[string]any{"jobs": *nJobs, "cpus": runtime.NumCPU(), "go": runtime.Version()}
	for _, r := range results {
		raw[r.what] = map[string]any{"n": r.n, "p50ms": r.p50, "p90ms": r.p90, "p99ms": r.p99, "samplesMs": r.samples}
	}
	benchkit.WriteResults(*common.Results, "control", raw)
	if !ok && *common.Strict {
		return 1
	}
	return 0
}

// measurePM2 starts a pm2 daemon (its own PM2_HOME) with jobs `sleep`
// processes and times `pm2 jlist`, pm2's machine-readable process table.
func measurePM2(pm2, dir string, jobs, n int) (result, error) {
	home := filepath.Join(dir, "pm2")
	apps := make([]map[string]any, jobs)
	for i := range apps {
		apps[i] = map[string]any{"name": fmt.Sprintf("job%03d", i), "script": "/bin/sleep", "args": "3600",
			"interpreter": "none", "autorestart": false}
	}
	eco := filepath.Join(dir, "ecosystem.json")
	b, _ := json.Marshal(map[string]any{"apps": apps})
	if err := os.WriteFile(eco, b, 0o644); err != nil {
		return result{}, err
	}
	cmd := func(args ...string) *exec.Cmd {
		c := exec.Command(pm2, args...)
		c.Env = append(os.Environ(), "PM2_HOME="+home)
		return c
	}
	if out, err := cmd("start", eco).CombinedOutput(); err != nil {
		return result{}, fmt.Errorf("pm2 start: %v\n%s", err, out)
	}
	defer cmd("kill").Run()
	return measure("`pm2 jlist` (peer, command)", n, 3, func() error { return cmd("jlist").Run() })
}
