package consul

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/nodepilot/pilot/discovery"
	"github.com/nodepilot/pilot/discovery/watchertest"
	"github.com/nodepilot/pilot/test/toolbin"
)

// TestWatcherSuite runs the shared discovery.Watcher suite against the
// package's real Consul agent (-dev, see agent_test.go).
func TestWatcherSuite(t *testing.T) {
	watchertest.Run(t, func(t *testing.T) watchertest.Backend { return newSuiteBackend(t) })
}

// suiteOptions are short, so the suite is fast: the retry backoff stays
// well under watchertest.DownHold/3, so the hold while down spans several
// failed attempts. WaitTime is the exception: nothing in a correct watch
// waits on it, and above watchertest.ChangeTimeout it makes a watch stuck
// on a stale index (one kept across the agent's restart) fail the suite
// instead of merely answering late.
var suiteOptions = WatcherOptions{
	WaitTime:      10 * time.Second,
	QuietInterval: 20 * time.Millisecond,
	MinBackoff:    20 * time.Millisecond,
	MaxBackoff:    250 * time.Millisecond,
}

// suiteTTL is the TTL of an added instance's check: longer than any
// subtest, so it never expires on its own.
const suiteTTL = "10m"

// suiteBackend is watchertest.Backend over the real agent.
//
// Down and Up keep the state, as the suite requires, although the agent
// runs with -dev and so loses every registration when it stops (Consul's
// dev mode has no persistence; the harness offers no data dir). The
// backend therefore remembers what it registered, and Up re-registers it
// on the restarted agent, with each check in the status it had. While it
// does, the watcher must not see the fresh agent's empty or partial
// state, which no real restart with persistence would show: the watcher's
// client goes through a gate, which refuses every request (as a stopped
// agent refuses the connection) from Down until the re-registered state is
// in the catalog. The watcher still sees what matters: its in-flight
// blocking query dies with the agent, its retries fail, and it comes back
// to an agent whose index has gone back to near zero.
type suiteBackend struct {
	a     *testAgent
	reg   *Client // registers and updates checks; bypasses the gate
	watch *Client // the watcher's, through gate
	gate  *gate
	w     *Watcher
	logs  *toolbin.LockedBuffer

	// What this backend registered, in order: the state Up restores.
	order []string
	insts map[string]*suiteInstance
}

type suiteInstance struct {
	service string
	port    int
	healthy bool
	removed bool
}

var suitePort atomic.Int32

func newSuiteBackend(t *testing.T) *suiteBackend {
	t.Helper()
	a := needAgent(t)
	reg, err := NewClient(Config{Address: a.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	wc, err := NewClient(Config{Address: a.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{next: wc.http.Transport}
	wc.http.Transport = g
	logs := &toolbin.LockedBuffer{}
	w, err := NewWatcher(wc, suiteOptions, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	b := &suiteBackend{a: a, reg: reg, watch: wc, gate: g, w: w, logs: logs, insts: map[string]*suiteInstance{}}
	// Registered first, so it runs last: after the suite's watch has
	// stopped and the agent is up again.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("watcher log:\n%s", logs.String())
		}
		if a.Running() {
			for _, id := range b.order {
				if !b.insts[id].removed {
					_ = reg.api.Agent().ServiceDeregister(id)
				}
			}
		}
		reg.Close()
		wc.Close()
	})
	return b
}

func (b *suiteBackend) Watcher() discovery.Watcher { return b.w }

func (b *suiteBackend) Spec(service string, passingOnly bool) discovery.WatchSpec {
	return discovery.WatchSpec{Service: service, PassingOnly: passingOnly}
}

func (b *suiteBackend) Add(t testing.TB, service string) string {
	t.Helper()
	n := suitePort.Add(1)
	id := fmt.Sprintf("%s-%d", service, n)
	in := &suiteInstance{service: service, port: 20000 + int(n), healthy: true}
	b.register(t, id, in)
	b.order = append(b.order, id)
	b.insts[id] = in
	b.settle(t, service)
	return id
}

func (b *suiteBackend) Remove(t testing.TB, service, id string) {
	t.Helper()
	in := b.instance(t, service, id)
	if err := b.reg.api.Agent().ServiceDeregister(id); err != nil {
		t.Fatalf("deregister %s: %v", id, err)
	}
	in.removed = true
	b.settle(t, service)
}

func (b *suiteBackend) SetHealthy(t testing.TB, service, id string, healthy bool) {
	t.Helper()
	in := b.instance(t, service, id)
	if err := b.reg.api.Agent().UpdateTTL("service:"+id, "", checkStatus(healthy)); err != nil {
		t.Fatalf("update TTL of %s: %v", id, err)
	}
	in.healthy = healthy
	b.settle(t, service)
}

// Down closes the gate, then kills the agent: the watcher's blocking
// query dies with it.
func (b *suiteBackend) Down(t testing.TB) {
	t.Helper()
	b.gate.close()
	b.a.Kill()
	b.reg.Close() // its idle connections are to the dead agent
}

// Up restarts the agent (empty: -dev), restores what this backend had
// registered, waits until the catalog shows it, and only then opens the
// gate.
func (b *suiteBackend) Up(t testing.TB) {
	t.Helper()
	if err := b.a.Up(); err != nil {
		t.Fatalf("restarting the agent: %v", err)
	}
	services := map[string]bool{}
	for _, id := range b.order {
		if in := b.insts[id]; !in.removed {
			b.register(t, id, in)
			services[in.service] = true
		}
	}
	for s := range services {
		b.settle(t, s)
	}
	refused := b.gate.open()
	t.Logf("watcher requests refused while down: %d", refused)
}

func (b *suiteBackend) instance(t testing.TB, service, id string) *suiteInstance {
	t.Helper()
	in, ok := b.insts[id]
	if !ok || in.removed || in.service != service {
		t.Fatalf("no instance %s of %s", id, service)
	}
	return in
}

func (b *suiteBackend) register(t testing.TB, id string, in *suiteInstance) {
	t.Helper()
	err := b.reg.api.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: id, Name: in.service, Address: "10.1.2.3", Port: in.port,
		Tags:  []string{"suite"},
		Meta:  map[string]string{"version": "1"},
		Check: &api.AgentServiceCheck{TTL: suiteTTL, Status: checkStatus(in.healthy)},
	})
	if err != nil {
		t.Fatalf("register %s: %v", id, err)
	}
}

func checkStatus(healthy bool) string {
	if healthy {
		return api.HealthPassing
	}
	return api.HealthCritical
}

// settle waits until the catalog shows exactly this backend's instances
// of service, each in its status: the agent syncs a registration to the
// catalog in the background, and Backend's methods return only once the
// change is visible to any watcher.
func (b *suiteBackend) settle(t testing.TB, service string) {
	t.Helper()
	want := map[string]bool{} // id → healthy
	for id, in := range b.insts {
		if in.service == service && !in.removed {
			want[id] = in.healthy
		}
	}
	const d = 10 * time.Second
	deadline := time.Now().Add(d)
	for {
		entries, err := b.a.Health(service, false)
		if err == nil && len(entries) == len(want) {
			ok := true
			for _, e := range entries {
				healthy, known := want[e.Service.ID]
				passing := true
				for _, c := range e.Checks {
					passing = passing && c.Status == api.HealthPassing
				}
				ok = ok && known && passing == healthy
			}
			if ok {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("catalog does not show %v for %s within %v: %+v (err %v)", want, service, d, entries, err)
		}
		time.Sleep(5 * time.Millisecond) // poll interval, bounded by the deadline
	}
}

// gate is the watcher client's transport: while closed it refuses every
// request as a stopped agent refuses the connection.
type gate struct {
	next    http.RoundTripper
	mu      sync.Mutex
	closed  bool
	refused int
}

func (g *gate) RoundTrip(r *http.Request) (*http.Response, error) {
	g.mu.Lock()
	closed := g.closed
	if closed {
		g.refused++
	}
	g.mu.Unlock()
	if closed {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	}
	return g.next.RoundTrip(r)
}

func (g *gate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed, g.refused = true, 0
}

// open opens the gate and returns how many requests it refused while
// closed.
func (g *gate) open() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = false
	return g.refused
}

func (g *gate) CloseIdleConnections() {
	if ci, ok := g.next.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}
