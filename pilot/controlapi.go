package pilot

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodepilot/pilot/pilot/control"
	"github.com/nodepilot/pilot/telemetry"
	"github.com/nodepilot/pilot/telemetry/custom"
)

// controlAPI is the core as the control socket serves it.
type controlAPI struct{ c *core }

var _ control.API = controlAPI{}

func (a controlAPI) Status() telemetry.Status { return a.c.status() }

func (a controlAPI) Health() control.HealthReport { return a.c.health() }

// Reload applies the config whole even when the client goes away
// meanwhile: half a generation is worse than a late answer.
func (a controlAPI) Reload(ctx context.Context) (control.ReloadResult, error) {
	res, err := a.c.reload(context.WithoutCancel(ctx))
	var ce *ConfigError
	switch {
	case errors.Is(err, errReloadInProgress):
		return control.ReloadResult{}, control.ErrReloadInProgress
	case errors.As(err, &ce):
		return control.ReloadResult{}, &control.ConfigError{Problems: configProblems(ce.Err)}
	case err != nil:
		return control.ReloadResult{}, err
	}
	return control.ReloadResult{Rolled: res.Rolled, Restarted: res.Restarted, Started: res.Started, Stopped: res.Stopped, Unchanged: res.Unchanged}, nil
}

// configProblems splits a config error into its problems, one a line, as
// validation prints them.
func configProblems(err error) []string {
	var out []string
	for line := range strings.Lines(err.Error()) {
		if line = strings.TrimRight(line, "\n"); line != "" {
			out = append(out, line)
		}
	}
	return out
}

func (a controlAPI) SetMaintenance(ctx context.Context, on bool) error {
	a.c.log.Info("maintenance", "on", on)
	return a.c.services.setMaintenance(ctx, on)
}

// RestartJob stops the job through its stop sequence (out of Consul,
// preStop, stop signal) and starts it again, as a reload that changed it
// would; a job that ended (failed, succeeded, stopped) runs again.
func (a controlAPI) RestartJob(ctx context.Context, name string) error {
	c := a.c
	ctx = context.WithoutCancel(ctx) // a stop sequence is not cut short by a client leaving
	if !c.reloading.TryLock() {
		return fmt.Errorf("job %s: %w", name, control.ErrReloadInProgress)
	}
	defer c.reloading.Unlock()
	g := c.generation()
	plan, ok := g.job(name)
	if !ok || c.sup.job(name) == nil {
		return fmt.Errorf("job %q: %w", name, control.ErrUnknownJob)
	}
	order := make([]string, len(g.jobs))
	for i, p := range g.jobs {
		order[i] = p.spec.Name
	}
	c.log.Info("restarting job on request", "job", name)
	if err := c.sup.replace(ctx, []string{name}, c.specsToStart([]jobPlan{plan}, nil), order, true); err != nil {
		return err
	}
	return c.services.apply(ctx, g.services, c.client, false, []string{name})
}

func (a controlAPI) SignalJob(name string, sig syscall.Signal) error {
	j := a.c.sup.job(name)
	if j == nil {
		return fmt.Errorf("job %q: %w", name, control.ErrUnknownJob)
	}
	if j.Status().Pid == 0 {
		return fmt.Errorf("job %q (%s): %w", name, j.Status().State, control.ErrJobNotRunning)
	}
	a.c.log.Info("signalling job on request", "job", name, "signal", sig)
	j.Forward(sig)
	return nil
}

func (a controlAPI) PutEnv(vars map[string]string) error {
	a.c.env.Set(vars)
	keys := slices.Sorted(maps.Keys(vars))
	a.c.log.Info("environment set for the runs that start from now on", "keys", strings.Join(keys, ","))
	return nil
}

func (a controlAPI) SetMetrics(values map[string]float64) error {
	cm := a.c.metrics.Load()
	var declared []string
	if cm != nil {
		declared = cm.metrics.Names()
	}
	var errs []error
	for _, key := range slices.Sorted(maps.Keys(values)) {
		s, err := custom.ParseLine([]byte(fmt.Sprintf("%s %v", key, values[key])))
		if err != nil {
			errs = append(errs, &control.InvalidError{Err: err})
			continue
		}
		if !slices.Contains(declared, s.Name) {
			return &control.UnknownMetricError{Name: s.Name, Declared: declared}
		}
		if err := cm.metrics.Set(s.Name, s.Labels, s.Value); err != nil {
			errs = append(errs, &control.InvalidError{Err: err})
		}
	}
	if len(errs) > 0 {
		return &control.InvalidError{Err: errors.Join(errs...)}
	}
	return nil
}

// listenControl binds the control socket, when pilot has one. A socket
// another pilot listens on is an error (exit 1), as is a path asked for
// that cannot be bound; the default path that cannot be bound (a
// read-only filesystem) costs a warning only.
func (c *core) listenControl() (net.Listener, error) {
	path := c.opts.ControlSocket
	if path == "" {
		return nil, nil
	}
	ln, err := control.Listen(path)
	switch {
	case err == nil:
		return ln, nil
	case c.opts.ControlSocketDefault && !errors.Is(err, control.ErrSocketInUse):
		c.log.Warn("control socket: cannot listen at the default path; pilot runs without it (set control.socket or PILOT_SOCKET)", "path", path, "err", err)
		return nil, nil
	}
	if errors.Is(err, control.ErrSocketInUse) {
		return nil, fmt.Errorf("%w: give this pilot a socket of its own (PILOT_SOCKET, or control.socket in its config), or none (control: {socket: \"\"})", err)
	}
	return nil, err
}

// controlActor serves the control socket on ln until interrupted.
func (c *core) controlActor(ln net.Listener) (execute func() error, interrupt func()) {
	var reg prometheus.Registerer // none without telemetry (and not a typed nil)
	if c.reg != nil {
		reg = c.reg
	}
	server := control.NewServer(controlAPI{c}, reg, c.log)
	c.log.Debug("control socket: listening", "path", c.opts.ControlSocket)
	execute = func() error {
		if err := server.Serve(ln); err != nil {
			c.log.Error("control socket: server failed", "err", err)
		}
		return nil
	}
	interrupt = func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		server.Shutdown(ctx)
		cancel()
	}
	return execute, interrupt
}

// ReloadJob rolls a cluster job; like a reload, it runs to its end even
// when the client goes away: half a roll is worse than a late answer.
func (a controlAPI) ReloadJob(ctx context.Context, name string) (control.RollResult, error) {
	a.c.log.Info("rolling reload on request", "job", name)
	r, err := a.c.reloadApp(context.WithoutCancel(ctx), name, "reload-app")
	if err != nil {
		return control.RollResult{}, err
	}
	return control.RollResult{Job: name, Replaced: r.Replaced, Seconds: r.Took.Seconds()}, nil
}
