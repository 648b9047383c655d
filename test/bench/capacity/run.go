package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nodepilot/pilot/pilot/control"
	"github.com/nodepilot/pilot/test/bench/benchkit"
	"github.com/nodepilot/pilot/test/consulagent"
	"github.com/nodepilot/pilot/test/consulcluster"
)

// runResult is one whole run.
type runResult struct {
	Start   startResult          `json:"start"`
	Memory  memory               `json:"memory"` // at the end of the steady window
	Windows []*window            `json:"windows"`
	LoadAvg [2]string            `json:"loadavg"`         // /proc/loadavg before and after
	Changes map[string][]*change `json:"changes"`         // by window name
	Error   string               `json:"error,omitempty"` // what ended the run early
}

type startResult struct {
	ExecAllMs   float64        `json:"exec_all_ms"` // from the first exec to the last one's return
	FirstS      float64        `json:"first_s"`     // first instance passing
	HalfS       float64        `json:"half_s"`
	P90S        float64        `json:"p90_s"`
	AllS        float64        `json:"all_s"`        // all N passing
	Curve       [][2]float64   `json:"curve"`        // (s, passing) as polled
	ByNode      map[string]int `json:"by_node"`      // instances per client agent
	AnswerBytes int            `json:"answer_bytes"` // /v1/health/service/web?passing with all N, uncompressed
	DistinctID  int            `json:"distinct_ids"` // service ids among the N
}

// memory is per instance, in MiB, summed over the fleet and divided.
type memory struct {
	PilotRSS float64 `json:"pilot_rss_mib"`
	PilotPSS float64 `json:"pilot_pss_mib"`
	AppRSS   float64 `json:"app_rss_mib"`
	AppPSS   float64 `json:"app_pss_mib"`
}

// window is one measured stretch of time.
type window struct {
	Name          string  `json:"name"`
	Watches       string  `json:"watches"`            // none | blocking | polling
	Mode          string  `json:"mode,omitempty"`     // the blocking watches' consistency
	Interval      string  `json:"interval,omitempty"` // the pollers'
	Watchers      int     `json:"watchers"`           // pilots with a watch on web, or pollers
	Churn         bool    `json:"churn"`
	Seconds       float64 `json:"seconds"`
	Leader        string  `json:"leader"`
	LeaderChanged bool    `json:"leader_changed,omitempty"`
	BusyPct       float64 `json:"busy_pct"`
	LoadAvg       string  `json:"loadavg"`

	HTTP          map[string]float64 `json:"http_per_s"`            // client agents, by endpoint
	PilotRequests float64            `json:"pilot_req_per_pilot_s"` // pilot's own (not health queries)
	HealthQueries float64            `json:"health_queries_per_s"`  // /v1/health/service/ (watches or pollers)
	ClientRPC     float64            `json:"client_rpc_per_s"`      // client agents → servers
	Agents        []agentUse         `json:"agents"`
	PilotCPU      float64            `json:"pilot_cpu_ms_per_s"` // per pilot
	AppCPU        float64            `json:"app_cpu_ms_per_s"`   // per app
	WatcherCPU    float64            `json:"watcher_cpu_ms_per_s,omitempty"`
	BenchCPU      float64            `json:"bench_cpu_ms_per_s"` // this process (churn driver, pollers, sampling)

	Changes      int      `json:"changes,omitempty"`
	ChangeErrors int      `json:"change_errors,omitempty"`
	ChangeRate   float64  `json:"changes_per_s,omitempty"`
	RecoveryS    float64  `json:"recovery_s,omitempty"` // after the window, until all N passed again
	Latency      *latency `json:"latency,omitempty"`
}

type agentUse struct {
	Name      string  `json:"name"`
	Server    bool    `json:"server"`
	Leader    bool    `json:"leader,omitempty"`
	CPU       float64 `json:"cpu_ms_per_s"`
	RSSMiB    float64 `json:"rss_mib"`
	RPC       float64 `json:"rpc_per_s,omitempty"`         // servers: consul_rpc_request
	Queries   float64 `json:"rpc_queries_per_s,omitempty"` // servers: consul_rpc_query
	RaftApply float64 `json:"raft_apply_per_s,omitempty"`
	Streams   float64 `json:"streams_opened,omitempty"` // servers: streaming subscriptions opened in the window
	HTTP      float64 `json:"http_per_s,omitempty"`
}

// latency is change → seen, in ms: the watcher's file, or every (poller,
// change) pair.
type latency struct {
	Source string  `json:"source"`
	N      int     `json:"n"`
	Missed int     `json:"missed"`
	Mean   float64 `json:"mean_ms"`
	P50    float64 `json:"p50_ms"`
	P90    float64 `json:"p90_ms"`
	P99    float64 `json:"p99_ms"`
	Max    float64 `json:"max_ms"`
}

func newLatency(source string, v []float64, missed int) *latency {
	l := &latency{Source: source, N: len(v) + missed, Missed: missed}
	if len(v) == 0 {
		return l
	}
	slices.Sort(v)
	var sum float64
	for _, x := range v {
		sum += x
	}
	l.Mean = sum / float64(len(v))
	l.P50, l.P90, l.P99, l.Max = benchkit.Rank(v, .5), benchkit.Rank(v, .9), benchkit.Rank(v, .99), v[len(v)-1]
	return l
}

// runner holds one run's cluster, fleet and samplers.
type runner struct {
	s       *settings
	dir     string
	app     string
	pilot   string
	cluster *consulcluster.Cluster
	agents  []agentRef
	clients []agentRef
	fleet   []*instance
	regs    []registration
	watcher *benchkit.Pilot
	http    *http.Client
	res     *runResult
	t0      time.Time // the run's start, for progress lines
}

// progress tells stderr how far the run is.
func (r *runner) progress(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "  %6.1fs  %s (load %s)\n", time.Since(r.t0).Seconds(), fmt.Sprintf(format, a...), loadavg())
}

// clusterHCL is the agents' extra configuration: Prometheus counters
// kept (so that requests can be counted by endpoint), the per-client
// connection limit (every pilot here connects from 127.0.0.1, where each
// would have its own address in a container), and the streaming backend.
func clusterHCL(s *settings) string {
	hcl := fmt.Sprintf(`telemetry { prometheus_retention_time = "24h" disable_hostname = true }
limits { http_max_conns_per_client = %d }`, s.maxConns)
	if !s.streaming {
		hcl += "\nuse_streaming_backend = false"
	}
	if s.hcl != "" {
		hcl += "\n" + s.hcl
	}
	return hcl
}

// runOnce makes one run. Its result is never nil: after an error it holds
// what was measured before.
func runOnce(ctx context.Context, s *settings, dir, pilotBin, app, renders string, events <-chan benchkit.FileEvent) (*runResult, error) {
	r := &runner{s: s, dir: dir, app: app, pilot: pilotBin, http: &http.Client{Timeout: 30 * time.Second},
		res: &runResult{Changes: map[string][]*change{}}}
	err := r.run(ctx, renders, events)
	return r.res, err
}

func (r *runner) run(ctx context.Context, renders string, events <-chan benchkit.FileEvent) (err error) {
	s := r.s
	if err := os.Mkdir(r.dir, 0o755); err != nil {
		return err
	}
	r.res.LoadAvg[0] = loadavg()
	r.t0 = time.Now()
	r.cluster, err = consulcluster.Start(ctx, consulcluster.Options{Clients: s.clients, HCL: clusterHCL(s)})
	if err != nil {
		return fmt.Errorf("consul cluster: %w", err)
	}
	r.progress("cluster up")
	defer r.cluster.Stop()
	for _, a := range r.cluster.Agents() {
		if err := renice(a.Pid(), s.agentNice); err != nil {
			return fmt.Errorf("-agent-nice: %s: %w", a.Name, err)
		}
		ref := agentRef{name: a.Name, server: a.Server, base: "http://" + a.HTTPAddr(), pid: a.Pid()}
		r.agents = append(r.agents, ref)
		if !a.Server {
			r.clients = append(r.clients, ref)
		}
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w\n%s", err, r.cluster.LogTails(1500))
		}
	}()

	defer func() { stopAll(r.fleet) }()
	if err := r.start(ctx); err != nil {
		return err
	}

	// Steady state without watches: what registration alone costs.
	if err := sleep(ctx, s.settle); err != nil {
		return err
	}
	if err := r.measure(ctx, &window{Name: "steady: no watches", Watches: "none"}, s.steady, nil); err != nil {
		return err
	}
	r.res.Memory = r.memory()

	// Then every pilot watches `web`, in pilot's default mode, and so does
	// the watcher.
	if err := reloadAll(ctx, r.app, r.fleet, s.watchers, fleetWatch("")); err != nil {
		return err
	}
	defer func() {
		if r.watcher != nil {
			r.watcher.Stop()
		}
	}()
	if err := r.startWatcher(ctx, renders); err != nil {
		return err
	}
	if err := sleep(ctx, s.settle); err != nil {
		return err
	}
	if err := r.measure(ctx, &window{Name: fmt.Sprintf("steady: %d blocking watches, pilot's default consistency", s.watchers+1), Watches: "blocking", Mode: "(default)", Watchers: s.watchers + 1}, s.steady, nil); err != nil {
		return err
	}

	// Churn, per consistency mode: the fleet's and the watcher's watches.
	files := &fileVersions{}
	fctx, fstop := context.WithCancel(ctx)
	defer fstop()
	go files.follow(fctx, filepath.Join(renders, "backend.conf"), events)
	for _, mode := range s.modes {
		if err := r.reloadWatches(ctx, mode, renders); err != nil {
			return err
		}
		w := &window{Name: fmt.Sprintf("churn: %d blocking watches, %s", s.watchers+1, mode), Watches: "blocking", Mode: mode, Churn: true, Watchers: s.watchers + 1}
		changes, err := r.churnWindow(ctx, w, nil)
		if err != nil {
			return err
		}
		files.seen(changes, r.regs, r.hold())
		var v []float64
		missed := 0
		for _, ch := range changes {
			switch {
			case ch.Err != "":
			case ch.FileMs >= 0:
				v = append(v, ch.FileMs)
			default:
				missed++
			}
		}
		w.Latency = newLatency("watcher pilot's rendered file", v, missed)
	}
	fstop()
	r.watcher.Stop()
	r.watcher = nil

	// Baseline: no watches at all, under churn.
	if err := reloadAll(ctx, r.app, r.fleet, 0, watchSpec{}); err != nil {
		return err
	}
	if err := sleep(ctx, s.settle); err != nil {
		return err
	}
	if _, err := r.churnWindow(ctx, &window{Name: "churn: no watches", Watches: "none", Churn: true}, nil); err != nil {
		return err
	}

	// ContainerPilot's design: one poller per instance.
	ids := map[string]int{}
	for i, reg := range r.regs {
		ids[reg.ID] = i
	}
	for _, iv := range s.pollIntervals {
		pollers := make([]*poller, s.watchers)
		for i, in := range r.fleet[:s.watchers] {
			pollers[i] = newPoller("http://"+in.agent, iv, ids)
		}
		ps := startPollers(ctx, pollers)
		err := sleep(ctx, iv+s.settle)
		if err == nil {
			err = r.measure(ctx, &window{Name: fmt.Sprintf("idle: %d pollers every %s", s.watchers, iv), Watches: "polling", Interval: iv.String(), Watchers: s.watchers}, s.churn, nil)
		}
		var w *window
		if err == nil {
			w = &window{Name: fmt.Sprintf("churn: %d pollers every %s", s.watchers, iv), Watches: "polling", Interval: iv.String(), Churn: true, Watchers: s.watchers}
			_, err = r.churnWindow(ctx, w, ps)
		}
		ps.stop()
		if err != nil {
			return err
		}
	}
	r.res.LoadAvg[1] = loadavg()
	return nil
}

// hold is how long an instance stays in maintenance: longer than two of
// the longest polling interval, so that every poller sees each change.
func (r *runner) hold() time.Duration {
	h := 4 * time.Second
	for _, iv := range r.s.pollIntervals {
		h = max(h, 2*iv+time.Second)
	}
	return h
}

// start starts the fleet and polls a server, from just before the first
// exec, until all N pass.
func (r *runner) start(ctx context.Context) error {
	var addrs []string
	for _, c := range r.clients {
		addrs = append(addrs, strings.TrimPrefix(c.base, "http://"))
	}
	st := &r.res.Start
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	polled := make(chan error, 1)
	fleet, execAll, err := startFleet(r.dir, r.pilot, r.app, r.s.n, r.s.startRate, addrs, watchSpec{none: true},
		func(t0 time.Time) { go func() { polled <- r.pollStart(pctx, t0) }() })
	if err != nil {
		return err
	}
	r.fleet = fleet
	st.ExecAllMs = ms(execAll)
	r.progress("all %d pilots exec'd, in %.1f s", r.s.n, execAll.Seconds())
	if err := <-polled; err != nil {
		return fmt.Errorf("%w; a pilot's log:\n%s", err, consulagent.Tail(r.fleet[0].pilot.Log(), 3000))
	}
	return nil
}

// pollStart polls a server's ?passing every 200 ms from t0 until all N
// pass, filling the start result.
func (r *runner) pollStart(ctx context.Context, t0 time.Time) error {
	st := &r.res.Start
	marks := []struct {
		of  int
		out *float64
	}{{1, &st.FirstS}, {(r.s.n + 1) / 2, &st.HalfS}, {(r.s.n*9 + 9) / 10, &st.P90S}, {r.s.n, &st.AllS}}
	deadline := t0.Add(r.s.startTimeout)
	for {
		regs, size, err := passing(ctx, r.http, r.agents[0].base)
		at := time.Since(t0).Seconds()
		if err == nil {
			st.Curve = append(st.Curve, [2]float64{at, float64(len(regs))})
			for _, m := range marks {
				if *m.out == 0 && len(regs) >= m.of {
					*m.out = at
				}
			}
			if len(regs) >= r.s.n {
				st.AnswerBytes = size
				r.progress("all %d passing, %.1f s after the first exec", r.s.n, at)
				return r.checkRegistrations(regs)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d instances passing after %s (last error: %v)", len(regs), r.s.n, r.s.startTimeout, err)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

// checkRegistrations verifies that the N instances are N distinct ids on
// N distinct addresses, spread over the client agents; a collision of
// default ids would be a bug in pilot.
func (r *runner) checkRegistrations(regs []registration) error {
	st := &r.res.Start
	st.ByNode = map[string]int{}
	ids, addrs := map[string]bool{}, map[string]bool{}
	byNode := map[string]string{}
	for _, c := range r.clients {
		byNode[c.name] = c.base
	}
	for i := range regs {
		ids[regs[i].ID], addrs[regs[i].Addr] = true, true
		st.ByNode[regs[i].Node]++
		regs[i].agent = byNode[regs[i].Node]
		if regs[i].agent == "" {
			return fmt.Errorf("instance %s is on node %s, not a client agent", regs[i].ID, regs[i].Node)
		}
	}
	st.DistinctID = len(ids)
	if len(ids) != r.s.n || len(addrs) != r.s.n || len(regs) != r.s.n {
		return fmt.Errorf("%d passing entries, %d distinct ids, %d distinct addresses for %d pilots", len(regs), len(ids), len(addrs), r.s.n)
	}
	slices.SortFunc(regs, func(a, b registration) int { return strings.Compare(a.ID, b.ID) })
	r.regs = regs
	return nil
}

// startWatcher starts the measuring pilot through the first client agent
// and waits until its file lists every instance.
func (r *runner) startWatcher(ctx context.Context, renders string) error {
	dir := filepath.Join(r.dir, "watcher")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	env := &benchkit.Env{Dir: dir, Pilot: r.pilot}
	p, err := env.StartPilot(watcherConfig(strings.TrimPrefix(r.clients[0].base, "http://"), r.watcherWatch("", renders)))
	if err != nil {
		return err
	}
	r.watcher = p
	return r.waitRendered(ctx, renders)
}

func (r *runner) watcherWatch(mode, renders string) watchSpec {
	return watchSpec{consistency: mode, debounce: [2]string{"0s", "0s"}, dest: filepath.Join(renders, "backend.conf")}
}

// waitRendered waits until the watcher's file lists all N instances.
func (r *runner) waitRendered(ctx context.Context, renders string) error {
	var want []string
	for _, reg := range r.regs {
		want = append(want, reg.Addr)
	}
	set := benchkit.Canonical(want)
	path := filepath.Join(renders, "backend.conf")
	deadline := time.Now().Add(30 * time.Second)
	for benchkit.UpstreamServers(path) != set {
		if time.Now().After(deadline) {
			return fmt.Errorf("the watcher's file never listed the %d instances; its log:\n%s", len(want), consulagent.Tail(r.watcher.Log(), 3000))
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// reloadWatches gives the fleet's and the watcher's watches the
// consistency mode, and waits for the watcher's file to be whole again.
func (r *runner) reloadWatches(ctx context.Context, mode, renders string) error {
	if err := reloadAll(ctx, r.app, r.fleet, r.s.watchers, fleetWatch(mode)); err != nil {
		return err
	}
	if err := os.WriteFile(r.watcher.ConfigPath, []byte(watcherConfig(strings.TrimPrefix(r.clients[0].base, "http://"), r.watcherWatch(mode, renders))), 0o644); err != nil {
		return err
	}
	if err := reload(ctx, control.NewClient(r.watcher.Socket, 30*time.Second)); err != nil {
		return fmt.Errorf("watcher: %w", err)
	}
	if err := r.waitRendered(ctx, renders); err != nil {
		return err
	}
	return sleep(ctx, r.s.settle)
}

// churnWindow measures w while the churner runs for the window's length;
// then, with the pollers still running, it waits out one more of the
// longest interval (so that every poller has looked after the last
// change), takes every instance out of maintenance and waits until all
// pass again. With pollers, it fills w.Latency from their answers.
func (r *runner) churnWindow(ctx context.Context, w *window, pollers *pollerSet) ([]*change, error) {
	c := newChurner(r.regs, r.http, r.s.rate, r.hold())
	var changes []*change
	if err := r.measure(ctx, w, r.s.churn, func(ctx context.Context) { changes = c.run(ctx) }); err != nil {
		return nil, err
	}
	grace := time.Second
	if pollers != nil {
		grace += pollers.interval()
	}
	if err := sleep(ctx, grace); err != nil {
		return nil, err
	}
	if pollers != nil {
		pollers.stop()
	}
	if err := c.clear(); err != nil {
		return nil, err
	}
	recovered, err := r.waitAllPassing(ctx)
	if err != nil {
		return nil, err
	}
	w.RecoveryS = recovered.Seconds()
	w.Changes = len(changes)
	w.ChangeRate = float64(len(changes)) / w.Seconds
	for _, ch := range changes {
		if ch.Err != "" {
			w.ChangeErrors++
		}
	}
	if pollers != nil {
		lat, missed := seenBy(pollers.pollers, changes, r.hold())
		w.Latency = newLatency(fmt.Sprintf("%d pollers × %d changes", len(pollers.pollers), len(changes)), lat, missed)
	}
	r.res.Changes[w.Name] = changes
	return changes, nil
}

// waitAllPassing waits, up to 2 minutes, until all N pass again after a
// churn window, and says how long that took: a machine too busy to keep
// every heartbeat inside its TTL shows here.
func (r *runner) waitAllPassing(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	for {
		regs, _, err := passing(ctx, r.http, r.agents[0].base)
		if err == nil && len(regs) == r.s.n {
			return time.Since(start), nil
		}
		if time.Since(start) > 2*time.Minute {
			return 0, fmt.Errorf("after the churn, %d of %d passing after 2 minutes (%v)", len(regs), r.s.n, err)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return 0, err
		}
	}
}

// pids returns the pilots', the apps' (each pilot's children) and the
// watcher's pids.
func (r *runner) pids() (pilots, apps []int, watcher int) {
	for _, in := range r.fleet {
		pilots = append(pilots, in.pilot.Pid())
		apps = append(apps, benchkit.Children(in.pilot.Pid())...)
	}
	if r.watcher != nil {
		watcher = r.watcher.Pid()
	}
	return pilots, apps, watcher
}

// measure fills w over d; during, if set, runs for the window and w's
// end waits for it.
func (r *runner) measure(ctx context.Context, w *window, d time.Duration, during func(context.Context)) error {
	pilots, apps, watcher := r.pids()
	self := os.Getpid()
	all := append(append(slices.Clone(pilots), apps...), self)
	if watcher != 0 {
		all = append(all, watcher)
	}
	for _, a := range r.agents {
		all = append(all, a.pid)
	}
	leader0, err := r.cluster.Leader(ctx)
	if err != nil {
		return err
	}
	busy := benchkit.StartBusy()
	s0, err := take(ctx, r.http, r.agents, all)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if during != nil {
			during(wctx)
		} else {
			<-wctx.Done()
		}
	}()
	<-wctx.Done()
	if ctx.Err() != nil {
		<-done
		return ctx.Err()
	}
	s1, err := take(ctx, r.http, r.agents, all)
	<-done
	if err != nil {
		return err
	}
	w.BusyPct, w.LoadAvg, w.Seconds = busy.Busy(), loadavg(), s1.at.Sub(s0.at).Seconds()
	leader1, err := r.cluster.Leader(ctx)
	if err != nil {
		return err
	}
	w.Leader, w.LeaderChanged = leader1.Name, leader1.Name != leader0.Name

	w.HTTP = httpRates(s0, s1, r.clients)
	for k, v := range w.HTTP {
		switch {
		case strings.HasSuffix(k, " v1_health_service_"):
			w.HealthQueries += v
		case strings.HasSuffix(k, " v1_agent_metrics"), strings.HasSuffix(k, " v1_agent_service_maintenance_"):
			// the benchmark's own
		default:
			w.PilotRequests += v
		}
	}
	w.PilotRequests /= float64(len(r.fleet))
	for _, a := range r.agents {
		u := agentUse{Name: a.name, Server: a.server, Leader: a.name == leader1.Name, CPU: cpu(s0, s1, []int{a.pid}), RSSMiB: float64(benchkit.VmRSS(a.pid)) / 1024}
		if a.server {
			u.RPC = rate(s0, s1, a.name, "consul_rpc_request")
			u.Queries = rate(s0, s1, a.name, "consul_rpc_query")
			u.RaftApply = rate(s0, s1, a.name, "consul_raft_apply")
			u.Streams = s1.metrics[a.name][`consul_grpc_server_stream_count{server_type="internal"}`] - s0.metrics[a.name][`consul_grpc_server_stream_count{server_type="internal"}`]
		} else {
			w.ClientRPC += rate(s0, s1, a.name, "consul_client_rpc")
			for k := range s1.metrics[a.name] {
				if strings.HasPrefix(k, "consul_api_http_count{") {
					u.HTTP += rate(s0, s1, a.name, k)
				}
			}
		}
		w.Agents = append(w.Agents, u)
	}
	w.PilotCPU = cpu(s0, s1, pilots) / float64(len(pilots))
	w.AppCPU = cpu(s0, s1, apps) / float64(max(1, len(apps)))
	if watcher != 0 {
		w.WatcherCPU = cpu(s0, s1, []int{watcher})
	}
	w.BenchCPU = cpu(s0, s1, []int{self})
	r.res.Windows = append(r.res.Windows, w)
	r.progress("measured %q", w.Name)
	return nil
}

// memory sums RSS and PSS over the pilots and over the apps.
func (r *runner) memory() memory {
	pilots, apps, _ := r.pids()
	var m memory
	for _, p := range pilots {
		m.PilotRSS += float64(benchkit.VmRSS(p))
		m.PilotPSS += float64(benchkit.PSS(p))
	}
	for _, p := range apps {
		m.AppRSS += float64(benchkit.VmRSS(p))
		m.AppPSS += float64(benchkit.PSS(p))
	}
	n := float64(len(pilots)) * 1024
	m.PilotRSS, m.PilotPSS = m.PilotRSS/n, m.PilotPSS/n
	n = float64(max(1, len(apps))) * 1024
	m.AppRSS, m.AppPSS = m.AppRSS/n, m.AppPSS/n
	return m
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
