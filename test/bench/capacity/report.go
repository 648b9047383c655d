package main

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
)

// printTables writes the Markdown tables: each figure is the median over
// the runs (the JSON has every run's).
func printTables(out io.Writer, s *settings, runs []*runResult) {
	med := func(f func(*runResult) float64) float64 {
		v := make([]float64, 0, len(runs))
		for _, r := range runs {
			v = append(v, f(r))
		}
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	of := "one run"
	if len(runs) > 1 {
		of = fmt.Sprintf("medians of %d runs", len(runs))
	}
	streaming := "on (Consul's default)"
	if !s.streaming {
		streaming = "off"
	}
	fmt.Fprintf(out, "Capacity: %d pilots, each with its app, a health check (HTTP, 1 s) and a registration (TTL 3 s: a heartbeat a second), half through each of 2 client agents of a 3-server Consul %s cluster; streaming backend %s; %d CPUs; %s.\n\n",
		s.n, consulVersion, streaming, runtime.NumCPU(), of)

	st := func(f func(*startResult) float64) float64 {
		return med(func(r *runResult) float64 { return f(&r.Start) })
	}
	fmt.Fprintln(out, "| start (all pilots exec'd at once) | |")
	fmt.Fprintln(out, "|---|---|")
	fmt.Fprintf(out, "| exec of all %d pilots | %.0f ms |\n", s.n, st(func(x *startResult) float64 { return x.ExecAllMs }))
	fmt.Fprintf(out, "| first instance passing in Consul | %.2f s |\n", st(func(x *startResult) float64 { return x.FirstS }))
	fmt.Fprintf(out, "| half passing | %.2f s |\n", st(func(x *startResult) float64 { return x.HalfS }))
	fmt.Fprintf(out, "| 90 %% passing | %.2f s |\n", st(func(x *startResult) float64 { return x.P90S }))
	fmt.Fprintf(out, "| **all %d passing** | **%.2f s** |\n", s.n, st(func(x *startResult) float64 { return x.AllS }))
	fmt.Fprintf(out, "| distinct default service ids | %.0f of %d |\n", st(func(x *startResult) float64 { return float64(x.DistinctID) }), s.n)
	fmt.Fprintf(out, "| ?passing answer with all %d (JSON) | %.0f KiB |\n\n", s.n, st(func(x *startResult) float64 { return float64(x.AnswerBytes) / 1024 }))

	steady := runs[0].Windows[0].Name
	win := func(r *runResult, name string) *window {
		for _, w := range r.Windows {
			if w.Name == name {
				return w
			}
		}
		return &window{}
	}
	wm := func(name string, f func(*window) float64) float64 {
		return med(func(r *runResult) float64 { return f(win(r, name)) })
	}
	n := float64(s.n)
	watched := runs[0].Windows[1].Name
	fmt.Fprintf(out, "Steady state, requests at the client agents by endpoint, per second: all, and per pilot (%s over %s; then with watches: %s):\n\n", steady, s.steady, watched)
	fmt.Fprintln(out, "| endpoint | no watches: all | per pilot | with watches: all | per pilot |")
	fmt.Fprintln(out, "|---|---|---|---|---|")
	var endpoints []string
	for _, r := range runs {
		for _, name := range []string{steady, watched} {
			for k := range win(r, name).HTTP {
				if !slices.Contains(endpoints, k) {
					endpoints = append(endpoints, k)
				}
			}
		}
	}
	slices.Sort(endpoints)
	for _, e := range endpoints {
		v0 := wm(steady, func(w *window) float64 { return w.HTTP[e] })
		v1 := wm(watched, func(w *window) float64 { return w.HTTP[e] })
		if v0 < 0.005 && v1 < 0.005 {
			continue
		}
		note := ""
		if strings.HasSuffix(e, "v1_agent_metrics") {
			note = " (this benchmark's sampling)"
		}
		fmt.Fprintf(out, "| %s%s | %.2f | %.4f | %.2f | %.4f |\n", e, note, v0, v0/n, v1, v1/n)
	}
	pr := func(name string) float64 { return wm(name, func(w *window) float64 { return w.PilotRequests }) }
	rpc := func(name string) float64 { return wm(name, func(w *window) float64 { return w.ClientRPC }) }
	fmt.Fprintf(out, "| **pilot's requests, all but its watch** | | **%.3f** | | **%.3f** |\n", pr(steady), pr(watched))
	fmt.Fprintf(out, "| client agents → servers (RPC) | %.2f | %.4f | %.2f | %.4f |\n\n", rpc(steady), rpc(steady)/n, rpc(watched), rpc(watched)/n)

	mem := func(f func(*memory) float64) float64 { return med(func(r *runResult) float64 { return f(&r.Memory) }) }
	fmt.Fprintln(out, "| steady state, per process | CPU ms/s | RSS MiB | PSS MiB |")
	fmt.Fprintln(out, "|---|---|---|---|")
	agentRow := func(label string, pick func(w *window) []agentUse) {
		fmt.Fprintf(out, "| %s | %.1f | %.0f | |\n", label,
			wm(steady, func(w *window) float64 { return mean(pick(w), func(a agentUse) float64 { return a.CPU }) }),
			wm(steady, func(w *window) float64 { return mean(pick(w), func(a agentUse) float64 { return a.RSSMiB }) }))
	}
	agentRow("Consul server, leader", leaders)
	agentRow("Consul server, follower (mean of 2)", followers)
	agentRow("Consul client agent (mean of 2)", clientAgents)
	fmt.Fprintf(out, "| pilot, per instance | %.2f | %.1f | %.1f |\n", wm(steady, func(w *window) float64 { return w.PilotCPU }),
		mem(func(m *memory) float64 { return m.PilotRSS }), mem(func(m *memory) float64 { return m.PilotPSS }))
	fmt.Fprintf(out, "| app, per instance (for reference) | %.2f | %.1f | %.1f |\n", wm(steady, func(w *window) float64 { return w.AppCPU }),
		mem(func(m *memory) float64 { return m.AppRSS }), mem(func(m *memory) float64 { return m.AppPSS }))
	fmt.Fprintf(out, "| this benchmark (sampling) | %.1f | | |\n\n", wm(steady, func(w *window) float64 { return w.BenchCPU }))

	fmt.Fprintf(out, "Every window (%s each, churn %.0f changes/s; steady %s). Requests and CPU are rates over the window; CPU in ms per s (1000 = a core). \"RPC\" is consul_rpc_request on the servers; health queries are /v1/health/service/ at the client agents: pilot's blocking watches, or the emulated ContainerPilot pollers (%d, one per instance).\n\n",
		s.churn, s.rate, s.steady, s.n)
	fmt.Fprintln(out, "| window | health queries/s (per watcher) | client→server RPC/s | servers' RPC/s: leader, followers | CPU: leader, followers (mean), clients (mean) | pilot CPU/instance | change → seen p50 / mean / p99 / max | machine busy |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|---|---|")
	for _, w := range runs[0].Windows {
		name := w.Name
		f := func(g func(*window) float64) float64 { return wm(name, g) }
		lat := ""
		if w.Latency != nil {
			lat = fmt.Sprintf("%.0f / %.0f / %.0f / %.0f ms", f(func(w *window) float64 { return w.Latency.P50 }), f(func(w *window) float64 { return w.Latency.Mean }),
				f(func(w *window) float64 { return w.Latency.P99 }), f(func(w *window) float64 { return w.Latency.Max }))
			if m := f(func(w *window) float64 { return float64(w.Latency.Missed) }); m > 0 {
				lat += fmt.Sprintf(" (%.0f not seen)", m)
			}
		}
		perWatcher := ""
		if w.Watchers > 0 {
			perWatcher = fmt.Sprintf(" (%.2f)", f(func(w *window) float64 { return w.HealthQueries / float64(w.Watchers) }))
		}
		fmt.Fprintf(out, "| %s | %.1f%s | %.1f | %.1f, %.1f | %.0f, %.0f, %.0f | %.2f | %s | %.0f %% |\n", name,
			f(func(w *window) float64 { return w.HealthQueries }), perWatcher, f(func(w *window) float64 { return w.ClientRPC }),
			f(func(w *window) float64 { return sum(leaders(w), func(a agentUse) float64 { return a.RPC }) }),
			f(func(w *window) float64 { return sum(followers(w), func(a agentUse) float64 { return a.RPC }) }),
			f(func(w *window) float64 { return mean(leaders(w), func(a agentUse) float64 { return a.CPU }) }),
			f(func(w *window) float64 { return mean(followers(w), func(a agentUse) float64 { return a.CPU }) }),
			f(func(w *window) float64 { return mean(clientAgents(w), func(a agentUse) float64 { return a.CPU }) }),
			f(func(w *window) float64 { return w.PilotCPU }), lat, f(func(w *window) float64 { return w.BusyPct }))
	}
	var loads []string
	for _, r := range runs {
		loads = append(loads, r.LoadAvg[0]+" → "+r.LoadAvg[1])
	}
	fmt.Fprintf(out, "\nLoad average (1, 5, 15 min) before → after each run: %s. Streams: the servers opened %s streaming subscriptions in the steady window.\n",
		strings.Join(loads, "; "), fmt.Sprint(wm(steady, func(w *window) float64 { return sum(w.Agents, func(a agentUse) float64 { return a.Streams }) })))
}

// consulVersion is the pinned Consul the cluster runs (test/consulagent).
const consulVersion = "v1.22.3"

func leaders(w *window) []agentUse {
	return filter(w.Agents, func(a agentUse) bool { return a.Server && a.Leader })
}

func followers(w *window) []agentUse {
	return filter(w.Agents, func(a agentUse) bool { return a.Server && !a.Leader })
}

func clientAgents(w *window) []agentUse {
	return filter(w.Agents, func(a agentUse) bool { return !a.Server })
}

func filter(as []agentUse, keep func(agentUse) bool) []agentUse {
	var out []agentUse
	for _, a := range as {
		if keep(a) {
			out = append(out, a)
		}
	}
	return out
}

func sum(as []agentUse, f func(agentUse) float64) float64 {
	var t float64
	for _, a := range as {
		t += f(a)
	}
	return t
}

func mean(as []agentUse, f func(agentUse) float64) float64 {
	if len(as) == 0 {
		return 0
	}
	return sum(as, f) / float64(len(as))
}
