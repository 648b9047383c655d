package pilot

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodepilot/pilot/pilot/config"
)

func TestCustomMetricsAndSensors(t *testing.T) {
	cfg := config.Config{
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
	specs, err := buildSpecs(cfg.WithDefaults(), nil, nil, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m, err := buildCustomMetrics(cfg, reg)
	if err != nil || m == nil {
		t.Fatalf("buildCustomMetrics: %v, %v", m, err)
	}
	attachSensors(cfg, specs, m, slog.New(slog.DiscardHandler))
	if specs[0].StdoutLines != nil {
		t.Error("the app's stdout was taken")
	}
	hook := specs[1].StdoutLines
	if hook == nil {
		t.Fatal("the sensor's stdout goes nowhere")
	}
	hook([]byte(`queue_depth{queue="mail"} 4`))
	hook([]byte(`jobs_done_total 2`))
	hook([]byte(`not a line`))
	if err := m.Set("jobs_done_total", nil, 1); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
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
	if got["queue_depth"] != 4 || got["jobs_done_total"] != 3 || got["pilot_sensor_lines_rejected_total"] != 1 {
		t.Errorf("metrics %v", got)
	}
}

func TestCustomMetricsNoneDeclared(t *testing.T) {
	m, err := buildCustomMetrics(config.Config{}, prometheus.NewRegistry())
	if m != nil || err != nil {
		t.Errorf("got %v, %v", m, err)
	}
}

func TestCustomMetricsCollision(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGoCollector())
	_, err := buildCustomMetrics(config.Config{Metrics: []config.Metric{{Name: "go_goroutines", Type: "gauge"}}}, reg)
	var ce *ConfigError
	if err == nil || !strings.Contains(err.Error(), `metric "go_goroutines"`) {
		t.Fatalf("got %v", err)
	}
	if !errors.As(err, &ce) {
		t.Errorf("%T is not a *ConfigError", err)
	}
}
