package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nodepilot/pilot/test/bench/benchkit"
)

// agentRef is one Consul agent of the cluster, as the sampler sees it.
type agentRef struct {
	name   string
	server bool
	base   string // http://IP:PORT
	pid    int
}

// sample is one moment: every agent's Prometheus counters and the CPU
// ticks of every process the benchmark watches.
type sample struct {
	at      time.Time
	metrics map[string]map[string]float64 // agent name → series (name{labels}) → value
	ticks   map[int]int64                 // pid → utime+stime
}

// series are the Prometheus series kept from /v1/agent/metrics; the
// rest of the page is dropped.
var series = []string{
	"consul_api_http_count{", // HTTP requests answered, by method and path pattern (client agents)
	"consul_client_rpc ",     // RPCs a client agent sent to the servers
	"consul_rpc_request ",    // RPCs a server handled (forwarded ones included)
	"consul_rpc_query ",      // blocking RPC queries a server started
	"consul_raft_apply ",     // Raft log entries applied (the leader's writes)
	"consul_grpc_server_stream_count{server_type=\"internal\"}", // streaming subscriptions opened on a server
}

func keep(line string) bool {
	for _, p := range series {
		if strings.HasPrefix(line, p) {
			return true
		}
	}
	return false
}

// scrape reads an agent's counters (telemetry.prometheus_retention_time
// must be set, which the benchmark's cluster does).
func scrape(ctx context.Context, client *http.Client, base string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/agent/metrics?format=prometheus", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return nil, fmt.Errorf("%s/v1/agent/metrics: %s %s", base, resp.Status, b)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !keep(line) {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] += v
		}
	}
	return out, sc.Err()
}

// take samples every agent's counters and the ticks of pids.
func take(ctx context.Context, client *http.Client, agents []agentRef, pids []int) (*sample, error) {
	s := &sample{at: time.Now(), metrics: map[string]map[string]float64{}, ticks: map[int]int64{}}
	for _, p := range pids {
		if t, err := benchkit.CPUTicks(p); err == nil {
			s.ticks[p] = t
		}
	}
	for _, a := range agents {
		m, err := scrape(ctx, client, a.base)
		if err != nil {
			return nil, err
		}
		s.metrics[a.name] = m
	}
	return s, nil
}

// rate is the per-second increase of series of agent between a and b.
func rate(a, b *sample, agent, series string) float64 {
	return (b.metrics[agent][series] - a.metrics[agent][series]) / b.at.Sub(a.at).Seconds()
}

// cpu is the CPU the processes pids used between a and b, in ms per
// second of wall time (1000 = one core), over the pids present in both.
func cpu(a, b *sample, pids []int) float64 {
	var d int64
	for _, p := range pids {
		t0, ok0 := a.ticks[p]
		t1, ok1 := b.ticks[p]
		if ok0 && ok1 {
			d += t1 - t0
		}
	}
	return float64(d) * 10 / b.at.Sub(a.at).Seconds() // a tick is 10 ms
}

// httpRates sums the client agents' HTTP requests per second by
// "METHOD path-pattern" (Consul's own labels, e.g. "PUT
// v1_agent_check_update_").
func httpRates(a, b *sample, clients []agentRef) map[string]float64 {
	out := map[string]float64{}
	for _, c := range clients {
		for k := range b.metrics[c.name] {
			rest, ok := strings.CutPrefix(k, "consul_api_http_count{")
			if !ok {
				continue
			}
			labels := parseLabels(strings.TrimSuffix(rest, "}"))
			if labels["path"] == "" {
				continue
			}
			out[labels["method"]+" "+labels["path"]] += rate(a, b, c.name, k)
		}
	}
	return out
}

func parseLabels(s string) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if ok {
			out[k] = strings.Trim(v, `"`)
		}
	}
	return out
}

// loadavg is /proc/loadavg's first three fields.
func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// renice sets the nice value of every thread of pid (Linux's setpriority
// acts on one thread; threads created later inherit their creator's).
func renice(pid, nice int) error {
	if nice == 0 {
		return nil
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice); err != nil {
			return fmt.Errorf("setpriority(%d, %d): %w", tid, nice, err)
		}
	}
	return nil
}
