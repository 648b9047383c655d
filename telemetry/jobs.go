package telemetry

import (
	"context"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodepilot/pilot/jobs"
)

// Job is what the collectors read of a job; *jobs.Job satisfies it.
type Job interface {
	Status() jobs.Status
	Spec() jobs.Spec
}

type jobEntry struct {
	name      string
	hasHealth bool
	status    func() jobs.Status
}

func entries(js []Job) []jobEntry {
	out := make([]jobEntry, len(js))
	for i, j := range js {
		spec := j.Spec()
		out[i] = jobEntry{name: spec.Name, hasHealth: spec.Probe != nil, status: j.Status}
	}
	return out
}

// JobCollector exposes each job's state as its Status() says at scrape
// time: pilot_job_up, pilot_job_state (one-hot over every state),
// pilot_job_runs_total, pilot_job_restarts_total and, for jobs with a
// health check, pilot_health_status.
type JobCollector struct {
	jobs                              func() []Job
	states                            []jobs.State
	up, state, runs, restarts, health *prometheus.Desc
}

// NewJobCollector returns the collector for the jobs js returns at each
// scrape (the set changes with a reload).
func NewJobCollector(js func() []Job) *JobCollector {
	return &JobCollector{
		jobs:   js,
		states: jobs.States(),
		up: prometheus.NewDesc("pilot_job_up",
			"1 while the job's process runs, else 0.", []string{"job"}, nil),
		state: prometheus.NewDesc("pilot_job_state",
			"The job's state: 1 for the current one, 0 for every other.", []string{"job", "state"}, nil),
		runs: prometheus.NewDesc("pilot_job_runs_total",
			"Runs of the job started (a command that cannot start counts too): the first, restarts, periodic runs and triggered ones.", []string{"job"}, nil),
		restarts: prometheus.NewDesc("pilot_job_restarts_total",
			"Runs of the job started to replace one that ended: restart policy, onUnhealthy: restart, maxMemory, a retry. Periodic and triggered runs are not restarts.", []string{"job"}, nil),
		health: prometheus.NewDesc("pilot_health_status",
			"1 while the job's health check passes (state healthy), else 0; only jobs with a health check.", []string{"job"}, nil),
	}
}

func (c *JobCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.up
	ch <- c.state
	ch <- c.runs
	ch <- c.restarts
	ch <- c.health
}

func (c *JobCollector) Collect(ch chan<- prometheus.Metric) {
	for _, j := range entries(c.jobs()) {
		st := j.status()
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, boolValue(st.Pid != 0), j.name)
		for _, s := range c.states {
			ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, boolValue(st.State == s), j.name, s.String())
		}
		ch <- prometheus.MustNewConstMetric(c.runs, prometheus.CounterValue, float64(st.Runs), j.name)
		ch <- prometheus.MustNewConstMetric(c.restarts, prometheus.CounterValue, float64(st.Restarts), j.name)
		if j.hasHealth {
			ch <- prometheus.MustNewConstMetric(c.health, prometheus.GaugeValue, boolValue(st.State == jobs.Healthy), j.name)
		}
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Exits counts the ends of the jobs' processes by exit code:
// pilot_job_exits_total{job,code}, code as the shell gives it (128+N for
// signal N; 126/127 for a command that could not be run). Feed it every
// StateChange of the bus, in order (Run does).
type Exits struct {
	vec *prometheus.CounterVec

	mu   sync.Mutex
	last map[string]jobs.State
}

func NewExits() *Exits {
	return &Exits{
		vec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pilot_job_exits_total",
			Help: "Ends of the job's processes, by exit code (128+N when killed by signal N).",
		}, []string{"job", "code"}),
		last: map[string]jobs.State{},
	}
}

// Observe takes one state change. A change carries the exit that caused
// it; a job stopped while no process ran publishes its last exit again, so
// an exit counts only when the job was in a state with a process (or about
// to have one).
//
// A replayed change (from a subscription's snapshot) counts nothing: its
// exit, if any, was published before, to the subscriptions of the time. It
// only tells where a job stands that Exits has not heard of, so that the
// exit of a run already up when Exits subscribed still counts; of a job it
// knows, what it heard live stands, so that when two subscriptions feed it
// (a reload's old and new), the live copy of an exit is the one counted.
func (e *Exits) Observe(c jobs.StateChange) {
	e.mu.Lock()
	prev, known := e.last[c.Job]
	if c.Replayed {
		if !known {
			e.last[c.Job] = c.State
		}
		e.mu.Unlock()
		return
	}
	e.last[c.Job] = c.State
	e.mu.Unlock()
	if c.Exit == nil {
		return
	}
	switch prev {
	case jobs.Starting, jobs.Running, jobs.Healthy, jobs.Unhealthy, jobs.Stopping:
		e.vec.WithLabelValues(c.Job, strconv.Itoa(c.Exit.Code)).Inc()
	}
}

// Run feeds Observe from sub until ctx ends, then takes what is left in
// sub. Subscribe before any job starts so that no exit is missed; a later
// subscription starts with the bus's snapshot, which counts nothing.
func (e *Exits) Run(ctx context.Context, sub *jobs.Subscription) {
	for {
		done := false
		select {
		case <-sub.Ready():
		case <-ctx.Done():
			done = true
		}
		for _, c := range sub.Drain() {
			e.Observe(c)
		}
		if done {
			return
		}
	}
}

func (e *Exits) Describe(ch chan<- *prometheus.Desc) { e.vec.Describe(ch) }
func (e *Exits) Collect(ch chan<- prometheus.Metric) { e.vec.Collect(ch) }
