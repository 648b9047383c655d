package pilot

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nodepilot/pilot/discovery"
	"github.com/nodepilot/pilot/jobs"
	"github.com/nodepilot/pilot/pilot/config"
	"github.com/nodepilot/pilot/telemetry"
	"github.com/nodepilot/pilot/test/toolbin"
)

// testWatch is a watch of service "backend" with its log captured at
// debug level.
func testWatch(t *testing.T, oc config.OnChange) (*watch, *toolbin.LockedBuffer) {
	t.Helper()
	logs := &toolbin.LockedBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w := &watch{cfg: config.Watch{Service: "backend", PassingOnly: new(true), OnChange: oc}, name: "backend",
		log: log, afterFunc: afterFunc, applied: func(string, int, int) {}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs)
		}
	})
	return w, logs
}

func instance(id, addr string, port int) discovery.Instance {
	return discovery.Instance{ID: id, Node: "n1", Address: addr, Port: port, Status: discovery.Passing}
}

func TestWatchNames(t *testing.T) {
	ws := []config.Watch{{Service: "backend"}, {Service: "db"}, {Service: "backend"}, {Service: "backend#3"}, {Service: "backend"}}
	got := watchNames(ws)
	want := []telemetry.WatchName{
		{Watch: "backend", Service: "backend"}, {Watch: "db", Service: "db"}, {Watch: "backend#2", Service: "backend"},
		{Watch: "backend#3", Service: "backend#3"}, {Watch: "backend#4", Service: "backend"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("watchNames = %v,\nwant %v", got, want)
	}
}

// One instance with a malformed address is left out; the others are
// rendered; the skipped one is logged (id, address, why) once, not again
// while it stays the same; telemetry hears of it.
func TestWatchSkipsBadInstance(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "upstream.conf")
	w, logs := testWatch(t, config.OnChange{Render: &config.RenderFile{Format: "nginx", Dest: dest, Name: "backend"}})
	type counts struct{ instances, skipped int }
	var applied []counts
	w.applied = func(name string, n, skipped int) {
		if name != "backend" {
			t.Errorf("applied for watch %q", name)
		}
		applied = append(applied, counts{n, skipped})
	}
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
	want := `level=WARN msg="watch: instance skipped: it cannot be rendered safely" id=evil-1 node=n1 address="10.0.0.9; include /etc/passwd" port=80 reason="address \"10.0.0.9; include /etc/passwd\" is neither an IP nor a host name"`
	if n := strings.Count(logs.String(), want); n != 1 {
		t.Fatalf("want the skipped instance logged once as\n%s", want)
	}
	if !strings.Contains(logs.String(), `msg="watch: instances changed" instances=2 skipped=1`) {
		t.Error("the change's line does not count the skipped instance")
	}

	// Another change with the same bad instance: not logged again.
	w.apply(context.Background(), discovery.NewSnapshot("backend", []discovery.Instance{instance("web-1", "10.0.0.1", 3000), bad}))
	if n := strings.Count(logs.String(), "instance skipped"); n != 1 {
		t.Errorf("the same skipped instance logged %d times over two changes", n)
	}
	if !slices.Equal(applied, []counts{{2, 1}, {1, 1}}) {
		t.Errorf("applied %v", applied)
	}
}

// A failed render says what stays on disk: nothing when there is no file
// yet, the file as it is otherwise; never "the last good file" that is not.
func TestWatchRenderFailureSaysWhatStays(t *testing.T) {
	dir := t.TempDir()
	src, dest := filepath.Join(dir, "up.tmpl"), filepath.Join(dir, "up.conf")
	if err := os.WriteFile(src, []byte(`{{ (index .Instances 5).Address }}`), 0o644); err != nil {
		t.Fatal(err)
	}
	w, logs := testWatch(t, config.OnChange{Templates: []config.TemplateFile{{Source: src, Dest: dest}}})
	one := discovery.NewSnapshot("backend", []discovery.Instance{instance("web-1", "10.0.0.1", 3000)})
	w.apply(context.Background(), one)
	if _, err := os.Stat(dest); err == nil {
		t.Fatal("a failed render wrote the file")
	}
	if !strings.Contains(logs.String(), `msg="watch: render failed; no file written (there is none yet)"`) || strings.Contains(logs.String(), "keeping") {
		t.Fatal("the log does not say that no file was written")
	}
	if err := os.WriteFile(dest, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w.apply(context.Background(), one)
	if !strings.Contains(logs.String(), `msg="watch: render failed; keeping the file as it is"`) {
		t.Fatal("the log does not say the file stays")
	}
	if b, _ := os.ReadFile(dest); string(b) != "old\n" {
		t.Fatalf("the file changed: %q", b)
	}
}

// fakeTimer stands in for time.AfterFunc's timer: the test fires it.
type fakeTimer struct {
	f       func()
	stopped atomic.Bool
}

func (f *fakeTimer) Stop() bool { return !f.stopped.Swap(true) }

// fakeWatcher publishes its snapshots (if any) and then waits.
type fakeWatcher struct{ snaps []discovery.Snapshot }

func (f fakeWatcher) Watch(ctx context.Context, _ discovery.WatchSpec, publish func(discovery.Snapshot)) error {
	for _, s := range f.snaps {
		publish(s)
	}
	<-ctx.Done()
	return nil
}

// runGated runs a watch that reloads job "nginx" through a start gate,
// with a fake first-render timer; it returns the gate and the timer.
func runGated(t *testing.T, snaps ...discovery.Snapshot) (*startGate, *fakeTimer, *toolbin.LockedBuffer) {
	t.Helper()
	w, logs := testWatch(t, config.OnChange{Reload: &config.Reload{Job: "nginx", Signal: config.Signal(syscall.SIGHUP)}})
	w.jobs = map[string]*jobs.Job{"nginx": jobs.New(jobs.Spec{Name: "nginx"}, jobs.Deps{Log: w.log, Bus: jobs.NewBus()})}
	w.watcher = fakeWatcher{snaps}
	w.gate = &startGate{open: make(chan struct{})}
	w.gate.remaining.Add(1)
	timer := &fakeTimer{}
	armed := make(chan struct{})
	w.afterFunc = func(d time.Duration, f func()) interface{ Stop() bool } {
		timer.f = f
		close(armed)
		return timer
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-armed
	return w.gate, timer, logs
}

// With instances in Consul at start, the first render opens the reload
// job's gate and stops the timer: no "no instances yet" 5 s later, even
// should the timer fire after all.
func TestWatchFirstRenderStopsGateTimer(t *testing.T) {
	gate, timer, logs := runGated(t, discovery.NewSnapshot("backend", []discovery.Instance{
		instance("web-1", "10.0.0.1", 3000), instance("web-2", "10.0.0.2", 3000),
	}))
	select {
	case <-gate.open:
	case <-time.After(10 * time.Second):
		t.Fatal("the first render did not open the gate")
	}
	if !timer.stopped.Load() {
		t.Error("the first render left the timer running")
	}
	timer.f() // fired anyway (it raced the render): it must not claim the gate
	if strings.Contains(logs.String(), "starting the job it reloads") {
		t.Fatalf("the timer logged after the first render:\n%s", logs)
	}
}

// Without any set from Consul, the timer opens the gate and says why.
func TestWatchGateTimerOpensWithoutRender(t *testing.T) {
	gate, timer, logs := runGated(t)
	timer.f()
	select {
	case <-gate.open:
	default:
		t.Fatal("the timer did not open the gate")
	}
	if n := strings.Count(logs.String(), `msg="watch: no set of instances from Consul yet; starting the job it reloads on the files it has" job=nginx after=5s`); n != 1 {
		t.Fatalf("want one line saying the job starts on the files it has, got %d", n)
	}
}

// A reload for a job that is not running (the gate still holds it, or it
// restarts) sends nothing, so it does not claim it did.
func TestWatchReloadOfJobNotRunning(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "upstream.conf")
	w, logs := testWatch(t, config.OnChange{Render: &config.RenderFile{Format: "nginx", Dest: dest},
		Reload: &config.Reload{Job: "nginx", Signal: config.Signal(syscall.SIGHUP)}})
	w.jobs = map[string]*jobs.Job{"nginx": jobs.New(jobs.Spec{Name: "nginx"}, jobs.Deps{Log: w.log, Bus: jobs.NewBus()})}
	w.apply(context.Background(), discovery.NewSnapshot("backend", []discovery.Instance{instance("web-1", "10.0.0.1", 3000)}))
	if _, err := os.Stat(dest); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "reload signal sent") {
		t.Fatal("claims a reload signal was sent to a job that is not running")
	}
	if !strings.Contains(logs.String(), `msg="watch: not reloading: the job is not running; it reads the files when it starts" job=nginx`) {
		t.Fatal("no line says why there was no reload")
	}
}
