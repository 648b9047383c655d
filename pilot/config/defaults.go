package config

import (
	"cmp"
	"maps"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nodepilot/pilot/jobs"
	"github.com/nodepilot/pilot/jobs/output"
)

// Defaults for what a config leaves out.
const (
	DefaultLogLevel  = "info"
	DefaultLogFormat = "text"
	// DefaultStopTimeout bounds the whole shutdown; it fits inside the 10 s
	// that `docker stop` waits before it sends SIGKILL itself.
	DefaultStopTimeout = 9 * time.Second
	// DefaultJobStopTimeout leaves pilot a second of the top-level budget to
	// run the rest of the shutdown after the slowest job.
	DefaultJobStopTimeout    = 8 * time.Second
	DefaultRestartPolicy     = jobs.RestartNever
	DefaultBackoffInitial    = 200 * time.Millisecond
	DefaultBackoffMax        = 30 * time.Second
	DefaultBackoffResetAfter = 30 * time.Second
	// MaxBackoff bounds backoff.max: the delay doubles up to it, and a day
	// between restarts is already no restart at all.
	MaxBackoff         = 24 * time.Hour
	DefaultHookTimeout = 5 * time.Second
	DefaultOutput      = output.Raw
	MinEvery           = 100 * time.Millisecond

	DefaultReloadTimeout = 10 * time.Second
	// DefaultRunTimeout bounds one run of a job a watch runs on change, so
	// that a hung run cannot hold back the runs for later changes.
	DefaultRunTimeout   = time.Minute
	DefaultReloadSignal = Signal(unix.SIGHUP)

	DefaultHealthInterval = 5 * time.Second
	DefaultHealthTimeout  = 2 * time.Second
	// DefaultHealthStartInterval paces the checks until the first pass: a
	// Node app that answers 150 ms after exec passes some 25 ms later on
	// average, not a whole interval later. A check is a loopback request
	// (or one exec), and the fast checks last one interval at most.
	DefaultHealthStartInterval = 50 * time.Millisecond
	DefaultHealthyThreshold    = 1
	DefaultUnhealthyThreshold  = 3
	DefaultOnUnhealthy         = OnUnhealthyNone
	DefaultHealthPath          = "/"
	DefaultServiceTTLIntervals = 3               // the TTL is three check intervals…
	MinServiceTTL              = 2 * time.Second // …and never under this

	// MaxInstances bounds a cluster job's instances: each is a process
	// with a heap of its own, and more than this in one container is a
	// typo, not a plan.
	MaxInstances = 256
	// DefaultReadyTimeout bounds the wait for a new instance in a rolling
	// reload: long enough for a Node app to load and warm up.
	DefaultReadyTimeout = time.Minute
	// MinReadyTimeout is the least time a new instance is given: under it
	// a reload fails on any app that does real work at startup.
	MinReadyTimeout = time.Second
)

// WithDefaults returns a deep copy of c with every default filled in; c and
// the slices, maps and pointers it holds are left untouched. Call it on a
// valid config.
//
// Two defaults bend to what the user did write, so that a default never
// makes a config invalid: a job's stopTimeout defaults to 8s but at most the
// top-level stopTimeout, and backoff.initial to 200ms but at most
// backoff.max. A periodic job's timeout defaults to its period. Restart.Max
// stays nil (unlimited) and StopSignal stays zero (the signal that started
// the shutdown). A cluster job's readiness defaults to health when it has
// a check, and stays "" (ready once started) when it has none.
func (c Config) WithDefaults() Config {
	out := c
	out.Log.Level = cmp.Or(c.Log.Level, DefaultLogLevel)
	out.Log.Format = cmp.Or(c.Log.Format, DefaultLogFormat)
	out.StopTimeout = c.effectiveStopTimeout()
	if c.Watches != nil {
		out.Watches = make([]Watch, len(c.Watches))
		for i, w := range c.Watches {
			out.Watches[i] = w.withDefaults()
		}
	}
	if c.Jobs != nil {
		out.Jobs = make([]Job, len(c.Jobs))
		for i, job := range c.Jobs {
			out.Jobs[i] = job.withDefaults(out.StopTimeout)
		}
	}
	for _, w := range c.Watches {
		for i := range out.Jobs {
			if out.Jobs[i].Name == w.OnChange.Run && out.Jobs[i].Timeout == 0 {
				out.Jobs[i].Timeout = DefaultRunTimeout
			}
		}
	}
	return out
}

func (j Job) withDefaults(topStopTimeout time.Duration) Job {
	out := j
	out.Exec = slices.Clone(j.Exec)
	out.Env = maps.Clone(j.Env)
	out.After = slices.Clone(j.After)
	out.ForwardSignals = slices.Clone(j.ForwardSignals)
	out.Listen = slices.Clone(j.Listen)
	if j.Every > 0 && j.Timeout == 0 {
		out.Timeout = j.Every
	}
	out.Restart = j.Restart.withDefaults()
	out.StopTimeout = j.effectiveStopTimeout(topStopTimeout)
	out.PreStop = j.PreStop.withDefaults()
	out.PostStop = j.PostStop.withDefaults()
	out.Output = cmp.Or(j.Output, DefaultOutput)
	if j.Health != nil {
		h := j.Health.withDefaults()
		out.Health = &h
	}
	if j.Service != nil {
		s := j.Service.withDefaults(out.Health)
		out.Service = &s
	}
	if j.Cluster() {
		// A job with a check is ready when it passes; without one, when
		// it has started (the zero Readiness).
		if j.Readiness == "" && j.Health != nil {
			out.Readiness = ReadinessHealth
		}
		out.ReadyTimeout = cmp.Or(j.ReadyTimeout, DefaultReadyTimeout)
	}
	return out
}

func (h *Health) withDefaults() Health {
	out := *h
	if h.HTTP != nil {
		http := *h.HTTP
		http.Path = cmp.Or(http.Path, DefaultHealthPath)
		http.ExpectStatus = slices.Clone(h.HTTP.ExpectStatus)
		out.HTTP = &http
	}
	if h.TCP != nil {
		tcp := *h.TCP
		out.TCP = &tcp
	}
	out.Exec = slices.Clone(h.Exec)
	out.Interval = cmp.Or(h.Interval, DefaultHealthInterval)
	out.Timeout = cmp.Or(h.Timeout, min(DefaultHealthTimeout, out.Interval))
	out.StartInterval = cmp.Or(h.StartInterval, min(DefaultHealthStartInterval, out.Interval))
	out.HealthyThreshold = cmp.Or(h.HealthyThreshold, DefaultHealthyThreshold)
	out.UnhealthyThreshold = cmp.Or(h.UnhealthyThreshold, DefaultUnhealthyThreshold)
	out.OnUnhealthy = cmp.Or(h.OnUnhealthy, DefaultOnUnhealthy)
	return out
}

// withDefaults fills the TTL from the job's (defaulted) health interval.
func (s Service) withDefaults(health *Health) Service {
	out := s
	out.Tags = slices.Clone(s.Tags)
	out.Meta = maps.Clone(s.Meta)
	if s.Traefik != nil {
		t := *s.Traefik
		t.EntryPoints = slices.Clone(t.EntryPoints)
		t.Middlewares = slices.Clone(t.Middlewares)
		if t.HealthCheck != nil {
			hc := *t.HealthCheck
			t.HealthCheck = &hc
		}
		out.Traefik = &t
	}
	if out.TTL == 0 && health != nil {
		out.TTL = max(DefaultServiceTTLIntervals*health.Interval, MinServiceTTL)
	}
	return out
}

func (r Restart) withDefaults() Restart {
	out := r
	if r.Max != nil {
		limit := *r.Max
		out.Max = &limit
	}
	out.Policy = cmp.Or(r.Policy, DefaultRestartPolicy)
	out.Backoff.Max = r.Backoff.effectiveMax()
	if r.Backoff.Initial == 0 {
		out.Backoff.Initial = min(DefaultBackoffInitial, out.Backoff.Max)
	}
	if r.Backoff.ResetAfter == 0 {
		out.Backoff.ResetAfter = DefaultBackoffResetAfter
	}
	return out
}

func (h *Hook) withDefaults() *Hook {
	if h == nil {
		return nil
	}
	out := *h
	out.Exec = slices.Clone(h.Exec)
	if h.Timeout == 0 {
		out.Timeout = DefaultHookTimeout
	}
	return &out
}

// The effective values below are shared by WithDefaults and Validate, which
// checks explicit settings against them.

func (c *Config) effectiveStopTimeout() time.Duration {
	if c.StopTimeout == 0 {
		return DefaultStopTimeout
	}
	return c.StopTimeout
}

func (j *Job) effectiveStopTimeout(topStopTimeout time.Duration) time.Duration {
	if j.StopTimeout == 0 {
		return min(DefaultJobStopTimeout, topStopTimeout)
	}
	return j.StopTimeout
}

func (b *Backoff) effectiveMax() time.Duration {
	if b.Max == 0 {
		return DefaultBackoffMax
	}
	return b.Max
}

func (w Watch) withDefaults() Watch {
	out := w
	passing := true
	if w.PassingOnly != nil {
		passing = *w.PassingOnly
	}
	out.PassingOnly = &passing
	out.Discovery = cmp.Or(w.Discovery, DiscoveryConsul)
	if out.Discovery == DiscoveryConsul {
		out.Consistency = cmp.Or(w.Consistency, ConsistencyStale)
	}
	if w.Docker != nil {
		d := *w.Docker
		d.Labels = maps.Clone(d.Labels)
		out.Docker = &d
	}
	out.Debounce.Max = max(w.Debounce.Max, w.Debounce.Min)
	out.OnChange.Templates = slices.Clone(w.OnChange.Templates)
	if w.OnChange.Render != nil {
		r := *w.OnChange.Render
		out.OnChange.Render = &r
	}
	if w.OnChange.Reload != nil {
		r := *w.OnChange.Reload
		r.Exec = slices.Clone(r.Exec)
		r.Timeout = cmp.Or(r.Timeout, DefaultReloadTimeout)
		if r.Job != "" {
			r.Signal = cmp.Or(r.Signal, DefaultReloadSignal)
		}
		out.OnChange.Reload = &r
	}
	return out
}
