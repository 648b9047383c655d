package main

// End-to-end telemetry proof: two pilots register their /metrics as the
// Consul service "pilot" (telemetry.register), and a real Prometheus,
// configured with examples/prometheus/prometheus.yml itself (Consul's
// address and 1 s intervals swapped in), discovers both through
// consul_sd_configs, scrapes them, relabels them as the example promises
// and loads the example alert rules. Each pilot also runs a sensor job
// whose stdout sets a custom metric that Prometheus then holds. Stopping a
// pilot takes its target out of Prometheus.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nodepilot/pilot/test/consulagent"
	"github.com/nodepilot/pilot/test/promproc"
	"github.com/nodepilot/pilot/test/toolbin"
)

var promSerial atomic.Int32

// exampleConfig is examples/prometheus/prometheus.yml pointed at consul
// with test-speed intervals; alerts.yml is copied beside it into dir.
func exampleConfig(t *testing.T, consul, dir string) string {
	t.Helper()
	root, err := toolbin.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(root, "examples", "prometheus")
	b, err := os.ReadFile(filepath.Join(src, "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	rules, err := os.ReadFile(filepath.Join(src, "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "alerts.yml"), rules, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := string(b)
	for _, r := range [][2]string{
		{"scrape_interval: 15s", "scrape_interval: 1s\n  scrape_timeout: 1s"},
		{"evaluation_interval: 15s", "evaluation_interval: 1s"},
		{"server: consul:8500", "server: " + consul},
		{"# refresh_interval: 30s", "refresh_interval: 1s #"},
	} {
		if !strings.Contains(cfg, r[0]) {
			t.Fatalf("examples/prometheus/prometheus.yml no longer holds %q", r[0])
		}
		cfg = strings.Replace(cfg, r[0], r[1], 1)
	}
	return cfg
}

// telemetryPilot is one pilot with an app service, a sensor job setting
// queue_depth{queue="mail"} to depth, and telemetry registered in Consul,
// every service ID at its default. It returns the pilot and the ID of its
// telemetry service (Prometheus's instance label).
// telemetryPilot starts a pilot whose app listens on appPort and its
// telemetry on metricsPort. A test starting two takes their four ports in
// one FreePorts call: ports taken in two calls can repeat, as the first
// pilot may not have bound its own yet.
func telemetryPilot(t *testing.T, consul, app string, depth, appPort, metricsPort int) (*pilotProc, string) {
	t.Helper()
	marker := filepath.Join(t.TempDir(), "unhealthy")
	cfg := fmt.Sprintf(`consul:
  address: %s
telemetry:
  listen: 127.0.0.1:%d
  register: true
metrics:
  - {name: queue_depth, type: gauge, help: "Jobs waiting", labels: [queue]}
jobs:
  - name: app
    main: true
    exec: %s
    health:
      http: {port: %d, path: /health}
      interval: 200ms
    service:
      name: %s
      port: %d
      address: {static: 127.0.0.1}
  - name: probe
    sensor: true
    shell: "echo '# HELP queue_depth from the sensor'; echo 'queue_depth{queue=\"mail\"} %d'; echo 'not a sample'"
    output: prefixed
`, consul, metricsPort, yamlArgv(helperArgv(t, "http", fmt.Sprint(appPort), marker)...), appPort, app, appPort, depth)
	return startPilot(t, pilotOpts{}, "run", "--config", writeConfig(t, cfg)), "pilot-" + defaultID(app, appPort)
}

func TestPrometheusDiscoversPilotsThroughConsul(t *testing.T) {
	agent := consulagent.Shared(t)
	app := fmt.Sprintf("promweb%d", promSerial.Add(1))
	ports, err := consulagent.FreePorts(4)
	if err != nil {
		t.Fatal(err)
	}
	p1, id1 := telemetryPilot(t, agent.Addr(), app, 7, ports[0], ports[1])
	_, id2 := telemetryPilot(t, agent.Addr(), app, 8, ports[2], ports[3])
	instances := []string{id1, id2}

	dir := t.TempDir()
	prom := promproc.StartT(t, promproc.Options{Config: exampleConfig(t, agent.Addr(), dir), Dir: dir})

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// query polls expr until check accepts its samples or ctx ends.
	query := func(what, expr string, check func([]promproc.Sample) bool) []promproc.Sample {
		t.Helper()
		var last []promproc.Sample
		var lastErr error
		for {
			last, lastErr = prom.Query(ctx, expr)
			if lastErr == nil && check(last) {
				return last
			}
			select {
			case <-ctx.Done():
				tg, _ := prom.Targets(context.Background())
				t.Fatalf("%s: %s never held; last answer %+v (err %v); targets %+v", what, expr, last, lastErr, tg)
			case <-time.After(200 * time.Millisecond): // poll interval, bounded by ctx
			}
		}
	}
	byInstance := func(ss []promproc.Sample) map[string]float64 {
		m := map[string]float64{}
		for _, s := range ss {
			m[s.Metric["instance"]] = s.Value
		}
		return m
	}
	both := func(want float64) func([]promproc.Sample) bool {
		return func(ss []promproc.Sample) bool {
			m := byInstance(ss)
			return len(ss) == 2 && m[instances[0]] == want && m[instances[1]] == want
		}
	}

	start := time.Now()
	up := query("both pilots discovered and scraped", fmt.Sprintf(`up{job=%q}`, app), both(1))
	t.Logf("both pilots up in Prometheus %v after it started", time.Since(start).Round(time.Millisecond))
	for _, s := range up {
		if s.Metric["node"] == "" || s.Metric["dc"] == "" {
			t.Errorf("relabeling lost node/dc: %v", s.Metric)
		}
	}
	info := query("pilot_build_info from both", fmt.Sprintf(`pilot_build_info{job=%q}`, app), both(1))
	for _, s := range info {
		if s.Metric["version"] == "" && s.Metric["goversion"] == "" {
			t.Logf("pilot_build_info labels: %v", s.Metric)
		}
	}
	// pilot's own job label survives the target's job as pilot_job.
	query("pilot_job_up of the main job", fmt.Sprintf(`pilot_job_up{job=%q, pilot_job="app"}`, app), both(1))
	if ss, err := prom.Query(ctx, `count({exported_job!=""})`); err != nil || len(ss) != 0 {
		t.Errorf("series still carry exported_job: %+v, %v", ss, err)
	}
	// The sensors' lines reached Prometheus; the bad line was counted.
	query("the sensors' queue_depth", fmt.Sprintf(`queue_depth{job=%q, queue="mail"}`, app), func(ss []promproc.Sample) bool {
		m := byInstance(ss)
		return len(ss) == 2 && m[instances[0]] == 7 && m[instances[1]] == 8
	})
	query("rejected sensor lines", fmt.Sprintf(`pilot_sensor_lines_rejected_total{job=%q, pilot_job="probe"}`, app), both(1))
	// The example's alert rules loaded and evaluate.
	if ss, err := prom.Query(ctx, `count(ALERTS) or vector(0)`); err != nil || len(ss) != 1 {
		t.Errorf("ALERTS: %+v, %v", ss, err)
	}

	// A pilot that stops deregisters: its target leaves Prometheus.
	p1.signal(syscall.SIGTERM)
	if code := p1.wait(15 * time.Second); code != 143 && code != 0 {
		t.Errorf("pilot exited %d", code)
	}
	query("the stopped pilot gone", fmt.Sprintf(`up{job=%q}`, app), func(ss []promproc.Sample) bool {
		m := byInstance(ss)
		_, stale := m[instances[0]]
		return len(ss) == 1 && !stale && m[instances[1]] == 1
	})
	tg, err := prom.Targets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, x := range tg {
		if x.Labels["job"] == app {
			seen = append(seen, x.Labels["instance"])
		}
	}
	if !slices.Equal(seen, instances[1:]) {
		t.Errorf("targets after the stop: %v, want %v", seen, instances[1:])
	}
}
