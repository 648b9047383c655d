package consul

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodepilot/pilot/discovery"

	"github.com/nodepilot/pilot/test/toolbin"
)

const testToken = "9f1c2a7e-pilot-secret-token-5b3d"

// harness is one Registrar under test with its log captured.
type harness struct {
	t    *testing.T
	c    *Client
	r    *Registrar
	logs *toolbin.LockedBuffer
	errs []error
	mu   sync.Mutex
	stop func()
}

var serial int

func newService(ttl time.Duration) discovery.Service {
	serial++
	name := fmt.Sprintf("web%d", serial)
	return discovery.Service{
		ID:      name + "-1",
		Name:    name,
		Address: "10.9.8.7",
		Port:    3000 + serial,
		Tags:    []string{"v1", "traefik.enable=true"},
		Meta:    map[string]string{"version": "1.4.2"},
		TTL:     ttl,
	}
}

func newHarness(t *testing.T, cfg Config, svc discovery.Service) *harness {
	t.Helper()
	if cfg.Token == "" && cfg.TokenFile == "" {
		cfg.Token = testToken
	}
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, c: c, logs: &toolbin.LockedBuffer{}}
	log := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h.r, err = NewRegistrar(c, svc, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if h.stop != nil {
			h.stop()
		}
		c.Close()
		h.assertNoToken()
		if t.Failed() {
			t.Logf("registrar log:\n%s", h.logs.String())
		}
	})
	return h
}

// run starts Run; the returned stop cancels it and waits for it to return.
func (h *harness) run() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.r.Run(ctx) }()
	h.stop = func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				h.t.Errorf("Run returned %v", err)
			}
		case <-time.After(5 * time.Second):
			h.t.Errorf("Run did not return within 5s of cancel")
		}
		h.stop = nil
	}
}

func (h *harness) record(err error) error {
	if err != nil {
		h.mu.Lock()
		h.errs = append(h.errs, err)
		h.mu.Unlock()
	}
	return err
}

func (h *harness) assertNoToken() {
	h.t.Helper()
	if strings.Contains(h.logs.String(), testToken) {
		h.t.Errorf("token found in logs:\n%s", h.logs.String())
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, err := range h.errs {
		if strings.Contains(err.Error(), testToken) {
			h.t.Errorf("token found in error: %v", err)
		}
	}
}

func instances(t *testing.T, a *testAgent, name string, passing bool) []healthEntry {
	t.Helper()
	es, err := a.Health(name, passing)
	if err != nil {
		return nil
	}
	return es
}

func registered(t *testing.T, a *testAgent, name string, passing bool) func() bool {
	return func() bool { return len(instances(t, a, name, passing)) == 1 }
}

func gone(t *testing.T, a *testAgent, name string, passing bool) func() bool {
	return func() bool {
		es, err := a.Health(name, passing)
		return err == nil && len(es) == 0
	}
}

func TestRegistersOnlyAfterFirstPassing(t *testing.T) {
	a := needAgent(t)
	svc := newService(15 * time.Second)
	svc.EnableTagOverride = true
	svc.DeregisterCriticalAfter = time.Minute
	h := newHarness(t, Config{Address: a.Addr()}, svc)
	h.run()

	h.r.SetStatus(discovery.Critical, "booting")
	h.r.SetStatus(discovery.Warning, "warming up")
	holdFor(t, 300*time.Millisecond, "not registered before first passing", func() bool {
		code, _ := a.Get("/v1/agent/service/"+svc.ID, nil)
		return code == 404
	})

	start := time.Now()
	h.r.SetStatus(discovery.Passing, "HTTP GET /health: 200")
	waitFor(t, 2*time.Second, "registered and passing", registered(t, a, svc.Name, true))
	t.Logf("first passing → visible in /v1/health/service?passing: %s", time.Since(start))

	e := instances(t, a, svc.Name, false)[0]
	if e.Service.ID != svc.ID || e.Service.Service != svc.Name || e.Service.Address != svc.Address ||
		e.Service.Port != svc.Port || !slices.Equal(e.Service.Tags, svc.Tags) ||
		e.Service.Meta["version"] != "1.4.2" || !e.Service.EnableTagOverride {
		t.Errorf("registered service = %+v, want %+v", e.Service, svc)
	}
	var ours int
	for _, c := range e.Checks {
		if c.ServiceID != svc.ID {
			continue // the node's serfHealth
		}
		ours++
		if c.CheckID != "service:"+svc.ID || c.Status != "passing" {
			t.Errorf("check = %+v", c)
		}
	}
	if ours != 1 {
		t.Errorf("service has %d checks, want 1: %+v", ours, e.Checks)
	}
	// Output-only changes reach the catalog at the agent's
	// check_update_interval; the agent's own view has the note at once.
	var local map[string]struct{ Output, Status string }
	if _, err := a.Get("/v1/agent/checks", &local); err != nil {
		t.Fatal(err)
	}
	if c := local["service:"+svc.ID]; c.Output != "HTTP GET /health: 200" || c.Status != "passing" {
		t.Errorf("agent's check = %+v", c)
	}
	// The agent shows the registration a moment before the registrar has
	// read the agent's answer.
	waitFor(t, time.Second, "Connected() after registration", h.r.Connected)
}

func TestStatusChangePushedAtOnce(t *testing.T) {
	a := needAgent(t)
	// A long TTL: the heartbeat (10 s) cannot be what makes a change visible.
	svc := newService(30 * time.Second)
	h := newHarness(t, Config{Address: a.Addr()}, svc)
	h.run()
	h.r.SetStatus(discovery.Passing, "ok")
	waitFor(t, 2*time.Second, "registered", registered(t, a, svc.Name, true))

	var worstCrit, worstPass time.Duration
	for i := range 5 {
		h.r.SetStatus(discovery.Critical, fmt.Sprintf("fail %d", i))
		d := waitFor(t, 200*time.Millisecond, "critical visible (instance gone from ?passing)", gone(t, a, svc.Name, true))
		worstCrit = max(worstCrit, d)
		h.r.SetStatus(discovery.Passing, fmt.Sprintf("ok %d", i))
		d = waitFor(t, 200*time.Millisecond, "passing visible again", registered(t, a, svc.Name, true))
		worstPass = max(worstPass, d)
	}
	t.Logf("SetStatus → visible in /v1/health/service?passing over 5 rounds: critical worst %s, passing worst %s", worstCrit, worstPass)

	h.r.SetStatus(discovery.Warning, "slow")
	waitFor(t, 200*time.Millisecond, "warning visible", func() bool {
		es := instances(t, a, svc.Name, false)
		for _, e := range es {
			for _, c := range e.Checks {
				if c.CheckID == "service:"+svc.ID && c.Status == "warning" {
					return true
				}
			}
		}
		return false
	})
}

func TestReregistersAfterAgentRestart(t *testing.T) {
	a := needAgent(t)
	svc := newService(3 * time.Second) // heartbeat 1 s
	h := newHarness(t, Config{Address: a.Addr()}, svc)
	h.run()
	h.r.SetStatus(discovery.Passing, "ok")
	waitFor(t, 2*time.Second, "registered", registered(t, a, svc.Name, true))

	if err := a.Restart(); err != nil {
		t.Fatal(err)
	}
	// A -dev agent keeps its state in memory: after the restart it knows
	// the service only if the registrar registered it again (the log
	// check below), which may already have happened by now.
	hb := h.r.HeartbeatInterval()
	d := waitFor(t, 2*hb, "re-registered and passing within two heartbeats", registered(t, a, svc.Name, true))
	t.Logf("agent restarted (state lost) → service back and passing %s after the agent was ready (heartbeat %s)", d, hb)
	// The agent lists the service as soon as it takes the PUT; the
	// registrar logs once the answer is back: wait for that line.
	waitFor(t, 2*time.Second, "a re-registration in the log", func() bool {
		logs := h.logs.String()
		lost := strings.LastIndex(logs, "registration not current")
		return strings.Contains(logs, "re-registering") || lost >= 0 && strings.Contains(logs[lost:], "service registered")
	})
}

func TestConsulDownAtStart(t *testing.T) {
	a := needAgent(t)
	a.Kill()
	t.Cleanup(func() {
		if !a.Running() {
			if err := a.Up(); err != nil {
				t.Error(err)
			}
		}
	})

	svc := newService(3 * time.Second)
	h := newHarness(t, Config{Address: a.Addr()}, svc)
	h.run()
	h.r.SetStatus(discovery.Passing, "ok")

	// SetStatus never blocks, even while every request fails.
	start := time.Now()
	for i := range 1000 {
		h.r.SetStatus([]discovery.Status{discovery.Warning, discovery.Passing}[i%2], "flap")
	}
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Errorf("1000 SetStatus calls with the agent down took %s", d)
	}
	waitFor(t, 3*time.Second, "retries logged", func() bool {
		return strings.Contains(h.logs.String(), "still failing")
	})
	if h.r.Connected() {
		t.Error("Connected() = true with the agent down")
	}

	if err := a.Up(); err != nil {
		t.Fatal(err)
	}
	hb := h.r.HeartbeatInterval()
	d := waitFor(t, 2*hb, "registered once the agent is up", registered(t, a, svc.Name, true))
	t.Logf("agent up → registered and passing after %s (backoff cap %s)", d, h.r.maxBackoff)
	// The agent shows the registration a moment before the registrar has
	// read the agent's answer.
	waitFor(t, time.Second, "Connected() after registration", h.r.Connected)
}

func TestDeregister(t *testing.T) {
	a := needAgent(t)
	svc := newService(15 * time.Second)
	h := newHarness(t, Config{Address: a.Addr()}, svc)
	h.run()
	h.r.SetStatus(discovery.Passing, "ok")
	waitFor(t, 2*time.Second, "registered", registered(t, a, svc.Name, true))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	if err := h.record(h.r.Deregister(ctx)); err != nil {
		t.Fatal(err)
	}
	t.Logf("Deregister with the agent up took %s", time.Since(start))
	waitFor(t, 200*time.Millisecond, "gone from the catalog", gone(t, a, svc.Name, false))
	if code, _ := a.Get("/v1/agent/service/"+svc.ID, nil); code != 404 {
		t.Errorf("agent still knows the service: %d", code)
	}

	// Terminal: later statuses and heartbeats never bring it back.
	h.r.SetStatus(discovery.Passing, "still alive")
	holdFor(t, 300*time.Millisecond, "stays deregistered", gone(t, a, svc.Name, false))
	if err := h.record(h.r.SetMaintenance(ctx, true, "x")); err == nil {
		t.Error("SetMaintenance after Deregister = nil, want error")
	}
}

func TestDeregisterAgentDown(t *testing.T) {
	a := needAgent(t)
	svc := newService(15 * time.Second)
	h := newHarness(t, Config{Address: a.Addr()}, svc)
	h.run()
	h.r.SetStatus(discovery.Passing, "ok")
	waitFor(t, 2*time.Second, "registered", registered(t, a, svc.Name, true))
	a.Kill()
	t.Cleanup(func() {
		if err := a.Up(); err != nil {
			t.Error(err)
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	err := h.record(h.r.Deregister(ctx))
	d := time.Since(start)
	t.Logf("Deregister with the agent down: %s, err %v", d, err)
	if err == nil {
		t.Error("Deregister with the agent down = nil, want error")
	}
	if d > 2100*time.Millisecond {
		t.Errorf("Deregister took %s, beyond its 2 s ctx", d)
	}
}

// blackhole accepts connections and never answers: an agent that hangs.
func blackhole(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return l.Addr().String()
}

// hangingAgent answers the look-up of a service ID with "not found" and
// hangs on every other request until the client gives up; writes is
// closed when the first of those has arrived.
func hangingAgent(t *testing.T) (addr string, writes <-chan struct{}) {
	t.Helper()
	arrived, quit := make(chan struct{}), make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/agent/health/service/id/") {
			http.Error(w, "ServiceId not found", http.StatusNotFound)
			return
		}
		io.Copy(io.Discard, r.Body) // the server notices a client gone only once the body is read
		once.Do(func() { close(arrived) })
		select {
		case <-r.Context().Done():
		case <-quit:
		}
	}))
	t.Cleanup(func() { close(quit); srv.Close() })
	return srv.Listener.Addr().String(), arrived
}

func TestDeregisterHungAgentTimeBoxed(t *testing.T) {
	svc := newService(3 * time.Second)
	addr, writes := hangingAgent(t)
	h := newHarness(t, Config{Address: addr}, svc)
	h.run()
	h.r.SetStatus(discovery.Passing, "ok") // Run now hangs in its registration
	select {
	case <-writes:
	case <-time.After(5 * time.Second):
		t.Fatal("no registration reached the agent")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	err := h.record(h.r.Deregister(ctx))
	d := time.Since(start)
	t.Logf("Deregister against a hung agent: %s, err %v", d, err)
	if err == nil || d > 2100*time.Millisecond || d < 1900*time.Millisecond {
		t.Errorf("Deregister = %v after %s; want a timeout error at ~2 s", err, d)
	}
	h.r.SetStatus(discovery.Critical, "x") // never blocks
}

func TestMaintenance(t *testing.T) {
	a := needAgent(t)
	svc := newService(15 * time.Second)
	h := newHarness(t, Config{Address: a.Addr()}, svc)
	h.run()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Recorded before registration, applied at registration.
	if err := h.record(h.r.SetMaintenance(ctx, true, "deploying")); err != nil {
		t.Fatal(err)
	}
	h.r.SetStatus(discovery.Passing, "ok")
	inMaint := func() bool {
		es := instances(t, a, svc.Name, false)
		if len(es) != 1 {
			return false
		}
		for _, c := range es[0].Checks {
			if c.CheckID == "_service_maintenance:"+svc.ID && c.Status == "critical" && c.Notes == "deploying" {
				return len(instances(t, a, svc.Name, true)) == 0
			}
		}
		return false
	}
	waitFor(t, 2*time.Second, "registered in maintenance", inMaint)

	start := time.Now()
	if err := h.record(h.r.SetMaintenance(ctx, false, "")); err != nil {
		t.Fatal(err)
	}
	d := waitFor(t, 200*time.Millisecond, "out of maintenance: passing", registered(t, a, svc.Name, true))
	t.Logf("maintenance off → passing visible after %s (SetMaintenance returned, then %s of polling)", time.Since(start), d)

	start = time.Now()
	if err := h.record(h.r.SetMaintenance(ctx, true, "deploying")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 200*time.Millisecond, "maintenance on visible", inMaint)
	t.Logf("maintenance on → visible after %s", time.Since(start))

	// The wish survives an agent that lost its state.
	if err := a.Restart(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*h.r.HeartbeatInterval()+time.Second, "re-registered still in maintenance", inMaint)
}

func TestTokenNeverLeaks(t *testing.T) {
	// A misbehaving endpoint that echoes the request headers (token
	// included) back in its error body.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, fmt.Sprintf("boom: %v %v", r.URL, r.Header), http.StatusInternalServerError)
	}))
	defer srv.Close()

	for _, addr := range []string{srv.URL, "127.0.0.1:1", blackhole(t)} {
		t.Run(addr, func(t *testing.T) {
			h := newHarness(t, Config{Address: addr}, newService(3*time.Second))
			h.run()
			h.r.SetStatus(discovery.Passing, "ok")
			waitFor(t, 3*time.Second, "a failure or a slow agent logged", func() bool {
				return strings.Contains(h.logs.String(), "registration not current") || strings.Contains(h.logs.String(), "has not answered")
			})
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			h.record(h.r.register(ctx, h.r.svc, discovery.Passing, "ok")) // an error in hand, even where nothing was ever sent
			ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			h.record(h.r.SetMaintenance(ctx, true, "x"))
			h.record(h.r.Deregister(ctx))
			h.stop()
			h.mu.Lock()
			n := len(h.errs)
			h.mu.Unlock()
			if n == 0 {
				t.Error("no errors captured")
			}
			// assertNoToken runs in Cleanup.
		})
	}

	// A live agent (no ACLs: the token is sent and ignored).
	if agent != nil && agent.Running() {
		h := newHarness(t, Config{Address: agent.Addr()}, newService(3*time.Second))
		h.run()
		h.r.SetStatus(discovery.Passing, "ok")
		waitFor(t, 2*time.Second, "registered", registered(t, agent, h.r.svc.Name, true))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		h.record(h.r.Deregister(ctx))
	}
}

func TestTokenFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "token")
	if err := os.WriteFile(p, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(Config{TokenFile: p, Token: "other"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.token != testToken {
		t.Errorf("token from file = %q", c.token)
	}

	missing := filepath.Join(dir, "nope")
	_, err = NewClient(Config{TokenFile: missing, Token: testToken})
	if err == nil || !strings.Contains(err.Error(), missing) || strings.Contains(err.Error(), testToken) {
		t.Errorf("missing token file: %v", err)
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	if _, err := NewClient(Config{TokenFile: empty}); err == nil || !strings.Contains(err.Error(), empty) {
		t.Errorf("empty token file: %v", err)
	}
}

func TestEnvironmentHonouredExplicitWins(t *testing.T) {
	a := needAgent(t)
	t.Setenv("CONSUL_HTTP_ADDR", a.Addr())
	t.Setenv("CONSUL_HTTP_TOKEN", testToken)
	c, err := NewClient(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.token != testToken {
		t.Errorf("token from CONSUL_HTTP_TOKEN not used")
	}
	svc := newService(15 * time.Second)
	r, err := NewRegistrar(c, svc, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	r.SetStatus(discovery.Passing, "ok")
	if err := r.reconcile(ctx); err != nil {
		t.Fatalf("registering via CONSUL_HTTP_ADDR: %v", err)
	}
	if err := r.Deregister(ctx); err != nil {
		t.Fatal(err)
	}

	// Explicit address wins over a dead one in the environment.
	t.Setenv("CONSUL_HTTP_ADDR", "127.0.0.1:1")
	c2, err := NewClient(Config{Address: a.Addr(), Token: "explicit"})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if c2.token != "explicit" {
		t.Errorf("explicit token lost to the environment")
	}
	r2, _ := NewRegistrar(c2, newService(15*time.Second), nil)
	r2.SetStatus(discovery.Passing, "ok")
	if err := r2.reconcile(ctx); err != nil {
		t.Fatalf("explicit address: %v", err)
	}
	if err := r2.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestTLSVerifiedUnlessOptedOut(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()
	svc := newService(3 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()

	c, err := NewClient(Config{Address: srv.URL, Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r, _ := NewRegistrar(c, svc, nil)
	err = r.register(ctx, svc, discovery.Passing, "")
	if err == nil || !strings.Contains(err.Error(), "certificate") || strings.Contains(err.Error(), testToken) {
		t.Errorf("unverified TLS server: err = %v, want a certificate error", err)
	}
	if r.Connected() {
		t.Error("Connected() after a TLS failure")
	}

	c2, err := NewClient(Config{Address: srv.URL, Token: testToken, TLS: TLSConfig{InsecureSkipVerify: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	r2, _ := NewRegistrar(c2, svc, nil)
	if err := r2.register(ctx, svc, discovery.Passing, ""); err != nil {
		t.Errorf("insecureSkipVerify: %v", err)
	}
	if !r2.Connected() {
		t.Error("Connected() = false after a answered request")
	}

	if _, err := NewClient(Config{Address: srv.URL, TLS: TLSConfig{CAFile: "/nonexistent/ca.pem"}}); err == nil ||
		!strings.Contains(err.Error(), "/nonexistent/ca.pem") {
		t.Errorf("missing CA file: %v", err)
	}
}

func TestNewRegistrarValidates(t *testing.T) {
	c, err := NewClient(Config{Address: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := NewRegistrar(c, discovery.Service{Name: "web", Port: 1, TTL: time.Second}, nil); err == nil || !strings.Contains(err.Error(), "address") {
		t.Errorf("no address: %v", err)
	}
	r, err := NewRegistrar(c, discovery.Service{Name: "web", Address: "1.2.3.4", Port: 1, TTL: 15 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.svc.ID != "web" || r.HeartbeatInterval() != 5*time.Second || r.maxBackoff != 5*time.Second {
		t.Errorf("defaults: id %q heartbeat %s backoff cap %s", r.svc.ID, r.HeartbeatInterval(), r.maxBackoff)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	waitFor(t, time.Second, "Run started", r.running.Load)
	if err := r.Run(ctx); err == nil {
		t.Error("second concurrent Run = nil, want error")
	}
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
}

func TestWrapNeverKeepsURL(t *testing.T) {
	c := &Client{token: testToken}
	err := c.wrap("op", errors.New("Put \"http://x/?token="+testToken+"\": boom"))
	if strings.Contains(err.Error(), testToken) {
		t.Errorf("wrap kept the token: %v", err)
	}
}

// TestRegistrationRequest checks what the agent cannot show back: the
// registration body (DeregisterCriticalServiceAfter is not readable through
// the agent's API). A recording endpoint is enough for that.
func TestRegistrationRequest(t *testing.T) {
	var mu sync.Mutex
	bodies := map[string][]byte{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies[r.Method+" "+r.URL.Path] = b
		mu.Unlock()
		if r.Header.Get("X-Consul-Token") != testToken {
			t.Errorf("%s %s without the token header", r.Method, r.URL.Path)
		}
	}))
	defer srv.Close()
	svc := newService(15 * time.Second)
	svc.DeregisterCriticalAfter = 90 * time.Second
	h := newHarness(t, Config{Address: srv.URL}, svc)
	h.r.SetStatus(discovery.Passing, "ok")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := h.r.reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	var reg struct {
		ID, Name, Address string
		Port              int
		Check             struct{ CheckID, TTL, Status, DeregisterCriticalServiceAfter string }
	}
	if err := json.Unmarshal(bodies["PUT /v1/agent/service/register"], &reg); err != nil {
		t.Fatalf("register body: %v (%q)", err, bodies)
	}
	if reg.ID != svc.ID || reg.Address != svc.Address || reg.Port != svc.Port || reg.Check.CheckID != "service:"+svc.ID ||
		reg.Check.TTL != "15s" || reg.Check.Status != "passing" || reg.Check.DeregisterCriticalServiceAfter != "1m30s" {
		t.Errorf("registration = %+v", reg)
	}
	if _, ok := bodies["PUT /v1/agent/check/update/service:"+svc.ID]; !ok {
		t.Errorf("no TTL update after registration: %q", bodies)
	}
}

// An address change (the container moved) re-registers the service with the
// new address at once, passing all along.
func TestAddressChangeReregisters(t *testing.T) {
	a := needAgent(t)
	svc := newService(30 * time.Second)
	h := newHarness(t, Config{Address: a.Addr()}, svc)
	h.run()
	h.r.SetStatus(discovery.Passing, "ok")
	waitFor(t, 2*time.Second, "registered", registered(t, a, svc.Name, true))
	h.r.SetAddress("10.9.8.8")
	waitFor(t, time.Second, "the new address in the catalog", func() bool {
		es := instances(t, a, svc.Name, true)
		return len(es) == 1 && es[0].Service.Address == "10.9.8.8"
	})
}

// A registration the agent never accepted (it was never reachable) needs
// no deregistration: Deregister sends nothing, warns nothing and is nil.
func TestDeregisterNeverRegistered(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there: every request fails to connect
	var mu sync.Mutex
	var ops []string
	svc := newService(3 * time.Second)
	h := newHarness(t, Config{Address: addr, Observe: func(r Request) {
		mu.Lock()
		ops = append(ops, r.Op)
		mu.Unlock()
	}}, svc)
	h.run()
	h.r.SetStatus(discovery.Passing, "ok")
	waitFor(t, 5*time.Second, "a failed registration", func() bool { return strings.Contains(h.logs.String(), "registration not current") })
	// What Consul holds: nothing, whatever pilot wishes to report.
	if reg := h.r.Registration(); reg.Registered || reg.Status != "" {
		t.Errorf("Registration() = %+v, want not registered and no status", reg)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := h.record(h.r.Deregister(ctx)); err != nil {
		t.Fatalf("Deregister = %v, want nil: nothing was ever registered", err)
	}
	if h.r.EverRegistered() {
		t.Fatal("EverRegistered after only failed connections")
	}
	mu.Lock()
	defer mu.Unlock()
	if slices.Contains(ops, OpDeregister) || slices.Contains(ops, OpTTL) {
		t.Errorf("requests %v: a deregistration was attempted", ops)
	}
	if n := strings.Count(h.logs.String(), "level=WARN"); n != 1 {
		t.Errorf("%d WARN lines, want only the one for the failed registration:\n%s", n, h.logs.String())
	}
}

// EverRegistered follows whether a registration reached the wire, not how
// its error reads: one cancelled while the connection was still being set
// up (an https agent that never completes the handshake) was never sent;
// one cancelled while waiting for the answer (a plain agent that never
// answers) may have been applied.
func TestEverRegisteredOnlyWhenSent(t *testing.T) {
	for _, c := range []struct {
		name  string
		https bool
		want  bool
	}{
		{"cancelled in the TLS handshake", true, false},
		{"cancelled awaiting the answer", false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			addr, got := hangingAgent(t)
			cfg := Config{Address: addr}
			if c.https {
				addr, got = mute(t)
				cfg = Config{Address: "https://" + addr, TLS: TLSConfig{InsecureSkipVerify: true}}
			}
			h := newHarness(t, cfg, newService(3*time.Second))
			h.run()
			h.r.SetStatus(discovery.Passing, "ok") // Run now hangs in its request
			// The agent got the ClientHello (https) or the registration.
			select {
			case <-got:
			case <-time.After(5 * time.Second):
				t.Fatal("nothing reached the agent")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			err := h.record(h.r.Deregister(ctx)) // cancels Run's request first
			if ever := h.r.EverRegistered(); ever != c.want {
				t.Fatalf("EverRegistered = %v, want %v (Deregister: %v)", ever, c.want, err)
			}
			if !c.want && err != nil {
				t.Errorf("Deregister of a registration never sent = %v, want nil", err)
			}
		})
	}
}

// mute accepts connections, reads what comes and never answers; got is
// closed once the first connection has delivered all it sent (nothing
// more for 20 ms after some bytes: a ClientHello, or a whole request).
func mute(t *testing.T) (addr string, got <-chan struct{}) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	received := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		first := true
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			signal := first
			first = false
			wg.Go(func() {
				buf := make([]byte, 4096)
				n := 0
				for {
					if n > 0 {
						c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
					}
					m, err := c.Read(buf)
					n += m
					if err != nil {
						if ne, ok := err.(net.Error); ok && ne.Timeout() && signal {
							close(received)
							c.SetReadDeadline(time.Time{})
							signal = false
							continue
						}
						return
					}
				}
			})
		}
	})
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().String(), received
}

// slowAgent is a fake agent whose registrations and heartbeats take as
// long as the test says, as a real agent's do when many pilots start at
// once (it persists each registration and takes them one at a time); it
// counts the registrations it is sent.
type slowAgent struct {
	srv                 *httptest.Server
	registerDelay       atomic.Int64 // time.Duration
	heartbeatDelay      atomic.Int64
	registers, updates  atomic.Int32
	registered          atomic.Bool
	addr, port, service string
}

func newSlowAgent(t *testing.T, svc discovery.Service) *slowAgent {
	a := &slowAgent{addr: svc.Address, port: strconv.Itoa(svc.Port), service: svc.Name}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/v1/agent/health/service/id/"):
			if !a.registered.Load() {
				http.Error(w, "unknown service ID", http.StatusNotFound)
				return
			}
			fmt.Fprintf(w, `{"AggregatedStatus":"passing","Service":{"Service":%q,"Address":%q,"Port":%s}}`, a.service, a.addr, a.port)
		case r.URL.Path == "/v1/agent/service/register":
			a.registers.Add(1)
			time.Sleep(time.Duration(a.registerDelay.Load())) // carried out even when the client gave up
			a.registered.Store(true)
		case strings.HasPrefix(r.URL.Path, "/v1/agent/check/update/"):
			time.Sleep(time.Duration(a.heartbeatDelay.Load()))
			if !a.registered.Load() {
				http.Error(w, "CheckID does not have associated TTL", http.StatusInternalServerError)
				return
			}
			a.updates.Add(1)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(a.srv.Close)
	return a
}

// An agent slower to register than a heartbeat's bound gets one
// registration, waited for, not a new one each second (which a busy agent
// would queue behind the abandoned ones, and never catch up); a heartbeat
// that times out does not re-register either.
func TestSlowAgentGetsOneRegistration(t *testing.T) {
	svc := newService(3 * time.Second) // heartbeat 1 s: requests bounded by 1 s
	a := newSlowAgent(t, svc)
	a.registerDelay.Store(int64(2500 * time.Millisecond))
	h := newHarness(t, Config{Address: a.srv.URL}, svc)
	h.run()
	h.r.SetStatus(discovery.Passing, "ok")
	waitFor(t, 5*time.Second, "registered", func() bool { return h.r.Registration().Registered })
	if n := a.registers.Load(); n != 1 {
		t.Fatalf("%d registrations sent to an agent that takes 2.5 s for one, want 1", n)
	}
	if !strings.Contains(h.logs.String(), "has not answered the registration yet") {
		t.Error("no line says the agent is slow")
	}

	a.heartbeatDelay.Store(int64(1500 * time.Millisecond))
	waitFor(t, 5*time.Second, "a heartbeat timing out", func() bool { return strings.Contains(h.logs.String(), "timed out") })
	a.heartbeatDelay.Store(0)
	before := a.updates.Load()
	waitFor(t, 5*time.Second, "heartbeats again", func() bool { return a.updates.Load() > before+1 })
	if n := a.registers.Load(); n != 1 {
		t.Fatalf("%d registrations after heartbeats timed out, want still 1", n)
	}
}
