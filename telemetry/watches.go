package telemetry

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Watches follows what pilot's watches acted on: pilot_watch_instances
// {service} (the instances of the last set applied; absent until the first)
// and pilot_watch_changes_total{service} (sets applied: the first one, then
// one per debounced change). Two watches of one service share its series:
// changes add up and the latest set gives the instance count.
type Watches struct {
	instances, changes *prometheus.Desc

	mu       sync.Mutex
	services []string // in the order given
	stats    map[string]*watchStat
}

type watchStat struct {
	instances  int
	changes    uint64 // 0: no set applied yet, so no instance count either
	lastChange time.Time
}

// NewWatches returns the collector for the watched services.
func NewWatches(services []string) *Watches {
	w := &Watches{
		instances: prometheus.NewDesc("pilot_watch_instances",
			"Instances of the watched service in the last set pilot applied.", []string{"service"}, nil),
		changes: prometheus.NewDesc("pilot_watch_changes_total",
			"Sets of instances pilot applied for the watched service: the first, then one per (debounced) change.", []string{"service"}, nil),
		stats: map[string]*watchStat{},
	}
	for _, s := range services {
		if _, ok := w.stats[s]; !ok {
			w.services = append(w.services, s)
			w.stats[s] = &watchStat{}
		}
	}
	return w
}

// Applied records that a set of n instances of service was applied at at.
func (w *Watches) Applied(service string, n int, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	st, ok := w.stats[service]
	if !ok {
		st = &watchStat{}
		w.stats[service] = st
		w.services = append(w.services, service)
	}
	st.instances, st.lastChange = n, at
	st.changes++
}

func (w *Watches) Describe(ch chan<- *prometheus.Desc) {
	ch <- w.instances
	ch <- w.changes
}

func (w *Watches) Collect(ch chan<- prometheus.Metric) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.services {
		st := w.stats[s]
		if st.changes > 0 {
			ch <- prometheus.MustNewConstMetric(w.instances, prometheus.GaugeValue, float64(st.instances), s)
		}
		ch <- prometheus.MustNewConstMetric(w.changes, prometheus.CounterValue, float64(st.changes), s)
	}
}

// Status lists the watches for /status.
func (w *Watches) Status() []WatchStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]WatchStatus, 0, len(w.services))
	for _, s := range w.services {
		st := w.stats[s]
		ws := WatchStatus{Service: s, Changes: st.changes}
		if st.changes > 0 {
			n, at := st.instances, st.lastChange
			ws.Instances, ws.LastChange = &n, &at
		}
		out = append(out, ws)
	}
	return out
}
