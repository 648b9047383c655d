package pilot

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
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
	// telemetryServiceKey keys pilot's own registration among the job
	// services; a space is never in a job name.
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

	// Set by addJobs and listen.
	jobs     []*jobs.Job
	services services
	server   *telemetry.Server
	// pilotService is the telemetry.register registration, nil without.
	pilotService *service
}

// newInstruments registers pilot's own collectors in reg. The jobs'
// collectors come with addJobs, once the jobs exist.
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
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		telemetry.NewBuildInfo(in.version, in.commit),
		in.health, in.watches, in.exits,
	)
	if cfg.Consul != nil {
		reg.MustRegister(in.consul)
	}
	return in
}

// observeHealth is buildSpecs's health-check hook.
func (in *instruments) observeHealth(job string, r health.Result) { in.health.Observe(job, r.Duration) }

// observeConsul is the Consul client's request hook.
func (in *instruments) observeConsul(r consul.Request) { in.consul.Observe(r.Op, r.OK, r.Reached) }

// observeWatch is the watches' hook, called with each set applied.
func (in *instruments) observeWatch(watch string, instances, skipped int) {
	in.watches.Applied(watch, instances, skipped, time.Now())
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

// listen binds telemetry.listen (a port in use fails pilot's start, not a
// scrape later) and, with telemetry.register, adds pilot's own service to
// svcs, which must then be the registrations built with client.
func (in *instruments) listen(cfg config.Config, client *consul.Client, svcs services) error {
	t := cfg.Telemetry
	ln, err := net.Listen("tcp", t.Listen)
	if err != nil {
		return fmt.Errorf("telemetry.listen: %w", err)
	}
	in.server = telemetry.NewServer(ln, in.reg, in.status, in.log)
	in.log.Info("telemetry: serving /metrics and /status", "address", ln.Addr().String())
	if !t.Register {
		return nil
	}
	s, err := in.telemetryService(cfg, client, ln.Addr().(*net.TCPAddr).Port)
	if err != nil {
		ln.Close()
		return &ConfigError{fmt.Errorf("telemetry.register: %w", err)}
	}
	svcs[telemetryServiceKey] = s
	in.pilotService = s
	s.registrar.SetStatus(discovery.Passing, "pilot serves /metrics") // opens its readiness gate
	return nil
}

// telemetryService builds the "pilot" registration: ID pilot-<the first
// app service's ID> (pilot-<hostname> without one), the port pilot
// listens on, the address the listen address names or else the one the
// first app service selects, tag "metrics", meta app and version.
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
	id := hostname
	var sel discovery.AddressSelector
	if app != nil {
		sc.Meta["app"] = app.Name
		id = cmp.Or(app.ID, app.Name+"-"+hostname)
		sel = discovery.AddressSelector{Interface: app.Address.Interface, CIDR: app.Address.CIDR, Static: app.Address.Static}
	}
	sc.ID = telemetryServiceName + "-" + id
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

// actor returns the telemetry actor: it serves until interrupted and
// counts exits from changes (subscribed before any job starts). Its
// interrupt deregisters pilot's own service, then lets scrapes in flight
// finish. It is added to the run group early so that it stops late:
// /metrics answers throughout the shutdown.
func (in *instruments) actor(changes *jobs.Subscription) (execute func() error, interrupt func()) {
	ctx, cancel := context.WithCancel(context.Background())
	execute = func() error {
		var wg sync.WaitGroup
		wg.Go(func() { in.exits.Run(ctx, changes) })
		defer wg.Wait()
		if err := in.server.Serve(); err != nil {
			in.log.Error("telemetry: server failed; /metrics is gone until pilot restarts", "err", err)
			<-ctx.Done()
		}
		return nil
	}
	interrupt = func() {
		if s := in.pilotService; s != nil {
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
	for _, s := range in.services {
		ss := telemetry.ServiceStatus{Job: s.job}
		if r, ok := s.registrar.(interface{ Registration() consul.Registration }); ok {
			reg := r.Registration()
			ss.Name, ss.ID, ss.Address, ss.Port = reg.Name, reg.ID, reg.Address, reg.Port
			ss.Registered, ss.Status, ss.Maintenance = reg.Registered, string(reg.Status), reg.Maintenance
		}
		st.Services = append(st.Services, ss)
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
