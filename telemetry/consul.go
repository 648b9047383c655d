package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Consul counts pilot's requests to the Consul agent,
// pilot_consul_requests_total{op,result}, and keeps pilot_consul_up: 1 when
// the agent answered the last request, 0 when it did not or before any
// request was made.
type Consul struct {
	up       prometheus.Gauge
	requests *prometheus.CounterVec
}

func NewConsul() *Consul {
	return &Consul{
		up: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pilot_consul_up",
			Help: "1 when the Consul agent answered pilot's last request, else 0 (also before the first).",
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pilot_consul_requests_total",
			Help: "Requests to the Consul agent by operation (register, deregister, ttl, maintenance, lookup, health) and result (ok, error).",
		}, []string{"op", "result"}),
	}
}

// Observe records one finished request.
func (c *Consul) Observe(op string, ok, reached bool) {
	result := "error"
	if ok {
		result = "ok"
	}
	c.requests.WithLabelValues(op, result).Inc()
	c.up.Set(boolValue(reached))
}

func (c *Consul) Describe(ch chan<- *prometheus.Desc) {
	c.up.Describe(ch)
	c.requests.Describe(ch)
}

func (c *Consul) Collect(ch chan<- prometheus.Metric) {
	c.up.Collect(ch)
	c.requests.Collect(ch)
}
