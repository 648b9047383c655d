package nodejs

import (
	"math"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// gcBuckets are the GC histogram's upper bounds in seconds; agent.js holds
// the same list (LE), and the hello carries it so that a mismatch is caught.
var gcBuckets = []float64{0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}

var gcKinds = []string{"major", "minor", "incremental", "weakcb"}

// collector exposes the latest report of each connected process, labelled
// {job, instance}. It is an "exporter" collector (const metrics built at
// scrape time), because the GC histograms arrive already bucketed and a
// process's series must vanish as a whole when it ends.
//
// Two live processes may share a label set: in a rolling reload the new
// instance N starts before the old instance N stops. Only the one connected
// last is exposed then (a duplicate would fail the whole scrape); the older
// one's series come back only if the newer one goes first.
type collector struct {
	lag, heapUsed, heapTotal, gc, handles *prometheus.Desc

	mu    sync.Mutex
	procs map[procKey]procReport
}

// procKey names one process of a job.
type procKey struct {
	job string
	pid int
}

type procReport struct {
	instance string // "" outside cluster mode
	seq      uint64 // connection order: the highest wins a shared label set
	r        *report
}

func newCollector() *collector {
	return &collector{
		lag: prometheus.NewDesc("pilot_nodejs_eventloop_lag_seconds",
			"Event-loop delay of the job's Node process: quantiles 0.5, 0.99 and 1 (the maximum) over the agent's last report interval (~1 s); _sum and _count since the process started.",
			[]string{"job", "instance"}, nil),
		heapUsed: prometheus.NewDesc("pilot_nodejs_heap_used_bytes",
			"V8 heap in use in the job's Node process.", []string{"job", "instance"}, nil),
		heapTotal: prometheus.NewDesc("pilot_nodejs_heap_total_bytes",
			"V8 heap allocated by the job's Node process.", []string{"job", "instance"}, nil),
		gc: prometheus.NewDesc("pilot_nodejs_gc_duration_seconds",
			"Garbage-collection pauses of the job's Node process, by kind (major, minor, incremental, weakcb).",
			[]string{"job", "instance", "kind"}, nil),
		handles: prometheus.NewDesc("pilot_nodejs_active_handles",
			"Handles keeping the job's Node process alive (sockets, servers, timers, …).", []string{"job", "instance"}, nil),
		procs: map[procKey]procReport{},
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.lag
	ch <- c.heapUsed
	ch <- c.heapTotal
	ch <- c.gc
	ch <- c.handles
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	type labels struct{ job, instance string }
	shown := make(map[labels]procReport, len(c.procs))
	for k, p := range c.procs {
		l := labels{k.job, p.instance}
		if cur, dup := shown[l]; !dup || p.seq > cur.seq {
			shown[l] = p
		}
	}
	for l, p := range shown {
		r, job, inst := p.r, l.job, l.instance
		if l := r.Lag; l != nil && ok(l.P50) && ok(l.P99) && ok(l.Max) && ok(l.Sum) {
			ch <- prometheus.MustNewConstSummary(c.lag, l.Count, l.Sum,
				map[float64]float64{0.5: l.P50, 0.99: l.P99, 1: l.Max}, job, inst)
		}
		if r.Heap != nil {
			if ok(r.Heap.Used) {
				ch <- prometheus.MustNewConstMetric(c.heapUsed, prometheus.GaugeValue, r.Heap.Used, job, inst)
			}
			if ok(r.Heap.Total) {
				ch <- prometheus.MustNewConstMetric(c.heapTotal, prometheus.GaugeValue, r.Heap.Total, job, inst)
			}
		}
		if r.Handles != nil && ok(*r.Handles) {
			ch <- prometheus.MustNewConstMetric(c.handles, prometheus.GaugeValue, *r.Handles, job, inst)
		}
		for _, kind := range gcKinds {
			h, found := r.GC[kind]
			if !found {
				continue
			}
			buckets := make(map[float64]uint64, len(gcBuckets))
			for i, le := range gcBuckets {
				buckets[le] = h.Buckets[i]
			}
			ch <- prometheus.MustNewConstHistogram(c.gc, h.Count, h.Sum, buckets, job, inst, kind)
		}
	}
}

// ok rejects what an agent must not send: NaN, ±Inf, negative values.
func ok(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) && v >= 0 }

// update stores a process's latest report, dropping GC histograms that are not
// well formed (wrong length, decreasing counts, count below the last bucket).
func (c *collector) update(k procKey, instance string, seq uint64, r *report) {
	for kind, h := range r.GC {
		valid := len(h.Buckets) == len(gcBuckets) && ok(h.Sum)
		for i := 1; valid && i < len(h.Buckets); i++ {
			valid = h.Buckets[i] >= h.Buckets[i-1]
		}
		if valid && len(h.Buckets) > 0 {
			valid = h.Count >= h.Buckets[len(h.Buckets)-1]
		}
		if !valid || !slices.Contains(gcKinds, kind) {
			delete(r.GC, kind)
		}
	}
	c.mu.Lock()
	c.procs[k] = procReport{instance: instance, seq: seq, r: r}
	c.mu.Unlock()
}

func (c *collector) remove(k procKey) {
	c.mu.Lock()
	delete(c.procs, k)
	c.mu.Unlock()
}
