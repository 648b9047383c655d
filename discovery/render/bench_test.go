package render

import (
	"fmt"
	"testing"
	"time"
)

func bigSnapshot(n int) Snapshot {
	s := Snapshot{Service: "backend", Instances: make([]Instance, n)}
	for i := range s.Instances {
		s.Instances[i] = Instance{
			ID: fmt.Sprintf("backend-%04d", i), Node: fmt.Sprintf("node-%03d", i%100),
			Address: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), Port: 3000 + i%7,
			Tags: []string{"v1"}, Meta: map[string]string{"zone": "a"}, Status: "passing",
		}
	}
	return s
}

func BenchmarkNGINX1000(b *testing.B) {
	s := bigSnapshot(1000)
	opts := NGINXOptions{MaxFails: new(3), FailTimeout: 10 * time.Second, Keepalive: 32}
	for b.Loop() {
		if _, err := NGINX(s, opts); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTraefik1000(b *testing.B) {
	s := bigSnapshot(1000)
	opts := TraefikOptions{PassHostHeader: new(true), HealthCheck: &TraefikHealthCheck{Path: "/health", Interval: 10 * time.Second},
		Router: &TraefikRouter{Rule: "PathPrefix(`/`)", EntryPoints: []string{"web"}}}
	for b.Loop() {
		if _, err := Traefik(s, opts); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRender1000Budget keeps the benchmarks' budget (≤ 10 ms per render)
// honest in plain test runs, with a wide margin for slow CI and -race.
func TestRender1000Budget(t *testing.T) {
	s := bigSnapshot(1000)
	for name, f := range map[string]func() error{
		"nginx":   func() error { _, err := NGINX(s, NGINXOptions{}); return err },
		"traefik": func() error { _, err := Traefik(s, TraefikOptions{}); return err },
	} {
		start := time.Now()
		for range 10 {
			if err := f(); err != nil {
				t.Fatal(err)
			}
		}
		if d := time.Since(start) / 10; d > 100*time.Millisecond {
			t.Errorf("%s: %v per render of 1000 instances, budget 10ms", name, d)
		}
	}
}
