package pilot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodepilot/pilot/jobs"
	"github.com/nodepilot/pilot/jobs/output"
	"github.com/nodepilot/pilot/pilot/config"
	"github.com/nodepilot/pilot/telemetry/nodejs"
)

// Options are the process-wide things pilot.Run uses, injected so that the
// library never reaches for globals.
type Options struct {
	Log   *slog.Logger
	Stdin *os.File
	// Stdout and Stderr are where jobs write; pilot's own logger should
	// write through Stderr too, so that its lines never split a job's.
	Stdout *output.Sink
	Stderr *output.Sink
	// Environ is the environment every job inherits.
	Environ []string
	// Version and Commit are pilot's build stamp, for pilot_build_info,
	// /status and the telemetry service's meta.
	Version, Commit string
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
func Run(ctx context.Context, raw *config.Config, opts Options) error {
	cfg := raw.WithDefaults()
	log := opts.Log
	reaper := jobs.NewReaper(log)
	// The run's one registry: every part that exposes metrics registers
	// into it (ARCHITECTURE 9); telemetry.listen serves it. Without
	// telemetry there is neither (validation ties metrics, sensors and
	// Node metrics to it): the first child does not wait for collectors
	// nobody reads.
	var (
		reg  *prometheus.Registry
		inst *instruments
	)
	if cfg.Telemetry != nil {
		reg = prometheus.NewRegistry()
		inst = newInstruments(cfg, reg, opts, log)
	}
	specs, err := buildSpecs(cfg, opts.Environ, reaper, log, inst.healthHook())
	if err != nil {
		return err
	}
	customMetrics, err := buildCustomMetrics(cfg, reg)
	if err != nil {
		return err
	}
	attachSensors(cfg, specs, customMetrics, log)
	firstRenders := gateReloadTargets(cfg, specs)
	// A private directory, readable by jobs that run as another user, for
	// the watches' instance files and the Node agent.
	var stateDir string
	nodeMetrics := wantsNodeMetrics(cfg)
	if len(cfg.Watches) > 0 || nodeMetrics {
		if stateDir, err = os.MkdirTemp("", "pilot-"); err != nil {
			return fmt.Errorf("a private directory for pilot's files: %w (set TMPDIR to a writable directory)", err)
		}
		defer os.RemoveAll(stateDir)
		if err := os.Chmod(stateDir, 0o755); err != nil {
			return err
		}
	}
	var nodeAgents *nodejs.Agents
	setNodeJobs := func([]*jobs.Job) {}
	if nodeMetrics {
		if nodeAgents, setNodeJobs, err = setupNodeAgents(cfg, specs, stateDir, reg, log); err != nil {
			return err
		}
	}
	svcs, consulClient, err := buildServices(cfg, log, inst.consulHook())
	if err != nil {
		return err
	}
	if consulClient != nil {
		defer consulClient.Close()
	}
	if err := jobs.BecomeSubreaper(); err != nil {
		log.Warn("cannot become child subreaper: orphans of jobs will not be reaped by pilot", "err", err)
	}

	bus := jobs.NewBus()
	deps := jobs.Deps{
		Log:    log,
		Reaper: reaper,
		Bus:    bus,
		Stdout: opts.Stdout,
		Stderr: opts.Stderr,
	}
	sup := &supervisor{
		log:         log,
		bus:         bus,
		reaper:      reaper,
		services:    svcs,
		stopTimeout: cfg.StopTimeout,
	}
	for _, spec := range specs {
		if spec.Main {
			spec.Stdin = opts.Stdin
			spec.Foreground = controllingTTY(opts.Stdin)
		}
		j := jobs.New(spec, deps)
		if spec.Main {
			sup.main = j
		}
		sup.jobs = append(sup.jobs, j)
	}
	setNodeJobs(sup.jobs)
	var signalsReady func()
	sup.signals, signalsReady = listenSignals(log, sup.jobs)
	defer signalsReady() // the registering goroutine ends before Run returns
	// The telemetry server is bound by its actor, which retries while the
	// port is taken.
	if inst != nil {
		if err := inst.addJobs(sup.jobs, svcs); err != nil {
			return err
		}
		if err := inst.setupServer(cfg, consulClient); err != nil {
			return err
		}
	}

	// Actors are added in start order; teardown runs in reverse, so the
	// reaper outlives everything that may leave orphans behind.
	var g group
	reaperCtx, stopReaper := context.WithCancel(context.Background())
	g.add(func() error { reaper.Run(reaperCtx); return nil }, stopReaper)

	if inst != nil { // stops late: /metrics answers throughout the shutdown
		changes := bus.Subscribe()
		defer bus.Unsubscribe(changes)
		g.add(inst.actor(changes))
	}

	if len(svcs) > 0 {
		servicesCtx, stopServices := context.WithCancel(context.Background())
		changes := bus.Subscribe() // now, before any job can change state
		defer bus.Unsubscribe(changes)
		g.add(func() error { svcs.run(servicesCtx, changes, log); return nil }, stopServices)
	}

	if nodeAgents != nil {
		agentsCtx, stopAgents := context.WithCancel(context.Background())
		g.add(func() error { nodeAgents.Run(agentsCtx); return nil }, stopAgents)
	}

	if len(cfg.Watches) > 0 {
		watches, err := buildWatches(cfg, consulClient, sup.jobs, firstRenders, reaper, opts.Environ, stateDir, log, inst.watchHook())
		if err != nil {
			return err
		}
		watchesCtx, stopWatches := context.WithCancel(context.Background())
		g.add(func() error {
			var wg sync.WaitGroup
			for _, w := range watches {
				wg.Go(func() { w.run(watchesCtx) })
			}
			wg.Wait()
			return nil
		}, stopWatches)
	}

	code := 0
	supCtx, stopSup := context.WithCancel(ctx)
	defer stopSup()
	g.add(func() error { code = sup.run(supCtx); return errSupervisorDone }, stopSup)

	if err := g.run(); !errors.Is(err, errSupervisorDone) {
		return err
	}
	log.Info("exiting", "code", code, "orphansReaped", reaper.Reaped())
	if code != 0 {
		return &ExitError{Code: code}
	}
	return nil
}

var errSupervisorDone = errors.New("supervisor done")
