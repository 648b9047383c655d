package watches

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nodepilot/pilot/discovery"
	"github.com/nodepilot/pilot/pilot/config"
	"github.com/nodepilot/pilot/telemetry"
	"github.com/nodepilot/pilot/test/toolbin"
)

// waitLimit bounds every wait of these tests for another goroutine; the
// waits themselves are on events, never on time passing.
const waitLimit = 10 * time.Second

// applied is one call of Options.Applied, with the fake time it came at.
type applied struct {
	instances, skipped int
	at                 time.Duration // since epoch
}

// testEnv is what a test watch is wired to.
type testEnv struct {
	clock   *fakeClock
	jobs    *fakeJobs
	logs    *toolbin.LockedBuffer
	applied chan applied
	watcher *chanWatcher
}

// testWatch is a watch of service "backend", wired to fakes: a fake clock,
// fake jobs, a watcher the test feeds, its log captured at debug level.
// edit changes the options before New.
func testWatch(t *testing.T, oc config.OnChange, edit ...func(*Options)) (*Watch, *testEnv) {
	t.Helper()
	e := &testEnv{clock: newFakeClock(), jobs: &fakeJobs{running: map[string]bool{}}, logs: &toolbin.LockedBuffer{},
		applied: make(chan applied, 100), watcher: newChanWatcher()}
	o := Options{
		Name: "backend",
		Config: config.Watch{Service: "backend", PassingOnly: new(true), OnChange: oc,
			Debounce: config.Debounce{Min: 60 * time.Millisecond, Max: 200 * time.Millisecond}},
		Watcher: e.watcher,
		Jobs:    e.jobs,
		Applied: func(n, skipped int) { e.applied <- applied{n, skipped, e.clock.Now().Sub(epoch)} },
		Log:     slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Clock:   e.clock,
	}
	for _, f := range edit {
		f(&o)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", e.logs)
		}
	})
	return New(o), e
}

func debounce(lo, hi time.Duration) func(*Options) {
	return func(o *Options) { o.Config.Debounce = config.Debounce{Min: lo, Max: hi} }
}

// run runs w until the test ends or stop is called; stop returns once Run
// has returned.
func run(t *testing.T, w *Watch) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	stop = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(waitLimit):
			panic("Run did not return once its context ended")
		}
	}
	t.Cleanup(stop)
	return stop
}

// nextApplied waits for the next set applied.
func (e *testEnv) nextApplied(t *testing.T) applied {
	t.Helper()
	select {
	case a := <-e.applied:
		return a
	case <-time.After(waitLimit):
		t.Fatal("no set applied")
		return applied{}
	}
}

// noneApplied fails when a set was applied that the test has not taken.
// Call it only when nothing can apply one any more (no timer due, no
// snapshot in flight, or Run returned): it proves nothing otherwise.
func (e *testEnv) noneApplied(t *testing.T) {
	t.Helper()
	if len(e.applied) > 0 {
		t.Fatalf("applied %v, want nothing", <-e.applied)
	}
}

// chanWatcher publishes the snapshots the test sends; a send returns once
// publish has returned.
type chanWatcher struct {
	sends chan sent
	specs chan discovery.WatchSpec
}

type sent struct {
	s         discovery.Snapshot
	published chan struct{}
}

func newChanWatcher() *chanWatcher {
	return &chanWatcher{sends: make(chan sent), specs: make(chan discovery.WatchSpec, 1)}
}

func (c *chanWatcher) Watch(ctx context.Context, spec discovery.WatchSpec, publish func(discovery.Snapshot)) error {
	c.specs <- spec
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-c.sends:
			publish(m.s)
			close(m.published)
		}
	}
}

func (c *chanWatcher) send(t *testing.T, s discovery.Snapshot) {
	t.Helper()
	m := sent{s, make(chan struct{})}
	select {
	case c.sends <- m:
	case <-time.After(waitLimit):
		t.Fatal("the watcher is not watching")
	}
	select {
	case <-m.published:
	case <-time.After(waitLimit):
		t.Fatal("publish blocked")
	}
}

// fakeJobs are jobs by name: running says which have a process.
type fakeJobs struct {
	mu       sync.Mutex
	running  map[string]bool
	signals  []string // "JOB SIGNAL"
	triggers []trigger
}

type trigger struct {
	job string
	env []string
}

func (f *fakeJobs) Signal(job string, sig syscall.Signal) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.running[job] {
		return false
	}
	f.signals = append(f.signals, job+" "+sig.String())
	return true
}

func (f *fakeJobs) Trigger(job string, env []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.triggers = append(f.triggers, trigger{job, env})
}

func (f *fakeJobs) touched() (signals []string, triggers []trigger) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.signals), slices.Clone(f.triggers)
}

func instance(id, addr string, port int) discovery.Instance {
	return discovery.Instance{ID: id, Node: "n1", Address: addr, Port: port, Status: discovery.Passing}
}

// snap is a set of n instances web-1…web-n.
func snap(n int) discovery.Snapshot {
	ins := make([]discovery.Instance, n)
	for i := range ins {
		ins[i] = instance(fmt.Sprintf("web-%d", i+1), fmt.Sprintf("10.0.0.%d", i+1), 3000)
	}
	return discovery.NewSnapshot("backend", ins)
}

func TestNames(t *testing.T) {
	ws := []config.Watch{{Service: "backend"}, {Service: "db"}, {Service: "backend"}, {Service: "backend#3"}, {Service: "backend"}}
	got := Names(ws)
	want := []telemetry.WatchName{
		{Watch: "backend", Service: "backend"}, {Watch: "db", Service: "db"}, {Watch: "backend#2", Service: "backend"},
		{Watch: "backend#3", Service: "backend#3"}, {Watch: "backend#4", Service: "backend"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Names = %v,\nwant %v", got, want)
	}
}

func TestInstancesFile(t *testing.T) {
	run := config.OnChange{Run: "job"}
	for _, c := range []struct {
		i    int
		w    config.Watch
		want string
	}{
		{0, config.Watch{Service: "backend", OnChange: run}, "/d/watch-0-backend.json"},
		{3, config.Watch{Service: "web/v1 é", OnChange: run}, "/d/watch-3-web_v1__.json"},
		{1, config.Watch{Service: "backend"}, ""},
	} {
		if got := InstancesFile("/d", c.i, c.w); got != c.want {
			t.Errorf("InstancesFile(%d, %q) = %q, want %q", c.i, c.w.Service, got, c.want)
		}
	}
}

// Run watches what the config says: service, tag, datacenter, passing only.
func TestWatchSpec(t *testing.T) {
	w, e := testWatch(t, config.OnChange{}, func(o *Options) {
		o.Config.Tag, o.Config.Datacenter, o.Config.PassingOnly = "v2", "dc2", new(false)
		o.Config.Consistency = config.ConsistencyConsistent
	})
	run(t, w)
	select {
	case spec := <-e.watcher.specs:
		if want := (discovery.WatchSpec{Service: "backend", Consul: discovery.ConsulQuery{Tag: "v2", Datacenter: "dc2", Consistency: discovery.ConsistencyConsistent}}); !reflect.DeepEqual(spec, want) {
			t.Fatalf("spec %+v, want %+v", spec, want)
		}
	case <-time.After(waitLimit):
		t.Fatal("Run never watched")
	}
}

// One instance with a malformed address is left out; the others are
// rendered; the skipped one is logged (id, address, why) once, not again
// while it stays the same; telemetry hears of it.
func TestWatchSkipsBadInstance(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "upstream.conf")
	w, e := testWatch(t, config.OnChange{Render: &config.RenderFile{Format: "nginx", Dest: dest, Name: "backend"}})
	bad := instance("evil-1", "10.0.0.9; include /etc/passwd", 80)
	w.apply(context.Background(), discovery.NewSnapshot("backend", []discovery.Instance{
		instance("web-1", "10.0.0.1", 3000), bad, instance("web-2", "10.0.0.2", 3000),
	}))
	b, err := os.ReadFile(dest)
	if err != nil {
		t.Fatalf("no file written: %v", err)
	}
	if !strings.Contains(string(b), "server 10.0.0.1:3000;") || !strings.Contains(string(b), "server 10.0.0.2:3000;") ||
		strings.Contains(string(b), "10.0.0.9") {
		t.Fatalf("upstream:\n%s", b)
	}
	want := `level=WARN msg="watch: instance skipped: it cannot be rendered safely" watch=backend id=evil-1 node=n1 address="10.0.0.9; include /etc/passwd" port=80 reason="address \"10.0.0.9; include /etc/passwd\" is neither an IP nor a host name"`
	if n := strings.Count(e.logs.String(), want); n != 1 {
		t.Fatalf("want the skipped instance logged once as\n%s", want)
	}
	if !strings.Contains(e.logs.String(), `msg="watch: instances changed" watch=backend instances=2 skipped=1`) {
		t.Error("the change's line does not count the skipped instance")
	}

	// Another change with the same bad instance: not logged again.
	w.apply(context.Background(), discovery.NewSnapshot("backend", []discovery.Instance{instance("web-1", "10.0.0.1", 3000), bad}))
	if n := strings.Count(e.logs.String(), "instance skipped"); n != 1 {
		t.Errorf("the same skipped instance logged %d times over two changes", n)
	}
	if a, b := <-e.applied, <-e.applied; a.instances != 2 || a.skipped != 1 || b.instances != 1 || b.skipped != 1 {
		t.Errorf("applied %v, %v; want 2 with 1 skipped, then 1 with 1 skipped", a, b)
	}
	e.noneApplied(t)
}

// A failed render says what stays on disk: nothing when there is no file
// yet, the file as it is otherwise; never "the last good file" that is not.
func TestWatchRenderFailureSaysWhatStays(t *testing.T) {
	dir := t.TempDir()
	src, dest := filepath.Join(dir, "up.tmpl"), filepath.Join(dir, "up.conf")
	if err := os.WriteFile(src, []byte(`{{ (index .Instances 5).Address }}`), 0o644); err != nil {
		t.Fatal(err)
	}
	w, e := testWatch(t, config.OnChange{Templates: []config.TemplateFile{{Source: src, Dest: dest}}})
	w.apply(context.Background(), snap(1))
	if _, err := os.Stat(dest); err == nil {
		t.Fatal("a failed render wrote the file")
	}
	if !strings.Contains(e.logs.String(), `msg="watch: render failed; no file written (there is none yet)"`) || strings.Contains(e.logs.String(), "keeping") {
		t.Fatal("the log does not say that no file was written")
	}
	if err := os.WriteFile(dest, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w.apply(context.Background(), snap(1))
	if !strings.Contains(e.logs.String(), `msg="watch: render failed; keeping the file as it is"`) {
		t.Fatal("the log does not say the file stays")
	}
	if b, _ := os.ReadFile(dest); string(b) != "old\n" {
		t.Fatalf("the file changed: %q", b)
	}
}

// Traefik and a template render side by side; an unchanged set rewrites
// nothing and so reloads nothing.
func TestWatchRendersAndReloadsOnlyOnChange(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "list.tmpl")
	if err := os.WriteFile(src, []byte(`{{ range .Instances }}{{ .Address }} {{ end }}`), 0o644); err != nil {
		t.Fatal(err)
	}
	traefik, list := filepath.Join(dir, "dynamic.yml"), filepath.Join(dir, "list")
	w, e := testWatch(t, config.OnChange{
		Render:    &config.RenderFile{Format: "traefik", Dest: traefik},
		Templates: []config.TemplateFile{{Source: src, Dest: list}},
		Reload:    &config.Reload{Job: "traefik", Signal: config.Signal(syscall.SIGHUP)},
	})
	e.jobs.running["traefik"] = true
	w.apply(context.Background(), snap(2))
	if b, err := os.ReadFile(traefik); err != nil || !strings.Contains(string(b), "http://10.0.0.2:3000") {
		t.Fatalf("traefik file: %v\n%s", err, b)
	}
	if b, err := os.ReadFile(list); err != nil || string(b) != "10.0.0.1 10.0.0.2 " {
		t.Fatalf("template: %v %q", err, b)
	}
	w.apply(context.Background(), snap(2))
	if signals, _ := e.jobs.touched(); !slices.Equal(signals, []string{"traefik hangup"}) {
		t.Fatalf("signals %q, want one SIGHUP for the one change", signals)
	}
	w.apply(context.Background(), snap(1))
	if signals, _ := e.jobs.touched(); len(signals) != 2 {
		t.Fatalf("signals %q, want a second SIGHUP for the second change", signals)
	}
}

// onChange.run writes the instances file, then triggers the job with the
// file and a summary in its environment; without the file it runs nothing.
func TestWatchTriggersRun(t *testing.T) {
	file := filepath.Join(t.TempDir(), "watch-0-backend.json")
	w, e := testWatch(t, config.OnChange{Run: "sync"}, func(o *Options) { o.InstancesFile = file })
	w.apply(context.Background(), snap(2))
	var got struct {
		Service   string
		Instances []struct{ HostPort string }
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &got); err != nil || got.Service != "backend" || len(got.Instances) != 2 || got.Instances[1].HostPort != "10.0.0.2:3000" {
		t.Fatalf("instances file (%v):\n%s", err, b)
	}
	_, triggers := e.jobs.touched()
	want := []string{"PILOT_WATCH_SERVICE=backend", "PILOT_WATCH_INSTANCES_FILE=" + file,
		"PILOT_WATCH_INSTANCE_COUNT=2", "PILOT_WATCH_ADDRESSES=10.0.0.1:3000,10.0.0.2:3000"}
	if len(triggers) != 1 || triggers[0].job != "sync" || !slices.Equal(triggers[0].env, want) {
		t.Fatalf("triggers %q, want sync with %q", triggers, want)
	}

	w, e = testWatch(t, config.OnChange{Run: "sync"}, func(o *Options) {
		o.InstancesFile = filepath.Join(t.TempDir(), "missing", "x.json")
	})
	w.apply(context.Background(), snap(2))
	if _, triggers := e.jobs.touched(); len(triggers) != 0 {
		t.Fatal("triggered without its instances file")
	}
	if !strings.Contains(e.logs.String(), `msg="watch: not running the job: cannot write the instances file" watch=backend job=sync`) {
		t.Fatal("no line says why the job did not run")
	}
}

// A reload for a job that is not running (the gate still holds it, or it
// restarts) sends nothing, so it does not claim it did; a running one gets
// its signal.
func TestWatchReloadJob(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "upstream.conf")
	w, e := testWatch(t, config.OnChange{Render: &config.RenderFile{Format: "nginx", Dest: dest},
		Reload: &config.Reload{Job: "nginx", Signal: config.Signal(syscall.SIGUSR2)}})
	w.apply(context.Background(), snap(1))
	if _, err := os.Stat(dest); err != nil {
		t.Fatal(err)
	}
	if signals, _ := e.jobs.touched(); len(signals) != 0 || strings.Contains(e.logs.String(), "reload signal sent") {
		t.Fatal("claims a reload signal was sent to a job that is not running")
	}
	if !strings.Contains(e.logs.String(), `level=DEBUG msg="watch: not reloading: the job is not running; it reads the files when it starts" watch=backend job=nginx`) {
		t.Fatal("no line says why there was no reload")
	}

	e.jobs.running["nginx"] = true
	w.apply(context.Background(), snap(2))
	if signals, _ := e.jobs.touched(); !slices.Equal(signals, []string{"nginx user defined signal 2"}) {
		t.Fatalf("signals %q", signals)
	}
	if !strings.Contains(e.logs.String(), `msg="watch: reload signal sent" watch=backend job=nginx signal="user defined signal 2"`) {
		t.Fatal("no line says the signal was sent")
	}
}

// A docker watch hands its selector to the backend as it is written.
func TestSpecDocker(t *testing.T) {
	cfg := config.Watch{Service: "api", Discovery: config.DiscoveryDocker,
		Docker: &config.DockerWatch{Project: "shop", Labels: map[string]string{"tier": "web"}, Network: "shop_back", Port: 3000}}
	want := discovery.WatchSpec{Service: "api", PassingOnly: true,
		Docker: discovery.DockerQuery{Project: "shop", Labels: map[string]string{"tier": "web"}, Network: "shop_back", Port: 3000}}
	if got := Spec(cfg); !reflect.DeepEqual(got, want) {
		t.Fatalf("Spec = %+v, want %+v", got, want)
	}
}
