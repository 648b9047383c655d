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
	ss := services{
		"app":   {job: "app", registrar: moved, selector: discovery.AddressSelector{CIDR: "127.0.0.0/8"}, address: "10.0.0.1"},
		"other": {job: "other", registrar: static, selector: discovery.AddressSelector{Static: "10.0.0.2"}, address: "10.0.0.2"},
	}
	ss.recheckAddresses(slog.New(slog.DiscardHandler))
	if len(moved.addresses) != 1 || moved.addresses[0] != "127.0.0.1" || ss["app"].address != "127.0.0.1" {
		t.Fatalf("moved service: %v, now %s", moved.addresses, ss["app"].address)
	}
	ss.recheckAddresses(slog.New(slog.DiscardHandler))
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

// The debounce applies the first snapshot at once, then acts once a burst
// has been quiet for min, and at the latest max after it began, always with
// the newest snapshot.
func TestWatchDebounce(t *testing.T) {
	w := &watch{cfg: config.Watch{Debounce: config.Debounce{Min: 60 * time.Millisecond, Max: 200 * time.Millisecond}}}
	ctx, cancel := context.WithCancel(context.Background())
	updates := make(chan discovery.Snapshot)
	applied := make(chan int, 10)
	done := make(chan struct{})
	go func() {
		w.debounce(ctx, updates, func(s discovery.Snapshot) { applied <- len(s.Instances) })
		close(done)
	}()
	defer func() { cancel(); <-done }()
	send := func(n int) { updates <- discovery.Snapshot{Instances: make([]discovery.Instance, n)} }

	send(0) // the first snapshot (TestWatchFirstSnapshotNotDebounced)
	<-applied

	// A change every 20 ms never leaves 60 ms of quiet: max cuts in.
	began := time.Now()
	for n := 1; n <= 15; n++ {
		send(n)
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case n := <-applied:
		if took := time.Since(began); n >= 15 {
			t.Fatalf("applied only after the burst (%v); max did not cut in", took)
		}
	default:
		t.Fatal("nothing applied within a 300 ms burst with max 200ms")
	}
	// A lone change is applied once quiet, with the newest snapshot.
	for len(applied) > 0 {
		<-applied
	}
	time.Sleep(100 * time.Millisecond)
	for len(applied) > 0 {
		<-applied
	}
	send(42)
	select {
	case n := <-applied:
		if n != 42 {
			t.Fatalf("applied %d, want the newest 42", n)
		}
	case <-time.After(time.Second):
		t.Fatal("a lone change was never applied")
	}
}

// The first snapshot is the state at start, not a burst: it is applied at
// once, whatever debounce.min says.
func TestWatchFirstSnapshotNotDebounced(t *testing.T) {
	w := &watch{cfg: config.Watch{Debounce: config.Debounce{Min: time.Minute, Max: time.Hour}}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	updates := make(chan discovery.Snapshot, 1)
	applied := make(chan struct{}, 1)
	go w.debounce(ctx, updates, func(discovery.Snapshot) { applied <- struct{}{} })
	updates <- discovery.Snapshot{}
	select {
	case <-applied:
	case <-time.After(10 * time.Second):
		t.Fatal("the first snapshot waited for debounce.min")
	}
}

// Errors built from the Consul client's and the address selection's own
// carry their prefix once: "consul: reading token file", never
// "consul: consul: …"; "jobs[0].service.address: no interface", never
// "address: address: …".
func TestServiceErrorsPrefixedOnce(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "token")
	cfg := config.Config{Consul: &config.Consul{Address: "127.0.0.1:1", TokenFile: missing}}
	_, _, err := buildServices(cfg, slog.New(slog.DiscardHandler), nil)
	if want := `consul: reading token file "` + missing + `": no such file or directory`; err == nil || err.Error() != want {
		t.Errorf("missing token file: %v, want %s", err, want)
	}

	cfg = config.Config{Consul: &config.Consul{Address: "127.0.0.1:1"}, Jobs: []config.Job{{Name: "app",
		Service: &config.Service{Name: "web", Port: 3000, TTL: 10 * time.Second, Address: config.Address{Interface: "nosuch0"}}}}}
	_, _, err = buildServices(cfg, slog.New(slog.DiscardHandler), nil)
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
