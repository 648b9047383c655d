package pilot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/nodepilot/pilot/jobs"
	"github.com/nodepilot/pilot/jobs/health"
	"github.com/nodepilot/pilot/pilot/config"
)

// ConfigError is a configuration fault found while building runtime objects
// from a checked config — a user deleted since the host checks ran, say.
// It maps to exit code 2.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// buildSpecs turns a checked config (defaults already filled in) into job
// specs. environ is pilot's own environment, which every job inherits;
// starter runs exec health checks (pilot's reaper); observe, when not nil,
// is told of every health check's result (telemetry). Every value it reads
// was parsed as the config was decoded.
func buildSpecs(cfg config.Config, environ []string, starter health.CommandRunner, log *slog.Logger, observe func(job string, r health.Result)) ([]jobs.Spec, error) {
	var errs []error
	specs := make([]jobs.Spec, 0, len(cfg.Jobs))
	runOnChange := map[string]bool{}
	for _, w := range cfg.Watches {
		runOnChange[w.OnChange.Run] = true
	}
	for i, jc := range cfg.Jobs {
		spec, err := buildSpec(jc, environ)
		spec.Policy.Triggered = runOnChange[jc.Name]
		if err == nil && jc.Health != nil {
			spec.Probe, err = buildProbe(*jc.Health, spec, starter, log.With("job", jc.Name), observe)
			spec.Policy.RestartUnhealthy = jc.Health.OnUnhealthy == config.OnUnhealthyRestart
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("jobs[%d].%w", i, err))
			continue
		}
		specs = append(specs, spec)
	}
	if len(errs) > 0 {
		return nil, &ConfigError{errors.Join(errs...)}
	}
	return specs, nil
}

func buildSpec(jc config.Job, environ []string) (jobs.Spec, error) {
	cred, err := resolveUser(jc.User)
	if err != nil {
		return jobs.Spec{}, fmt.Errorf("user: %w", err)
	}
	spec := jobs.Spec{
		Name:       jc.Name,
		Argv:       command(jc.Exec, jc.Shell),
		Dir:        jc.Dir,
		Env:        jobs.MergeEnv(environ, jc.Env),
		OwnEnv:     slices.Sorted(maps.Keys(jc.Env)),
		Credential: cred,
		Main:       jc.Main,
		Output:     jc.Output,
		Policy: jobs.Policy{
			Restart:     jc.Restart.Policy,
			MaxRestarts: -1,
			Backoff: jobs.Backoff{
				Initial:    jc.Restart.Backoff.Initial,
				Max:        jc.Restart.Backoff.Max,
				ResetAfter: jc.Restart.Backoff.ResetAfter,
			},
			Every:       jc.Every,
			Timeout:     jc.Timeout,
			StopSignal:  syscall.Signal(jc.StopSignal),
			StopTimeout: jc.StopTimeout,
			HasPreStop:  jc.PreStop != nil,
			MaxMemory:   uint64(jc.MaxMemory),
		},
		PreStop:  hook(jc.PreStop),
		PostStop: hook(jc.PostStop),
	}
	if jc.Restart.Max != nil {
		spec.Policy.MaxRestarts = *jc.Restart.Max
	}
	for _, d := range jc.After {
		spec.After = append(spec.After, jobs.Dependency{Job: d.Job, State: d.State.JobState()})
	}
	for _, sig := range jc.ForwardSignals {
		spec.Forward = append(spec.Forward, syscall.Signal(sig))
	}
	return spec, nil
}

// buildProbe makes the job's health check into a Probe that reports each
// change of verdict. Checks connect to the job on loopback; exec checks run
// as the job does (user, dir, environment).
func buildProbe(h config.Health, spec jobs.Spec, starter health.CommandRunner, log *slog.Logger, observe func(job string, r health.Result)) (jobs.Probe, error) {
	var checker health.Checker
	switch {
	case h.HTTP != nil:
		c, err := health.NewHTTP(health.HTTPConfig{Port: h.HTTP.Port, Path: h.HTTP.Path,
			HostHeader: h.HTTP.Host, ExpectStatus: h.HTTP.ExpectStatus})
		if err != nil {
			return nil, fmt.Errorf("health.http: %w", err)
		}
		checker = c
	case h.TCP != nil:
		checker = health.NewTCP(health.DefaultHost, h.TCP.Port)
	default:
		c, err := health.NewExec(health.ExecConfig{Argv: command(h.Exec, h.Shell), Env: spec.Env,
			Dir: spec.Dir, Credential: spec.Credential}, starter)
		if err != nil {
			return nil, fmt.Errorf("health: %w", err)
		}
		checker = c
	}
	policy := health.Policy{Interval: h.Interval, Timeout: h.Timeout, StartPeriod: h.StartPeriod,
		StartInterval: h.StartInterval, HealthyThreshold: h.HealthyThreshold, UnhealthyThreshold: h.UnhealthyThreshold}
	return func(ctx context.Context, _ int, report func(healthy bool)) {
		health.NewProber(checker, policy, log, func(r health.Result) {
			if observe != nil {
				observe(spec.Name, r)
			}
			if r.Changed && r.Status != health.Unknown {
				report(r.Status == health.Healthy) // the prober logs the why
			}
		}).Run(ctx)
	}, nil
}

func command(exec []string, shell string) []string {
	if shell != "" {
		return []string{"/bin/sh", "-c", shell}
	}
	return slices.Clone(exec)
}

func hook(h *config.Hook) *jobs.Hook {
	if h == nil {
		return nil
	}
	return &jobs.Hook{Argv: command(h.Exec, h.Shell), Timeout: h.Timeout}
}

// resolveUser reads "user", "uid", "user:group" or "uid:gid". A uid with no
// passwd entry runs with gid 0, as under `docker run --user`.
func resolveUser(spec string) (*syscall.Credential, error) {
	if spec == "" {
		return nil, nil
	}
	name, group, hasGroup := strings.Cut(spec, ":")
	cred := &syscall.Credential{}
	u, err := lookupUser(name)
	switch {
	case err == nil:
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		cred.Uid, cred.Gid = uint32(uid), uint32(gid)
		if !hasGroup {
			cred.Groups = supplementaryGroups(u)
		}
	case isNumber(name):
		uid, _ := strconv.ParseUint(name, 10, 32)
		cred.Uid = uint32(uid)
	default:
		return nil, fmt.Errorf("unknown user %q", name)
	}
	if hasGroup {
		gid, err := lookupGroup(group)
		if err != nil {
			return nil, err
		}
		cred.Gid = gid
	}
	if cred.Groups == nil {
		cred.Groups = []uint32{} // drop pilot's own supplementary groups
	}
	// Only root may set groups; an unprivileged pilot can still run a job as
	// itself.
	cred.NoSetGroups = os.Geteuid() != 0
	return cred, nil
}

func lookupUser(name string) (*user.User, error) {
	if isNumber(name) {
		return user.LookupId(name)
	}
	return user.Lookup(name)
}

func lookupGroup(name string) (uint32, error) {
	if isNumber(name) {
		gid, err := strconv.ParseUint(name, 10, 32)
		if err != nil {
			return 0, fmt.Errorf("invalid gid %q", name)
		}
		return uint32(gid), nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, fmt.Errorf("unknown group %q", name)
	}
	gid, _ := strconv.ParseUint(g.Gid, 10, 32)
	return uint32(gid), nil
}

func supplementaryGroups(u *user.User) []uint32 {
	ids, err := u.GroupIds()
	if err != nil {
		return nil
	}
	groups := make([]uint32, 0, len(ids))
	for _, id := range ids {
		if gid, err := strconv.ParseUint(id, 10, 32); err == nil {
			groups = append(groups, uint32(gid))
		}
	}
	return groups
}

func isNumber(s string) bool {
	_, err := strconv.ParseUint(s, 10, 32)
	return err == nil
}

// controllingTTY reports whether f is pilot's controlling terminal, the
// only kind of terminal a job's group can be put in the foreground of.
func controllingTTY(f *os.File) bool {
	if f == nil {
		return false
	}
	_, err := unix.IoctlGetInt(int(f.Fd()), unix.TIOCGPGRP)
	return err == nil
}
