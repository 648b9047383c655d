package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Bounds of the health settings.
const (
	// MinHealthInterval keeps a check from becoming a load of its own.
	MinHealthInterval = 100 * time.Millisecond
	// MaxHealthInterval is a day: a check less frequent than that checks
	// nothing, and the TTL (3 × interval) must stay a sane duration.
	MaxHealthInterval = 24 * time.Hour
	// MinHealthStartInterval keeps the checks of a starting job from
	// becoming a load of their own.
	MinHealthStartInterval = 10 * time.Millisecond
	// MaxHealthThreshold bounds healthyThreshold and unhealthyThreshold:
	// more checks in a row than this is no longer a threshold but a
	// verdict that never comes.
	MaxHealthThreshold = 100
)

func (c *Consul) validate(p *problems) {
	if c == nil {
		return
	}
	if c.Address != "" {
		if err := checkConsulAddress(c.Address); err != nil {
			p.add("consul.address", "%s: %v", quote(c.Address), err)
		}
	}
	if c.Token != "" && c.TokenFile != "" {
		p.add("consul.tokenFile", "set token or tokenFile, not both")
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		p.add("consul.tls", "certFile and keyFile go together")
	}
}

// checkConsulAddress accepts what the Consul client does: host:port,
// http:// or https:// with a host and an optional port, or unix:///path.
func checkConsulAddress(address string) error {
	hostPort := address
	if scheme, rest, ok := strings.Cut(address, "://"); ok {
		switch scheme {
		case "unix":
			if !strings.HasPrefix(rest, "/") {
				return errors.New("want unix:///absolute/path")
			}
			return nil
		case "http", "https":
		default:
			return fmt.Errorf("unknown scheme %s (use http, https or unix)", quote(scheme))
		}
		u, err := url.Parse(address)
		if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return errors.New("want SCHEME://host[:port]")
		}
		if u.Port() == "" {
			return nil
		}
		hostPort = u.Host
	}
	_, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		return errors.New("want host:port, http(s)://host[:port] or unix:///path")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %s is not a port (1–65535)", quote(port))
	}
	return nil
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
		p.addAbout([]string{path + ".http", path + ".tcp", path + ".exec", path + ".shell"}, path, "set exactly one of http, tcp, exec, shell")
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
	switch {
	case h.Interval == 0 && p.explicit(path+".interval"), h.Interval != 0 && h.Interval < MinHealthInterval:
		p.add(path+".interval", "must be ≥ %s (leave it out for the default %s)", formatDuration(MinHealthInterval), formatDuration(DefaultHealthInterval))
	case h.Interval > MaxHealthInterval:
		p.add(path+".interval", "%s exceeds %s", formatDuration(h.Interval), formatDuration(MaxHealthInterval))
	}
	nonNegative(p, path+".timeout", h.Timeout)
	notExplicitZero(p, path+".timeout", h.Timeout, "the default "+formatDuration(DefaultHealthTimeout)+", at most the interval")
	nonNegative(p, path+".startPeriod", h.StartPeriod)
	if h.StartPeriod > MaxHealthInterval {
		p.add(path+".startPeriod", "%s exceeds %s", formatDuration(h.StartPeriod), formatDuration(MaxHealthInterval))
	}
	eff := h.withDefaults()
	if eff.Timeout > eff.Interval && h.Interval <= MaxHealthInterval {
		p.add(path+".timeout", "%s exceeds the interval %s (checks never overlap)", formatDuration(eff.Timeout), formatDuration(eff.Interval))
	}
	switch {
	case h.StartInterval == 0 && p.explicit(path+".startInterval"), h.StartInterval != 0 && h.StartInterval < MinHealthStartInterval:
		p.add(path+".startInterval", "must be ≥ %s (leave it out for the default %s)", formatDuration(MinHealthStartInterval), formatDuration(DefaultHealthStartInterval))
	case eff.StartInterval > eff.Interval && h.Interval <= MaxHealthInterval:
		p.add(path+".startInterval", "%s exceeds the interval %s", formatDuration(eff.StartInterval), formatDuration(eff.Interval))
	}
	validateThreshold(p, path+".healthyThreshold", h.HealthyThreshold, DefaultHealthyThreshold)
	validateThreshold(p, path+".unhealthyThreshold", h.UnhealthyThreshold, DefaultUnhealthyThreshold)
}

func validateThreshold(p *problems, path string, n, byDefault int) {
	if n == 0 && !p.explicit(path) {
		return
	}
	if n < 1 || n > MaxHealthThreshold {
		p.add(path, "must be between 1 and %d (leave it out for the default %d)", MaxHealthThreshold, byDefault)
	}
}

func (s *Service) validate(p *problems, path string, job *Job, consul *Consul) {
	if s == nil {
		return
	}
	if consul == nil {
		p.addAbout([]string{"consul"}, path, "needs the top-level consul block")
	}
	if job.Health == nil {
		p.addAbout([]string{parentPath(path) + ".health"}, path, "needs a health check (jobs[].health): Consul must learn when the instance fails")
	}
	if job.Every > 0 {
		p.add(path, "a periodic job cannot be a service")
	}
	if s.Name == "" {
		p.required(path+".name", "required")
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
	switch {
	case s.TTL == 0 && p.explicit(path+".ttl"), s.TTL != 0 && s.TTL < time.Second:
		p.add(path+".ttl", "must be ≥ 1s (leave it out for the default, %d × health.interval)", DefaultServiceTTLIntervals)
	case s.TTL > DefaultServiceTTLIntervals*MaxHealthInterval:
		p.add(path+".ttl", "%s exceeds %s", formatDuration(s.TTL), formatDuration(DefaultServiceTTLIntervals*MaxHealthInterval))
	}
	if s.DeregisterCriticalAfter != 0 && s.DeregisterCriticalAfter < time.Minute {
		p.add(path+".deregisterCriticalAfter", "must be ≥ 1m (Consul's minimum)")
	}
	nonNegative(p, path+".drain", s.Drain)
	if t := s.Traefik; t != nil {
		if t.Rule == "" {
			p.required(path+".traefik.rule", "required")
		}
		if t.Port != 0 || p.explicit(path+".traefik.port") {
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
