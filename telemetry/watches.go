package telemetry

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// WatchName names one watch for its series and its log lines: the service
// it follows, plus "#N" for the Nth watch of a service that more than one
// watch follows (the first keeps the bare name, so adding a second watch
// renames nothing). pilot computes the names (watches.Names, in
// pilot/watches); they are unique within one config.
type WatchName struct {
	Watch, Service string
}

// Watches follows what pilot's watches acted on, one series per watch:
// pilot_watch_instances{watch,service} (the instances of the last set
// applied; absent until the first), pilot_watch_skipped_instances
// {watch,service} (the instances left out of it because they cannot be
// rendered safely, e.g. a malformed address) and pilot_watch_changes_total
// {watch,service} (sets applied: the first, then one per debounced change).
type Watches struct {
	instances, skipped, changes *prometheus.Desc

	mu      sync.Mutex
	watches []WatchName // in config order
	stats   map[string]*watchStat
}

type watchStat struct {
	instances  int
	skipped    int
	changes    uint64 // 0: no set applied yet, so no instance count either
	lastChange time.Time
}

// NewWatches returns the collector for the given watches.
func NewWatches(watches []WatchName) *Watches {
	labels := []string{"watch", "service"}
	w := &Watches{
		instances: prometheus.NewDesc("pilot_watch_instances",
			"Instances of the watched service in the last set pilot applied.", labels, nil),
		skipped: prometheus.NewDesc("pilot_watch_skipped_instances",
			"Instances of the watched service left out of the last set pilot applied because they cannot be rendered safely (e.g. a malformed address).", labels, nil),
		changes: prometheus.NewDesc("pilot_watch_changes_total",
			"Sets of instances pilot applied for the watch: the first, then one per (debounced) change.", labels, nil),
		stats: map[string]*watchStat{},
	}
	w.Set(watches)
	return w
}

// Set makes watches the set followed (a reload): a watch kept keeps its
// figures, one gone loses its series, a new one starts from none.
func (w *Watches) Set(watches []WatchName) {
	w.mu.Lock()
	defer w.mu.Unlock()
	stats := map[string]*watchStat{}
	w.watches = w.watches[:0:0]
	for _, n := range watches {
		if _, dup := stats[n.Watch]; dup {
			continue
		}
		st := w.stats[n.Watch]
		if st == nil {
			st = &watchStat{}
		}
		stats[n.Watch] = st
		w.watches = append(w.watches, n)
	}
	w.stats = stats
}

// Applied records that watch applied a set of n instances at at, leaving
// skipped instances out. A watch not given to NewWatches is ignored.
func (w *Watches) Applied(watch string, n, skipped int, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	st, ok := w.stats[watch]
	if !ok {
		return
	}
	st.instances, st.skipped, st.lastChange = n, skipped, at
	st.changes++
}

func (w *Watches) Describe(ch chan<- *prometheus.Desc) {
	ch <- w.instances
	ch <- w.skipped
	ch <- w.changes
}

func (w *Watches) Collect(ch chan<- prometheus.Metric) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, n := range w.watches {
		st := w.stats[n.Watch]
		if st.changes > 0 {
			ch <- prometheus.MustNewConstMetric(w.instances, prometheus.GaugeValue, float64(st.instances), n.Watch, n.Service)
			ch <- prometheus.MustNewConstMetric(w.skipped, prometheus.GaugeValue, float64(st.skipped), n.Watch, n.Service)
		}
		ch <- prometheus.MustNewConstMetric(w.changes, prometheus.CounterValue, float64(st.changes), n.Watch, n.Service)
	}
}

// Status lists the watches for /status.
func (w *Watches) Status() []WatchStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]WatchStatus, 0, len(w.watches))
	for _, n := range w.watches {
		st := w.stats[n.Watch]
		ws := WatchStatus{Watch: n.Watch, Service: n.Service, Changes: st.changes}
		if st.changes > 0 {
			n, at := st.instances, st.lastChange
			ws.Instances, ws.LastChange = &n, &at
			ws.Skipped = st.skipped
		}
		out = append(out, ws)
	}
	return out
}
