package main

// Binary-level Consul tests (RELIABILITY D25, D27, E29–E32): the real pilot
// binary (this test binary in its pilot role) against one real
// `consul agent -dev`, started lazily for the package by test/consulagent on
// free ports. Outside CI they skip loudly when there is no Consul binary; in
// CI that fails. They do not call t.Parallel: some kill and restart the
// shared agent, and all of them measure latencies, so they run alone, before
// the package's parallel tests resume.

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nodepilot/pilot/test/consulagent"
)

var consulSerial atomic.Int32

// consulApp is one `helper http` app job with a service block, under a pilot.
// Its config leaves the service ID at its default, as a user would: id is
// that default, for the assertions.
type consulApp struct {
	name, id  string
	port      int
	marker    string // /health fails while it exists
	interval  time.Duration
	unhealthy int
	ttl       time.Duration
	drain     time.Duration
	restart   string // the job's restart block (YAML flow), "" for none
	token     string
	address   string // Consul's address
}

func newConsulApp(t *testing.T, address string) *consulApp {
	t.Helper()
	ports, err := consulagent.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	n := consulSerial.Add(1)
	name := fmt.Sprintf("web%d", n)
	return &consulApp{
		name: name, id: defaultID(name, ports[0]), port: ports[0],
		marker:   filepath.Join(t.TempDir(), "unhealthy"),
		interval: 200 * time.Millisecond, unhealthy: 2, ttl: 3 * time.Second,
		address: address,
	}
}

func (c *consulApp) config(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "consul:\n  address: %s\n", c.address)
	if c.token != "" {
		fmt.Fprintf(&b, "  token: %s\n", c.token)
	}
	fmt.Fprintf(&b, `stopTimeout: 9s
jobs:
  - name: app
    main: true
    exec: %s
`, yamlArgv(helperArgv(t, "http", strconv.Itoa(c.port), c.marker)...))
	if c.restart != "" {
		fmt.Fprintf(&b, "    restart: %s\n", c.restart)
	}
	fmt.Fprintf(&b, `    health:
      http: {port: %d, path: /health}
      interval: %s
      timeout: %s
      unhealthyThreshold: %d
    service:
      name: %s
      port: %d
      address: {static: 127.0.0.1}
      tags: [v1, "traefik.enable=true"]
      meta: {version: "1.4.2"}
      ttl: %s
      drain: %s
`, c.port, c.interval, c.interval*3/4, c.unhealthy, c.name, c.port, c.ttl, c.drain)
	return writeConfig(t, b.String())
}

// defaultID is the service ID pilot gives an instance of name listening on
// port on this host when the config sets no id: NAME-HOSTNAME-PORT.
func defaultID(name string, port int) string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%s-%d", name, host, port)
}

// heartbeat is the registrar's heartbeat: TTL/3.
func (c *consulApp) heartbeat() time.Duration { return c.ttl / 3 }

func (c *consulApp) start(t *testing.T, o pilotOpts) *pilotProc {
	t.Helper()
	return startPilot(t, o, "run", "--config", c.config(t))
}

func (c *consulApp) setHealthy(t *testing.T, ok bool) {
	t.Helper()
	var err error
	if ok {
		err = os.Remove(c.marker)
	} else {
		err = os.WriteFile(c.marker, nil, 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// serves asserts the app answers GET / (it runs, registered or not).
func (c *consulApp) serves(t *testing.T) {
	t.Helper()
	waitFor(t, 3*time.Second, "the app serving", func() (int, bool) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", c.port))
		if err != nil {
			return 0, false
		}
		resp.Body.Close()
		return resp.StatusCode, resp.StatusCode == 200
	})
}

// entries returns the service's instances (?passing when passing); ok is
// false when the agent did not answer.
func entries(a *consulagent.Agent, name string, passing bool) ([]consulagent.HealthEntry, bool) {
	es, err := a.Health(name, passing)
	return es, err == nil
}

func passingCount(a *consulagent.Agent, name string) func() (int, bool) {
	return func() (int, bool) {
		es, ok := entries(a, name, true)
		return len(es), ok && len(es) == 1
	}
}

func notPassing(a *consulagent.Agent, name string) func() (int, bool) {
	return func() (int, bool) {
		es, ok := entries(a, name, true)
		return len(es), ok && len(es) == 0
	}
}

// timed runs waitFor and returns how long the condition took to hold.
func timed[T any](t *testing.T, timeout time.Duration, what string, cond func() (T, bool)) time.Duration {
	t.Helper()
	start := time.Now()
	waitFor(t, timeout, what, cond)
	return time.Since(start)
}

// checkStatus returns the status of the service's TTL check as the catalog
// shows it ("" when the instance is absent).
func checkStatus(a *consulagent.Agent, c *consulApp) string {
	es, ok := entries(a, c.name, false)
	if !ok || len(es) != 1 {
		return ""
	}
	for _, ch := range es[0].Checks {
		if ch.CheckID == "service:"+c.id {
			return ch.Status
		}
	}
	return ""
}

// stopPilot sends TERM and waits for pilot to end.
func stopPilot(t *testing.T, p *pilotProc) int {
	t.Helper()
	p.signal(syscall.SIGTERM)
	return p.wait(15 * time.Second)
}

// D25: nothing in the catalog before the first passing check — not even a
// critical instance — then the instance exactly as configured.
func TestConsulRegistersAfterFirstPassingCheck(t *testing.T) {
	a := consulagent.Shared(t)
	c := newConsulApp(t, a.Addr())
	c.setHealthy(t, false)
	p := c.start(t, pilotOpts{})
	p.out.waitLine(t, 5*time.Second, `^ready`)
	c.serves(t)

	for end := time.Now().Add(5 * c.interval); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if es, ok := entries(a, c.name, false); !ok || len(es) != 0 {
			t.Fatalf("before the first passing check: catalog answered ok=%v with %+v, want no instance", ok, es)
		}
	}
	if p.errLog.count(`health check fail`) == 0 {
		t.Fatal("no failing check logged: the absence above proves nothing")
	}

	c.setHealthy(t, true)
	d := timed(t, c.interval+200*time.Millisecond, "passing after the first passing check", passingCount(a, c.name))
	t.Logf("health fixed → passing in Consul after %s (interval %s)", d, c.interval)

	es, _ := entries(a, c.name, true)
	s := es[0].Service
	if s.ID != c.id || s.Service != c.name || s.Address != "127.0.0.1" || s.Port != c.port {
		t.Errorf("registered %s/%s at %s:%d, want %s/%s at 127.0.0.1:%d", s.ID, s.Service, s.Address, s.Port, c.id, c.name, c.port)
	}
	if !slices.Equal(s.Tags, []string{"v1", "traefik.enable=true"}) {
		t.Errorf("tags %q", s.Tags)
	}
	if len(s.Meta) != 1 || s.Meta["version"] != "1.4.2" {
		t.Errorf("meta %v", s.Meta)
	}
	if st := checkStatus(a, c); st != "passing" {
		t.Errorf("check service:%s is %q, want passing", c.id, st)
	}
	if code := stopPilot(t, p); code != 0 {
		t.Errorf("exit %d", code)
	}
}

// E32, D27: the app dying and the app failing its checks are both pushed at
// once, and the instance stays registered as critical.
func TestConsulCriticalPushed(t *testing.T) {
	t.Run("kill -9", func(t *testing.T) {
		a := consulagent.Shared(t)
		c := newConsulApp(t, a.Addr())
		c.restart = "{policy: on-failure, backoff: {initial: 30s, max: 30s}}"
		p := c.start(t, pilotOpts{})
		pid, _ := strconv.Atoi(p.out.waitLine(t, 5*time.Second, `^ready (\d+)`)[1])
		waitFor(t, 3*time.Second, "passing", passingCount(a, c.name))

		start := time.Now()
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitFor(t, c.interval+200*time.Millisecond, "not passing after kill -9", notPassing(a, c.name))
		d := time.Since(start)
		if st := checkStatus(a, c); st != "critical" {
			t.Errorf("after kill -9 the check is %q, want critical (still registered)", st)
		}
		t.Logf("app kill -9 → not passing in Consul after %s", d)
		stopPilot(t, p)
	})

	t.Run("health failing", func(t *testing.T) {
		a := consulagent.Shared(t)
		c := newConsulApp(t, a.Addr())
		c.unhealthy = 3 // a window of [2, 3] intervals that an off-by-one misses
		p := c.start(t, pilotOpts{})
		p.out.waitLine(t, 5*time.Second, `^ready`)
		waitFor(t, 3*time.Second, "passing", passingCount(a, c.name))

		c.setHealthy(t, false)
		bound := c.interval*time.Duration(c.unhealthy) + 200*time.Millisecond
		d := timed(t, bound, "critical after unhealthyThreshold failed checks", notPassing(a, c.name))
		// The first failure comes within an interval of the marker, the
		// threshold-th one (threshold-1) intervals later: not before.
		if early := c.interval*time.Duration(c.unhealthy-1) - 50*time.Millisecond; d < early {
			t.Errorf("critical %s after the checks began failing: before %d failed checks could have run", d, c.unhealthy)
		}
		if st := checkStatus(a, c); st != "critical" {
			t.Errorf("check %q, want critical", st)
		}
		t.Logf("health failing → critical in Consul after %s (interval %s × threshold %d)", d, c.interval, c.unhealthy)

		c.setHealthy(t, true)
		d = timed(t, c.interval+200*time.Millisecond, "passing again", passingCount(a, c.name))
		t.Logf("health back → passing in Consul after %s", d)
		if code := stopPilot(t, p); code != 0 {
			t.Errorf("exit %d", code)
		}
	})
}

// E31: the agent restarted (dev mode: state lost) → back and passing within
// two heartbeats.
func TestConsulReregistersAfterAgentRestart(t *testing.T) {
	a := consulagent.Shared(t)
	c := newConsulApp(t, a.Addr())
	p := c.start(t, pilotOpts{})
	p.out.waitLine(t, 5*time.Second, `^ready`)
	waitFor(t, 3*time.Second, "passing", passingCount(a, c.name))

	if err := a.Restart(); err != nil {
		t.Fatal(err)
	}
	d := timed(t, 2*c.heartbeat(), "re-registered and passing within two heartbeats", passingCount(a, c.name))
	t.Logf("agent restarted → passing again %s after the agent was ready (heartbeat %s)", d, c.heartbeat())
	if code := stopPilot(t, p); code != 0 {
		t.Errorf("exit %d", code)
	}
}

// E29: Consul down at boot: the app starts and serves; the registration
// appears once the agent is up.
func TestConsulDownAtBoot(t *testing.T) {
	a := consulagent.Shared(t)
	a.Kill()
	t.Cleanup(func() {
		if err := a.Up(); err != nil {
			t.Error(err)
		}
	})
	c := newConsulApp(t, a.Addr())
	p := c.start(t, pilotOpts{})
	p.out.waitLine(t, 5*time.Second, `^ready`)
	c.serves(t)
	p.errLog.waitLine(t, 5*time.Second, `consul: (still failing|registration not current)`)

	if err := a.Up(); err != nil {
		t.Fatal(err)
	}
	d := timed(t, 2*c.heartbeat(), "registered once the agent is up", passingCount(a, c.name))
	t.Logf("agent up → registered and passing after %s (backoff cap: heartbeat %s)", d, c.heartbeat())
	c.serves(t)
	if code := stopPilot(t, p); code != 0 {
		t.Errorf("exit %d", code)
	}
}

// E30: at SIGTERM the instance leaves ?passing before the app gets its
// signal, and the signal comes within drain + 2 s even with Consul down.
// pilot runs as PID 1.
func TestConsulStopWithdrawsBeforeSignal(t *testing.T) {
	const drain = 500 * time.Millisecond

	t.Run("agent up", func(t *testing.T) {
		a := consulagent.Shared(t)
		c := newConsulApp(t, a.Addr())
		c.drain = drain
		p := c.start(t, pilotOpts{pid1: true})
		p.out.waitLine(t, 5*time.Second, `^ready`)
		waitFor(t, 3*time.Second, "passing", passingCount(a, c.name))

		// Poll ?passing every few ms. The instance left between the start
		// of the last request that still listed it (lastSeen) and the end
		// of the first that did not (gone): under load a request can take
		// longer than the tolerance, so each bound is used where it is the
		// conservative one.
		var (
			lastSeen, gone time.Time
			wg             sync.WaitGroup
			stopped        = make(chan struct{})
		)
		wg.Go(func() {
			for {
				select {
				case <-stopped:
					return
				default:
				}
				asked := time.Now()
				es, ok := entries(a, c.name, true)
				if ok && len(es) == 0 {
					gone = time.Now()
					return
				}
				if ok {
					lastSeen = asked
				}
				time.Sleep(3 * time.Millisecond)
			}
		})
		sent := time.Now()
		p.signal(syscall.SIGTERM)
		m := p.out.waitLine(t, drain+5*time.Second, `^got SIGTERM (\d+)`)
		us, _ := strconv.ParseInt(m[1], 10, 64)
		got := time.UnixMicro(us)
		close(stopped)
		wg.Wait()
		if code := p.wait(10 * time.Second); code != 0 {
			t.Errorf("exit %d", code)
		}
		if gone.IsZero() {
			t.Fatalf("the instance never left ?passing before the poller stopped (signal at +%s)", got.Sub(sent))
		}
		t.Logf("SIGTERM → gone from ?passing at +%s, app signalled at +%s (drain %s)", gone.Sub(sent), got.Sub(sent), drain)
		if !gone.Before(got) {
			t.Errorf("the app got SIGTERM %s before the instance left ?passing", gone.Sub(got))
		}
		if gap := got.Sub(lastSeen); gap < drain-50*time.Millisecond {
			t.Errorf("at most %s between leaving ?passing and the signal, want the drain %s", gap, drain)
		}
		if d := got.Sub(sent); d > drain+2*time.Second {
			t.Errorf("the app got SIGTERM %s after pilot, want ≤ drain + 2s", d)
		}
		if es, ok := entries(a, c.name, false); !ok || len(es) != 0 {
			t.Errorf("still in the catalog after the stop: ok=%v %+v", ok, es)
		}
	})

	t.Run("agent down", func(t *testing.T) {
		a := consulagent.Shared(t)
		c := newConsulApp(t, a.Addr())
		c.drain = drain
		p := c.start(t, pilotOpts{pid1: true})
		p.out.waitLine(t, 5*time.Second, `^ready`)
		waitFor(t, 3*time.Second, "passing", passingCount(a, c.name))

		a.Kill()
		t.Cleanup(func() {
			if err := a.Up(); err != nil {
				t.Error(err)
			}
		})
		sent := time.Now()
		p.signal(syscall.SIGTERM)
		m := p.out.waitLine(t, drain+5*time.Second, `^got SIGTERM (\d+)`)
		us, _ := strconv.ParseInt(m[1], 10, 64)
		d := time.UnixMicro(us).Sub(sent)
		t.Logf("Consul down: SIGTERM → app signalled after %s (drain %s)", d, drain)
		if d < drain*9/10 { // it was registered: a proxy may still route to it
			t.Errorf("the app got SIGTERM %s after pilot, before the %s drain", d, drain)
		}
		if d > drain+2*time.Second {
			t.Errorf("the app got SIGTERM %s after pilot, want ≤ drain + 2s", d)
		}
		if code := p.wait(10 * time.Second); code != 0 {
			t.Errorf("exit %d", code)
		}
		if p.errLog.count(`deregistration failed`) == 0 {
			t.Error("no failed deregistration logged with the agent down")
		}
	})
}

// The ACL token never reaches pilot's output, not even when the agent
// echoes it back in its errors (a stand-in agent does) or when the real
// agent goes away and comes back.
func TestConsulTokenNeverLogged(t *testing.T) {
	const token = "SECRET-5f0d7c2e-pilot-acl-token"
	assertClean := func(t *testing.T, p *pilotProc) {
		t.Helper()
		for name, out := range map[string]string{"stdout": p.out.String(), "stderr": p.errLog.String()} {
			if strings.Contains(out, token) {
				t.Errorf("token in pilot's %s:\n%s", name, out)
			}
		}
	}

	t.Run("agent echoing the token", func(t *testing.T) {
		var seen atomic.Int32
		fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("X-Consul-Token") == token || r.Header.Get("Authorization") == "Bearer "+token {
				seen.Add(1)
			}
			http.Error(w, "ACL not found: token "+token+" is not valid (request "+r.URL.String()+")", http.StatusForbidden)
		}))
		t.Cleanup(fake.Close)
		c := newConsulApp(t, strings.TrimPrefix(fake.URL, "http://"))
		c.token = token
		p := c.start(t, pilotOpts{})
		p.out.waitLine(t, 5*time.Second, `^ready`)
		waitFor(t, 5*time.Second, "three requests carrying the token", func() (int32, bool) {
			n := seen.Load()
			return n, n >= 3
		})
		p.errLog.waitLine(t, 5*time.Second, `consul: .*(still failing|not current)`)
		stopPilot(t, p)
		if p.errLog.count(`403|ACL`) == 0 {
			t.Error("the agent's error was not logged at all: nothing was tested")
		}
		assertClean(t, p)
	})

	t.Run("real agent, killed and back", func(t *testing.T) {
		a := consulagent.Shared(t)
		c := newConsulApp(t, a.Addr())
		c.token = token
		p := c.start(t, pilotOpts{pid1: true})
		p.out.waitLine(t, 5*time.Second, `^ready`)
		waitFor(t, 3*time.Second, "passing", passingCount(a, c.name))
		a.Kill()
		p.errLog.waitLine(t, 5*time.Second, `consul: .*(still failing|not current)`)
		if err := a.Up(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 2*c.heartbeat()+time.Second, "passing again", passingCount(a, c.name))
		if code := stopPilot(t, p); code != 0 {
			t.Errorf("exit %d", code)
		}
		assertClean(t, p)
	})
}

// An instance Consul never accepted was never behind a proxy: its drain
// would only delay the stop, and its deregistration would only fail. With
// Consul unreachable from start to end (the app's service and pilot's own
// telemetry service, as in `make demo` without Consul), the stop signal
// follows SIGTERM at once, drain or not, and the shutdown logs no warning.
func TestConsulNeverRegisteredSkipsDrain(t *testing.T) {
	ports, err := consulagent.FreePorts(2) // nothing listens on the first
	if err != nil {
		t.Fatal(err)
	}
	c := newConsulApp(t, fmt.Sprintf("127.0.0.1:%d", ports[0]))
	c.drain = 5 * time.Second
	cfg, err := readFile(c.config(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg += fmt.Sprintf("telemetry: {listen: \"127.0.0.1:%d\", register: true}\n", ports[1])
	p := startPilot(t, pilotOpts{}, "run", "--config", writeConfig(t, cfg))
	p.out.waitLine(t, 10*time.Second, `^ready`)
	p.errLog.waitLine(t, 10*time.Second, `msg="health check passing"`)
	// The app's first registration attempt follows its first passing check
	// and fails, loudly once; waiting for that line keeps it from racing
	// the SIGTERM below and landing after "shutdown: begin".
	p.errLog.waitLine(t, 10*time.Second, `registration not current.* job=app`)
	sent := time.Now()
	p.signal(syscall.SIGTERM)
	if code := p.wait(10 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if took := time.Since(sent); took > 3*time.Second {
		t.Errorf("stop took %v: the 5s drain was waited for an instance never registered", took)
	}
	if p.errLog.count(`shutdown: draining`) != 0 {
		t.Error("drained an instance Consul never accepted")
	}
	lines := p.errLog.Lines()
	begin := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, "shutdown: begin") })
	if begin < 0 {
		t.Fatal("no shutdown: begin line")
	}
	for _, l := range lines[begin:] {
		if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") || strings.Contains(l, "deregistered") {
			t.Errorf("at shutdown, about services Consul never accepted: %s", l)
		}
	}
}
