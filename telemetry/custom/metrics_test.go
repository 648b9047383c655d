package custom

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

var testDefs = []Def{
	{Name: "queue_depth", Kind: Gauge, Help: "Jobs waiting", Labels: []string{"queue"}},
	{Name: "temperature", Kind: Gauge},
	{Name: "jobs_done_total", Kind: Counter, Labels: []string{"queue", "result"}},
	{Name: "latency_seconds", Kind: Histogram, Buckets: []float64{0.1, 1}},
}

func newTest(t *testing.T) (*Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := New(testDefs, reg)
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}

// gather flattens a registry into "name{k=v,…}" → value; a histogram gives
// NAME_count, NAME_sum and NAME_bucket{le=…}.
func gather(t *testing.T, reg prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			var ls []string
			for _, lp := range mt.GetLabel() {
				ls = append(ls, lp.GetName()+"="+lp.GetValue())
			}
			key := func(name string, extra ...string) string {
				all := append(slices.Clone(ls), extra...)
				sort.Strings(all)
				if len(all) == 0 {
					return name
				}
				return name + "{" + strings.Join(all, ",") + "}"
			}
			switch {
			case mt.Gauge != nil:
				out[key(mf.GetName())] = mt.Gauge.GetValue()
			case mt.Counter != nil:
				out[key(mf.GetName())] = mt.Counter.GetValue()
			case mt.Histogram != nil:
				h := mt.Histogram
				out[key(mf.GetName()+"_count")] = float64(h.GetSampleCount())
				out[key(mf.GetName()+"_sum")] = h.GetSampleSum()
				for _, b := range h.GetBucket() {
					out[key(mf.GetName()+"_bucket", fmt.Sprintf("le=%g", b.GetUpperBound()))] = float64(b.GetCumulativeCount())
				}
			}
		}
	}
	return out
}

func TestSetPerType(t *testing.T) {
	m, reg := newTest(t)
	steps := []struct {
		name   string
		labels map[string]string
		value  float64
	}{
		{"queue_depth", map[string]string{"queue": "mail"}, 7},
		{"queue_depth", map[string]string{"queue": "mail"}, 3}, // a gauge is set
		{"queue_depth", map[string]string{"queue": "sms"}, -1.5},
		{"temperature", nil, 21.5},
		{"jobs_done_total", map[string]string{"queue": "mail", "result": "ok"}, 2},
		{"jobs_done_total", map[string]string{"result": "ok", "queue": "mail"}, 3}, // a counter adds
		{"jobs_done_total", map[string]string{"queue": "mail", "result": "ok"}, 0},
		{"latency_seconds", map[string]string{}, 0.05},
		{"latency_seconds", nil, 0.5},
		{"latency_seconds", nil, 5},
	}
	for _, s := range steps {
		if err := m.Set(s.name, s.labels, s.value); err != nil {
			t.Fatalf("Set(%s, %v, %v): %v", s.name, s.labels, s.value, err)
		}
	}
	got := gather(t, reg)
	want := map[string]float64{
		"queue_depth{queue=mail}":               3,
		"queue_depth{queue=sms}":                -1.5,
		"temperature":                           21.5,
		"jobs_done_total{queue=mail,result=ok}": 5,
		"latency_seconds_count":                 3,
		"latency_seconds_sum":                   5.55,
		"latency_seconds_bucket{le=0.1}":        1,
		"latency_seconds_bucket{le=1}":          2,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || math.Abs(g-v) > 1e-9 {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	// Help as declared; a default when none.
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		switch mf.GetName() {
		case "queue_depth":
			if mf.GetHelp() != "Jobs waiting" {
				t.Errorf("help %q", mf.GetHelp())
			}
		case "temperature":
			if !strings.Contains(mf.GetHelp(), "temperature") {
				t.Errorf("default help %q", mf.GetHelp())
			}
		}
	}
}

func TestSetErrors(t *testing.T) {
	m, reg := newTest(t)
	tests := []struct {
		name   string
		labels map[string]string
		value  float64
		want   []string // substrings of the error
	}{
		{"nope", nil, 1, []string{`metric "nope": not declared`, "jobs_done_total, latency_seconds, queue_depth, temperature"}},
		{"queue_depth", nil, 1, []string{`metric "queue_depth"`, `missing label "queue"`, "declared labels: queue"}},
		{"queue_depth", map[string]string{"queue": "a", "host": "b"}, 1, []string{`unknown label "host"`}},
		{"temperature", map[string]string{"room": "a"}, 1, []string{`metric "temperature"`, `unknown label "room" (no labels)`}},
		{"jobs_done_total", map[string]string{"queue": "a"}, 1, []string{`missing label "result"`}},
		{"jobs_done_total", map[string]string{"queue": "a", "result": "ok"}, -1, []string{`metric "jobs_done_total"`, "only goes up", "-1"}},
		{"jobs_done_total", map[string]string{"queue": "a", "result": "ok"}, math.Inf(1), []string{"a counter cannot take +Inf"}},
		{"temperature", nil, math.NaN(), []string{`metric "temperature": NaN`}},
		{"latency_seconds", nil, math.NaN(), []string{"NaN"}},
		{"latency_seconds", nil, math.Inf(-1), []string{"a histogram cannot take -Inf"}},
		{"queue_depth", map[string]string{"queue": "\xff"}, 1, []string{`label "queue"`, "UTF-8"}},
	}
	for _, tt := range tests {
		err := m.Set(tt.name, tt.labels, tt.value)
		if err == nil {
			t.Errorf("Set(%s, %v, %v) succeeded", tt.name, tt.labels, tt.value)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Set(%s, %v, %v) = %q, want it to contain %q", tt.name, tt.labels, tt.value, err, w)
			}
		}
	}
	// Nothing was set by a refused call.
	for k := range gather(t, reg) {
		if !strings.HasPrefix(k, "latency_seconds") { // a histogram without labels exists from the start
			t.Errorf("series %s exists after refused calls only", k)
		}
	}
	// A gauge may be ±Inf.
	if err := m.Set("temperature", nil, math.Inf(-1)); err != nil {
		t.Errorf("gauge -Inf: %v", err)
	}
}

func TestNoMetricsDeclared(t *testing.T) {
	m, err := New(nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Set("x", nil, 1); err == nil || !strings.Contains(err.Error(), "declares no metrics") {
		t.Errorf("got %v", err)
	}
}

func TestMaxSeries(t *testing.T) {
	m, _ := newTest(t)
	for i := range MaxSeries {
		if err := m.Set("queue_depth", map[string]string{"queue": fmt.Sprint(i)}, 1); err != nil {
			t.Fatal(err)
		}
	}
	err := m.Set("queue_depth", map[string]string{"queue": "one-too-many"}, 1)
	if err == nil || !strings.Contains(err.Error(), "label combinations") || !strings.Contains(err.Error(), "one-too-many") {
		t.Fatalf("got %v", err)
	}
	if err := m.Set("queue_depth", map[string]string{"queue": "7"}, 2); err != nil {
		t.Errorf("an existing series must still take values: %v", err)
	}
}

func TestNewRejects(t *testing.T) {
	tests := []struct {
		defs []Def
		want string
	}{
		{[]Def{{Name: "a b", Kind: Gauge}}, `metric "a b": not a Prometheus metric name`},
		{[]Def{{Name: "x", Kind: "summary"}}, `metric "x": unknown type "summary"`},
		{[]Def{{Name: "x", Kind: Gauge, Labels: []string{"a", "a"}}}, `label "a" declared twice`},
		{[]Def{{Name: "x", Kind: Gauge, Labels: []string{"__a"}}}, `label "__a" is not a label name`},
		{[]Def{{Name: "x", Kind: Histogram, Labels: []string{"le"}}}, `"le"`},
		{[]Def{{Name: "x", Kind: Histogram, Buckets: []float64{1, 1}}}, "buckets must increase"},
		{[]Def{{Name: "x", Kind: Gauge}, {Name: "x", Kind: Counter}}, `metric "x": declared twice`},
		{[]Def{{Name: "go_goroutines", Kind: Gauge}}, `metric "go_goroutines": cannot register`},
	}
	for _, tt := range tests {
		reg := prometheus.NewRegistry()
		reg.MustRegister(prometheus.NewGoCollector())
		_, err := New(tt.defs, reg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v) = %v, want %q", tt.defs, err, tt.want)
		}
	}
	if _, err := New(nil, nil); err == nil {
		t.Error("New without a registry succeeded")
	}
}

// Set is safe from many goroutines (run with -race).
func TestSetConcurrent(t *testing.T) {
	m, reg := newTest(t)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				_ = m.Set("jobs_done_total", map[string]string{"queue": fmt.Sprint(i % 4), "result": "ok"}, 1)
				_ = m.Set("queue_depth", map[string]string{"queue": fmt.Sprint(g)}, float64(i))
				_ = m.Set("latency_seconds", nil, 0.2)
			}
		})
	}
	wg.Wait()
	got := gather(t, reg)
	if got["latency_seconds_count"] != 4000 || got["jobs_done_total{queue=0,result=ok}"] != 1000 {
		t.Errorf("counts: %v", got)
	}
}
