package pilot

import (
	"context"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nodepilot/pilot/discovery"
	"github.com/nodepilot/pilot/pilot/config"
)

type fakeRegistrar struct {
	discovery.Registrar
	addresses []string
}

func (f *fakeRegistrar) SetAddress(addr string) { f.addresses = append(f.addresses, addr) }

func (f *fakeRegistrar) Run(ctx context.Context) error { <-ctx.Done(); return nil }

// A service whose selected address changed is registered again with the new
// one; an unchanged or static one is left alone.
func TestRecheckAddresses(t *testing.T) {
	moved := &fakeRegistrar{}
	static := &fakeRegistrar{}
	app := &service{job: "app", registrar: moved, selector: discovery.AddressSelector{CIDR: "127.0.0.0/8"}, address: "10.0.0.1"}
	ss := []*service{app,
		{job: "other", registrar: static, selector: discovery.AddressSelector{Static: "10.0.0.2"}, address: "10.0.0.2"}}
	recheckAddresses(ss, slog.New(slog.DiscardHandler))
	if len(moved.addresses) != 1 || moved.addresses[0] != "127.0.0.1" || app.address != "127.0.0.1" {
		t.Fatalf("moved service: %v, now %s", moved.addresses, app.address)
	}
	recheckAddresses(ss, slog.New(slog.DiscardHandler))
	if len(moved.addresses) != 1 || len(static.addresses) != 0 {
		t.Fatalf("re-registered without a change: %v %v", moved.addresses, static.addresses)
	}
}

// A service's traefik block becomes traefik.* tags after the user's own,
// the same for every replica (the hostname only reaches the ID).
func TestDiscoveryServiceTraefikTags(t *testing.T) {
	sc := config.Service{Name: "web", Port: 3000, Tags: []string{"v1"}, Address: config.Address{Static: "10.0.0.5"},
		Traefik: &config.Traefik{Rule: "PathPrefix(`/`)", EntryPoints: []string{"web"}}}
	sel := discovery.AddressSelector{Static: "10.0.0.5"}
	a, err := discoveryService(sc, sel, "host-a")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := discoveryService(sc, sel, "host-b")
	if a.ID != "web-host-a-3000" || a.Address != "10.0.0.5" || a.Tags[0] != "v1" || !slices.Contains(a.Tags, "traefik.enable=true") ||
		!slices.Contains(a.Tags, "traefik.http.services.web.loadbalancer.server.port=3000") {
		t.Fatalf("service %+v", a)
	}
	if !slices.Equal(a.Tags, b.Tags) {
		t.Fatalf("replicas' tags differ:\n%v\n%v", a.Tags, b.Tags)
	}
}

// Errors built from the Consul client's and the address selection's own
// carry their prefix once: "consul: reading token file", never
// "consul: consul: …"; "jobs[0].service.address: no interface", never
// "address: address: …".
func TestServiceErrorsPrefixedOnce(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "token")
	c := newCore(Options{Log: slog.New(slog.DiscardHandler)})
	jobs := []config.Job{{Name: "app", Exec: []string{"true"}}}
	cfg := &config.Config{Consul: &config.Consul{Address: "127.0.0.1:1", TokenFile: missing}, Jobs: jobs}
	_, _, err := c.prepare(cfg)
	if want := `consul: reading token file "` + missing + `": no such file or directory`; err == nil || err.Error() != want {
		t.Errorf("missing token file: %v, want %s", err, want)
	}

	cfg = &config.Config{Consul: &config.Consul{Address: "127.0.0.1:1"}, Jobs: []config.Job{{Name: "app", Exec: []string{"true"},
		Service: &config.Service{Name: "web", Port: 3000, TTL: 10 * time.Second, Address: config.Address{Interface: "nosuch0"}}}}}
	_, _, err = c.prepare(cfg)
	if want := `jobs[0].service.address: no interface "nosuch0"`; err == nil || err.Error() != want {
		t.Errorf("unknown interface: %v, want %s", err, want)
	}
}

// The default service ID is NAME-HOSTNAME-PORT: two pilots on one host
// (ports differ) get two IDs, one pilot restarted keeps its own; an id:
// wins. pilot's own telemetry service follows the app's ID, or its own
// port without an app service.
func TestDefaultServiceIDs(t *testing.T) {
	sel := discovery.AddressSelector{Static: "10.0.0.5"}
	id := func(sc config.Service) string {
		t.Helper()
		svc, err := discoveryService(sc, sel, "host-a")
		if err != nil {
			t.Fatal(err)
		}
		return svc.ID
	}
	a := config.Service{Name: "web", Port: 3000}
	b := config.Service{Name: "web", Port: 3001}
	if id(a) != "web-host-a-3000" || id(b) != "web-host-a-3001" {
		t.Errorf("default IDs %q and %q", id(a), id(b))
	}
	explicit := config.Service{Name: "web", Port: 3000, ID: "web-1"}
	if id(explicit) != "web-1" {
		t.Errorf("explicit id became %q", id(explicit))
	}
	for _, c := range []struct {
		app  *config.Service
		port int
		want string
	}{
		{&a, 9090, "pilot-web-host-a-3000"},
		{&b, 9090, "pilot-web-host-a-3001"},
		{&explicit, 9090, "pilot-web-1"},
		{nil, 9090, "pilot-host-a-9090"},
		{nil, 9091, "pilot-host-a-9091"},
	} {
		if got := telemetryServiceID(c.app, "host-a", c.port); got != c.want {
			t.Errorf("telemetryServiceID(%v, %d) = %q, want %q", c.app, c.port, got, c.want)
		}
	}
}
