package main

// Issue 14: pilot on a real Consul cluster (test/consulcluster: 3 servers
// and 2 client agents of the real binary, non-dev, on loopback aliases),
// under the cluster's faults. Every pilot reaches Consul through a client
// agent, as in production, and leaves its service ID at the default.
// Client A (c.Clients[0]) holds the pilots under test; client B
// (c.Clients[1]) the watchers. Each test starts its own cluster (2–5 s): a
// fault leaves state behind (a failed node stays in the catalog for 72 h,
// a killed server must rejoin), and restoring it between subtests would
// cost as much and prove less. Like the other Consul tests they do not
// call t.Parallel: they measure latencies.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/nodepilot/pilot/test/consulcluster"
)

// failureDetectionBound is how long Consul may take to declare a node that
// stopped answering failed, from its gossip defaults (which the harness
// keeps): probe_interval 1 s, probe_timeout 500 ms, suspicion_mult 4,
// memberlist's suspicion max-timeout multiplier 6; n = 5 members.
//
//   - Probing: each member probes one other per probe_interval, round-robin
//     over the n−1 others, reshuffled every round: it reaches a given node
//     within 2(n−1) = 8 intervals at worst, 8 s.
//   - The direct probe fails after probe_timeout, the indirect ones
//     through 3 other members by the end of that interval: 1 s. The node
//     is suspect.
//   - Suspicion lasts from min = suspicion_mult × max(1, log10 n) ×
//     probe_interval = 4 × 1 × 1 s = 4 s to max = 6 × min = 24 s: it starts
//     at max and shrinks towards min with each independent suspicion by
//     another member (2 expected).
//   - The dead message reaches the leader by gossip (gossip_interval
//     200 ms, each message retransmitted): within 1 s. The leader marks
//     the node's serfHealth critical at once (one Raft write) and blocking
//     queries wake.
//
// 8 + 1 + 24 + 1 = 34 s. Typically: the minimum suspicion plus a second or
// two.
const failureDetectionBound = 34 * time.Second

// startWait bounds each wait for something to start (a pilot, its app, its
// first registration, a watcher's first render), which no test measures:
// at times this shared machine runs a load of 150 on its 2 cores, and
// then a pilot built with -race takes over 10 s to start its app.
const startWait = 30 * time.Second

// clusterPilot is a consulApp under its own pilot, which reaches Consul
// through one client agent of the cluster.
type clusterPilot struct {
	*consulApp
	p      *pilotProc
	appPid int
}

// startClusterPilot starts app under a pilot that reaches agent ag through
// the config's consul.address, or, viaEnv, through CONSUL_HTTP_ADDR with no
// address in the config — the two ways users set it.
func startClusterPilot(t *testing.T, app *consulApp, ag *consulcluster.Agent, viaEnv bool) *clusterPilot {
	t.Helper()
	return startClusterPilotWith(t, app, ag, viaEnv, "")
}

// startClusterPilotWith is startClusterPilot with health settings added
// (YAML lines under the job's health block, e.g. "startPeriod: 60s").
func startClusterPilotWith(t *testing.T, app *consulApp, ag *consulcluster.Agent, viaEnv bool, health string) *clusterPilot {
	t.Helper()
	var o pilotOpts
	if viaEnv {
		app.address = ""
		o.env = []string{"CONSUL_HTTP_ADDR=" + ag.HTTPAddr()}
	} else {
		app.address = ag.HTTPAddr()
	}
	cfg, err := readFile(app.config(t))
	if err != nil {
		t.Fatal(err)
	}
	if health != "" {
		const anchor = "\n    health:\n"
		if !strings.Contains(cfg, anchor) {
			t.Fatalf("no health block in:\n%s", cfg)
		}
		cfg = strings.Replace(cfg, anchor, anchor+"      "+health+"\n", 1)
	}
	p := startPilot(t, o, "run", "--config", writeConfig(t, cfg))
	pid, _ := strconv.Atoi(p.out.waitLine(t, startWait, `^ready (\d+)`)[1])
	return &clusterPilot{consulApp: app, p: p, appPid: pid}
}

// waitPassing waits until pilot says the instance is registered and agent
// ag lists it passing. (The agent may list it before pilot says so: the
// registration's note follows it in a second request.)
func (cp *clusterPilot) waitPassing(t *testing.T, ag *consulcluster.Agent) {
	t.Helper()
	cp.p.errLog.waitLine(t, startWait, `consul: service registered`)
	waitFor(t, startWait, cp.id+" passing, seen from "+ag.Name, listedPassing(ag, cp.name, cp.id, true))
}

// newClusterApp is a consulApp with a 2 s health interval and the TTL
// pilot gives it by default, 3 × interval = 6 s (consulApp's config spells
// it out): a heartbeat every 2 s, each request given 2 s. consulApp's 1 s
// is too tight here: a client agent sometimes takes over a second to
// answer — this machine is shared and at times loaded far past its 2
// cores, and an agent syncing through an election answers nothing until
// the sync is done (see TestConsulClusterLeaderKill).
func newClusterApp(t *testing.T) *consulApp {
	t.Helper()
	c := newConsulApp(t, "")
	c.interval = 2 * time.Second
	c.ttl = 3 * c.interval
	return c
}

// sibling is another instance of c's service, on a port of its own, with
// the default service ID too.
func (c *consulApp) sibling(t *testing.T) *consulApp {
	t.Helper()
	s := newConsulApp(t, "")
	s.name, s.id = c.name, defaultID(c.name, s.port)
	s.interval, s.ttl = c.interval, c.ttl
	return s
}

// untouched fails the test unless the pilot's app is the one it started:
// same pid, alive, started once.
func (cp *clusterPilot) untouched(t *testing.T) {
	t.Helper()
	if !processAlive(cp.appPid) {
		t.Errorf("%s: the app (pid %d) is gone", cp.id, cp.appPid)
	}
	if n := cp.p.out.count(`^ready \d+`); n != 1 {
		t.Errorf("%s: the app started %d times, want once", cp.id, n)
	}
}

// registered fails the test unless pilot wrote its registration exactly
// n times after since. A registration is logged as registered, or, when
// the agent had forgotten it, as re-registering. (Only those after the
// fault count: on this shared machine an agent sometimes answers too late
// before any fault at all, and pilot then registers again.)
func (cp *clusterPilot) registered(t *testing.T, since time.Time, n int) {
	t.Helper()
	if got := cp.logged(t, since, `consul: (service registered|.*re-registering)`); got != n {
		t.Errorf("%s: %d registrations logged since %s, want %d", cp.id, got, since.Format(time.StampMilli), n)
	}
}

// waitLogged waits until pilot logged a line matching re after since.
func (cp *clusterPilot) waitLogged(t *testing.T, timeout time.Duration, since time.Time, re string) {
	t.Helper()
	waitFor(t, timeout, fmt.Sprintf("%s: a log line matching %q after %s", cp.id, re, since.Format(time.StampMilli)), func() (int, bool) {
		n := cp.logged(t, since, re)
		return n, n > 0
	})
}

// logged counts pilot's log lines matching re stamped after since.
func (cp *clusterPilot) logged(t *testing.T, since time.Time, re string) int {
	t.Helper()
	rx := regexp.MustCompile(re)
	n := 0
	for _, l := range cp.p.errLog.Lines() {
		if rx.MatchString(l) && logTime(t, l).After(since) {
			n++
		}
	}
	return n
}

// instances is the service's instances as agent ag answers
// /v1/health/service (passing: ?passing; stale: ?stale, which any server
// answers from its own state, leader or not).
func instances(ag *consulcluster.Agent, name string, passing, stale bool) ([]*api.ServiceEntry, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	es, _, err := ag.API().Health().Service(name, "", passing, (&api.QueryOptions{AllowStale: stale}).WithContext(ctx))
	return es, err
}

func entryOf(es []*api.ServiceEntry, id string) *api.ServiceEntry {
	for _, e := range es {
		if e.Service.ID == id {
			return e
		}
	}
	return nil
}

// listedPassing is a waitFor condition: ag lists instance id of name
// among the passing ones (listed true) or does not (false).
func listedPassing(ag *consulcluster.Agent, name, id string, listed bool) func() (string, bool) {
	return func() (string, bool) {
		es, err := instances(ag, name, true, false)
		if err != nil {
			return err.Error(), false
		}
		return fmt.Sprintf("%d passing", len(es)), (entryOf(es, id) != nil) == listed
	}
}

// allPassing says whether every check of e (the node's serfHealth and the
// service's TTL check) passes, and else names the first that does not.
func allPassing(e *api.ServiceEntry) (bool, string) {
	for _, ch := range e.Checks {
		if ch.Status != api.HealthPassing {
			return false, ch.CheckID + "=" + ch.Status
		}
	}
	return true, ""
}

// localStatus is the status of pilot's TTL check for service id as agent
// ag itself holds it: "" when it holds no such service.
func localStatus(ag *consulcluster.Agent, id string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, info, err := ag.API().Agent().AgentHealthServiceByIDOpts(id, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil || info == nil {
		return "", err
	}
	return st, nil
}

// clusterWatcher is a pilot on a client agent whose watch renders the
// passing instances of a service as an nginx upstream — what a proxy's
// pilot does.
type clusterWatcher struct {
	p    *pilotProc
	dest string
}

func startClusterWatcher(t *testing.T, ag *consulcluster.Agent, service string) *clusterWatcher {
	t.Helper()
	dest := filepath.Join(t.TempDir(), "backend.conf")
	cfg := writeConfig(t, fmt.Sprintf(`consul: {address: %q}
jobs:
  - name: idle
    main: true
    exec: %s
watches:
  - service: %s
    onChange:
      render: {format: nginx, dest: %q, name: backend}
`, ag.HTTPAddr(), yamlArgv(helperArgv(t, "signals", "exit:0")...), service, dest))
	return &clusterWatcher{p: startPilot(t, pilotOpts{}, "run", "--config", cfg), dest: dest}
}

// shows is a waitFor condition: the upstream lists the instance on port
// (or, with listed false, does not).
func (w *clusterWatcher) shows(port int, listed bool) func() (string, bool) {
	return func() (string, bool) {
		b, _ := os.ReadFile(w.dest)
		return string(b), strings.Contains(string(b), serverLine(port)) == listed
	}
}

// stall is how long the watcher's watch failed after since: from its first
// "watch failing" line to the "watch recovered" that followed (0 when it
// never failed).
func (w *clusterWatcher) stall(t *testing.T, since time.Time) time.Duration {
	t.Helper()
	var failed time.Time
	for _, l := range w.p.errLog.Lines() {
		switch {
		case failed.IsZero() && strings.Contains(l, "consul: watch failing") && logTime(t, l).After(since):
			failed = logTime(t, l)
		case !failed.IsZero() && strings.Contains(l, "consul: watch recovered"):
			return logTime(t, l).Sub(failed)
		}
	}
	if !failed.IsZero() {
		t.Errorf("the watch failed at %s and never recovered", failed.Format(time.StampMilli))
	}
	return 0
}

// probe is one thing a sampler looks at: ok reports whether it is as it
// must be; detail says what it saw; err means it could not look.
type probe struct {
	name  string
	check func() (ok bool, detail string, err error)
}

// sample is one look of a probe.
type sample struct {
	at     time.Time
	ok     bool
	detail string
	took   time.Duration
}

// sampler runs its probes every 50 ms until halted, keeping every sample
// and counting the looks that failed.
type sampler struct {
	probes []probe
	stop   chan struct{}
	wg     sync.WaitGroup

	mu      sync.Mutex
	samples map[string][]sample
	errs    map[string]int
}

func startSampler(probes ...probe) *sampler {
	s := &sampler{probes: probes, stop: make(chan struct{}), samples: map[string][]sample{}, errs: map[string]int{}}
	s.wg.Go(func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, p := range s.probes {
				began := time.Now()
				ok, detail, err := p.check()
				at := time.Now()
				s.mu.Lock()
				if err != nil {
					s.errs[p.name]++
				} else {
					s.samples[p.name] = append(s.samples[p.name], sample{at, ok, detail, at.Sub(began)})
				}
				s.mu.Unlock()
			}
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	})
	return s
}

// halt stops the sampler; it may be called more than once.
func (s *sampler) halt() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.wg.Wait()
}

// bad lists the samples of probe that were not ok, described.
func (s *sampler) bad(probe string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, x := range s.samples[probe] {
		if !x.ok {
			out = append(out, fmt.Sprintf("%s: %s at %s", probe, x.detail, x.at.Format(time.StampMilli)))
		}
	}
	return out
}

// slowest is the longest a look of probe took in [from, to] (failed looks
// count as errs, not here).
func (s *sampler) slowest(probe string, from, to time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var d time.Duration
	for _, x := range s.samples[probe] {
		if !x.at.Before(from) && !x.at.After(to) {
			d = max(d, x.took)
		}
	}
	return d
}

// goodBetween counts probe's good samples taken in [from, to].
func (s *sampler) goodBetween(probe string, from, to time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, x := range s.samples[probe] {
		if x.ok && !x.at.Before(from) && !x.at.After(to) {
			n++
		}
	}
	return n
}

// settled returns when probe was ok for good: the first good sample after
// the last bad one (zero when the last sample was bad, or none was good),
// and how many samples were bad.
func (s *sampler) settled(probe string) (time.Time, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var at time.Time
	bad := 0
	for _, x := range s.samples[probe] {
		switch {
		case !x.ok:
			at = time.Time{}
			bad++
		case at.IsZero():
			at = x.at
		}
	}
	return at, bad
}

// RELIABILITY E, issue 14: kill -9 of the Raft leader. An instance's TTL
// check lives on its client agent, not on the servers, so pilot's
// heartbeats go on through the election: the check never leaves passing
// (sampled every 50 ms at the agent, in the catalog and in a watcher's
// upstream, from before the kill until a TTL and more after it and three
// heartbeats after the election), the app is not restarted, and there is
// no re-registration storm. A second instance that registers mid-election
// (on the same client agent, with the default ID too: no collision)
// reaches the watcher soon after the election, and so does a change made
// after it (maintenance).
//
// One failed request per instance on client A is allowed, and said why: a
// client agent holds its local state's lock while it syncs a change to the
// servers (local.State.SyncChanges), and a sync that meets "no cluster
// leader" waits for the new one (rpc_hold_timeout, 7 s) — meanwhile the
// agent answers no TTL update, nor any other request on its services. The
// mid-election registration is such a change; when the wait outlasts
// pilot's heartbeat timeout (a heartbeat, 2 s here) the heartbeat fails,
// and pilot sends the next one; it writes no registration for it.
func TestConsulClusterLeaderKill(t *testing.T) {
	c := consulcluster.StartT(t, consulcluster.Options{})
	a, b := c.Clients[0], c.Clients[1]
	one := startClusterPilot(t, newClusterApp(t), a, false)
	one.waitPassing(t, b)
	w := startClusterWatcher(t, b, one.name)
	waitFor(t, startWait, "the watcher's upstream listing it", w.shows(one.port, true))
	// The second instance, through CONSUL_HTTP_ADDR this time, is up but
	// failing its checks: out of Consul until the kill. Until its first
	// pass, within its startPeriod, pilot checks it every 50 ms
	// (startInterval): it registers within moments of the kill.
	second := one.sibling(t)
	second.setHealthy(t, false)
	two := startClusterPilotWith(t, second, a, true, "startPeriod: 60s")
	two.p.errLog.waitLine(t, startWait, `health check failed`)

	const atAgent, inCatalog, inUpstream = "the check at client A", "the catalog via client B (?stale)", "the watcher's upstream"
	s := startSampler(
		probe{atAgent, func() (bool, string, error) {
			st, err := localStatus(a, one.id)
			return st == api.HealthPassing, st, err
		}},
		probe{inCatalog, func() (bool, string, error) {
			es, err := instances(b, one.name, false, true)
			if err != nil {
				return false, "", err
			}
			if e := entryOf(es, one.id); e != nil {
				ok, detail := allPassing(e)
				return ok, detail, nil
			}
			return false, "absent", nil
		}},
		probe{inUpstream, func() (bool, string, error) {
			content, ok := w.shows(one.port, true)()
			return ok, content, nil
		}},
	)
	defer s.halt()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	old, err := c.WaitLeader(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	if err := old.Kill(); err != nil {
		t.Fatal(err)
	}
	two.setHealthy(t, true)
	leader, err := c.WaitLeader(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	elected := time.Now()
	election := elected.Sub(killed)
	registered := logTime(t, two.p.errLog.waitLine(t, 10*time.Second, `^.*consul: service registered.*$`)[0])
	if !registered.Before(elected) {
		t.Errorf("the second instance registered %s after the election: not mid-election", registered.Sub(elected))
	}
	// The agent accepted it at once. Its sync to the catalog may have
	// failed: a write that meets the dead leader (directly, or through a
	// follower that has not yet noticed) fails at once, and the agent
	// does not retry a failed partial sync until its next change or full
	// sync (1–2 min). But a new leader announces itself to every agent
	// (serf event consul:new-leader), and each then runs a full sync
	// within serverUpInterval (3 s, staggered): soon after the election.
	const serverUpInterval = 3 * time.Second
	waitFor(t, serverUpInterval+time.Second, "the instance registered mid-election in the upstream, soon after the election",
		w.shows(two.port, true))
	rendered := time.Now()
	t.Logf("leader %s killed → %s named by both live servers after %s; the second instance registered with client A at +%s, in the watcher's upstream at +%s (%s after the election)",
		old.Name, leader.Name, election.Round(time.Millisecond), registered.Sub(killed).Round(time.Millisecond),
		rendered.Sub(killed).Round(time.Millisecond), rendered.Sub(elected).Round(time.Millisecond))

	// Sample on past a TTL after the kill (heartbeats that stopped would
	// show) and three heartbeats after the election.
	until := killed.Add(one.ttl + one.heartbeat())
	if e := elected.Add(3 * one.heartbeat()); e.After(until) {
		until = e
	}
	waitFor(t, time.Until(until)+5*time.Second, "the sampling window", func() (int, bool) {
		n := s.goodBetween(atAgent, until, time.Now())
		return n, n > 0
	})
	s.halt()
	for _, name := range []string{atAgent, inCatalog, inUpstream} {
		for _, bad := range s.bad(name) {
			t.Errorf("not passing: %s", bad)
		}
		n := s.goodBetween(name, killed, elected)
		t.Logf("%s: %d passing samples during the election, %d in all, %d failed looks (%s timeout), slowest answer %s",
			name, n, s.goodBetween(name, time.Time{}, until), s.errs[name], 2*time.Second, s.slowest(name, time.Time{}, until).Round(time.Millisecond))
		if n < 3 { // else "never left passing" would prove nothing
			t.Errorf("%s: only %d samples between the kill and the new leader", name, n)
		}
	}
	one.throughElection(t, killed)
	t.Logf("the watcher's watch stalled %s", w.stall(t, killed))

	// Two pilots on one client agent, default IDs: two instances.
	if one.id == two.id {
		t.Fatalf("both default IDs are %s", one.id)
	}
	es, err := instances(leader, one.name, true, false)
	if err != nil || entryOf(es, one.id) == nil || entryOf(es, two.id) == nil || len(es) != 2 {
		t.Errorf("the leader's ?passing for %s: %d instances (%v), want %s and %s", one.name, len(es), err, one.id, two.id)
	}
	for _, e := range es {
		if e.Node.Node != a.Name {
			t.Errorf("%s on node %s, want %s", e.Service.ID, e.Node.Node, a.Name)
		}
	}

	// A change after the election reaches the watcher.
	start := time.Now()
	if err := controlClient(one.p).SetMaintenance(ctx, true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the instance in maintenance out of the upstream", w.shows(one.port, false))
	t.Logf("maintenance on (after the election) → out of the watcher's upstream in %s", time.Since(start).Round(time.Millisecond))
	if content, ok := w.shows(two.port, true)(); !ok {
		t.Errorf("the other instance left the upstream with it:\n%s", content)
	}
	two.throughElection(t, killed)
}

// throughElection fails the test unless pilot went through the election
// that began at killed untouched (see untouched), writing its registration
// only when it must: never again if it was registered by then, once if it
// registered mid-election. At most one request may fail, by timing out on
// its busy agent (see TestConsulClusterLeaderKill): pilot then tries the
// heartbeat again, it does not register anew.
func (cp *clusterPilot) throughElection(t *testing.T, killed time.Time) {
	t.Helper()
	cp.untouched(t)
	want := 0
	if cp.logged(t, time.Time{}, `consul: service registered`) == cp.logged(t, killed, `consul: service registered`) {
		want = 1 // its first registration came after the kill
	}
	cp.registered(t, killed, want)
	failures := cp.logged(t, killed, `consul: (registration not current|agent does not know)`)
	timedOut := cp.logged(t, killed, `consul: registration not current.* err="consul [a-zA-Z ]+: agent unreachable: timed out"`)
	switch {
	case failures == 1 && timedOut == 1:
		t.Logf("%s: a request waited out its %s timeout on client A, busy syncing the mid-election registration", cp.id, cp.heartbeat())
	case failures != 0:
		t.Errorf("%s: %d Consul failures logged through a server election, want at most one timed-out request", cp.id, failures)
	}
}

// RELIABILITY E31 on a cluster: the client agent a pilot uses is killed
// (-9) and started again with an empty data dir. pilot re-registers with
// it within two heartbeats of its API answering again, and the catalog
// holds the instance for good within two heartbeats plus 1 s — after the
// fresh agent's first full sync, which deletes from the catalog whatever
// the agent does not hold, so only a re-registration keeps it there.
func TestConsulClusterClientAgentWiped(t *testing.T) {
	c := consulcluster.StartT(t, consulcluster.Options{})
	a, b := c.Clients[0], c.Clients[1]
	one := startClusterPilot(t, newClusterApp(t), a, false)
	one.waitPassing(t, b)

	killed := time.Now()
	if err := a.Kill(); err != nil {
		t.Fatal(err)
	}
	// Watch the new client A: when its API answers, and when it holds the
	// instance passing again.
	var answered, held time.Time
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for end := time.Now().Add(90 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
			st, err := localStatus(a, one.id)
			if err != nil {
				continue
			}
			if answered.IsZero() {
				answered = time.Now()
			}
			if st == api.HealthPassing {
				held = time.Now()
				return
			}
		}
	}()
	if err := a.Restart(true); err != nil {
		t.Fatal(err)
	}
	ready := time.Now()
	<-polled
	if held.IsZero() {
		t.Fatal("client A never held the instance passing again")
	}
	d := held.Sub(answered)
	t.Logf("client A killed, wiped, restarted: API answering after %s, rejoined after %s; the instance held passing again %s after the API answered (heartbeat %s)",
		answered.Sub(killed).Round(time.Millisecond), ready.Sub(killed).Round(time.Millisecond), d.Round(time.Millisecond), one.heartbeat())
	if d > 2*one.heartbeat() {
		t.Errorf("re-registered %s after the agent was back, want ≤ two heartbeats (%s)", d, 2*one.heartbeat())
	}

	// The catalog: the fresh agent's first full sync, within 3 s of its
	// learning of the servers (serverUpInterval, staggered), deletes from
	// it whatever the agent does not hold; if that came before pilot's
	// registration, the registration's own sync puts the instance back.
	// Sampled from the agent's rejoining until past that window, it is
	// passing for good within two heartbeats of the API answering (plus
	// 1 s for the syncs and this machine's load), and stays.
	const inCatalog = "the catalog via client B"
	s := startSampler(probe{inCatalog, func() (bool, string, error) {
		es, err := instances(b, one.name, true, false)
		return entryOf(es, one.id) != nil, fmt.Sprintf("%d passing", len(es)), err
	}})
	defer s.halt()
	bound := 2*one.heartbeat() + time.Second
	waitFor(t, 15*time.Second, "the catalog sampled past the first full sync", func() (time.Duration, bool) {
		return time.Since(ready), time.Since(ready) > 3*time.Second+500*time.Millisecond && time.Since(answered) > bound
	})
	s.halt()
	settled, bad := s.settled(inCatalog)
	if settled.IsZero() {
		t.Fatalf("not in the catalog's ?passing at the end: %v", s.bad(inCatalog))
	}
	t.Logf("in the catalog's ?passing for good %s after the API answered (%d samples without it first)", settled.Sub(answered).Round(time.Millisecond), bad)
	if d := settled.Sub(answered); d > bound {
		t.Errorf("in the catalog for good %s after the agent's API answered, want ≤ %s: %v", d, bound, s.bad(inCatalog))
	}
	one.untouched(t)
	one.registered(t, killed, 1)
}

// A partition: client A frozen (SIGSTOP). A watcher on client B drops A's
// instance once Consul declares the node failed — within
// failureDetectionBound — and keeps B's; after SIGCONT it gets A's back.
// pilot on A sees its agent hang, is neither restarted nor confused, and
// its heartbeats resume.
func TestConsulClusterClientAgentPartitioned(t *testing.T) {
	c := consulcluster.StartT(t, consulcluster.Options{})
	a, b := c.Clients[0], c.Clients[1]
	one := startClusterPilot(t, newClusterApp(t), a, false)
	other := startClusterPilot(t, one.sibling(t), b, false)
	one.waitPassing(t, b)
	other.waitPassing(t, b)
	w := startClusterWatcher(t, b, one.name)
	waitFor(t, startWait, "both instances in the upstream", func() (string, bool) {
		_, ok := w.shows(other.port, true)()
		content, ok2 := w.shows(one.port, true)()
		return content, ok && ok2
	})

	paused := time.Now()
	if err := a.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if a.Paused() {
			_ = a.Resume()
		}
	})
	dropped := timed(t, failureDetectionBound, "client A's instance out of the upstream", w.shows(one.port, false))
	if content, ok := w.shows(other.port, true)(); !ok {
		t.Errorf("client B's instance left the upstream too:\n%s", content)
	}
	t.Logf("client A frozen → its instance out of client B's watcher's upstream after %s (bound %s)", dropped.Round(time.Millisecond), failureDetectionBound)
	// Still frozen until pilot noticed its agent hang: its next heartbeat
	// (at most one heartbeat after the freeze) timed out (a request is
	// given a heartbeat).
	one.waitLogged(t, 2*one.heartbeat()+2*time.Second, paused, `consul: registration not current`)

	const atAgent, inUpstream = "the check at client A", "client B's watcher's upstream"
	s := startSampler(
		probe{atAgent, func() (bool, string, error) {
			st, err := localStatus(a, one.id)
			return st == api.HealthPassing, st, err
		}},
		probe{inUpstream, func() (bool, string, error) {
			content, ok := w.shows(one.port, true)()
			return ok, content, nil
		}},
	)
	defer s.halt()
	resumed := time.Now()
	if err := a.Resume(); err != nil {
		t.Fatal(err)
	}
	// After SIGCONT the agent hears of its own suspicion or death by
	// gossip (members keep gossiping to a dead node for 30 s) and refutes
	// it at once; the leader marks it alive. But its TTL clock ran while it
	// was frozen: the check's timer fires on SIGCONT and the check goes
	// critical until pilot's next heartbeat. pilot, which saw its requests
	// time out, retries at most a heartbeat apart (its backoff cap), and
	// one that was waiting in the agent's socket is answered at once; so
	// the instance is back for good within 2 heartbeats, plus 1 s for the
	// agent's sync, the watch and the machine's load.
	bound := 2*one.heartbeat() + time.Second
	one.waitLogged(t, bound, resumed, `consul: agent reachable again`)
	// Sample on for two heartbeats after the bound: it stays back.
	waitFor(t, bound+2*one.heartbeat()+5*time.Second, "two heartbeats sampled after the bound", func() (int, bool) {
		n := s.goodBetween(atAgent, resumed.Add(bound+2*one.heartbeat()), time.Now())
		return n, n > 0
	})
	s.halt()
	for _, name := range []string{atAgent, inUpstream} {
		at, bad := s.settled(name)
		if at.IsZero() {
			t.Errorf("%s: not back at the end: %v", name, s.bad(name))
			continue
		}
		t.Logf("client A thawed (after %s frozen) → %s back for good after %s (%d bad samples before)",
			resumed.Sub(paused).Round(time.Millisecond), name, at.Sub(resumed).Round(time.Millisecond), bad)
		if d := at.Sub(resumed); d > bound {
			t.Errorf("%s back for good %s after SIGCONT, want ≤ %s: %v", name, d, bound, s.bad(name))
		}
	}
	// The agent kept its state: heartbeats resumed, nothing re-registered.
	one.untouched(t)
	one.registered(t, paused, 0)
	other.untouched(t)
}

// Client A killed for good. Once Consul declares the node failed no
// passing instance of its pilot is visible anywhere (client B, each
// server's own state); the instance stays in the catalog, critical by its
// node's serfHealth, until the node is reaped (reconnect_timeout, 72 h) or
// force-left. deregisterCriticalAfter cannot remove it: the dead agent
// that owns the check is the one that would enforce it.
func TestConsulClusterClientAgentGone(t *testing.T) {
	c := consulcluster.StartT(t, consulcluster.Options{})
	a, b := c.Clients[0], c.Clients[1]
	one := startClusterPilot(t, newClusterApp(t), a, false)
	one.waitPassing(t, b)

	// Seen from client B (default consistency) and from each server's own
	// state (?stale): nowhere passing.
	observers := append([]*consulcluster.Agent{b}, c.Servers...)
	nowherePassing := func() (bool, string, error) {
		for _, o := range observers {
			es, err := instances(o, one.name, true, o.Server)
			if err != nil {
				return false, "", fmt.Errorf("%s: %w", o.Name, err)
			}
			if entryOf(es, one.id) != nil {
				return false, o.Name + " lists it passing", nil
			}
		}
		return true, "", nil
	}
	killed := time.Now()
	if err := a.Kill(); err != nil {
		t.Fatal(err)
	}
	d := timed(t, failureDetectionBound, "no passing instance from client B or any server", func() (string, bool) {
		ok, detail, err := nowherePassing()
		return fmt.Sprint(detail, err), ok && err == nil
	})
	t.Logf("client A killed for good → its instance in no ?passing answer after %s (bound %s)", d.Round(time.Millisecond), failureDetectionBound)
	// And it does not come back.
	s := startSampler(probe{"nowhere passing", nowherePassing})
	waitFor(t, 10*time.Second, "three heartbeats sampled", func() (time.Duration, bool) {
		since := time.Since(killed.Add(d))
		return since, since > 3*one.heartbeat()
	})
	s.halt()
	for _, bad := range s.bad("nowhere passing") {
		t.Errorf("a passing ghost: %s", bad)
	}
	if n := s.goodBetween("nowhere passing", time.Time{}, time.Now()); n < 3 {
		t.Errorf("only %d good looks after the node failed (%d failed): nothing was watched", n, s.errs["nowhere passing"])
	}

	// Still in the catalog: critical by the node, its own check frozen at
	// what the agent last synced.
	es, err := instances(b, one.name, false, false)
	if err != nil {
		t.Fatal(err)
	}
	e := entryOf(es, one.id)
	if e == nil {
		t.Fatalf("the instance left the catalog: %d entries", len(es))
	}
	var statuses []string
	for _, ch := range e.Checks {
		statuses = append(statuses, ch.CheckID+"="+ch.Status)
	}
	if !slices.Contains(statuses, "serfHealth="+api.HealthCritical) {
		t.Errorf("checks %v, want serfHealth critical", statuses)
	}
	t.Logf("in the catalog after the node failed: %v", statuses)

	// pilot keeps its app and keeps trying.
	one.untouched(t)
	one.registered(t, killed, 0)
	one.waitLogged(t, 5*time.Second, killed, `consul: registration not current`)

	// The remedy for a host gone for good: force-leave its node.
	start := time.Now()
	if err := b.API().Agent().ForceLeave(a.Name); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the instance out of the catalog after force-leave", func() (int, bool) {
		es, err := instances(b, one.name, false, false)
		return len(es), err == nil && entryOf(es, one.id) == nil
	})
	t.Logf("consul force-leave %s → the instance out of the catalog in %s", a.Name, time.Since(start).Round(time.Millisecond))
}
