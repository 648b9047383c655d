package telemetry

import (
	"fmt"
	"os/exec"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"net/http/httptest"

	"github.com/nodepilot/pilot/jobs"
)

// benchJobs starts n sleep processes and returns fake jobs for them.
func benchJobs(b *testing.B, n int) []Job {
	js := make([]Job, n)
	for i := range n {
		cmd := exec.Command("sleep", "600")
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		j := newFakeJob(fmt.Sprintf("job%03d", i), i%2 == 0)
		j.set(func(s *jobs.Status) { s.State, s.Pid = jobs.Running, cmd.Process.Pid })
		js[i] = j
	}
	return js
}

func benchGather(b *testing.B, cs ...prometheus.Collector) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(cs...)
	b.ResetTimer()
	for b.Loop() {
		if _, err := reg.Gather(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGather50Jobs(b *testing.B) {
	js := benchJobs(b, 50)
	procs, err := NewProcessCollector(func() []Job { return js })
	if err != nil {
		b.Fatal(err)
	}
	b.Run("jobs", func(b *testing.B) { benchGather(b, NewJobCollector(func() []Job { return js })) })
	b.Run("processes", func(b *testing.B) { benchGather(b, procs) })
	b.Run("go+process", func(b *testing.B) {
		benchGather(b, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	})
}

// BenchmarkMetricsHandler50Jobs is a whole /metrics answer (no network)
// with pilot's collectors over 50 running jobs.
func BenchmarkMetricsHandler50Jobs(b *testing.B) {
	js := benchJobs(b, 50)
	procs, err := NewProcessCollector(func() []Job { return js })
	if err != nil {
		b.Fatal(err)
	}
	var names []string
	for _, j := range js {
		names = append(names, j.Spec().Name)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		NewBuildInfo("dev", "x"), NewJobCollector(func() []Job { return js }), procs, NewHealthChecks(names), NewExits(), NewConsul(), NewWatches(nil))
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	for _, enc := range []string{"identity", "gzip"} {
		b.Run(enc, func(b *testing.B) {
			req := httptest.NewRequest("GET", "/metrics", nil)
			req.Header.Set("Accept-Encoding", enc)
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
			}
		})
	}
}
