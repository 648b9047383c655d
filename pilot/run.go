package pilot

import (
	"context"
	"errors"
	"fmt"
	"github.com/nodepilot/pilot/discovery/container"
	"log/slog"
	"os"
	"reflect"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/nodepilot/pilot/discovery/consul"
	"github.com/nodepilot/pilot/jobs"
	"github.com/nodepilot/pilot/jobs/cpus"
	"github.com/nodepilot/pilot/jobs/health"
	"github.com/nodepilot/pilot/jobs/output"
	"github.com/nodepilot/pilot/pilot/config"
	"github.com/nodepilot/pilot/telemetry"
	"github.com/nodepilot/pilot/telemetry/custom"
	"github.com/nodepilot/pilot/telemetry/nodejs"
)

// Options are the process-wide things pilot.Run uses, injected so that the
// library never reaches for globals.
type Options struct {
	Log *slog.Logger
	// LogLevel, when set, is the level of Log's handler: a reload sets it
	// from log.level. nil when the level is fixed (PILOT_LOG_LEVEL).
	LogLevel *slog.LevelVar
	Stdin    *os.File
	// Stdout and Stderr are where jobs write; pilot's own logger should
	// write through Stderr too, so that its lines never split a job's.
	Stdout *output.Sink
	Stderr *output.Sink
	// Environ is the environment every job inherits.
	Environ []string
	// Version and Commit are pilot's build stamp, for pilot_build_info,
	// /status and the telemetry service's meta.
	Version, Commit string
	// Load reads and checks the config file again, for a reload; nil when
	// pilot runs a command line (pilot --), which has none.
	Load func() (*config.Config, error)
	// ControlSocket is the control socket's path; "" runs without one.
	ControlSocket string
	// ControlSocketDefault says ControlSocket is the default, not asked
	// for: a default path that cannot be bound costs a warning, not the run.
	ControlSocketDefault bool
}

// ExitError is what Run returns when the jobs decide that pilot ends with a
// code other than 0: the main job's exit code (128+N when signal N killed
// it, or stopped it before it ever ran; 1 when it can never start because a
// dependency failed), or, without a main job, 1 when a job failed.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("jobs ended with exit code %d", e.Code) }

// Run supervises the jobs of a validated config until pilot must stop. Its
// one result says how pilot should end, so no caller can keep a code and
// drop the reason, or the reverse:
//   - nil: exit 0;
//   - *ExitError: exit with its Code, decided by the jobs;
//   - *ConfigError: a config fault found at run time (exit 2);
//   - any other error: pilot's own failure (exit 1).
func Run(ctx context.Context, cfg *config.Config, opts Options) error {
	c := newCore(opts)
	defer c.close()
	// Without a Docker socket this reads two /proc files (about 0.2 ms);
	// with one, an inspect bounded by container.DefaultTimeout.
	c.identity = container.Detect(ctx, c.log, dockerHost(cfg, opts.Environ))
	first, client, err := c.prepare(cfg)
	if err != nil {
		return err
	}
	c.client = client
	if err := jobs.BecomeSubreaper(); err != nil {
		c.log.Warn("cannot become child subreaper: orphans of jobs will not be reaped by pilot", "err", err)
	}
	if err := c.sockets.bind(first); err != nil {
		return err
	}
	gates, watchGates := startGates(first.watches, func(string) bool { return true })
	specs := c.specsToStart(first.jobs, gates)
	c.sup = newSupervisor(c.log, c.deps(), first.cfg.StopTimeout, specs)
	c.sup.withdraw = c.services.withdraw
	if opts.Load != nil {
		c.sup.onHangup = c.reloadOnHangup
	}
	c.sup.onReloadSignal = func(sig syscall.Signal) { c.rollOnSignal(sig, nil) }
	if err := c.services.apply(context.Background(), first.services, client, false, nil); err != nil {
		return &ConfigError{err}
	}
	c.watches.apply(first.watches, client, false, watchGates)
	tc, err := telemetryConfigOf(first, client, c.version(), c.log)
	if err != nil {
		return err
	}
	c.telemetryServer.apply(tc)
	if in := c.inst.Load(); in != nil {
		in.apply(first)
	}
	c.setGeneration(first)

	var signalsReady func()
	c.sup.signals, signalsReady = listenSignals(c.log, c.sup.current(), opts.Load != nil)
	defer signalsReady() // the registering goroutine ends before Run returns

	controlLn, err := c.listenControl()
	if err != nil {
		return err
	}

	// Actors are added in start order; teardown runs in reverse, so the
	// reaper outlives everything that may leave orphans behind.
	var g group
	reaperCtx, stopReaper := context.WithCancel(context.Background())
	g.add(func() error { c.reaper.Run(reaperCtx); return nil }, stopReaper)

	// Stops late: /metrics answers throughout the shutdown.
	telemetryCtx, stopTelemetry := context.WithCancel(context.Background())
	g.add(func() error {
		c.telemetryServer.run(telemetryCtx, c.registerRuntime)
		return nil
	}, stopTelemetry)

	servicesCtx, stopServices := context.WithCancel(context.Background())
	serviceChanges := c.bus.Subscribe() // now, before any job can change state
	defer c.bus.Unsubscribe(serviceChanges)
	g.add(func() error { c.services.run(servicesCtx, serviceChanges); return nil }, stopServices)

	agentsCtx, stopAgents := context.WithCancel(context.Background())
	g.add(func() error { c.runAgents(agentsCtx); return nil }, stopAgents)

	watchesCtx, stopWatches := context.WithCancel(context.Background())
	g.add(func() error { c.watches.run(watchesCtx); return nil }, stopWatches)

	if controlLn != nil { // stops right after the shutdown: status answers during it
		serve, stop := c.controlActor(controlLn)
		g.add(serve, stop)
	}

	code := 0
	supCtx, stopSup := context.WithCancel(ctx)
	defer stopSup()
	g.add(func() error { code = c.sup.run(supCtx); return errSupervisorDone }, stopSup)

	if err := g.run(); !errors.Is(err, errSupervisorDone) {
		return err
	}
	c.log.Info("exiting", "code", code, "orphansReaped", c.reaper.Reaped())
	if code != 0 {
		return &ExitError{Code: code}
	}
	return nil
}

var errSupervisorDone = errors.New("supervisor done")

// core is one run of pilot: the long-lived parts every generation shares
// (reaper, bus, sinks, registry, Consul client, Node agents, the parts that
// keep services, watches and telemetry) and the current generation.
// Generations change only under reloading, one at a time.
type core struct {
	opts    Options
	log     *slog.Logger
	reaper  *jobs.Reaper
	bus     *jobs.Bus
	env     *jobs.EnvOverlay
	started time.Time

	sup             *supervisor
	services        *serviceSet
	watches         *watchSet
	telemetryServer *telemetryServer

	// reloading is held while a generation is prepared and applied: one
	// reload at a time, the next refused (409) rather than queued.
	reloading sync.Mutex
	// Under reloading:
	client   *consul.Client
	reg      *prometheus.Registry // nil until a generation has telemetry
	stateDir string               // "" until a generation needs one
	agents   *nodejs.Agents       // nil until a job asks for Node metrics or listen
	agentsUp chan *nodejs.Agents  // hands the agents to runAgents

	// sockets are the jobs' `listen` sockets; ready what their instances
	// said through the agent.
	sockets sockets
	ready   readiness

	// identity is pilot's own container, read once at the start.
	identity container.Identity

	inst    atomic.Pointer[instruments]
	metrics atomic.Pointer[customMetrics]

	genMu sync.Mutex
	gen   *generation
}

// customMetrics are one generation's custom metrics, in a registry of their
// own that /metrics gathers beside pilot's: a reload that changes them
// swaps the registry, with nothing to unregister.
type customMetrics struct {
	defs    []custom.Def
	reg     *prometheus.Registry
	metrics *custom.Metrics
}

func newCore(opts Options) *core {
	c := &core{opts: opts, log: opts.Log, reaper: jobs.NewReaper(opts.Log), bus: jobs.NewBus(),
		env: jobs.NewEnvOverlay(), started: time.Now(), agentsUp: make(chan *nodejs.Agents, 1)}
	c.services = newServiceSet(c.log, c.jobStatus)
	c.watches = newWatchSet(c)
	c.telemetryServer = newTelemetryServer(c.log, prometheus.GathererFunc(c.gather), c.status)
	return c
}

// close releases what the run's generations held.
func (c *core) close() {
	c.sockets.closeAll()
	if c.client != nil {
		c.client.Close()
	}
	if c.stateDir != "" {
		os.RemoveAll(c.stateDir)
	}
}

func (c *core) deps() jobs.Deps {
	return jobs.Deps{Log: c.log, Reaper: c.reaper, Bus: c.bus, Stdout: c.opts.Stdout, Stderr: c.opts.Stderr, Env: c.env}
}

func (c *core) version() string {
	if c.opts.Version == "" {
		return "dev"
	}
	return c.opts.Version
}

func (c *core) setGeneration(g *generation) {
	c.genMu.Lock()
	c.gen = g
	c.genMu.Unlock()
}

func (c *core) generation() *generation {
	c.genMu.Lock()
	defer c.genMu.Unlock()
	return c.gen
}

// jobStatus reads the job of that name in the current set.
func (c *core) jobStatus(name string) (jobs.Status, bool) {
	if c.sup == nil {
		return jobs.Status{}, false
	}
	if j := c.sup.job(name); j != nil {
		return j.Status(), true
	}
	return jobs.Status{}, false
}

// prepare gets the long-lived parts cfg needs that are not there yet
// (registry, private directory, Node agents) and builds its generation,
// with the Consul client it uses: the current one when the consul block is
// unchanged, else a new one (the caller closes it if it does not apply the
// generation). Nothing that runs changes.
func (c *core) prepare(cfg *config.Config) (*generation, *consul.Client, error) {
	if err := c.ensureResources(cfg); err != nil {
		return nil, nil, err
	}
	in := buildInputs{
		environ: c.opts.Environ, starter: c.reaper, log: c.log, hostname: hostname(), identity: c.identity,
		observeHealth: func(job string, r health.Result) {
			if in := c.inst.Load(); in != nil {
				in.health.Observe(job, r.Duration)
			}
		},
		sensor:    c.sensorHook,
		nodeEnv:   c.agents.Env,
		cpus:      c.cpus,
		readiness: c.ready.probe,
	}
	g, err := build(cfg, in)
	if err != nil {
		return nil, nil, err
	}
	client := c.client
	if cur := c.generation(); cur == nil || consulChanged(cur, g) {
		client = nil
		if g.cfg.Consul != nil {
			if client, err = newConsulClient(g.cfg.Consul, c.observeConsul); err != nil {
				return nil, nil, err
			}
		}
	}
	if err := c.applyCustomMetrics(g); err != nil {
		if client != nil && client != c.client {
			client.Close()
		}
		return nil, nil, err
	}
	return g, client, nil
}

func (c *core) observeConsul(r consul.Request) {
	if in := c.inst.Load(); in != nil {
		in.consul.Observe(r.Op, r.OK, r.Reached)
	}
}

// ensureResources makes what cfg needs of the long-lived parts: the
// registry and pilot's collectors with the first telemetry block, a
// private directory (readable by jobs that run as another user) for the
// watches' instance files and the Node agent, the agent itself.
func (c *core) ensureResources(cfg *config.Config) error {
	if cfg.Telemetry != nil && c.reg == nil {
		reg := prometheus.NewRegistry()
		in, err := newInstruments(reg, c.version(), commitOr(c.opts.Commit), c.telemetryJobs)
		if err != nil {
			return err
		}
		c.reg = reg
		c.inst.Store(in)
		changes := c.bus.Subscribe()
		go in.exits.Run(context.Background(), changes) // as long as pilot
	}
	// The agent serves Node metrics, and hands a `listen` job's sockets to
	// an app that listens on a port, tells readiness and drains.
	needAgent := false
	for _, j := range cfg.Jobs {
		needAgent = needAgent || j.Node != nil && j.Node.Metrics || len(j.Listen) > 0
	}
	if (len(cfg.Watches) > 0 || needAgent) && c.stateDir == "" {
		dir, err := os.MkdirTemp("", "pilot-")
		if err != nil {
			return fmt.Errorf("a private directory for pilot's files: %w (set TMPDIR to a writable directory)", err)
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			os.RemoveAll(dir)
			return err
		}
		c.stateDir = dir
	}
	if needAgent && c.agents == nil {
		reg := c.reg
		if reg == nil { // no telemetry (yet): the agent's metrics go nowhere
			reg = prometheus.NewRegistry()
		}
		agents, err := nodejs.New(c.stateDir, reg, c.log.With("component", "nodejs"),
			nodejs.Options{Pids: c.pidsOf, OnEvent: c.onAgentEvent})
		if err != nil {
			return err
		}
		c.agents = agents
		c.agentsUp <- agents
	}
	return nil
}

func commitOr(commit string) string {
	if commit == "" {
		return "unknown"
	}
	return commit
}

// pidsOf are the processes of job the Node agent accepts reports from:
// every instance of a pool.
func (c *core) pidsOf(job string) []int {
	if c.sup == nil {
		return nil
	}
	if j := c.sup.job(job); j != nil {
		return j.Pids()
	}
	return nil
}

func (c *core) onAgentEvent(ev nodejs.Event) {
	switch ev.Kind {
	case nodejs.EventReady:
		c.ready.markReady(ev.Pid)
	case nodejs.EventGone:
		c.ready.forget(ev.Pid)
	}
}

// cpus is `instances: auto`: the CPUs the container may use.
func (c *core) cpus() int {
	n, source, err := cpus.Auto()
	if err != nil {
		c.log.Warn("instances: auto: cannot read the CPU quota; counting the CPUs pilot may run on", "err", err)
	}
	c.log.Debug("instances: auto", "cpus", n, "from", source)
	return max(n, 1)
}

// runAgents runs the Node agents once a generation has asked for them,
// until ctx ends.
func (c *core) runAgents(ctx context.Context) {
	select {
	case a := <-c.agentsUp:
		a.Run(ctx)
	case <-ctx.Done():
	}
}

func (c *core) registerRuntime() {
	if c.reg != nil {
		c.reg.MustRegister(runtimeCollectors()...)
	}
}

func (c *core) telemetryJobs() []telemetry.Job {
	if c.sup == nil {
		return nil
	}
	js := c.sup.current()
	out := make([]telemetry.Job, len(js))
	for i, j := range js {
		out[i] = j
	}
	return out
}

// gather is what /metrics serves: pilot's registry and the current custom
// metrics'.
func (c *core) gather() ([]*dto.MetricFamily, error) {
	gs := prometheus.Gatherers{}
	if c.reg != nil {
		gs = append(gs, c.reg)
	}
	if m := c.metrics.Load(); m != nil {
		gs = append(gs, m.reg)
	}
	return gs.Gather()
}

// applyCustomMetrics builds g's custom metrics when they differ from the
// current ones (kept otherwise, with their values). Without metrics and
// sensor jobs there are none.
func (c *core) applyCustomMetrics(g *generation) error {
	cur := c.metrics.Load()
	if len(g.metrics) == 0 && !g.sensors {
		c.metrics.Store(nil)
		return nil
	}
	if cur != nil && reflect.DeepEqual(cur.defs, g.metrics) {
		return nil
	}
	reg := prometheus.NewRegistry()
	m, err := custom.New(g.metrics, reg)
	if err != nil {
		return &ConfigError{err}
	}
	c.metrics.Store(&customMetrics{defs: g.metrics, reg: reg, metrics: m})
	return nil
}

// sensorHook is a sensor job's stdout hook: each line sets the custom
// metrics current when it is read, so a reload that redefines them takes
// the running job along.
func (c *core) sensorHook(job string) func(line []byte) {
	var (
		mu   sync.Mutex
		for_ *customMetrics
		hook func([]byte)
	)
	return func(line []byte) {
		cm := c.metrics.Load()
		if cm == nil {
			return
		}
		mu.Lock()
		if cm != for_ {
			for_, hook = cm, cm.metrics.Sensor(job, c.log)
		}
		h := hook
		mu.Unlock()
		h(line)
	}
}

// specsToStart readies the specs of plans to be started: the main job
// gets pilot's stdin (and the terminal, when it is pilot's), a job a new
// watch reloads gets that watch's start gate.
func (c *core) specsToStart(plans []jobPlan, gates map[string]<-chan struct{}) []jobs.Spec {
	specs := make([]jobs.Spec, len(plans))
	for i, p := range plans {
		spec := p.spec
		if spec.Main {
			spec.Stdin = c.opts.Stdin
			spec.Foreground = controllingTTY(c.opts.Stdin)
		}
		if g, ok := gates[spec.Name]; ok {
			spec.StartGate = g
		}
		c.sockets.attach(&spec, p.identity.job.Listen)
		specs[i] = spec
	}
	return specs
}
