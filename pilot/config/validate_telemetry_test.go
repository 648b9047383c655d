package config

import (
	"slices"
	"strings"
	"testing"
)

func TestValidateTelemetry(t *testing.T) {
	tel := &Telemetry{Listen: ":9090"}
	job := func(mod func(*Job)) []Job {
		j := Job{Name: "app", Exec: []string{"node"}}
		mod(&j)
		return []Job{j}
	}
	plain := job(func(*Job) {})
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"valid", Config{Telemetry: &Telemetry{Listen: "127.0.0.1:9090", Register: true}, Consul: &Consul{},
			Metrics: []Metric{{Name: "queue_depth", Type: "gauge", Labels: []string{"queue"}},
				{Name: "jobs_done_total", Type: "counter"}, {Name: "lat_seconds", Type: "histogram", Buckets: []float64{0.1, 1}}},
			Jobs: job(func(j *Job) { j.Node = &Node{Metrics: true} })}, nil},
		{"listen", Config{Telemetry: &Telemetry{Listen: "9090", Register: true}, Jobs: plain}, []string{
			`telemetry.listen: "9090" is not host:port`,
			`telemetry.register: needs the top-level consul block`,
		}},
		{"listen missing, port out of range", Config{Telemetry: &Telemetry{}, Jobs: plain}, []string{`telemetry.listen: required (host:port, e.g. ":9090")`}},
		{"port", Config{Telemetry: &Telemetry{Listen: ":99999"}, Jobs: plain}, []string{`telemetry.listen: port "99999": want 1-65535`}},
		{"metrics without telemetry", Config{Metrics: []Metric{{Name: "x", Type: "gauge"}},
			Jobs: job(func(j *Job) { j.Node = &Node{Metrics: true} })}, []string{
			`jobs[0].node.metrics: Node metrics needs the top-level telemetry block (telemetry.listen)`,
			`metrics: a custom metric needs the top-level telemetry block (telemetry.listen)`,
		}},
		{"bad metrics", Config{Telemetry: tel, Metrics: []Metric{
			{Name: "1x", Type: "gauge"},
			{Name: "pilot_mine", Type: "gauge"},
			{Name: "hits", Type: "counter", Labels: []string{"job", "a-b", "k", "k"}},
			{Name: "hits", Type: "gauge", Buckets: []float64{2, 1}},
			{Type: "histogram", Buckets: []float64{1, 1}},
			{Name: "go_goroutines", Type: "gauge"},
		}, Jobs: plain}, []string{
			`metrics[0].name: "1x" is not a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)`,
			`metrics[1].name: "pilot_mine": the pilot_ prefix is pilot's own (its runtime and process metrics)`,
			`metrics[2].labels[0]: "job" is reserved (job, instance, le, quantile)`,
			`metrics[2].labels[1]: "a-b" is not a label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)`,
			`metrics[2].labels[3]: duplicate "k"`,
			`metrics[2].name: a counter's name ends in _total (Prometheus naming): "hits_total"`,
			`metrics[3].buckets: only a histogram has buckets`,
			`metrics[3].buckets[1]: 1: buckets must increase`,
			`metrics[3].name: duplicate "hits" (also metrics[2])`,
			`metrics[4].buckets[1]: 1: buckets must increase`,
			`metrics[4].name: required`,
			`metrics[5].name: "go_goroutines": the go_ prefix is pilot's own (its runtime and process metrics)`,
		}},
		{"sensor", Config{Telemetry: tel, Jobs: job(func(j *Job) { j.Sensor, j.Main = true, true })}, []string{
			`jobs[0].sensor: declare the metrics it sets under the top-level metrics`,
			`jobs[0].sensor: the main job cannot be a sensor`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			var got []string
			if err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("errors:\n got  %q\n want %q", got, tt.want)
			}
		})
	}
}
