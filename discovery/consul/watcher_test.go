package consul

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/nodepilot/pilot/discovery"

	"github.com/nodepilot/pilot/test/toolbin"
)

// countingTransport counts the watcher's requests to the agent.
type countingTransport struct {
	next http.RoundTripper
	n    atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasPrefix(r.URL.Path, "/v1/health/service/") {
		c.n.Add(1)
	}
	return c.next.RoundTrip(r)
}

func (c *countingTransport) CloseIdleConnections() {
	if ci, ok := c.next.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

type published struct {
	at   time.Time
	snap discovery.Snapshot
}

// watchRun is one Watch under test, its publications recorded.
type watchRun struct {
	t    *testing.T
	reqs *countingTransport
	logs *toolbin.LockedBuffer

	mu   sync.Mutex
	pubs []published
}

func (r *watchRun) all() []published {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.pubs)
}

func (r *watchRun) count() int { return len(r.all()) }

func (r *watchRun) latest() (published, bool) {
	p := r.all()
	if len(p) == 0 {
		return published{}, false
	}
	return p[len(p)-1], true
}

// waitPub waits for publication number n (1-based) and returns it.
func (r *watchRun) waitPub(n int, d time.Duration, what string) published {
	r.t.Helper()
	waitFor(r.t, d, what, func() bool { return r.count() >= n })
	return r.all()[n-1]
}

// startWatch runs Watch(spec) against addr until the test ends.
func startWatch(t *testing.T, addr string, opts WatcherOptions, spec discovery.WatchSpec) *watchRun {
	t.Helper()
	c, err := NewClient(Config{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	ct := &countingTransport{next: c.http.Transport}
	c.http.Transport = ct
	r := &watchRun{t: t, reqs: ct, logs: &toolbin.LockedBuffer{}}
	log := slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w, err := NewWatcher(c, opts, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- w.Watch(ctx, spec, func(s discovery.Snapshot) {
			r.mu.Lock()
			r.pubs = append(r.pubs, published{time.Now(), s})
			r.mu.Unlock()
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Watch returned %v after cancel", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Watch did not return within 5s of cancel")
		}
		c.Close()
		if t.Failed() {
			t.Logf("watcher log:\n%s", r.logs.String())
		}
	})
	return r
}

func ids(s discovery.Snapshot) []string {
	var out []string
	for _, in := range s.Instances {
		out = append(out, in.ID)
	}
	return out
}

func TestWatchValidates(t *testing.T) {
	c, err := NewClient(Config{Address: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := NewWatcher(nil, WatcherOptions{}, nil); err == nil {
		t.Error("nil client accepted")
	}
	w, _ := NewWatcher(c, WatcherOptions{}, nil)
	if err := w.Watch(context.Background(), discovery.WatchSpec{}, func(discovery.Snapshot) {}); err == nil {
		t.Error("empty service accepted")
	}
	if err := w.Watch(context.Background(), discovery.WatchSpec{Service: "x"}, nil); err == nil {
		t.Error("nil publish accepted")
	}
}

// --- Against a scripted fake agent: index handling and failure paths. ---

type fakeAnswer struct {
	code        int
	index       uint64
	ids         []string
	lastContact time.Duration // X-Consul-LastContact
}

// fakeAgent answers /v1/health/service/* from script(n) for request n
// (0-based) and records each request's ?index and read mode.
type fakeAgent struct {
	srv    *httptest.Server
	mu     sync.Mutex
	seen   []string // the index parameter of each request ("" when absent)
	modes  []string // stale, consistent or default: the mode each request asked for
	script func(n int) fakeAnswer
}

func newFakeAgent(t *testing.T, script func(n int) fakeAnswer) *fakeAgent {
	f := &fakeAgent{script: script}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		n := len(f.seen)
		f.seen = append(f.seen, r.URL.Query().Get("index"))
		mode := "default"
		for _, m := range []string{"stale", "consistent"} {
			if r.URL.Query().Has(m) {
				mode = m
			}
		}
		f.modes = append(f.modes, mode)
		f.mu.Unlock()
		a := f.script(n)
		if a.code != 0 && a.code != 200 {
			http.Error(w, "boom", a.code)
			return
		}
		var b strings.Builder
		b.WriteString("[")
		for i, id := range a.ids {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `{"Node":{"Node":"n1","Address":"10.0.0.1"},"Service":{"ID":%q,"Service":"web","Port":80},"Checks":[{"CheckID":"service:%s","Status":"passing"}]}`, id, id)
		}
		b.WriteString("]")
		w.Header().Set("X-Consul-Index", strconv.FormatUint(a.index, 10))
		w.Header().Set("X-Consul-LastContact", strconv.FormatInt(a.lastContact.Milliseconds(), 10))
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(b.String()))
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAgent) indexes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.seen)
}

func (f *fakeAgent) readModes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.modes)
}

func (f *fakeAgent) addr() string { return strings.TrimPrefix(f.srv.URL, "http://") }

// An agent that answers at once with the same index (a buggy or busy
// agent) must not be hammered: requests are spaced by QuietInterval.
func TestWatchNoHotLoopOnUnchangedIndex(t *testing.T) {
	f := newFakeAgent(t, func(int) fakeAnswer { return fakeAnswer{index: 7, ids: []string{"a"}} })
	opts := WatcherOptions{QuietInterval: 100 * time.Millisecond}
	r := startWatch(t, f.addr(), opts, discovery.WatchSpec{Service: "web"})
	r.waitPub(1, 2*time.Second, "initial snapshot")
	time.Sleep(time.Second) // measuring a rate over a fixed window
	n := r.reqs.n.Load()
	t.Logf("requests in ~1s with an index that never moves: %d", n)
	if n > 13 {
		t.Fatalf("hot loop: %d requests in ~1s with QuietInterval 100ms", n)
	}
	if r.count() != 1 {
		t.Fatalf("published %d times, want 1", r.count())
	}
	// Every request after the first waits on the index it was given.
	for i, idx := range f.indexes() {
		if want := map[bool]string{true: "", false: "7"}[i == 0]; idx != want {
			t.Fatalf("request %d had index %q, want %q", i, idx, want)
		}
	}
}

// An index that churns with an unchanged body (idempotent writes) is
// not published and is rate-limited too.
func TestWatchIndexChurnSameBody(t *testing.T) {
	f := newFakeAgent(t, func(n int) fakeAnswer { return fakeAnswer{index: uint64(10 + n), ids: []string{"a"}} })
	r := startWatch(t, f.addr(), WatcherOptions{QuietInterval: 100 * time.Millisecond}, discovery.WatchSpec{Service: "web"})
	r.waitPub(1, 2*time.Second, "initial snapshot")
	time.Sleep(time.Second) // measuring a rate over a fixed window
	if n := r.reqs.n.Load(); n > 13 {
		t.Fatalf("hot loop: %d requests in ~1s", n)
	}
	if r.count() != 1 {
		t.Fatalf("published %d times, want 1", r.count())
	}
}

// Index going backwards resets to 0; index 0 becomes 1 (Consul's rules).
func TestWatchIndexResets(t *testing.T) {
	f := newFakeAgent(t, func(n int) fakeAnswer {
		switch n {
		case 0:
			return fakeAnswer{index: 100, ids: []string{"a"}}
		case 1:
			return fakeAnswer{index: 5, ids: []string{"a", "b"}} // backwards, and a change
		case 2:
			return fakeAnswer{index: 0, ids: []string{"a", "b"}}
		default:
			time.Sleep(50 * time.Millisecond)
			return fakeAnswer{index: 1, ids: []string{"a", "b"}}
		}
	})
	r := startWatch(t, f.addr(), WatcherOptions{QuietInterval: 10 * time.Millisecond}, discovery.WatchSpec{Service: "web"})
	p := r.waitPub(2, 2*time.Second, "change carried by a backwards index")
	if got := ids(p.snap); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("second snapshot %v", got)
	}
	waitFor(t, 2*time.Second, "4 requests", func() bool { return len(f.indexes()) >= 4 })
	got := f.indexes()[:4]
	if want := []string{"", "100", "", "1"}; !slices.Equal(got, want) {
		t.Fatalf("request indexes %q, want %q", got, want)
	}
	if r.count() != 2 {
		t.Fatalf("published %d times, want 2", r.count())
	}
}

// Errors publish nothing (stale beats partial), back off exponentially,
// and the first success after them is published only if it changed;
// a successful empty answer is published.
func TestWatchErrorsKeepLastAndBackOff(t *testing.T) {
	var phase atomic.Int32 // 0: ok{a}; 1: errors; 2: ok{a}; 3: ok{}
	f := newFakeAgent(t, func(n int) fakeAnswer {
		switch phase.Load() {
		case 0:
			if n > 0 {
				time.Sleep(20 * time.Millisecond)
			}
			return fakeAnswer{index: 10, ids: []string{"a"}}
		case 1:
			return fakeAnswer{code: 500}
		case 2:
			time.Sleep(20 * time.Millisecond)
			return fakeAnswer{index: 10, ids: []string{"a"}}
		default:
			time.Sleep(20 * time.Millisecond)
			return fakeAnswer{index: 11}
		}
	})
	r := startWatch(t, f.addr(), WatcherOptions{QuietInterval: 20 * time.Millisecond, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}, discovery.WatchSpec{Service: "web"})
	r.waitPub(1, 2*time.Second, "initial snapshot")
	before := r.reqs.n.Load()
	phase.Store(1)
	time.Sleep(time.Second) // an outage of fixed length
	errs := r.reqs.n.Load() - before
	t.Logf("requests during a 1s outage (backoff 20ms→200ms): %d", errs)
	// 20+40+80+160+200+200+200 ≈ 900ms: about 7, never dozens.
	if errs > 12 || errs < 3 {
		t.Fatalf("%d requests during a 1s outage; backoff not exponential and capped", errs)
	}
	if r.count() != 1 {
		t.Fatalf("an error published something: %d publications", r.count())
	}
	phase.Store(2)
	waitFor(t, 2*time.Second, "requests resume", func() bool {
		return strings.Contains(r.logs.String(), "watch recovered")
	})
	holdFor(t, 200*time.Millisecond, "no publication of an unchanged snapshot after recovery", func() bool { return r.count() == 1 })
	// After the first error every retry starts over (index reset): the
	// agent may have restarted with a lower index.
	if retries := f.indexes()[before+2 : before+errs]; slices.ContainsFunc(retries, func(s string) bool { return s != "" }) {
		t.Errorf("retries after an error kept waiting on the old index: %q", retries)
	}
	phase.Store(3)
	p := r.waitPub(2, 2*time.Second, "empty set from a successful query")
	if len(p.snap.Instances) != 0 {
		t.Fatalf("want empty snapshot, got %v", ids(p.snap))
	}
}

// --- Against the real agent. ---

var watchSerial atomic.Int32

func watchName() string { return fmt.Sprintf("watched%d", watchSerial.Add(1)) }

// reg registers an instance on the agent with a TTL check in the given
// status, straight through consul/api.
func reg(t *testing.T, c *Client, name, id string, port int, status string, tags ...string) {
	t.Helper()
	err := c.api.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: id, Name: name, Address: "10.1.2.3", Port: port, Tags: tags,
		Meta:  map[string]string{"version": "1"},
		Check: &api.AgentServiceCheck{TTL: "60s", Status: status},
	})
	if err != nil {
		t.Fatalf("register %s: %v", id, err)
	}
}

func regClient(t *testing.T, a *testAgent) *Client {
	c, err := NewClient(Config{Address: a.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestWatchAgentInitialAddCriticalQuiet(t *testing.T) {
	a := needAgent(t)
	rc := regClient(t, a)
	name := watchName()
	reg(t, rc, name, name+"-a", 3001, "passing", "v1")

	r := startWatch(t, a.Addr(), WatcherOptions{}, discovery.WatchSpec{Service: name, PassingOnly: true})
	p := r.waitPub(1, 5*time.Second, "initial snapshot")
	if got := ids(p.snap); !slices.Equal(got, []string{name + "-a"}) {
		t.Fatalf("initial snapshot %v", got)
	}
	in := p.snap.Instances[0]
	if in.Address != "10.1.2.3" || in.Port != 3001 || in.Node != "pilot-test" || in.Status != discovery.Passing ||
		!slices.Equal(in.Tags, []string{"v1"}) || in.Meta["version"] != "1" {
		t.Fatalf("instance %+v", in)
	}

	// Adds: a blocking query answers within milliseconds.
	var lat []time.Duration
	for i := range 5 {
		n := r.count()
		start := time.Now()
		reg(t, rc, name, fmt.Sprintf("%s-add%d", name, i), 4000+i, "passing")
		p := r.waitPub(n+1, 2*time.Second, "snapshot after an add")
		lat = append(lat, p.at.Sub(start))
		if len(p.snap.Instances) != 2+i {
			t.Fatalf("after add %d: %v", i, ids(p.snap))
		}
	}
	t.Logf("register → publish latency: %v", lat)
	slices.Sort(lat)
	if lat[len(lat)/2] > 100*time.Millisecond {
		t.Fatalf("median add latency %v > 100ms: not a blocking query?", lat[len(lat)/2])
	}

	// A check going critical drops the instance from a passing-only watch.
	n := r.count()
	start := time.Now()
	if err := rc.api.Agent().UpdateTTL("service:"+name+"-a", "down", api.HealthCritical); err != nil {
		t.Fatal(err)
	}
	p = r.waitPub(n+1, 2*time.Second, "snapshot after critical")
	t.Logf("critical → publish latency: %v", p.at.Sub(start))
	if slices.Contains(ids(p.snap), name+"-a") || len(p.snap.Instances) != 5 {
		t.Fatalf("critical instance still watched: %v", ids(p.snap))
	}

	// Nothing changes: requests stay bounded (no hot loop) and nothing is
	// published.
	reqs, pubs := r.reqs.n.Load(), r.count()
	time.Sleep(2 * time.Second) // measuring a rate over a fixed window
	idle := r.reqs.n.Load() - reqs
	t.Logf("requests while idle for 2s: %d (total %d)", idle, r.reqs.n.Load())
	if idle > 2 {
		t.Fatalf("%d requests in 2s with nothing changing", idle)
	}
	if r.count() != pubs {
		t.Fatalf("published %d times while nothing changed", r.count()-pubs)
	}
}

func TestWatchAgentAllStatusesAndTag(t *testing.T) {
	a := needAgent(t)
	rc := regClient(t, a)
	name := watchName()
	reg(t, rc, name, name+"-1", 3001, "passing", "v1", "blue")
	reg(t, rc, name, name+"-2", 3002, "warning", "v2")
	reg(t, rc, name, name+"-3", 3003, "critical", "v1")

	all := startWatch(t, a.Addr(), WatcherOptions{}, discovery.WatchSpec{Service: name})
	v1 := startWatch(t, a.Addr(), WatcherOptions{}, discovery.WatchSpec{Service: name, Consul: discovery.ConsulQuery{Tag: "v1"}})
	v1p := startWatch(t, a.Addr(), WatcherOptions{}, discovery.WatchSpec{Service: name, Consul: discovery.ConsulQuery{Tag: "v1"}, PassingOnly: true})
	none := startWatch(t, a.Addr(), WatcherOptions{}, discovery.WatchSpec{Service: name, Consul: discovery.ConsulQuery{Tag: "nope"}})

	p := all.waitPub(1, 5*time.Second, "all")
	var st []discovery.Status
	for _, in := range p.snap.Instances {
		st = append(st, in.Status)
	}
	if !slices.Equal(st, []discovery.Status{discovery.Passing, discovery.Warning, discovery.Critical}) {
		t.Fatalf("statuses %v for %v", st, ids(p.snap))
	}
	if got := ids(v1.waitPub(1, 5*time.Second, "v1").snap); !slices.Equal(got, []string{name + "-1", name + "-3"}) {
		t.Fatalf("tag v1: %v", got)
	}
	if got := ids(v1p.waitPub(1, 5*time.Second, "v1 passing").snap); !slices.Equal(got, []string{name + "-1"}) {
		t.Fatalf("tag v1 passing: %v", got)
	}
	if p := none.waitPub(1, 5*time.Second, "no match"); len(p.snap.Instances) != 0 {
		t.Fatalf("tag nope: %v", ids(p.snap))
	}

	// A change to an instance without the tag is not published to v1.
	if err := rc.api.Agent().UpdateTTL("service:"+name+"-2", "", api.HealthPassing); err != nil {
		t.Fatal(err)
	}
	p = all.waitPub(2, 2*time.Second, "all sees -2 passing")
	if p.snap.Instances[1].Status != discovery.Passing {
		t.Fatalf("-2 status %s", p.snap.Instances[1].Status)
	}
	holdFor(t, 300*time.Millisecond, "v1 watch untouched", func() bool { return v1.count() == 1 && v1p.count() == 1 })
}

// Agent killed: nothing published, last snapshot kept. Agent back with an
// empty state (index reset): the watch resumes by itself and publishes the
// new truth.
func TestWatchAgentKilledAndRestarted(t *testing.T) {
	a := needAgent(t)
	t.Cleanup(func() {
		if !a.Running() {
			if err := a.Up(); err != nil {
				t.Errorf("restarting agent: %v", err)
			}
		}
	})
	rc := regClient(t, a)
	name := watchName()
	reg(t, rc, name, name+"-a", 3001, "passing")
	r := startWatch(t, a.Addr(), WatcherOptions{}, discovery.WatchSpec{Service: name, PassingOnly: true})
	r.waitPub(1, 5*time.Second, "initial snapshot")

	a.Kill()
	before := r.reqs.n.Load()
	holdFor(t, 2*time.Second, "no publication while the agent is down", func() bool { return r.count() == 1 })
	down := r.reqs.n.Load() - before
	t.Logf("requests in 2s with the agent down: %d", down)
	if down > 12 {
		t.Fatalf("%d requests in 2s against a dead agent: backoff not working", down)
	}
	if !strings.Contains(r.logs.String(), "keeping the last snapshot") {
		t.Fatalf("no failure logged:\n%s", r.logs.String())
	}

	up := time.Now()
	if err := a.Up(); err != nil {
		t.Fatal(err)
	}
	t.Logf("agent restarted in %v", time.Since(up))
	p := r.waitPub(2, 15*time.Second, "the restarted agent's truth (empty)")
	if len(p.snap.Instances) != 0 {
		t.Fatalf("want empty snapshot from the fresh agent, got %v", ids(p.snap))
	}
	t.Logf("restart → empty snapshot published after %v", p.at.Sub(up))

	n := r.count()
	start := time.Now()
	reg(t, rc, name, name+"-b", 3002, "passing")
	p = r.waitPub(n+1, 2*time.Second, "re-registration seen")
	t.Logf("register after restart → publish latency: %v", p.at.Sub(start))
	if got := ids(p.snap); !slices.Equal(got, []string{name + "-b"}) {
		t.Fatalf("after restart: %v", got)
	}
}

// Each consistency asks for its own read mode; "" asks for stale.
func TestWatchConsistencyModes(t *testing.T) {
	for _, c := range []struct {
		consistency discovery.Consistency
		want        string
	}{{"", "stale"}, {discovery.ConsistencyStale, "stale"}, {discovery.ConsistencyDefault, "default"}, {discovery.ConsistencyConsistent, "consistent"}} {
		f := newFakeAgent(t, func(int) fakeAnswer { return fakeAnswer{index: 7, ids: []string{"a"}} })
		r := startWatch(t, f.addr(), WatcherOptions{}, discovery.WatchSpec{Service: "web", Consul: discovery.ConsulQuery{Consistency: c.consistency}})
		r.waitPub(1, 2*time.Second, "initial snapshot")
		if got := f.readModes(); got[0] != c.want {
			t.Errorf("consistency %q asked %v, want %s", c.consistency, got, c.want)
		}
	}
}

// A stale answer from a server that lost the leader for longer than
// MaxStale is not published: the same query goes to the leader at once,
// on the same index, and its answer is the one published.
func TestWatchStaleTooOldAsksLeader(t *testing.T) {
	f := newFakeAgent(t, func(n int) fakeAnswer {
		switch n {
		case 0:
			return fakeAnswer{index: 10, ids: []string{"a"}}
		case 1: // a follower cut off from the leader for 5 s, with an old view
			time.Sleep(20 * time.Millisecond)
			return fakeAnswer{index: 11, ids: []string{"a", "old"}, lastContact: 5 * time.Second}
		case 2: // the leader
			return fakeAnswer{index: 12, ids: []string{"a", "b"}}
		default:
			time.Sleep(50 * time.Millisecond)
			return fakeAnswer{index: 12, ids: []string{"a", "b"}}
		}
	})
	r := startWatch(t, f.addr(), WatcherOptions{QuietInterval: 10 * time.Millisecond}, discovery.WatchSpec{Service: "web"})
	p := r.waitPub(2, 2*time.Second, "the leader's answer")
	if got := ids(p.snap); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("second snapshot %v, want the leader's [a b] (the stale [a old] must not be published)", got)
	}
	waitFor(t, 2*time.Second, "4 requests", func() bool { return len(f.indexes()) >= 4 })
	if got, want := f.readModes()[:4], []string{"stale", "stale", "default", "stale"}; !slices.Equal(got, want) {
		t.Fatalf("read modes %v, want %v (back to stale after the leader answered)", got, want)
	}
	if got, want := f.indexes()[1:3], []string{"10", "10"}; !slices.Equal(got, want) {
		t.Fatalf("indexes of the stale query and its retry %v, want %v", got, want)
	}
}
