package pilot

import (
	"context"
	"log/slog"
	"testing"

	"github.com/nodepilot/pilot/discovery"
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
