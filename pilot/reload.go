package pilot

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"syscall"
	"time"

	"github.com/nodepilot/pilot/jobs"
	"github.com/nodepilot/pilot/pilot/config"
	"github.com/nodepilot/pilot/telemetry"
)

// ReloadResult says what a reload changed.
type ReloadResult struct {
	// Rolled are the cluster jobs replaced instance by instance.
	Rolled    []string
	Restarted []string
	Started   []string
	Stopped   []string
	Unchanged int
}

// errReloadInProgress refuses a reload while another one runs.
var errReloadInProgress = errors.New("a reload is already in progress")

// errNoConfigFile refuses a reload of a command line (pilot --).
var errNoConfigFile = errors.New("pilot runs a command line (pilot --), not a config file: there is nothing to reload")

// reload reads and checks the config file again and, when it is good,
// applies it as a new generation: an unchanged job keeps running with the
// same process; a changed one restarts through its stop sequence; a
// removed one stops; an added one starts; services, watches, custom
// metrics, telemetry and the log level follow in place. On any error
// nothing changes and the error lists every problem with its path.
func (c *core) reload(ctx context.Context) (ReloadResult, error) {
	if c.opts.Load == nil {
		return ReloadResult{}, errNoConfigFile
	}
	if !c.reloading.TryLock() {
		return ReloadResult{}, errReloadInProgress
	}
	defer c.reloading.Unlock()
	start := time.Now()
	raw, err := c.opts.Load()
	if err != nil {
		c.log.Error("reload: the config has problems; nothing changed", "err", err)
		return ReloadResult{}, &ConfigError{err}
	}
	prev := c.generation()
	next, client, err := c.prepare(raw)
	if err == nil {
		if err = c.sockets.bind(next); err != nil && client != nil && client != c.client {
			client.Close() // new addresses only: a failed bind holds nothing new
		}
	}
	if err != nil {
		c.log.Error("reload: the config cannot be applied; nothing changed", "err", err)
		return ReloadResult{}, err
	}
	clientChanged := client != c.client
	tc, err := telemetryConfigOf(next, client, c.version(), c.log)
	if err != nil {
		if clientChanged && client != nil {
			client.Close()
		}
		return ReloadResult{}, err
	}
	if c.opts.LogLevel != nil {
		if lv, err := config.ParseLogLevel(cmp.Or(next.cfg.Log.Level, config.DefaultLogLevel)); err == nil {
			c.opts.LogLevel.Set(lv)
		}
	}

	if !reflect.DeepEqual(prev.cfg.Control, next.cfg.Control) {
		c.log.Warn("reload: control.socket changed; pilot keeps listening where it does until it restarts", "path", c.opts.ControlSocket)
	}
	d := diffJobs(prev, next)
	c.restartWaiters(&d, next)
	kept := c.watches.kept(next.watches, clientChanged)
	starting := func(job string) bool { return slices.Contains(d.restarted, job) || slices.Contains(d.added, job) }
	var newWatches []watchPlan
	for _, w := range next.watches {
		if !kept[w.name.Watch] {
			newWatches = append(newWatches, w)
		}
	}
	gates, watchGates := startGates(newWatches, starting)
	var toStart []jobPlan
	for _, name := range slices.Concat(d.restarted, d.added) {
		p, _ := next.job(name)
		toStart = append(toStart, p)
	}
	// Watches that will signal a job being replaced stop first, so that
	// none signals a job while it starts.
	c.watches.stopChanged(next.watches, clientChanged)
	if err := c.sup.replace(ctx, d.stop, c.specsToStart(toStart, gates), d.order, false); err != nil {
		return ReloadResult{}, err
	}
	var rollErrs []error
	for _, name := range d.rolled {
		p, _ := next.job(name)
		spec := c.specsToStart([]jobPlan{p}, nil)[0]
		if _, err := c.roll(ctx, c.sup.job(name), &spec, "config reload"); err != nil {
			rollErrs = append(rollErrs, fmt.Errorf("job %s: rolling reload: %w", name, err))
		}
	}
	c.sockets.release(next)
	if err := c.services.apply(ctx, next.services, client, clientChanged, d.stop); err != nil {
		c.log.Error("reload: a service could not be registered", "err", err)
	}
	c.watches.apply(next.watches, client, clientChanged, watchGates)
	c.telemetryServer.apply(tc)
	if in := c.inst.Load(); in != nil {
		in.apply(next)
	}
	old := c.client
	c.client = client
	if clientChanged && old != nil {
		old.Close()
	}
	c.setGeneration(next)
	res := ReloadResult{Rolled: d.rolled, Restarted: d.restarted, Started: d.added, Stopped: d.removed, Unchanged: d.unchanged}
	c.log.Info("reload: applied", "rolled", d.rolled, "restarted", d.restarted, "started", d.added, "stopped", d.removed,
		"unchanged", d.unchanged, "took", time.Since(start).Round(time.Microsecond))
	if len(rollErrs) > 0 {
		// The new config is in place; the instances a failed roll did not
		// replace keep serving with the old one until `pilot reload-app`.
		return res, errors.Join(rollErrs...)
	}
	return res, nil
}

// restartWaiters adds to d's restarts the unchanged jobs that have not
// started yet and wait on a job d stops: their dependency gates would take
// the old instance's "stopped" for the end of what they wait on. A job
// that never ran loses nothing by being made anew.
func (c *core) restartWaiters(d *jobDiff, next *generation) {
	for _, p := range next.jobs {
		name := p.spec.Name
		if slices.Contains(d.stop, name) || slices.Contains(d.added, name) {
			continue
		}
		waits := slices.ContainsFunc(p.spec.After, func(dep jobs.Dependency) bool { return slices.Contains(d.stop, dep.Job) })
		if st, ok := c.jobStatus(name); waits && ok && st.Runs == 0 && !st.Final {
			d.restarted = append(d.restarted, name)
			d.stop = append(d.stop, name)
			d.start = append(d.start, p.spec)
			d.unchanged--
		}
	}
}

// reloadOnHangup is SIGHUP in config mode: reload, then pass the signal on
// to the jobs whose forwardSignals list it (of the config now applied), so
// a proxy that re-reads its own files on SIGHUP still gets it.
func (c *core) reloadOnHangup() {
	res, err := c.reload(context.Background())
	if err != nil && !errors.Is(err, errReloadInProgress) {
		var ce *ConfigError
		if !errors.As(err, &ce) { // a config error was logged already
			c.log.Error("reload: failed", "err", err)
		}
	}
	c.sup.forward(syscall.SIGHUP)
	c.rollOnSignal(syscall.SIGHUP, res.Rolled)
}

// status is the one status document, served as /status (telemetry) and
// /v1/status (control socket).
func (c *core) status() telemetry.Status {
	st := telemetry.Status{
		Pilot: telemetry.PilotStatus{Version: c.version(), Commit: commitOr(c.opts.Commit), Pid: os.Getpid(), Started: c.started,
			Maintenance: c.services.inMaintenance(), PutEnv: slices.Sorted(maps.Keys(c.env.Vars())),
			Container: containerStatus(c.identity)},
		Jobs:     []telemetry.JobStatus{},
		Services: []telemetry.ServiceStatus{},
		Watches:  []telemetry.WatchStatus{},
	}
	var js []*jobs.Job
	if c.sup != nil {
		js = c.sup.current()
	}
	for _, j := range js {
		st.Jobs = append(st.Jobs, telemetry.JobStatusOf(j))
	}
	if in := c.inst.Load(); in != nil {
		st.Watches = in.watches.Status()
	}
	for _, s := range c.services.list() {
		st.Services = append(st.Services, serviceStatus(s))
	}
	if p := c.telemetryServer.pilotServiceStatus(); p != nil {
		st.Services = append(st.Services, *p)
	}
	// Job services in job order, pilot's own last.
	order := map[string]int{"": len(js)}
	for i, j := range js {
		order[j.Name()] = i
	}
	slices.SortFunc(st.Services, func(a, b telemetry.ServiceStatus) int {
		return cmp.Or(cmp.Compare(order[a.Job], order[b.Job]), cmp.Compare(a.ID, b.ID))
	})
	return st
}
