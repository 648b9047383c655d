package watches

import (
	"maps"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodepilot/pilot/pilot/config"
)

func reloadJob(job string) config.OnChange {
	return config.OnChange{Reload: &config.Reload{Job: job, Signal: config.Signal(syscall.SIGHUP)}}
}

// Every job a watch reloads gets one gate, shared by its watches, unless
// it is not about to start.
func TestNewStartGates(t *testing.T) {
	ws := []config.Watch{
		{Service: "a", OnChange: reloadJob("nginx")},
		{Service: "b", OnChange: config.OnChange{Run: "sync", Reload: &config.Reload{Exec: []string{"true"}}}},
		{Service: "c", OnChange: reloadJob("traefik")},
		{Service: "d", OnChange: reloadJob("nginx")},
		{Service: "e"},
	}
	perJob, perWatch := NewStartGates(ws, func(job string) bool { return job != "traefik" })
	if keys := slices.Sorted(maps.Keys(perJob)); !slices.Equal(keys, []string{"nginx"}) {
		t.Fatalf("gated jobs %v, want nginx", keys)
	}
	g := perWatch[0]
	if g == nil || perWatch[3] != g || perWatch[1] != nil || perWatch[2] != nil || perWatch[4] != nil {
		t.Fatalf("gates per watch %v", perWatch)
	}
	if (<-chan struct{})(g.open) != perJob["nginx"] || g.remaining.Load() != 2 {
		t.Fatal("nginx's gate is not the one both watches open")
	}
	if _, perWatch := NewStartGates(ws, nil); perWatch[2] == nil {
		t.Fatal("a nil startingJobs left traefik without a gate")
	}
}

// runGated runs a watch that reloads job "nginx" through its start gate.
func runGated(t *testing.T) (*StartGate, *testEnv) {
	t.Helper()
	_, gates := NewStartGates([]config.Watch{{OnChange: reloadJob("nginx")}}, nil)
	w, e := testWatch(t, reloadJob("nginx"), func(o *Options) { o.Gate = gates[0] })
	run(t, w)
	e.clock.waitArmed(t, epoch.Add(firstRenderWait))
	return gates[0], e
}

func isOpen(g *StartGate) bool {
	select {
	case <-g.open:
		return true
	default:
		return false
	}
}

// With instances in Consul at start, the first render opens the reload
// job's gate and stops the timer: no "no instances yet" 5 s later, even
// should the timer fire after all.
func TestGateOpensAtFirstRender(t *testing.T) {
	gate, e := runGated(t)
	e.watcher.send(t, snap(2))
	select {
	case <-gate.open:
	case <-time.After(waitLimit):
		t.Fatal("the first render did not open the gate")
	}
	wantArmed(t, e.clock) // stopped before the gate opened
	e.clock.mu.Lock()
	f := e.clock.timers[0].f
	e.clock.mu.Unlock()
	f() // fired anyway (it raced the render): it must not claim the gate
	if strings.Contains(e.logs.String(), "starting the job it reloads") {
		t.Fatal("the timer logged after the first render")
	}
}

// Without any set from Consul, the gate opens firstRenderWait after the
// start, and the log says why; a later first render opens nothing twice.
func TestGateOpensAfterFirstRenderWait(t *testing.T) {
	gate, e := runGated(t)
	e.clock.Advance(firstRenderWait - time.Nanosecond)
	if isOpen(gate) {
		t.Fatal("the gate opened before firstRenderWait")
	}
	e.clock.Advance(time.Nanosecond) // runs the timer's function
	if !isOpen(gate) {
		t.Fatal("the gate is still shut after firstRenderWait")
	}
	want := `level=WARN msg="watch: no set of instances from its backend yet; starting the job it reloads on the files it has" watch=backend job=nginx after=5s`
	if n := strings.Count(e.logs.String(), want); n != 1 {
		t.Fatalf("want one line saying the job starts on the files it has, got %d", n)
	}
	e.watcher.send(t, snap(1))
	e.nextApplied(t) // and no panic closing the gate twice
}

// A job two watches reload starts once both have rendered.
func TestGateWaitsForEveryWatch(t *testing.T) {
	_, gates := NewStartGates([]config.Watch{{OnChange: reloadJob("nginx")}, {OnChange: reloadJob("nginx")}}, nil)
	w1, e1 := testWatch(t, reloadJob("nginx"), func(o *Options) { o.Gate = gates[0] })
	w2, e2 := testWatch(t, reloadJob("nginx"), func(o *Options) { o.Gate = gates[1] })
	run(t, w1)
	run(t, w2)
	e1.watcher.send(t, snap(1))
	e1.nextApplied(t)
	if isOpen(gates[0]) { // shut before and after the first watch's share
		t.Fatal("the gate opened on one watch's render of two")
	}
	e2.watcher.send(t, snap(1))
	select {
	case <-gates[0].open:
	case <-time.After(waitLimit):
		t.Fatal("the gate stayed shut once both watches rendered")
	}
}
