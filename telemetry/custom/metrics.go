package custom

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

// Kind is a metric's type.
type Kind string

const (
	Counter   Kind = "counter"
	Gauge     Kind = "gauge"
	Histogram Kind = "histogram"
)

// Def declares one custom metric, as config's `metrics:` entry does.
type Def struct {
	Name   string
	Kind   Kind
	Help   string
	Labels []string
	// Buckets are a histogram's upper bounds; empty means Prometheus's
	// default buckets.
	Buckets []float64
}

// MaxSeries is the most label combinations one metric may hold. A Set that
// would add one more is refused (and the existing series stay).
const MaxSeries = 1000

// Metrics are the custom metrics of one config, registered on a Registerer.
type Metrics struct {
	byName map[string]*metric
	names  []string // sorted, for errors
	// rejected counts sensor lines that could not be applied, per job.
	rejected *prometheus.CounterVec
}

type metric struct {
	def    Def
	vec    prometheus.Collector
	labels map[string]bool

	mu     sync.Mutex
	series map[string]struct{} // label values joined by 0xff
}

// New registers the metrics defs declares, and pilot's own
// pilot_sensor_lines_rejected_total{job}, on reg. It checks what a config's
// validation already checks (names, types, labels, buckets) so that a
// caller that skipped it gets an error, never a panic; the errors name the
// metric.
func New(defs []Def, reg prometheus.Registerer) (*Metrics, error) {
	if reg == nil {
		return nil, errors.New("custom metrics: no registry")
	}
	m := &Metrics{byName: make(map[string]*metric, len(defs))}
	var errs []error
	for _, d := range defs {
		mt, err := newMetric(d)
		if err == nil {
			if _, dup := m.byName[d.Name]; dup {
				err = errors.New("declared twice")
			}
		}
		if err == nil {
			if err = reg.Register(mt.vec); err != nil {
				err = fmt.Errorf("cannot register: %w", err)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("metric %q: %w", d.Name, err))
			continue
		}
		m.byName[d.Name] = mt
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	m.names = slices.Sorted(maps.Keys(m.byName))
	m.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pilot_sensor_lines_rejected_total",
		Help: "Lines of a sensor job's stdout that pilot could not apply to a metric.",
	}, []string{"job"})
	if err := reg.Register(m.rejected); err != nil {
		return nil, fmt.Errorf("pilot_sensor_lines_rejected_total: %w", err)
	}
	return m, nil
}

func newMetric(d Def) (*metric, error) {
	if !validMetricName(d.Name) {
		return nil, errors.New("not a Prometheus metric name")
	}
	labels := make(map[string]bool, len(d.Labels))
	for _, l := range d.Labels {
		if !validLabelName(l) || strings.HasPrefix(l, "__") {
			return nil, fmt.Errorf("label %q is not a label name", l)
		}
		if labels[l] {
			return nil, fmt.Errorf("label %q declared twice", l)
		}
		labels[l] = true
	}
	help := d.Help
	if help == "" {
		help = "Custom metric " + d.Name + " (declared in pilot's config)."
	}
	mt := &metric{def: d, labels: labels, series: map[string]struct{}{}}
	switch d.Kind {
	case Counter:
		mt.vec = prometheus.NewCounterVec(prometheus.CounterOpts{Name: d.Name, Help: help}, d.Labels)
	case Gauge:
		mt.vec = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: d.Name, Help: help}, d.Labels)
	case Histogram:
		if labels["le"] {
			return nil, errors.New(`a histogram cannot have the label "le"`)
		}
		for i := 1; i < len(d.Buckets); i++ {
			if !(d.Buckets[i] > d.Buckets[i-1]) {
				return nil, fmt.Errorf("buckets must increase (%v after %v)", d.Buckets[i], d.Buckets[i-1])
			}
		}
		mt.vec = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: d.Name, Help: help, Buckets: d.Buckets}, d.Labels)
	default:
		return nil, fmt.Errorf("unknown type %q (want counter, gauge or histogram)", d.Kind)
	}
	return mt, nil
}

// Names are the declared metrics' names, sorted.
func (m *Metrics) Names() []string { return slices.Clone(m.names) }

// Set applies value to the metric name with exactly the declared labels: a
// gauge is set to it, a counter has it added, a histogram observes it. The
// error names the metric, and the label at fault.
func (m *Metrics) Set(name string, labels map[string]string, value float64) error {
	mt, ok := m.byName[name]
	if !ok {
		if len(m.names) == 0 {
			return fmt.Errorf("metric %q: not declared (the config declares no metrics)", name)
		}
		return fmt.Errorf("metric %q: not declared (declared: %s)", name, strings.Join(m.names, ", "))
	}
	return mt.set(labels, value)
}

func (mt *metric) set(labels map[string]string, value float64) error {
	d := mt.def
	if err := mt.checkLabels(labels); err != nil {
		return fmt.Errorf("metric %q: %w", d.Name, err)
	}
	switch {
	case math.IsNaN(value):
		return fmt.Errorf("metric %q: NaN is not a value", d.Name)
	case math.IsInf(value, 0) && d.Kind != Gauge:
		return fmt.Errorf("metric %q: a %s cannot take %v", d.Name, d.Kind, value)
	case value < 0 && d.Kind == Counter:
		return fmt.Errorf("metric %q: a counter only goes up: cannot add %v", d.Name, value)
	}
	values := make([]string, len(d.Labels))
	for i, l := range d.Labels {
		values[i] = labels[l]
	}
	if err := mt.admit(values); err != nil {
		return fmt.Errorf("metric %q: %w", d.Name, err)
	}
	switch v := mt.vec.(type) {
	case *prometheus.CounterVec:
		v.WithLabelValues(values...).Add(value)
	case *prometheus.GaugeVec:
		v.WithLabelValues(values...).Set(value)
	case *prometheus.HistogramVec:
		v.WithLabelValues(values...).Observe(value)
	}
	return nil
}

// checkLabels wants exactly the declared label names, with UTF-8 values.
func (mt *metric) checkLabels(labels map[string]string) error {
	declared := "no labels"
	if len(mt.def.Labels) > 0 {
		declared = "declared labels: " + strings.Join(mt.def.Labels, ", ")
	}
	for _, l := range slices.Sorted(maps.Keys(labels)) {
		if !mt.labels[l] {
			return fmt.Errorf("unknown label %q (%s)", l, declared)
		}
		if !utf8.ValidString(labels[l]) {
			return fmt.Errorf("label %q: value %q is not valid UTF-8", l, labels[l])
		}
	}
	for _, l := range mt.def.Labels {
		if _, ok := labels[l]; !ok {
			return fmt.Errorf("missing label %q (%s)", l, declared)
		}
	}
	return nil
}

// admit records a label combination, refusing a new one past MaxSeries.
func (mt *metric) admit(values []string) error {
	key := strings.Join(values, "\xff")
	mt.mu.Lock()
	defer mt.mu.Unlock()
	if _, ok := mt.series[key]; ok {
		return nil
	}
	if len(mt.series) >= MaxSeries {
		return fmt.Errorf("already %d label combinations, refusing a new one (%s)", MaxSeries, strings.Join(quoteAll(values), ", "))
	}
	mt.series[key] = struct{}{}
	return nil
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}
