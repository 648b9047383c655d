package traefik

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/traefik/paerser/parser"
)

// Settings are a service's Traefik routing, as written under
// `service.traefik:`.
type Settings struct {
	Rule        string
	EntryPoints []string
	Middlewares []string
	Priority    int // 0: Traefik's default (by rule length)
	// ServerPort is the port Traefik sends traffic to; 0 means the
	// registered service port.
	ServerPort   int
	StickyCookie string // cookie name; empty means no stickiness
	HealthCheck  *HealthCheck
}

// HealthCheck is Traefik's own active check of each server.
type HealthCheck struct {
	Path     string
	Interval string // a duration as Traefik reads it: "10s"
	Timeout  string
}

// The structs below have the shape of Traefik's dynamic configuration
// (dynamic.HTTPConfiguration and friends), restricted to what pilot sets.
// paerser walks them by field name, as Traefik does.
type dynamic struct {
	Enable bool
	HTTP   *httpConfig
}

type httpConfig struct {
	Routers  map[string]*router
	Services map[string]*service
}

type router struct {
	EntryPoints []string
	Middlewares []string
	Service     string
	Rule        string
	Priority    *int
}

type service struct {
	LoadBalancer *loadBalancer
}

type loadBalancer struct {
	Sticky      *sticky
	Server      *server
	HealthCheck *healthCheck
}

type sticky struct{ Cookie *cookie }

type cookie struct{ Name string }

type server struct{ Port string }

type healthCheck struct {
	Path     string
	Interval string
	Timeout  string
}

// Tags returns the sorted traefik.* tags for a service named name that
// listens on port, with lower-case keys and traefik.enable=true. The router
// and the service are both named after the service, and the service always
// names its server port, so Traefik never has to guess it.
func Tags(name string, port int, s Settings) ([]string, error) {
	if s.Rule == "" {
		return nil, fmt.Errorf("traefik.rule: required")
	}
	id := routeName(name)
	lb := &loadBalancer{Server: &server{Port: fmt.Sprint(cmp.Or(s.ServerPort, port))}}
	if s.StickyCookie != "" {
		lb.Sticky = &sticky{Cookie: &cookie{Name: s.StickyCookie}}
	}
	if h := s.HealthCheck; h != nil {
		lb.HealthCheck = &healthCheck{Path: h.Path, Interval: h.Interval, Timeout: h.Timeout}
	}
	cfg := dynamic{
		Enable: true,
		HTTP: &httpConfig{
			Routers: map[string]*router{id: {
				EntryPoints: s.EntryPoints, Middlewares: s.Middlewares,
				Service: id, Rule: s.Rule, Priority: priority(s.Priority),
			}},
			Services: map[string]*service{id: {LoadBalancer: lb}},
		},
	}
	node, err := parser.EncodeToNode(cfg, parser.DefaultRootName, parser.EncoderToNodeOpts{OmitEmpty: true})
	if err != nil {
		return nil, fmt.Errorf("traefik: %w", err)
	}
	labels := parser.EncodeNode(node)
	tags := make([]string, 0, len(labels))
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		tags = append(tags, strings.ToLower(k)+"="+labels[k])
	}
	return tags, nil
}

func priority(p int) *int {
	if p == 0 {
		return nil
	}
	return &p
}

// routeName is the router and service name: the Consul service name,
// lower-cased, with anything but letters, digits and dashes made a dash.
func routeName(name string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return '-'
	}, name)
}
