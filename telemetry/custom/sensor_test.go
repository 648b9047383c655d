package custom

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestApply(t *testing.T) {
	m, reg := newTest(t)
	for _, line := range []string{"", "  ", "# HELP queue_depth x", "# TYPE queue_depth gauge",
		`queue_depth{queue="mail"} 12`, "temperature -3", `jobs_done_total{result="ok",queue="q"} 2`, "latency_seconds 0.3"} {
		if err := m.Apply([]byte(line)); err != nil {
			t.Errorf("Apply(%q): %v", line, err)
		}
	}
	got := gather(t, reg)
	if got["queue_depth{queue=mail}"] != 12 || got["temperature"] != -3 || got["jobs_done_total{queue=q,result=ok}"] != 2 || got["latency_seconds_count"] != 1 {
		t.Errorf("after Apply: %v", got)
	}
	for line, want := range map[string]string{
		"temperature":                    `line "temperature"`,
		"nope 1":                         `metric "nope": not declared`,
		`queue_depth{queue="a",x="b"} 1`: `unknown label "x"`,
		`jobs_done_total{result="a",queue="b"} -1`: "only goes up",
	} {
		if err := m.Apply([]byte(line)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Apply(%q) = %v, want %q", line, err, want)
		}
	}
}

// A sensor's bad lines are counted and logged, a few a minute, and never
// stop the good ones.
func TestSensor(t *testing.T) {
	m, reg := newTest(t)
	var logs bytes.Buffer
	hook := m.Sensor("probe", slog.New(slog.NewTextHandler(&logs, nil)))
	hook([]byte("temperature 20"))
	for i := range 20 {
		hook([]byte(fmt.Sprintf("garbage %d", i)))
	}
	hook([]byte("temperature 21"))
	hook([]byte("# a comment"))
	hook([]byte(""))
	got := gather(t, reg)
	if got["temperature"] != 21 {
		t.Errorf("temperature = %v", got["temperature"])
	}
	if got["pilot_sensor_lines_rejected_total{job=probe}"] != 20 {
		t.Errorf("rejected = %v", got["pilot_sensor_lines_rejected_total{job=probe}"])
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != sensorLogBurst {
		t.Fatalf("%d log lines, want %d:\n%s", len(lines), sensorLogBurst, logs.String())
	}
	for _, want := range []string{"level=WARN", "sensor line rejected", "job=probe", `line="garbage 0"`, `garbage\": not declared`} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("log line %q lacks %q", lines[0], want)
		}
	}
	if !strings.Contains(lines[len(lines)-1], "only counted") {
		t.Errorf("the last logged line does not say the rest are only counted: %q", lines[len(lines)-1])
	}
}
