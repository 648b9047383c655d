package telemetry

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/nodepilot/pilot/jobs"
	"github.com/nodepilot/pilot/test/toolbin"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeJob is a Job whose status the test sets.
type fakeJob struct {
	mu     sync.Mutex
	spec   jobs.Spec
	status jobs.Status
}

func newFakeJob(name string, withHealth bool) *fakeJob {
	j := &fakeJob{spec: jobs.Spec{Name: name}, status: jobs.Status{Name: name}}
	if withHealth {
		j.spec.Probe = func(context.Context, int, func(bool)) {}
	}
	return j
}

func (j *fakeJob) Spec() jobs.Spec { return j.spec }

func (j *fakeJob) Status() jobs.Status {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.status
}

func (j *fakeJob) set(f func(*jobs.Status)) {
	j.mu.Lock()
	f(&j.status)
	j.mu.Unlock()
}

func TestJobCollector(t *testing.T) {
	app := newFakeJob("app", true)
	app.set(func(s *jobs.Status) { s.State, s.Pid, s.Runs, s.Restarts = jobs.Healthy, 42, 3, 2 })
	migrate := newFakeJob("migrate", false)
	migrate.set(func(s *jobs.Status) { s.State, s.Final, s.Runs = jobs.Succeeded, true, 1 })
	c := NewJobCollector(func() []Job { return []Job{app, migrate} })

	want := `
# HELP pilot_job_up 1 while the job's process runs, else 0.
# TYPE pilot_job_up gauge
pilot_job_up{job="app"} 1
pilot_job_up{job="migrate"} 0
# HELP pilot_job_runs_total Runs of the job started (a command that cannot start counts too): the first, restarts, periodic runs and triggered ones.
# TYPE pilot_job_runs_total counter
pilot_job_runs_total{job="app"} 3
pilot_job_runs_total{job="migrate"} 1
# HELP pilot_job_restarts_total Runs of the job started to replace one that ended: restart policy, onUnhealthy: restart, maxMemory, a retry. Periodic and triggered runs are not restarts.
# TYPE pilot_job_restarts_total counter
pilot_job_restarts_total{job="app"} 2
pilot_job_restarts_total{job="migrate"} 0
# HELP pilot_health_status 1 while the job's health check passes (state healthy), else 0; only jobs with a health check.
# TYPE pilot_health_status gauge
pilot_health_status{job="app"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "pilot_job_up", "pilot_job_runs_total", "pilot_job_restarts_total", "pilot_health_status"); err != nil {
		t.Fatal(err)
	}
	// One-hot: 10 states per job (restarting included), exactly one of them 1.
	if n := testutil.CollectAndCount(c, "pilot_job_state"); n != 2*10 {
		t.Fatalf("pilot_job_state has %d series, want 20", n)
	}
	states := `
# HELP pilot_job_state The job's state: 1 for the current one, 0 for every other.
# TYPE pilot_job_state gauge
`
	for _, j := range []string{"app", "migrate"} {
		for _, s := range jobs.States() {
			v := "0"
			if (j == "app" && s == jobs.Healthy) || (j == "migrate" && s == jobs.Succeeded) {
				v = "1"
			}
			states += `pilot_job_state{job="` + j + `",state="` + s.String() + `"} ` + v + "\n"
		}
	}
	if err := testutil.CollectAndCompare(c, strings.NewReader(states), "pilot_job_state"); err != nil {
		t.Fatal(err)
	}

	// Read at scrape time: a change shows at the next scrape.
	app.set(func(s *jobs.Status) { s.State, s.Pid = jobs.Unhealthy, 43 })
	if err := testutil.CollectAndCompare(c, strings.NewReader(`
# HELP pilot_health_status 1 while the job's health check passes (state healthy), else 0; only jobs with a health check.
# TYPE pilot_health_status gauge
pilot_health_status{job="app"} 0
`), "pilot_health_status"); err != nil {
		t.Fatal(err)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Fatal(problems, err)
	}
}

func TestExitsCountsEachEndOnce(t *testing.T) {
	e := NewExits()
	exit := func(code int) *jobs.ExitStatus { return &jobs.ExitStatus{Code: code} }
	for _, c := range []jobs.StateChange{
		{Job: "web", State: jobs.Starting},
		{Job: "web", State: jobs.Running},
		{Job: "web", State: jobs.Restarting, Exit: exit(1)},
		{Job: "web", State: jobs.Starting},
		{Job: "web", State: jobs.Failed, Exit: exit(127)}, // could not start
		{Job: "web", State: jobs.Starting},
		{Job: "web", State: jobs.Running},
		{Job: "web", State: jobs.Healthy},
		{Job: "web", State: jobs.Stopping},
		{Job: "web", State: jobs.Stopped, Exit: exit(143), Final: true},
		{Job: "once", State: jobs.Starting},
		{Job: "once", State: jobs.Running},
		{Job: "once", State: jobs.Failed, Exit: exit(1)},               // no restart
		{Job: "once", State: jobs.Stopped, Exit: exit(1), Final: true}, // stopped at shutdown: the same exit again
	} {
		e.Observe(c)
	}
	want := `
# HELP pilot_job_exits_total Ends of the job's processes, by exit code (128+N when killed by signal N).
# TYPE pilot_job_exits_total counter
pilot_job_exits_total{code="1",job="web"} 1
pilot_job_exits_total{code="127",job="web"} 1
pilot_job_exits_total{code="143",job="web"} 1
pilot_job_exits_total{code="1",job="once"} 1
`
	if err := testutil.CollectAndCompare(e, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}

func TestExitsRunDrainsTheBus(t *testing.T) {
	bus := jobs.NewBus()
	sub := bus.Subscribe()
	e := NewExits()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.Run(ctx, sub) }()
	bus.Publish(jobs.StateChange{Job: "a", State: jobs.Running})
	bus.Publish(jobs.StateChange{Job: "a", State: jobs.Succeeded, Exit: &jobs.ExitStatus{}})
	cancel() // what is queued is still counted
	<-done
	if v := testutil.ToFloat64(e.vec.WithLabelValues("a", "0")); v != 1 {
		t.Fatalf("exits = %v, want 1", v)
	}
}

// A subscription taken late starts with the bus's snapshot: the exits in
// it were before Exits subscribed and count nothing, but the state it
// gives lets the exit of a run that was up count when it comes.
func TestExitsSkipReplayedChanges(t *testing.T) {
	bus := jobs.NewBus()
	bus.Publish(jobs.StateChange{Job: "once", State: jobs.Running})
	bus.Publish(jobs.StateChange{Job: "once", State: jobs.Failed, Exit: &jobs.ExitStatus{Code: 1}, Final: true})
	bus.Publish(jobs.StateChange{Job: "web", State: jobs.Running})
	sub := bus.Subscribe()
	bus.Publish(jobs.StateChange{Job: "web", State: jobs.Restarting, Exit: &jobs.ExitStatus{Code: 2}})
	e := NewExits()
	for _, c := range sub.Drain() {
		e.Observe(c)
	}
	want := `
# HELP pilot_job_exits_total Ends of the job's processes, by exit code (128+N when killed by signal N).
# TYPE pilot_job_exits_total counter
pilot_job_exits_total{code="2",job="web"} 1
`
	if err := testutil.CollectAndCompare(e, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}

// When a new subscription overlaps the old one (a reload), the replayed
// copy of an exit counts nothing and does not hide the live copy.
func TestExitsCountTheLiveCopyOfAnExit(t *testing.T) {
	e := NewExits()
	exit := &jobs.ExitStatus{Code: 2}
	e.Observe(jobs.StateChange{Job: "web", State: jobs.Running})
	e.Observe(jobs.StateChange{Job: "web", State: jobs.Restarting, Exit: exit, Replayed: true})
	if n := testutil.CollectAndCount(e); n != 0 {
		t.Fatalf("%d series after the replayed exit, want none", n)
	}
	e.Observe(jobs.StateChange{Job: "web", State: jobs.Restarting, Exit: exit})
	if v := testutil.ToFloat64(e.vec.WithLabelValues("web", "2")); v != 1 {
		t.Fatalf("exits = %v after the live copy, want 1", v)
	}
}

func TestHealthChecks(t *testing.T) {
	h := NewHealthChecks([]string{"app", "idle"})
	h.Observe("app", 3*time.Millisecond)
	h.Observe("app", 40*time.Millisecond)
	if n := testutil.CollectAndCount(h); n != 2 {
		t.Fatalf("%d histograms, want 2 (one per checked job, observed or not)", n)
	}
	m := &dtoHistogram{}
	m.read(t, h.hist.WithLabelValues("app"))
	if m.count != 2 || m.sum < 0.042 || m.sum > 0.044 {
		t.Fatalf("count %d sum %v, want 2 and 0.043", m.count, m.sum)
	}
	if problems, err := testutil.CollectAndLint(h); err != nil || len(problems) > 0 {
		t.Fatal(problems, err)
	}
}

func TestConsul(t *testing.T) {
	c := NewConsul()
	if v := testutil.ToFloat64(c.up); v != 0 {
		t.Fatalf("up before any request = %v", v)
	}
	c.Observe("register", true, true)
	c.Observe("ttl", true, true)
	c.Observe("ttl", true, true)
	c.Observe("health", false, true) // an HTTP error: the agent answered
	if v := testutil.ToFloat64(c.up); v != 1 {
		t.Fatalf("up after an answered error = %v", v)
	}
	c.Observe("ttl", false, false) // unreachable
	want := `
# HELP pilot_consul_up 1 when the Consul agent answered pilot's last request, else 0 (also before the first).
# TYPE pilot_consul_up gauge
pilot_consul_up 0
# HELP pilot_consul_requests_total Requests to the Consul agent by operation (register, deregister, ttl, maintenance, lookup, health) and result (ok, error).
# TYPE pilot_consul_requests_total counter
pilot_consul_requests_total{op="health",result="error"} 1
pilot_consul_requests_total{op="register",result="ok"} 1
pilot_consul_requests_total{op="ttl",result="error"} 1
pilot_consul_requests_total{op="ttl",result="ok"} 2
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}

// Two watches of one service keep their own series, told apart by the
// watch label; a watch's first set brings its instance and skipped counts.
func TestWatches(t *testing.T) {
	w := NewWatches([]WatchName{{"backend", "backend"}, {"db", "db"}, {"backend#2", "backend"}})
	want := `
# HELP pilot_watch_changes_total Sets of instances pilot applied for the watch: the first, then one per (debounced) change.
# TYPE pilot_watch_changes_total counter
pilot_watch_changes_total{service="backend",watch="backend"} 0
pilot_watch_changes_total{service="backend",watch="backend#2"} 0
pilot_watch_changes_total{service="db",watch="db"} 0
`
	if err := testutil.CollectAndCompare(w, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	w.Applied("backend", 3, 0, at)
	w.Applied("backend", 2, 1, at.Add(time.Second))
	w.Applied("backend#2", 1, 0, at)
	w.Applied("unknown", 9, 0, at) // not a configured watch: ignored
	want = `
# HELP pilot_watch_instances Instances of the watched service in the last set pilot applied.
# TYPE pilot_watch_instances gauge
pilot_watch_instances{service="backend",watch="backend"} 2
pilot_watch_instances{service="backend",watch="backend#2"} 1
# HELP pilot_watch_skipped_instances Instances of the watched service left out of the last set pilot applied because they cannot be rendered safely (e.g. a malformed address).
# TYPE pilot_watch_skipped_instances gauge
pilot_watch_skipped_instances{service="backend",watch="backend"} 1
pilot_watch_skipped_instances{service="backend",watch="backend#2"} 0
# HELP pilot_watch_changes_total Sets of instances pilot applied for the watch: the first, then one per (debounced) change.
# TYPE pilot_watch_changes_total counter
pilot_watch_changes_total{service="backend",watch="backend"} 2
pilot_watch_changes_total{service="backend",watch="backend#2"} 1
pilot_watch_changes_total{service="db",watch="db"} 0
`
	if err := testutil.CollectAndCompare(w, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	st := w.Status()
	if len(st) != 3 || st[0].Watch != "backend" || st[0].Service != "backend" || *st[0].Instances != 2 || st[0].Skipped != 1 ||
		st[0].Changes != 2 || !st[0].LastChange.Equal(at.Add(time.Second)) ||
		st[1].Watch != "db" || st[1].Instances != nil || st[1].LastChange != nil ||
		st[2].Watch != "backend#2" || st[2].Service != "backend" || *st[2].Instances != 1 {
		t.Fatalf("status = %+v", st)
	}
}

func TestProcessCollector(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	live := newFakeJob("live", false)
	live.set(func(s *jobs.Status) { s.Pid = cmd.Process.Pid })
	idle := newFakeJob("idle", false) // no process: no series
	gone := newFakeJob("gone", false)
	gone.set(func(s *jobs.Status) { s.Pid = deadPid(t) })
	c, err := NewProcessCollector(func() []Job { return []Job{live, idle, gone} })
	if err != nil {
		t.Fatal(err)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Fatal(problems, err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["job"] != "live" || labels["instance"] != "" {
				t.Errorf("%s has a series for %v", mf.GetName(), labels)
			}
			got[mf.GetName()] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	if len(got) != 4 {
		t.Fatalf("metrics %v, want the four pilot_process_*", got)
	}
	if rss := got["pilot_process_resident_memory_bytes"]; rss < 100<<10 {
		t.Errorf("rss = %v", rss)
	}
	if fds := got["pilot_process_open_fds"]; fds < 3 {
		t.Errorf("open fds = %v, want stdin, stdout, stderr at least", fds)
	}
	if start := got["pilot_process_start_time_seconds"]; start < float64(time.Now().Unix()-60) || start > float64(time.Now().Unix()+1) {
		t.Errorf("start time %v is not about now (%d)", start, time.Now().Unix())
	}

	// The process ends: its series go with it, zombie or not.
	cmd.Process.Kill()
	waitUntil(t, 5*time.Second, "the zombie's series gone", func() bool { return testutil.CollectAndCount(c) == 0 })
	cmd.Wait()
	if n := testutil.CollectAndCount(c); n != 0 {
		t.Fatalf("%d series after the process ended", n)
	}
}

// deadPid returns the pid of a process that has ended and been waited for.
func deadPid(t *testing.T) int {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func TestServer(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewBuildInfo("1.2.3", "abc"))
	app := newFakeJob("app", true)
	app.set(func(s *jobs.Status) {
		s.State, s.Pid, s.Runs, s.Restarts = jobs.Running, 7, 2, 1
		s.LastExit = &jobs.ExitStatus{Code: 137, Signal: 9}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(reg, func() Status {
		return Status{Jobs: []JobStatus{JobStatusOf(app)}, Services: []ServiceStatus{}, Watches: []WatchStatus{}}
	}, nil)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	base := "http://" + ln.Addr().String()

	body := get(t, base+"/metrics")
	if !strings.Contains(body, `pilot_build_info{commit="abc",goversion="go`) || !strings.Contains(body, `version="1.2.3"} 1`) {
		t.Fatalf("/metrics:\n%s", body)
	}
	var st Status
	if err := json.Unmarshal([]byte(get(t, base+"/status")), &st); err != nil {
		t.Fatal(err)
	}
	j := st.Jobs[0]
	if j.Name != "app" || j.State != "running" || j.Pid != 7 || j.Restarts != 1 || j.LastExit == nil ||
		j.LastExit.Code != 137 || j.LastExit.Signal != 9 || j.Health != "unknown" {
		t.Fatalf("job status = %+v", j)
	}
	resp, err := http.Post(base+"/metrics", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics: %d", resp.StatusCode)
	}

	srv.Shutdown(context.Background())
	if err := <-served; err != nil {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
	if _, err := http.Get(base + "/metrics"); err == nil {
		t.Fatal("still serving after Shutdown")
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A port in use does not fail Listen: it retries, says so once (a warning;
// then debug lines), and binds as soon as the port is free, saying that
// too. Cancelled, it gives up with ctx's error.
func TestListenRetriesUntilFree(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := taken.Addr().String()
	logs := &toolbin.LockedBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	type result struct {
		ln  net.Listener
		err error
	}
	done := make(chan result, 1)
	go func() { ln, err := Listen(context.Background(), addr, log); done <- result{ln, err} }()
	waitUntil(t, 5*time.Second, "two failed binds", func() bool { return strings.Count(logs.String(), "cannot listen") >= 2 })
	taken.Close()
	var r result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Listen did not bind once the port was free")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.ln.Close()
	if r.ln.Addr().String() != addr {
		t.Errorf("bound %s, want %s", r.ln.Addr(), addr)
	}
	out := logs.String()
	if n := strings.Count(out, "level=WARN"); n != 1 || !strings.Contains(out, `level=WARN msg="telemetry: cannot listen; the jobs run on, /metrics and /status come once it binds" address=`+addr) {
		t.Errorf("want exactly one warning naming the address:\n%s", out)
	}
	if !strings.Contains(out, `level=INFO msg="telemetry: bound at last" address=`+addr) {
		t.Errorf("no line says it bound:\n%s", out)
	}

	// Still taken, and cancelled: ctx's error, no listener.
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		ln, err := Listen(ctx, r.ln.Addr().String(), slog.New(slog.DiscardHandler))
		done <- result{ln, err}
	}()
	cancel()
	if r := <-done; r.ln != nil || r.err != context.Canceled {
		t.Errorf("cancelled Listen = %v, %v", r.ln, r.err)
	}
}
