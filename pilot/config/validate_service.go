package config

import (
	"fmt"
	"net"
	"time"
)

// MinHealthInterval keeps a check from becoming a load of its own.
const MinHealthInterval = 100 * time.Millisecond

func (c *Consul) validate(p *problems) {
	if c == nil {
		return
	}
	if c.Token != "" && c.TokenFile != "" {
		p.add("consul.tokenFile", "set token or tokenFile, not both")
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		p.add("consul.tls", "certFile and keyFile go together")
	}
}

func (h *Health) validate(p *problems, path string) {
	if h == nil {
		return
	}
	kinds := 0
	for _, set := range []bool{h.HTTP != nil, h.TCP != nil, len(h.Exec) > 0, h.Shell != ""} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		p.add(path, "set exactly one of http, tcp, exec, shell")
	}
	if h.HTTP != nil {
		validatePort(p, path+".http.port", h.HTTP.Port)
		if h.HTTP.Path != "" && h.HTTP.Path[0] != '/' {
			p.add(path+".http.path", "%s must start with /", quote(h.HTTP.Path))
		}
		for i, code := range h.HTTP.ExpectStatus {
			if code < 100 || code > 599 {
				p.add(fmt.Sprintf("%s.http.expectStatus[%d]", path, i), "%d is not an HTTP status", code)
			}
		}
	}
	if h.TCP != nil {
		validatePort(p, path+".tcp.port", h.TCP.Port)
	}
	for i, arg := range h.Exec {
		noNUL(p, fmt.Sprintf("%s.exec[%d]", path, i), arg)
	}
	if len(h.Exec) > 0 && h.Exec[0] == "" {
		p.add(path+".exec[0]", "the command is empty")
	}
	if h.Interval != 0 && h.Interval < MinHealthInterval {
		p.add(path+".interval", "must be ≥ %s", formatDuration(MinHealthInterval))
	}
	nonNegative(p, path+".timeout", h.Timeout)
	nonNegative(p, path+".startPeriod", h.StartPeriod)
	eff := h.withDefaults()
	if eff.Timeout > eff.Interval {
		p.add(path+".timeout", "%s exceeds the interval %s (checks never overlap)", formatDuration(eff.Timeout), formatDuration(eff.Interval))
	}
	if h.HealthyThreshold < 0 {
		p.add(path+".healthyThreshold", "must be ≥ 1")
	}
	if h.UnhealthyThreshold < 0 {
		p.add(path+".unhealthyThreshold", "must be ≥ 1")
	}
	oneOf(p, path+".onUnhealthy", h.OnUnhealthy, "none", "restart")
}

func (s *Service) validate(p *problems, path string, job *Job, consul *Consul) {
	if s == nil {
		return
	}
	if consul == nil {
		p.add(path, "needs the top-level consul block")
	}
	if job.Health == nil {
		p.add(path, "needs a health check (jobs[].health): Consul must learn when the instance fails")
	}
	if job.Every > 0 {
		p.add(path, "a periodic job cannot be a service")
	}
	if s.Name == "" {
		p.add(path+".name", "required")
	} else if !validServiceName(s.Name) {
		p.add(path+".name", "%s: use letters, digits and dashes", quote(s.Name))
	}
	validatePort(p, path+".port", s.Port)
	set := 0
	for _, v := range []string{s.Address.Interface, s.Address.CIDR, s.Address.Static} {
		if v != "" {
			set++
		}
	}
	if set > 1 {
		p.add(path+".address", "set at most one of interface, cidr, static")
	}
	if s.Address.CIDR != "" {
		if _, _, err := net.ParseCIDR(s.Address.CIDR); err != nil {
			p.add(path+".address.cidr", "%s is not a CIDR (e.g. 10.0.0.0/8)", quote(s.Address.CIDR))
		}
	}
	if s.Address.Static != "" && net.ParseIP(s.Address.Static) == nil {
		p.add(path+".address.static", "%s is not an IP address", quote(s.Address.Static))
	}
	for i, tag := range s.Tags {
		if tag == "" {
			p.add(fmt.Sprintf("%s.tags[%d]", path, i), "empty tag")
		}
	}
	if s.TTL != 0 && s.TTL < time.Second {
		p.add(path+".ttl", "must be ≥ 1s")
	}
	if s.DeregisterCriticalAfter != 0 && s.DeregisterCriticalAfter < time.Minute {
		p.add(path+".deregisterCriticalAfter", "must be ≥ 1m (Consul's minimum)")
	}
	nonNegative(p, path+".drain", s.Drain)
	if t := s.Traefik; t != nil {
		if t.Rule == "" {
			p.add(path+".traefik.rule", "required")
		}
		if t.Port != 0 {
			validatePort(p, path+".traefik.port", t.Port)
		}
		if t.Priority < 0 {
			p.add(path+".traefik.priority", "must be ≥ 0")
		}
		if h := t.HealthCheck; h != nil {
			if h.Path == "" || h.Path[0] != '/' {
				p.add(path+".traefik.healthCheck.path", "%s must start with /", quote(h.Path))
			}
			nonNegative(p, path+".traefik.healthCheck.interval", h.Interval)
			nonNegative(p, path+".traefik.healthCheck.timeout", h.Timeout)
		}
	}
}

func validatePort(p *problems, path string, port int) {
	if port < 1 || port > 65535 {
		p.add(path, "%d is not a port (1–65535)", port)
	}
}

func validServiceName(name string) bool {
	for i := 0; i < len(name); i++ {
		if c := name[i]; !isAlphanumeric(c) && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return true
}
