// Command metrics measures how long pilot takes to answer GET /metrics with
// many jobs: it starts the real pilot with -jobs `sleep` jobs (half of them
// with an exec health check, so every collector has series) and telemetry
// on a free loopback port, waits until every job runs, then GETs /metrics
// -n times one after the other (after a warm-up) and reports p50, p90, p99
// and max, the body size and the series count. Target: p50 ≤ 5 ms with 50
// jobs.
//
//	go run ./test/bench/metrics                  # builds ./cmd/pilot
//	go run ./test/bench/metrics -jobs 200 -n 1000 -strict
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/nodepilot/pilot/test/bench/benchkit"
	"github.com/nodepilot/pilot/test/consulagent"
)

const targetP50 = 5 * time.Millisecond

func main() { os.Exit(run()) }

func run() int {
	common := benchkit.CommonFlags()
	nJobs := flag.Int("jobs", 50, "sleep jobs under pilot")
	n := flag.Int("n", 200, "GET /metrics requests measured")
	warmup := flag.Int("warmup", 20, "requests before measuring")
	flag.Parse()
	fail := benchkit.Failer("metrics")

	dir, err := os.MkdirTemp("", "pilot-bench-metrics-")
	if err != nil {
		return fail("%v", err)
	}
	defer os.RemoveAll(dir)
	bin, err := benchkit.BuildPilot(dir, *common.Pilot)
	if err != nil {
		return fail("%v", err)
	}
	ports, err := consulagent.FreePorts(1)
	if err != nil {
		return fail("%v", err)
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", ports[0])

	var cfg strings.Builder
	fmt.Fprintf(&cfg, "telemetry: {listen: \"127.0.0.1:%d\"}\nlog: {level: warn}\njobs:\n", ports[0])
	for i := range *nJobs {
		fmt.Fprintf(&cfg, "  - name: job%03d\n    exec: [\"sleep\", \"3600\"]\n", i)
		if i%2 == 0 {
			fmt.Fprintf(&cfg, "    health: {exec: [\"true\"], interval: 5s}\n")
		}
	}
	env := &benchkit.Env{Dir: dir, Pilot: bin} // no Consul: not env.Close
	pilot, err := env.StartPilot(cfg.String())
	if err != nil {
		return fail("%v", err)
	}
	defer pilot.Stop()

	client := &http.Client{Timeout: 5 * time.Second}
	get := func() (string, time.Duration, error) {
		start := time.Now()
		resp, err := client.Get(base + "/metrics")
		if err != nil {
			return "", 0, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		took := time.Since(start)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("GET /metrics: %s", resp.Status)
		}
		return string(b), took, err
	}

	// Wait (with a deadline) until every job's process runs.
	var body string
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _, err := get()
		if err == nil && strings.Count(b, "pilot_process_resident_memory_bytes{") == *nJobs {
			body = b
			break
		}
		if time.Now().After(deadline) {
			return fail("not every job running within 30s (last error %v); pilot log:\n%s", err, pilot.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	series := 0
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if l := sc.Text(); l != "" && !strings.HasPrefix(l, "#") {
			series++
		}
	}

	for range *warmup {
		if _, _, err := get(); err != nil {
			return fail("%v", err)
		}
	}
	samples := make([]float64, 0, *n)
	for range *n {
		_, took, err := get()
		if err != nil {
			return fail("%v", err)
		}
		samples = append(samples, float64(took)/float64(time.Millisecond))
	}
	sorted := slices.Clone(samples)
	slices.Sort(sorted)
	p50, p90, p99 := benchkit.Rank(sorted, .5), benchkit.Rank(sorted, .9), benchkit.Rank(sorted, .99)
	fmt.Printf("| jobs | requests | body | series | p50 | p90 | p99 | max |\n|---|---|---|---|---|---|---|---|\n")
	fmt.Printf("| %d | %d | %.1f KiB | %d | %.2f ms | %.2f ms | %.2f ms | %.2f ms |\n",
		*nJobs, *n, float64(len(body))/1024, series, p50, p90, p99, sorted[len(sorted)-1])
	ok := p50 <= float64(targetP50)/float64(time.Millisecond)
	verdict := "PASS"
	if !ok {
		verdict = "FAIL"
	}
	fmt.Printf("%s /metrics p50 %.2f ms ≤ %v with %d jobs\n", verdict, p50, targetP50, *nJobs)
	benchkit.WriteResults(*common.Results, "metrics", map[string]any{
		"jobs": *nJobs, "requests": *n, "bodyBytes": len(body), "series": series,
		"p50ms": p50, "p90ms": p90, "p99ms": p99, "samplesMs": samples,
		"cpus": runtime.NumCPU(), "go": runtime.Version(),
	})
	if !ok && *common.Strict {
		return 1
	}
	return 0
}
