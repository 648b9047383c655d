package discovery

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// AddressSelector chooses the address to advertise. At most one field is
// set; none selects the first non-loopback IPv4 address of an interface that
// is up.
type AddressSelector struct {
	Interface string // e.g. "eth0": its first IPv4 address
	CIDR      string // e.g. "10.0.0.0/8": the first address inside it
	Static    string // advertised verbatim (an IP or a host name)
}

// Interface is a network interface as SelectAddress sees it.
type Interface struct {
	Name     string
	Up       bool
	Loopback bool
	Addrs    []netip.Addr
}

// SelectAddress returns the address sel picks among ifaces. Interfaces and
// addresses are considered in the order given. Errors name what was not found.
func SelectAddress(sel AddressSelector, ifaces []Interface) (string, error) {
	set := 0
	for _, f := range []string{sel.Interface, sel.CIDR, sel.Static} {
		if f != "" {
			set++
		}
	}
	if set > 1 {
		return "", errors.New("address: set at most one of interface, cidr, static")
	}
	switch {
	case sel.Static != "":
		s := strings.TrimSpace(sel.Static)
		if s == "" || strings.ContainsAny(s, " /") {
			return "", fmt.Errorf("address: static %q is not an address", sel.Static)
		}
		return s, nil

	case sel.Interface != "":
		for _, ifc := range ifaces {
			if ifc.Name != sel.Interface {
				continue
			}
			for _, a := range ifc.Addrs {
				if a.Unmap().Is4() {
					return a.Unmap().String(), nil
				}
			}
			return "", fmt.Errorf("address: no IPv4 address on interface %q", sel.Interface)
		}
		return "", fmt.Errorf("address: no interface %q", sel.Interface)

	case sel.CIDR != "":
		p, err := netip.ParsePrefix(sel.CIDR)
		if err != nil {
			return "", fmt.Errorf("address: cidr %q: %v", sel.CIDR, err)
		}
		p = p.Masked()
		for _, ifc := range ifaces {
			for _, a := range ifc.Addrs {
				if p.Contains(a.Unmap()) {
					return a.Unmap().String(), nil
				}
			}
		}
		return "", fmt.Errorf("address: no address in %s on any interface", p)
	}

	for _, ifc := range ifaces {
		if !ifc.Up || ifc.Loopback {
			continue
		}
		for _, a := range ifc.Addrs {
			a = a.Unmap()
			if a.Is4() && !a.IsLoopback() && !a.IsLinkLocalUnicast() {
				return a.String(), nil
			}
		}
	}
	return "", errors.New("address: no non-loopback IPv4 address on any interface that is up")
}

// SystemInterfaces adapts net.Interfaces for SelectAddress.
func SystemInterfaces() ([]Interface, error) {
	nifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("listing network interfaces: %w", err)
	}
	out := make([]Interface, 0, len(nifs))
	for _, n := range nifs {
		addrs, err := n.Addrs()
		if err != nil {
			return nil, fmt.Errorf("addresses of interface %q: %w", n.Name, err)
		}
		ifc := Interface{
			Name:     n.Name,
			Up:       n.Flags&net.FlagUp != 0,
			Loopback: n.Flags&net.FlagLoopback != 0,
		}
		for _, a := range addrs {
			var ip net.IP
			switch v := a.(type) {
			case *net.IPNet:
				ip = v.IP
			case *net.IPAddr:
				ip = v.IP
			}
			if na, ok := netip.AddrFromSlice(ip); ok {
				ifc.Addrs = append(ifc.Addrs, na.Unmap())
			}
		}
		out = append(out, ifc)
	}
	return out, nil
}
