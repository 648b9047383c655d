package pilot

import (
	"log/slog"
	"slices"
	"testing"

	"github.com/nodepilot/pilot/pilot/config"
)

func TestCustomMetricsAndSensors(t *testing.T) {
	cfg := &config.Config{
		Telemetry: &config.Telemetry{Listen: "127.0.0.1:9090"},
		Metrics: []config.Metric{
			{Name: "queue_depth", Type: "gauge", Labels: []string{"queue"}},
			{Name: "jobs_done_total", Type: "counter"},
		},
		Jobs: []config.Job{
			{Name: "app", Exec: []string{"true"}, Main: true},
			{Name: "probe", Exec: []string{"true"}, Sensor: true, Every: 1e9},
		},
	}
	c := newCore(Options{Log: slog.New(slog.DiscardHandler)})
	g, _, err := c.prepare(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if g.jobs[0].spec.StdoutLines != nil {
		t.Error("the app's stdout was taken")
	}
	hook := g.jobs[1].spec.StdoutLines
	if hook == nil {
		t.Fatal("the sensor's stdout goes nowhere")
	}
	hook([]byte(`queue_depth{queue="mail"} 4`))
	hook([]byte(`jobs_done_total 2`))
	hook([]byte(`not a line`))
	if err := c.metrics.Load().metrics.Set("jobs_done_total", nil, 1); err != nil {
		t.Fatal(err)
	}
	got := gathered(t, c)
	if got["queue_depth"] != 4 || got["jobs_done_total"] != 3 || got["pilot_sensor_lines_rejected_total"] != 1 {
		t.Errorf("metrics %v", got)
	}

	// A reload that keeps the definitions keeps the values; one that
	// changes them starts afresh, and the running sensor feeds the new ones.
	if _, _, err := c.prepare(cfg); err != nil {
		t.Fatal(err)
	}
	if got := gathered(t, c); got["jobs_done_total"] != 3 {
		t.Errorf("after an unchanged reload: %v", got)
	}
	changed := *cfg
	changed.Metrics = append(slices.Clone(cfg.Metrics), config.Metric{Name: "late_total", Type: "counter"})
	if _, _, err := c.prepare(&changed); err != nil {
		t.Fatal(err)
	}
	hook([]byte(`late_total 5`))
	if got := gathered(t, c); got["jobs_done_total"] != 0 || got["late_total"] != 5 {
		t.Errorf("after a reload that adds a metric: %v", got)
	}
}

// gathered reads /metrics' families as name → the value of their one
// series (gauges and counters).
func gathered(t *testing.T, c *core) map[string]float64 {
	t.Helper()
	mfs, err := c.gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, s := range mf.GetMetric() {
			switch {
			case s.Gauge != nil:
				got[mf.GetName()] = s.Gauge.GetValue()
			case s.Counter != nil:
				got[mf.GetName()] = s.Counter.GetValue()
			}
		}
	}
	return got
}

func TestCustomMetricsNoneDeclared(t *testing.T) {
	c := newCore(Options{Log: slog.New(slog.DiscardHandler)})
	if _, _, err := c.prepare(&config.Config{Jobs: []config.Job{{Name: "app", Exec: []string{"true"}}}}); err != nil {
		t.Fatal(err)
	}
	if m := c.metrics.Load(); m != nil {
		t.Errorf("custom metrics without a declaration: %+v", m)
	}
}
