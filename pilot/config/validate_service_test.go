package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestValidateHealthAndService(t *testing.T) {
	job := func(h *Health, s *Service) Job {
		return Job{Name: "app", Exec: []string{"node"}, Health: h, Service: s}
	}
	httpCheck := &Health{HTTP: &HTTPCheck{Port: 3000}}
	service := &Service{Name: "web", Port: 3000}
	consul := &Consul{Address: "127.0.0.1:8500"}
	tests := []struct {
		name   string
		consul *Consul
		jobs   []Job
		want   []string
	}{
		{"valid", consul, []Job{job(httpCheck, service)}, nil},
		{"service without consul or health", nil, []Job{job(nil, service)}, []string{
			"jobs[0].service: needs a health check (jobs[].health): Consul must learn when the instance fails",
			"jobs[0].service: needs the top-level consul block",
		}},
		{"two kinds of check", nil, []Job{job(&Health{HTTP: &HTTPCheck{Port: 1}, TCP: &TCPCheck{Port: 1}}, nil)}, []string{
			"jobs[0].health: set exactly one of http, tcp, exec, shell",
		}},
		{"bad check fields", nil, []Job{job(&Health{HTTP: &HTTPCheck{Port: 70000, Path: "health", ExpectStatus: []int{200, 99}},
			Interval: 50 * time.Millisecond, Timeout: time.Second, UnhealthyThreshold: -1}, nil)}, []string{
			`jobs[0].health.http.expectStatus[1]: 99 is not an HTTP status`,
			`jobs[0].health.http.path: "health" must start with /`,
			`jobs[0].health.http.port: 70000 is not a port (1–65535)`,
			`jobs[0].health.interval: must be ≥ 100ms (leave it out for the default 5s)`,
			`jobs[0].health.timeout: 1s exceeds the interval 50ms (checks never overlap)`,
			`jobs[0].health.unhealthyThreshold: must be between 1 and 100 (leave it out for the default 3)`,
		}},
		{"bad service fields", consul, []Job{job(httpCheck, &Service{Name: "web site", Port: 0,
			Address: Address{CIDR: "10.0.0.0", Static: "x"}, TTL: 500 * time.Millisecond, DeregisterCriticalAfter: time.Second, Drain: -time.Second})}, []string{
			`jobs[0].service.address: set at most one of interface, cidr, static`,
			`jobs[0].service.address.cidr: "10.0.0.0" is not a CIDR (e.g. 10.0.0.0/8)`,
			`jobs[0].service.address.static: "x" is not an IP address`,
			`jobs[0].service.deregisterCriticalAfter: must be ≥ 1m (Consul's minimum)`,
			`jobs[0].service.drain: must be ≥ 0`,
			`jobs[0].service.name: "web site": use letters, digits and dashes`,
			`jobs[0].service.port: 0 is not a port (1–65535)`,
			`jobs[0].service.ttl: must be ≥ 1s (leave it out for the default, 3 × health.interval)`,
		}},
		{"bad traefik block", consul, []Job{job(httpCheck, &Service{Name: "web", Port: 3000,
			Traefik: &Traefik{Port: 99999, Priority: -1, HealthCheck: &TraefikHealthCheck{Path: "health"}}})}, []string{
			`jobs[0].service.traefik.healthCheck.path: "health" must start with /`,
			`jobs[0].service.traefik.port: 99999 is not a port (1–65535)`,
			`jobs[0].service.traefik.priority: must be ≥ 0`,
			`jobs[0].service.traefik.rule: required`,
		}},
		{"token and tokenFile", &Consul{Token: "x", TokenFile: "/f", TLS: TLS{CertFile: "c"}}, []Job{job(nil, nil)}, []string{
			"consul.tls: certFile and keyFile go together",
			"consul.tokenFile: set token or tokenFile, not both",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := (&Config{Consul: tt.consul, Jobs: tt.jobs}).Validate()
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

func TestHealthAndServiceDefaults(t *testing.T) {
	c := Config{Jobs: []Job{{Name: "app", Exec: []string{"node"},
		Health:  &Health{HTTP: &HTTPCheck{Port: 3000}, Interval: time.Second},
		Service: &Service{Name: "web", Port: 3000}}}}
	d := c.WithDefaults().Jobs[0]
	if d.Health.HTTP.Path != "/" || d.Health.Timeout != time.Second || d.Health.UnhealthyThreshold != 3 ||
		d.Health.HealthyThreshold != 1 || d.Health.OnUnhealthy != "none" || d.Service.TTL != 3*time.Second {
		t.Fatalf("defaults: %+v %+v %+v", d.Health, d.Health.HTTP, d.Service)
	}
	if c.Jobs[0].Health.HTTP.Path != "" || c.Jobs[0].Service.TTL != 0 {
		t.Fatal("WithDefaults changed its receiver")
	}
}
