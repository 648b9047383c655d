package pilot

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/nodepilot/pilot/discovery"
	"github.com/nodepilot/pilot/discovery/consul"
	"github.com/nodepilot/pilot/jobs"
	"github.com/nodepilot/pilot/jobs/health"
	"github.com/nodepilot/pilot/pilot/config"
	"github.com/nodepilot/pilot/telemetry"
)

// Telemetry service defaults: the "pilot" service Prometheus finds through
// consul_sd_configs (telemetry.register).
const (
	telemetryServiceName = "pilot"
	// telemetryServiceKey keys pilot's own registration for
	// services.recheckAddresses; a space is never in a job name.
	telemetryServiceKey = "pilot telemetry"
	telemetryTTL        = 10 * time.Second
	telemetryDeregister = time.Minute
	// telemetryDrain bounds how long scrapes in flight get at the end.
	telemetryDrain = time.Second
)

// instruments are pilot's metrics for one run: the collectors registered in
// the run's one registry, the hooks that feed them, and the /metrics and
// /status server when telemetry.listen is set.
type instruments struct {
	reg     *prometheus.Registry
	log     *slog.Logger
	started time.Time
	version string
	commit  string

	health  *telemetry.HealthChecks
	consul  *telemetry.Consul
	watches *telemetry.Watches
	exits   *telemetry.Exits

	// Set by addJobs and setupServer.
	jobs       []*jobs.Job
	services   services
	server     *telemetry.Server
	listenAddr string // telemetry.listen, bound by the actor
	// register builds pilot's own registration for the port it is bound
	// to (telemetry.register); nil without.
	register func(port int) (*service, error)

	mu sync.Mutex
	// pilotService is the telemetry.register registration, nil until the
	// actor has bound telemetry.listen (or without telemetry.register).
	pilotService *service
	stopping     bool // the actor is interrupted: register nothing more
}

// newInstruments registers pilot's own collectors in reg. The jobs'
// collectors come with addJobs, once the jobs exist; the Go runtime's and
// pilot's process collectors with the actor, which runs beside the jobs'
// start instead of before it (building the Go collector reads every
// runtime metric's description: a cost no job should wait for).
func newInstruments(cfg config.Config, reg *prometheus.Registry, opts Options, log *slog.Logger) *instruments {
	var checked []string
	for _, j := range cfg.Jobs {
		if j.Health != nil {
			checked = append(checked, j.Name)
		}
	}
	in := &instruments{
		reg: reg, log: log, started: time.Now(),
		version: cmp.Or(opts.Version, "dev"), commit: cmp.Or(opts.Commit, "unknown"),
		health:  telemetry.NewHealthChecks(checked),
		consul:  telemetry.NewConsul(),
		watches: telemetry.NewWatches(watchNames(cfg.Watches)),
		exits:   telemetry.NewExits(),
	}
	reg.MustRegister(
		telemetry.NewBuildInfo(in.version, in.commit),
		in.health, in.watches, in.exits,
	)
	if cfg.Consul != nil {
		reg.MustRegister(in.consul)
	}
	return in
}

// healthHook is buildSpecs's health-check hook; nil without telemetry.
func (in *instruments) healthHook() func(job string, r health.Result) {
	if in == nil {
		return nil
	}
	return func(job string, r health.Result) { in.health.Observe(job, r.Duration) }
}

// consulHook is the Consul client's request hook; nil without telemetry.
func (in *instruments) consulHook() func(consul.Request) {
	if in == nil {
		return nil
	}
	return func(r consul.Request) { in.consul.Observe(r.Op, r.OK, r.Reached) }
}

// watchHook is the watches' hook, called with each set applied; a no-op
// without telemetry.
func (in *instruments) watchHook() func(watch string, instances, skipped int) {
	if in == nil {
		return func(string, int, int) {}
	}
	return func(watch string, instances, skipped int) {
		in.watches.Applied(watch, instances, skipped, time.Now())
	}
}

// addJobs registers the collectors that read the jobs at scrape time.
func (in *instruments) addJobs(js []*jobs.Job, svcs services) error {
	in.jobs, in.services = js, svcs
	tj := make([]telemetry.Job, len(js))
	for i, j := range js {
		tj[i] = j
	}
	procs, err := telemetry.NewProcessCollector(tj)
	if err != nil {
		return fmt.Errorf("telemetry: reading /proc: %w", err)
	}
	// Two collectors, not one: the registry collects each on its own
	// goroutine, so /proc is read while the states are encoded.
	if err := in.reg.Register(telemetry.NewJobCollector(tj)); err != nil {
		return err
	}
	return in.reg.Register(procs)
}

// setupServer builds the /metrics and /status server for
// telemetry.listen and, with telemetry.register, the recipe of pilot's own
// registration (with client). Nothing is bound here: the actor binds,
// retrying while the port is taken, so that a port in use never keeps the
// jobs from running. A config fault in the registration (an address that
// cannot be selected) is a *ConfigError now, not once bound.
func (in *instruments) setupServer(cfg config.Config, client *consul.Client) error {
	in.server = telemetry.NewServer(in.reg, in.status, in.log)
	in.listenAddr = cfg.Telemetry.Listen
	if !cfg.Telemetry.Register {
		return nil
	}
	in.register = func(port int) (*service, error) { return in.telemetryService(cfg, client, port) }
	port := 1 // a stand-in for ":0", only to check the rest now
	if _, p, err := net.SplitHostPort(cfg.Telemetry.Listen); err == nil {
		if n, err := strconv.Atoi(p); err == nil && n > 0 {
			port = n
		}
	}
	if _, err := in.register(port); err != nil {
		return &ConfigError{fmt.Errorf("telemetry.register: %w", err)}
	}
	return nil
}

// telemetryServiceID is pilot-<the app service's ID> (its id:, else its
// default NAME-HOSTNAME-PORT), or pilot-HOSTNAME-PORT with pilot's own
// port when no job has a service: unique per pilot, as the app's is.
func telemetryServiceID(app *config.Service, hostname string, port int) string {
	if app == nil {
		return telemetryServiceName + "-" + hostname + "-" + strconv.Itoa(port)
	}
	return telemetryServiceName + "-" + cmp.Or(app.ID, defaultServiceID(*app, hostname))
}

// telemetryService builds the "pilot" registration: ID telemetryServiceID,
// the port pilot listens on, the address the listen address names or else
// the one the first app service selects, tag "metrics", meta app and
// version.
func (in *instruments) telemetryService(cfg config.Config, client *consul.Client, port int) (*service, error) {
	hostname, _ := os.Hostname()
	var app *config.Service
	for _, j := range cfg.Jobs {
		if j.Service != nil {
			app = j.Service
			break
		}
	}
	sc := config.Service{Name: telemetryServiceName, Port: port, Tags: []string{"metrics"},
		Meta: map[string]string{"app": "", "version": in.version},
		TTL:  telemetryTTL, DeregisterCriticalAfter: telemetryDeregister}
	var sel discovery.AddressSelector
	if app != nil {
		sc.Meta["app"] = app.Name
		sel = discovery.AddressSelector{Interface: app.Address.Interface, CIDR: app.Address.CIDR, Static: app.Address.Static}
	}
	sc.ID = telemetryServiceID(app, hostname, port)
	if host, _, err := net.SplitHostPort(cfg.Telemetry.Listen); err == nil {
		if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
			sel = discovery.AddressSelector{Static: host} // reachable only there
		}
	}
	svc, err := discoveryService(sc, sel, hostname)
	if err != nil {
		return nil, err
	}
	r, err := consul.NewRegistrar(client, svc, in.log.With("component", "telemetry"))
	if err != nil {
		return nil, err
	}
	return &service{job: "", registrar: r, selector: sel, address: svc.Address}, nil
}

// actor returns the telemetry actor: it binds telemetry.listen (retrying
// while it cannot, the jobs running meanwhile), then serves until
// interrupted, and counts exits from changes (subscribed before any job
// starts). Once bound it registers pilot's own service (telemetry.register)
// and keeps its address current. Its interrupt deregisters that service,
// then lets scrapes in flight finish. It is added to the run group early so
// that it stops late: /metrics answers throughout the shutdown.
func (in *instruments) actor(changes *jobs.Subscription) (execute func() error, interrupt func()) {
	ctx, cancel := context.WithCancel(context.Background())
	listenCtx, stopListening := context.WithCancel(ctx)
	execute = func() error {
		var wg sync.WaitGroup
		wg.Go(func() { in.exits.Run(ctx, changes) })
		defer wg.Wait()
		// Collectors of names validation keeps for pilot (go_, process_):
		// they cannot collide with the config's metrics.
		in.reg.MustRegister(
			collectors.NewGoCollector(),
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		)
		ln, err := telemetry.Listen(listenCtx, in.listenAddr, in.log)
		if err != nil { // interrupted before it could bind
			<-ctx.Done()
			return nil
		}
		in.log.Info("telemetry: serving /metrics and /status", "address", ln.Addr().String())
		if in.register != nil {
			in.registerPilot(ctx, &wg, ln.Addr().(*net.TCPAddr).Port)
		}
		if err := in.server.Serve(ln); err != nil {
			in.log.Error("telemetry: server failed; /metrics is gone until pilot restarts", "err", err)
			<-ctx.Done()
		}
		return nil
	}
	interrupt = func() {
		stopListening()
		in.mu.Lock()
		in.stopping = true
		s := in.pilotService
		in.mu.Unlock()
		if s != nil {
			dctx, dcancel := context.WithTimeout(context.Background(), deregisterTimeout)
			if err := s.registrar.Deregister(dctx); err != nil {
				in.log.Warn("telemetry: deregistration failed", "err", err)
			}
			dcancel()
		}
		sctx, scancel := context.WithTimeout(context.Background(), telemetryDrain)
		in.server.Shutdown(sctx)
		scancel()
		cancel()
	}
	return execute, interrupt
}

// registerPilot registers pilot's own service on port and keeps it
// registered, its address current, on wg's goroutines until ctx ends;
// nothing once the actor is interrupted.
func (in *instruments) registerPilot(ctx context.Context, wg *sync.WaitGroup, port int) {
	s, err := in.register(port)
	if err != nil { // it built at start: the address selection changed since
		in.log.Error("telemetry.register: pilot's service not registered", "err", err)
		return
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.stopping {
		return
	}
	in.pilotService = s
	wg.Go(func() { _ = s.registrar.Run(ctx) })
	wg.Go(func() {
		recheck := time.NewTicker(addressRecheck)
		defer recheck.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-recheck.C:
				services{telemetryServiceKey: s}.recheckAddresses(in.log)
			}
		}
	})
	s.registrar.SetStatus(discovery.Passing, "pilot serves /metrics") // opens its readiness gate
}

func serviceStatus(s *service) telemetry.ServiceStatus {
	reg := s.registrar.Registration()
	return telemetry.ServiceStatus{Job: s.job, Name: reg.Name, ID: reg.ID, Address: reg.Address, Port: reg.Port,
		Registered: reg.Registered, Status: string(reg.Status), Maintenance: reg.Maintenance, HeldBy: reg.HeldBy}
}

// status is the /status document.
func (in *instruments) status() telemetry.Status {
	st := telemetry.Status{
		Pilot:    telemetry.PilotStatus{Version: in.version, Commit: in.commit, Pid: os.Getpid(), Started: in.started},
		Jobs:     make([]telemetry.JobStatus, 0, len(in.jobs)),
		Services: []telemetry.ServiceStatus{},
		Watches:  in.watches.Status(),
	}
	for _, j := range in.jobs {
		st.Jobs = append(st.Jobs, telemetry.JobStatusOf(j))
	}
	in.mu.Lock()
	pilot := in.pilotService
	in.mu.Unlock()
	for _, s := range in.services {
		st.Services = append(st.Services, serviceStatus(s))
	}
	if pilot != nil {
		st.Services = append(st.Services, serviceStatus(pilot))
	}
	// Job services in job order, pilot's own last.
	order := map[string]int{"": len(in.jobs)}
	for i, j := range in.jobs {
		order[j.Name()] = i
	}
	slices.SortFunc(st.Services, func(a, b telemetry.ServiceStatus) int {
		return cmp.Or(cmp.Compare(order[a.Job], order[b.Job]), cmp.Compare(a.ID, b.ID))
	})
	return st
}
