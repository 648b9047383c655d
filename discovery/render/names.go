package render

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// DefaultName is the upstream (nginx) or service and router (Traefik) name
// derived from a service name: lower-cased, with anything but ASCII letters,
// digits and dashes made a dash. It is the rule discovery/traefik uses for
// the Consul Catalog tags, so one service has one name everywhere.
func DefaultName(service string) string {
	b := make([]byte, 0, len(service))
	for _, r := range service {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			b = append(b, byte(r))
		case r >= 'A' && r <= 'Z':
			b = append(b, byte(r+'a'-'A'))
		default:
			b = append(b, '-')
		}
	}
	return string(b)
}

// name returns the configured name, validated, or DefaultName(service).
func name(service, configured string) (string, error) {
	if configured == "" {
		if service == "" {
			return "", fmt.Errorf("render: snapshot has no service name and no name is configured")
		}
		return DefaultName(service), nil
	}
	if err := CheckName(configured); err != nil {
		return "", fmt.Errorf("render: name %w", err)
	}
	return configured, nil
}

// CheckName checks a configured upstream or service name (a watch's
// onChange.render.name), so that config validation refuses what a render
// would.
func CheckName(configured string) error {
	for _, r := range configured {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
		default:
			return fmt.Errorf("%q: only letters, digits, '-', '_' and '.' are allowed", configured)
		}
	}
	return nil
}

// hostPort is the instance's ADDR:PORT, IPv6 bracketed, after checking that
// the address is an IP or a host name, so nothing from the catalog can break
// out of the generated syntax. The error names the instance.
func hostPort(in Instance) (string, error) {
	hp, err := checkedHostPort(in)
	if err != nil {
		return "", fmt.Errorf("render: instance %q (node %q): %w", in.ID, in.Node, err)
	}
	return hp, nil
}

// checkedHostPort is hostPort with an error that says only what is wrong.
func checkedHostPort(in Instance) (string, error) {
	if in.Port <= 0 || in.Port > 65535 {
		return "", fmt.Errorf("port %d out of range 1..65535", in.Port)
	}
	host := in.Address
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return "", fmt.Errorf("address %q: zoned IPv6 addresses are not supported", in.Address)
		}
		host = ip.String()
	} else if !validHostname(host) {
		return "", fmt.Errorf("address %q is neither an IP nor a host name", in.Address)
	}
	return net.JoinHostPort(host, strconv.Itoa(in.Port)), nil
}

// Skipped is an instance Routable left out, and why.
type Skipped struct {
	Instance Instance
	Reason   string // e.g. `address "a;b" is neither an IP nor a host name`
}

// Routable splits s into the instances every renderer can write safely
// (an IP or host name, a port in 1..65535) and the ones it cannot, in the
// snapshot's order. One malformed instance in the catalog (a typo, or an
// injection attempt) thus costs that instance only, not the render of all
// the others. s is not modified; the result shares the instances' tags and
// meta with it (a Snapshot is read-only). Callers render Routable's
// snapshot: the renderers refuse an instance that is not routable.
func Routable(s Snapshot) (Snapshot, []Skipped) {
	var skipped []Skipped
	out := Snapshot{Service: s.Service, Instances: make([]Instance, 0, len(s.Instances))}
	for _, in := range s.Instances {
		if _, err := checkedHostPort(in); err != nil {
			skipped = append(skipped, Skipped{Instance: in, Reason: err.Error()})
			continue
		}
		out.Instances = append(out.Instances, in)
	}
	return out, skipped
}

func validHostname(h string) bool {
	if h == "" || len(h) > 253 || h[0] == '-' || h[0] == '.' {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '.', c == '_':
		default:
			return false
		}
	}
	return true
}
