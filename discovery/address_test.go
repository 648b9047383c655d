package discovery

import (
	"net/netip"
	"strings"
	"testing"
)

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func TestSelectAddress(t *testing.T) {
	ifaces := []Interface{
		{Name: "lo", Up: true, Loopback: true, Addrs: addrs("127.0.0.1", "::1")},
		{Name: "eth0", Up: true, Addrs: addrs("fe80::1", "169.254.1.1", "10.1.2.3", "10.1.2.4")},
		{Name: "eth1", Up: true, Addrs: addrs("fd00::5")},
		{Name: "eth2", Up: false, Addrs: addrs("192.168.7.7")},
		{Name: "eth3", Up: true, Addrs: addrs("::ffff:172.16.0.9")},
	}
	tests := []struct {
		name    string
		sel     AddressSelector
		ifaces  []Interface
		want    string
		wantErr string
	}{
		{name: "default first non-loopback ipv4", sel: AddressSelector{}, ifaces: ifaces, want: "10.1.2.3"},
		{name: "default skips down and loopback", ifaces: []Interface{ifaces[0], ifaces[3], ifaces[4]}, want: "172.16.0.9"},
		{name: "default none", ifaces: ifaces[:1], wantErr: "no non-loopback IPv4 address"},
		{name: "default empty list", ifaces: nil, wantErr: "no non-loopback IPv4 address"},
		{name: "interface", sel: AddressSelector{Interface: "eth0"}, ifaces: ifaces, want: "169.254.1.1"},
		{name: "interface down still chosen by name", sel: AddressSelector{Interface: "eth2"}, ifaces: ifaces, want: "192.168.7.7"},
		{name: "interface mapped v4", sel: AddressSelector{Interface: "eth3"}, ifaces: ifaces, want: "172.16.0.9"},
		{name: "interface without ipv4", sel: AddressSelector{Interface: "eth1"}, ifaces: ifaces, wantErr: `no IPv4 address on interface "eth1"`},
		{name: "interface missing", sel: AddressSelector{Interface: "eth9"}, ifaces: ifaces, wantErr: `no interface "eth9"`},
		{name: "cidr", sel: AddressSelector{CIDR: "10.0.0.0/8"}, ifaces: ifaces, want: "10.1.2.3"},
		{name: "cidr unmasked", sel: AddressSelector{CIDR: "10.1.2.4/32"}, ifaces: ifaces, want: "10.1.2.4"},
		{name: "cidr v6", sel: AddressSelector{CIDR: "fd00::/8"}, ifaces: ifaces, want: "fd00::5"},
		{name: "cidr mapped", sel: AddressSelector{CIDR: "172.16.0.0/12"}, ifaces: ifaces, want: "172.16.0.9"},
		{name: "cidr no match", sel: AddressSelector{CIDR: "192.0.2.0/24"}, ifaces: ifaces, wantErr: "no address in 192.0.2.0/24"},
		{name: "cidr invalid", sel: AddressSelector{CIDR: "10.0.0.0/99"}, ifaces: ifaces, wantErr: `cidr "10.0.0.0/99"`},
		{name: "static ip", sel: AddressSelector{Static: "1.2.3.4"}, ifaces: nil, want: "1.2.3.4"},
		{name: "static host", sel: AddressSelector{Static: "web.internal"}, want: "web.internal"},
		{name: "static blank", sel: AddressSelector{Static: "  "}, wantErr: "not an address"},
		{name: "two set", sel: AddressSelector{Interface: "eth0", Static: "1.2.3.4"}, ifaces: ifaces, wantErr: "at most one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SelectAddress(tt.sel, tt.ifaces)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("SelectAddress() = %q, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("SelectAddress() = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestSystemInterfaces(t *testing.T) {
	ifaces, err := SystemInterfaces()
	if err != nil {
		t.Fatal(err)
	}
	var sawLoopback bool
	for _, ifc := range ifaces {
		if ifc.Loopback {
			sawLoopback = true
		}
	}
	if !sawLoopback {
		t.Errorf("no loopback interface among %+v", ifaces)
	}
	if _, err := SelectAddress(AddressSelector{CIDR: "127.0.0.0/8"}, ifaces); err != nil {
		t.Errorf("loopback by cidr: %v", err)
	}
}

func TestServiceValidate(t *testing.T) {
	ok := Service{Name: "web", Address: "10.0.0.1", Port: 3000, TTL: 15e9}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, mut := range []func(*Service){
		func(s *Service) { s.Name = "" },
		func(s *Service) { s.Address = "" },
		func(s *Service) { s.Port = 0 },
		func(s *Service) { s.Port = 70000 },
		func(s *Service) { s.TTL = 0 },
		func(s *Service) { s.DeregisterCriticalAfter = -1 },
	} {
		s := ok
		mut(&s)
		if err := s.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want error", s)
		}
	}
}
