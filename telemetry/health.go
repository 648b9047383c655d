package telemetry

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// healthBuckets reach below Prometheus's default 5 ms: a check on loopback
// usually takes well under a millisecond, and the interesting part is when
// it stops doing so.
var healthBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// HealthChecks observes each health check's duration:
// pilot_health_check_duration_seconds{job}.
type HealthChecks struct {
	hist *prometheus.HistogramVec
}

// NewHealthChecks returns the histogram, with a (zero) series for each of
// jobs, the jobs that have a health check.
func NewHealthChecks(jobs []string) *HealthChecks {
	h := &HealthChecks{hist: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "pilot_health_check_duration_seconds",
		Help:    "Duration of the job's health checks, failed ones included.",
		Buckets: healthBuckets,
	}, []string{"job"})}
	for _, j := range jobs {
		h.hist.WithLabelValues(j)
	}
	return h
}

// Declare gives each of jobs its (zero) series, for jobs a reload added.
func (h *HealthChecks) Declare(jobs []string) {
	for _, j := range jobs {
		h.hist.WithLabelValues(j)
	}
}

// Observe records one check of job that took took.
func (h *HealthChecks) Observe(job string, took time.Duration) {
	h.hist.WithLabelValues(job).Observe(took.Seconds())
}

func (h *HealthChecks) Describe(ch chan<- *prometheus.Desc) { h.hist.Describe(ch) }
func (h *HealthChecks) Collect(ch chan<- prometheus.Metric) { h.hist.Collect(ch) }
