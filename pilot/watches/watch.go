package watches

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nodepilot/pilot/discovery"
	"github.com/nodepilot/pilot/discovery/render"
	"github.com/nodepilot/pilot/jobs"
	"github.com/nodepilot/pilot/pilot/config"
)

// Jobs is how a watch reaches the jobs it reloads or runs, by name: the set
// of jobs changes while pilot runs (reload), so a watch never holds a
// *jobs.Job. Its methods are called from the Runs of several watches at
// once.
type Jobs interface {
	// Signal sends sig to the named job's process group; false when no
	// process of it runs (not started yet, restarting, ended, unknown).
	Signal(job string, sig syscall.Signal) bool
	// Trigger asks the named triggered job for one run with env added (a
	// no-op for an unknown job).
	Trigger(job string, env []string)
}

// Runner runs a reload command to completion in its own process group;
// *jobs.Reaper satisfies it. Its error says the command could not start;
// how it ended is in the result.
type Runner interface {
	RunCommand(ctx context.Context, c jobs.Command) (jobs.CommandResult, error)
}

var _ Runner = (*jobs.Reaper)(nil)

// Options are what a Watch is built from.
type Options struct {
	// Name tells this watch from the others (Names); its log lines carry
	// it as watch=Name.
	Name string
	// Config is the watch's config, defaults filled in
	// (config.Config.WithDefaults).
	Config config.Watch
	// Watcher follows the service; required.
	Watcher discovery.Watcher
	// Jobs reaches the jobs of onChange.run and reload.job; nil knows none.
	Jobs Jobs
	// Runner runs reload.exec; nil fails every reload command.
	Runner Runner
	// Environ is the environment of reload commands (nil: pilot's own).
	Environ []string
	// InstancesFile is where onChange.run's instances are written
	// (InstancesFile); "" when the watch runs no job.
	InstancesFile string
	// Gate is the start gate this watch's first render opens
	// (NewStartGates); nil when it must open none.
	Gate *StartGate
	// Applied is told of each set applied (telemetry): the instances in
	// it and those skipped; nil for none.
	Applied func(instances, skipped int)
	// Stdout and Stderr take reload commands' output (pilot's sinks); nil
	// discards it.
	Stdout, Stderr io.Writer
	// Log is pilot's logger; nil discards.
	Log *slog.Logger
	// Clock is the time the watch sees; nil is RealClock.
	Clock Clock
}

// Watch follows one service and, after each debounced change, renders its
// files and reloads what reads them. Build it with New; Run it once.
type Watch struct {
	cfg           config.Watch
	watcher       discovery.Watcher
	jobs          Jobs
	runner        Runner
	environ       []string
	instancesFile string
	applied       func(instances, skipped int)
	stdout        io.Writer
	stderr        io.Writer
	log           *slog.Logger
	clock         Clock

	// gate is the reload job's start gate, nil when the watch opens none.
	// Its first render opens it, or firstRenderWait without one;
	// gateClaimed makes sure only one of the two does, and says so.
	gate        *StartGate
	gateClaimed atomic.Bool

	// lastSkipped are the instances the last apply left out, so that each
	// is logged once, not at every change; Run's goroutine only.
	lastSkipped []render.Skipped
}

// New builds a watch from o; it starts nothing.
func New(o Options) *Watch {
	w := &Watch{
		cfg: o.Config, watcher: o.Watcher, jobs: o.Jobs, runner: o.Runner, environ: o.Environ,
		instancesFile: o.InstancesFile, gate: o.Gate, applied: o.Applied, stdout: o.Stdout, stderr: o.Stderr,
		log: o.Log, clock: o.Clock,
	}
	if w.jobs == nil {
		w.jobs = noJobs{}
	}
	if w.runner == nil {
		w.runner = noRunner{}
	}
	if w.applied == nil {
		w.applied = func(int, int) {}
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	w.log = w.log.With("watch", o.Name)
	if w.clock == nil {
		w.clock = RealClock{}
	}
	return w
}

type noJobs struct{}

func (noJobs) Signal(string, syscall.Signal) bool { return false }
func (noJobs) Trigger(string, []string)           {}

type noRunner struct{}

func (noRunner) RunCommand(context.Context, jobs.Command) (jobs.CommandResult, error) {
	return jobs.CommandResult{}, errors.New("no command runner")
}

// claimGate reports whether the caller is the one to open the reload
// job's start gate: true once, and never without a gate.
func (w *Watch) claimGate() bool { return w.gate != nil && w.gateClaimed.CompareAndSwap(false, true) }

// Spec is what a watch's config asks its backend to follow.
func Spec(cfg config.Watch) discovery.WatchSpec {
	spec := discovery.WatchSpec{Service: cfg.Service, PassingOnly: cfg.PassingOnly == nil || *cfg.PassingOnly,
		Consul: discovery.ConsulQuery{Tag: cfg.Tag, Datacenter: cfg.Datacenter, Consistency: discovery.Consistency(cfg.Consistency)}}
	if d := cfg.Docker; d != nil {
		spec.Docker = discovery.DockerQuery{Project: d.Project, Labels: maps.Clone(d.Labels), Network: d.Network, Port: d.Port}
	}
	return spec
}

// Run follows the service until ctx ends, applying each debounced set,
// and returns once the watcher's goroutine has returned.
func (w *Watch) Run(ctx context.Context) {
	spec := Spec(w.cfg)
	stopWait := func() bool { return false }
	if w.gate != nil {
		var job string
		if r := w.cfg.OnChange.Reload; r != nil {
			job = r.Job
		}
		stopWait = w.clock.AfterFunc(firstRenderWait, func() {
			if w.claimGate() {
				w.log.Warn("watch: no set of instances from its backend yet; starting the job it reloads on the files it has", "job", job, "after", firstRenderWait)
				w.gate.done()
			}
		}).Stop
		defer stopWait()
	}
	updates := make(chan discovery.Snapshot, 1)
	watching := make(chan struct{})
	go func() {
		defer close(watching)
		err := w.watcher.Watch(ctx, spec, func(s discovery.Snapshot) {
			select { // the latest snapshot wins; the debounce sees no backlog
			case <-updates:
			default:
			}
			updates <- s
		})
		if err != nil {
			w.log.Error("watch: cannot start", "err", err)
		}
	}()
	defer func() { <-watching }()
	w.debounce(ctx, updates, func(s discovery.Snapshot) {
		w.apply(ctx, s)
		if w.claimGate() {
			stopWait()
			w.gate.done()
		}
	})
}

// debounce applies a snapshot once no newer one came for Debounce.Min, and
// at the latest Debounce.Max after the first of a burst. The first snapshot
// is applied at once: it is the state at start, not a burst of changes.
func (w *Watch) debounce(ctx context.Context, updates <-chan discovery.Snapshot, apply func(discovery.Snapshot)) {
	var (
		pending    *discovery.Snapshot
		burstBegan time.Time
		t          ResettableTimer
		fire       <-chan time.Time
		applied    bool
	)
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case s := <-updates:
			if !applied {
				applied = true
				apply(s)
				continue
			}
			now := w.clock.Now()
			if pending == nil {
				burstBegan = now
			}
			pending = &s
			wait := min(w.cfg.Debounce.Min, burstBegan.Add(w.cfg.Debounce.Max).Sub(now))
			if wait <= 0 {
				apply(s)
				pending, fire = nil, nil
				continue
			}
			if t == nil {
				t = w.clock.NewTimer(wait)
			} else {
				t.Reset(wait) // no stale tick survives a Reset
			}
			fire = t.C()
		case <-fire:
			apply(*pending)
			pending, fire = nil, nil
		}
	}
}

// apply renders every file of the watch and reloads when one changed.
// Instances that cannot be rendered safely are left out of everything
// (files, templates, onChange.run's instances), each logged once.
func (w *Watch) apply(ctx context.Context, s discovery.Snapshot) {
	s, skipped := render.Routable(s)
	w.logSkipped(skipped)
	attrs := []any{"instances", len(s.Instances)}
	if len(skipped) > 0 {
		attrs = append(attrs, "skipped", len(skipped))
	}
	w.log.Info("watch: instances changed", attrs...)
	w.runJob(s)
	changed := false
	if r := w.cfg.OnChange.Render; r != nil {
		var content []byte
		var err error
		switch r.Format {
		case config.RenderNGINX:
			content, err = render.NGINX(s, render.NGINXOptions{Name: r.Name})
		case config.RenderTraefik:
			content, err = render.Traefik(s, render.TraefikOptions{Name: r.Name})
		}
		changed = w.write(r.Dest, content, err) || changed
	}
	for _, t := range w.cfg.OnChange.Templates {
		src, err := os.ReadFile(t.Source)
		var content []byte
		if err == nil {
			content, err = render.Template(src, s)
		}
		changed = w.write(t.Dest, content, err) || changed
	}
	if changed || (w.cfg.OnChange.Render == nil && len(w.cfg.OnChange.Templates) == 0) {
		w.reload(ctx)
	}
	w.applied(len(s.Instances), len(skipped))
}

// logSkipped logs each skipped instance, unless the last apply skipped the
// very same ones: once per change of the skipped set, not per render.
func (w *Watch) logSkipped(skipped []render.Skipped) {
	same := slices.EqualFunc(skipped, w.lastSkipped, func(a, b render.Skipped) bool {
		return a.Instance.ID == b.Instance.ID && a.Instance.Node == b.Instance.Node && a.Reason == b.Reason
	})
	w.lastSkipped = skipped
	if same {
		return
	}
	for _, sk := range skipped {
		w.log.Warn("watch: instance skipped: it cannot be rendered safely", "id", sk.Instance.ID, "node", sk.Instance.Node,
			"address", sk.Instance.Address, "port", sk.Instance.Port, "reason", sk.Reason)
	}
}

// runJob writes the instances file and triggers onChange.run's job with
// the file's path and a summary in its environment.
func (w *Watch) runJob(s discovery.Snapshot) {
	name := w.cfg.OnChange.Run
	if name == "" {
		return
	}
	content, err := render.JSON(s)
	if err == nil {
		// Readable by a job that runs as another user (user:); the set is
		// no secret, Consul's catalog shows it to anyone.
		_, err = render.Apply(w.instancesFile, content, 0o644)
	}
	if err != nil {
		w.log.Error("watch: not running the job: cannot write the instances file", "job", name, "err", err)
		return
	}
	hostPorts := make([]string, len(s.Instances))
	for i, in := range s.Instances {
		hostPorts[i] = in.HostPort()
	}
	w.jobs.Trigger(name, []string{
		"PILOT_WATCH_SERVICE=" + s.Service,
		"PILOT_WATCH_INSTANCES_FILE=" + w.instancesFile,
		"PILOT_WATCH_INSTANCE_COUNT=" + strconv.Itoa(len(s.Instances)),
		"PILOT_WATCH_ADDRESSES=" + strings.Join(hostPorts, ","),
	})
	w.log.Info("watch: run triggered", "job", name)
}

// write applies content to dest unless rendering failed, in which case the
// file that is there stays (or none is written).
func (w *Watch) write(dest string, content []byte, renderErr error) bool {
	if renderErr != nil {
		if _, err := os.Stat(dest); err == nil {
			w.log.Error("watch: render failed; keeping the file as it is", "dest", dest, "err", renderErr)
		} else {
			w.log.Error("watch: render failed; no file written (there is none yet)", "dest", dest, "err", renderErr)
		}
		return false
	}
	changed, err := render.Apply(dest, content, 0o644)
	if err != nil {
		w.log.Error("watch: cannot write", "dest", dest, "err", err)
		return false
	}
	if changed {
		w.log.Info("watch: rendered", "dest", dest)
	}
	return changed
}
