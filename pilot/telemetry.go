package pilot

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/nodepilot/pilot/discovery"
	"github.com/nodepilot/pilot/discovery/consul"
	"github.com/nodepilot/pilot/pilot/config"
	"github.com/nodepilot/pilot/telemetry"
)

// Telemetry service defaults: the "pilot" service Prometheus finds through
// consul_sd_configs (telemetry.register).
const (
	telemetryServiceName = "pilot"
	telemetryTTL         = 10 * time.Second
	telemetryDeregister  = time.Minute
	// telemetryDrain bounds how long scrapes in flight get at the end.
	telemetryDrain = time.Second
)

// instruments are pilot's metrics: the collectors registered in the run's
// one registry and the hooks that feed them. They are built when a
// generation first has a telemetry block (the first, usually) and live as
// long as pilot: a reload changes what they see, not what they are.
type instruments struct {
	reg *prometheus.Registry
	// consulOnce registers the Consul collector with the first consul
	// block: without one, pilot_consul_up would say "down" of nothing.
	consulOnce sync.Once

	health  *telemetry.HealthChecks
	consul  *telemetry.Consul
	watches *telemetry.Watches
	exits   *telemetry.Exits
	// rolls counts the cluster jobs' rolling reloads by result (ok,
	// failed): a failed one left the old instances serving.
	rolls *prometheus.CounterVec
}

// newInstruments registers pilot's own collectors in reg; jobs returns the
// current jobs at each scrape. The Go runtime's and pilot's process
// collectors come with the telemetry actor, which runs beside the jobs'
// start instead of before it (building the Go collector reads every
// runtime metric's description: a cost no job should wait for).
func newInstruments(reg *prometheus.Registry, version, commit string, jobs func() []telemetry.Job) (*instruments, error) {
	in := &instruments{
		reg:     reg,
		health:  telemetry.NewHealthChecks(nil),
		consul:  telemetry.NewConsul(),
		watches: telemetry.NewWatches(nil),
		exits:   telemetry.NewExits(),
		rolls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pilot_rolling_reloads_total",
			Help: "Rolling reloads of a cluster job by result: ok, or failed (a new instance was not ready in time, or ended; the old ones kept serving)."},
			[]string{"job", "result"}),
	}
	procs, err := telemetry.NewProcessCollector(jobs)
	if err != nil {
		return nil, fmt.Errorf("telemetry: reading /proc: %w", err)
	}
	// Two collectors for the jobs, not one: the registry collects each on
	// its own goroutine, so /proc is read while the states are encoded.
	reg.MustRegister(telemetry.NewBuildInfo(version, commit), in.health, in.watches, in.exits, in.rolls,
		telemetry.NewJobCollector(jobs), procs)
	return in, nil
}

// apply makes the series follow g: a (zero) health series for each
// checked job, g's watches, and the Consul series once g has Consul.
func (in *instruments) apply(g *generation) {
	if g.cfg.Consul != nil {
		in.consulOnce.Do(func() { in.reg.MustRegister(in.consul) })
	}
	var checked []string
	for _, p := range g.jobs {
		if p.spec.Probe != nil {
			checked = append(checked, p.spec.Name)
		}
	}
	in.health.Declare(checked)
	names := make([]telemetry.WatchName, len(g.watches))
	for i, w := range g.watches {
		names[i] = w.name
	}
	in.watches.Set(names)
}

// telemetryConfig is what the telemetry server serves: telemetry.listen,
// and the recipe of pilot's own registration (telemetry.register); the
// zero value serves nothing.
type telemetryConfig struct {
	listen string
	// register builds pilot's registration for the port it is bound to;
	// nil without telemetry.register.
	register func(port int) (*service, error)
	// key tells two configs apart: a change rebinds and registers anew.
	key string
}

// telemetryServer serves /metrics and /status on telemetry.listen and keeps
// pilot's own service registered; a reload moves it (apply). Nothing is
// bound by apply: the serving goroutine binds, retrying while the port is
// taken, so that a port in use never keeps the jobs from running.
type telemetryServer struct {
	log     *slog.Logger
	gather  prometheus.Gatherer
	status  func() telemetry.Status
	changes chan telemetryConfig

	mu sync.Mutex
	// pilotService is the telemetry.register registration, nil until
	// bound (or without telemetry.register).
	pilotService *service
}

func newTelemetryServer(log *slog.Logger, gather prometheus.Gatherer, status func() telemetry.Status) *telemetryServer {
	return &telemetryServer{log: log, gather: gather, status: status, changes: make(chan telemetryConfig, 1)}
}

// apply hands the server a new config; the latest wins.
func (t *telemetryServer) apply(c telemetryConfig) {
	select {
	case <-t.changes:
	default:
	}
	t.changes <- c
}

// run serves each config it is given until ctx ends, then deregisters
// pilot's service and lets scrapes in flight finish. registerRuntime, once
// telemetry first serves, adds the Go runtime's collectors.
func (t *telemetryServer) run(ctx context.Context, registerRuntime func()) {
	var (
		current telemetryConfig
		stop    = func() {}
		once    sync.Once
	)
	defer func() { stop() }()
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-t.changes:
			if c.key == current.key {
				continue
			}
			stop()
			current, stop = c, func() {}
			if c.listen != "" {
				once.Do(registerRuntime)
				stop = t.serve(c)
			}
		}
	}
}

// serve binds c.listen and serves on it, registering pilot's service once
// bound; the returned func undoes it all and returns once it is undone.
func (t *telemetryServer) serve(c telemetryConfig) func() {
	ctx, cancel := context.WithCancel(context.Background())
	server := telemetry.NewServer(t.gather, t.status, t.log)
	var wg sync.WaitGroup
	wg.Go(func() {
		ln, err := telemetry.Listen(ctx, c.listen, t.log)
		if err != nil { // stopped before it could bind
			return
		}
		t.log.Info("telemetry: serving /metrics and /status", "address", ln.Addr().String())
		if c.register != nil {
			t.registerPilot(ctx, &wg, c.register, ln.Addr().(*net.TCPAddr).Port)
		}
		if err := server.Serve(ln); err != nil {
			t.log.Error("telemetry: server failed; /metrics is gone until pilot restarts or reloads it", "err", err)
		}
	})
	return func() {
		t.mu.Lock()
		s := t.pilotService
		t.pilotService = nil
		t.mu.Unlock()
		if s != nil {
			dctx, dcancel := context.WithTimeout(context.Background(), deregisterTimeout)
			if err := s.registrar.Deregister(dctx); err != nil {
				t.log.Warn("telemetry: deregistration failed", "err", err)
			}
			dcancel()
		}
		sctx, scancel := context.WithTimeout(context.Background(), telemetryDrain)
		cancel() // before Shutdown: a Listen still retrying gives up
		server.Shutdown(sctx)
		scancel()
		wg.Wait()
	}
}

// registerPilot registers pilot's own service on port and keeps it
// registered, its address current, on wg's goroutines until ctx ends.
func (t *telemetryServer) registerPilot(ctx context.Context, wg *sync.WaitGroup, register func(int) (*service, error), port int) {
	s, err := register(port)
	if err != nil { // it built at start: the address selection changed since
		t.log.Error("telemetry.register: pilot's service not registered", "err", err)
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if ctx.Err() != nil {
		return
	}
	t.pilotService = s
	wg.Go(func() { _ = s.registrar.Run(ctx) })
	wg.Go(func() {
		recheck := time.NewTicker(addressRecheck)
		defer recheck.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-recheck.C:
				recheckAddresses([]*service{s}, t.log)
			}
		}
	})
	s.registrar.SetStatus(discovery.Passing, "pilot serves /metrics") // opens its readiness gate
}

// pilotServiceStatus is pilot's own registration for /status; nil when
// there is none.
func (t *telemetryServer) pilotServiceStatus() *telemetry.ServiceStatus {
	t.mu.Lock()
	s := t.pilotService
	t.mu.Unlock()
	if s == nil {
		return nil
	}
	st := serviceStatus(s)
	return &st
}

// telemetryConfigOf is the server's config for g: the zero config without
// a telemetry block. A config fault in the registration (an address that
// cannot be selected) is a *ConfigError now, not once bound.
func telemetryConfigOf(g *generation, client *consul.Client, version string, log *slog.Logger) (telemetryConfig, error) {
	t := g.cfg.Telemetry
	if t == nil {
		return telemetryConfig{}, nil
	}
	c := telemetryConfig{listen: t.Listen, key: t.Listen}
	if !t.Register {
		return c, nil
	}
	c.key = fmt.Sprintf("%s register %p %v", t.Listen, client, g.services)
	c.register = func(port int) (*service, error) { return telemetryService(g, client, version, port, log) }
	port := 1 // a stand-in for ":0", only to check the rest now
	if _, p, err := net.SplitHostPort(t.Listen); err == nil {
		var n int
		if _, err := fmt.Sscan(p, &n); err == nil && n > 0 {
			port = n
		}
	}
	if _, err := c.register(port); err != nil {
		return telemetryConfig{}, &ConfigError{fmt.Errorf("telemetry.register: %w", err)}
	}
	return c, nil
}

// telemetryServiceID is pilot-<the app service's ID> (its id:, else its
// default NAME-HOSTNAME-PORT), or pilot-HOSTNAME-PORT with pilot's own
// port when no job has a service: unique per pilot, as the app's is.
func telemetryServiceID(app *config.Service, hostname string, port int) string {
	if app == nil {
		return fmt.Sprintf("%s-%s-%d", telemetryServiceName, hostname, port)
	}
	return telemetryServiceName + "-" + cmp.Or(app.ID, defaultServiceID(*app, hostname))
}

// telemetryService builds the "pilot" registration: ID telemetryServiceID,
// the port pilot listens on, the address the listen address names or else
// the one the first app service selects, tag "metrics", meta app and
// version.
func telemetryService(g *generation, client *consul.Client, version string, port int, log *slog.Logger) (*service, error) {
	host := hostname()
	var app *config.Service
	for _, j := range g.cfg.Jobs {
		if j.Service != nil {
			app = j.Service
			break
		}
	}
	sc := config.Service{Name: telemetryServiceName, Port: port, Tags: []string{"metrics"},
		Meta: map[string]string{"app": "", "version": version},
		TTL:  telemetryTTL, DeregisterCriticalAfter: telemetryDeregister}
	var sel discovery.AddressSelector
	if app != nil {
		sc.Meta["app"] = app.Name
		sel = discovery.AddressSelector{Interface: app.Address.Interface, CIDR: app.Address.CIDR, Static: app.Address.Static}
	}
	sc.Meta = withIdentityMeta(sc.Meta, g.identity)
	sc.ID = telemetryServiceID(app, host, port)
	if h, _, err := net.SplitHostPort(g.cfg.Telemetry.Listen); err == nil {
		if ip := net.ParseIP(h); ip != nil && !ip.IsUnspecified() {
			sel = discovery.AddressSelector{Static: h} // reachable only there
		}
	}
	svc, err := discoveryService(sc, sel, host)
	if err != nil {
		return nil, err
	}
	r, err := consul.NewRegistrar(client, svc, log.With("component", "telemetry"))
	if err != nil {
		return nil, err
	}
	return &service{job: "", registrar: r, selector: sel, address: svc.Address}, nil
}

func serviceStatus(s *service) telemetry.ServiceStatus {
	reg := s.registrar.Registration()
	return telemetry.ServiceStatus{Job: s.job, Name: reg.Name, ID: reg.ID, Address: reg.Address, Port: reg.Port,
		Registered: reg.Registered, Status: string(reg.Status), Maintenance: reg.Maintenance, HeldBy: reg.HeldBy}
}

// runtimeCollectors are the Go runtime's and pilot's process collectors:
// names validation keeps for pilot (go_, process_), which cannot collide
// with the config's metrics.
func runtimeCollectors() []prometheus.Collector {
	return []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	}
}
