package consul

// Two instances under one service ID, against the real agent: a live
// holder is never replaced (one clear error names both, and the newcomer
// registers once the holder is gone); a stale leftover is replaced
// quietly; this instance's own earlier registration is simply taken over.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nodepilot/pilot/discovery"
)

// registerByHand registers id for name at addr:port with a TTL check
// "service:id" in status, as another pilot (or a leftover) would have.
func registerByHand(t *testing.T, a *testAgent, id, name, addr string, port int, status string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"ID": id, "Name": name, "Address": addr, "Port": port,
		"Check": map[string]any{"CheckID": "service:" + id, "TTL": "30s", "Status": status}})
	req, _ := http.NewRequest(http.MethodPut, "http://"+a.Addr()+"/v1/agent/service/register", bytes.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("register %s by hand: %s", id, resp.Status)
	}
	t.Cleanup(func() {
		req, _ := http.NewRequest(http.MethodPut, "http://"+a.Addr()+"/v1/agent/service/deregister/"+id, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	})
}

// heldAddress is ADDR:PORT of what the agent holds under id ("" for none).
func heldAddress(a *testAgent, id string) string {
	var s struct {
		Address string
		Port    int
	}
	if code, err := a.Get("/v1/agent/service/"+id, &s); err != nil || code != 200 {
		return ""
	}
	return fmt.Sprintf("%s:%d", s.Address, s.Port)
}

func count(logs, re string) int { return len(regexp.MustCompile(re).FindAllStringIndex(logs, -1)) }

// A second instance with the ID of a live one stays out: one error names
// both instances, the holder keeps the ID and its check, the newcomer's
// Deregister leaves the holder alone, and it registers once the holder is
// gone.
func TestIDHeldByLiveInstance(t *testing.T) {
	a := needAgent(t)
	first := newService(3 * time.Second)
	second := first
	second.Address, second.Port = "10.9.8.6", first.Port+1000
	h1 := newHarness(t, Config{Address: a.Addr()}, first)
	h1.run()
	h1.r.SetStatus(discovery.Passing, "ok")
	waitFor(t, 5*time.Second, "the first instance registered", registered(t, a, first.Name, true))

	h2 := newHarness(t, Config{Address: a.Addr()}, second)
	h2.run()
	h2.r.SetStatus(discovery.Passing, "ok")
	want := fmt.Sprintf(`level=ERROR msg="consul: service ID %s is already registered by 10.9.8.7:%d; this instance is 10.9.8.6:%d `+
		`and stays out of Consul while that one is alive: two instances with one ID replace each other — set a unique id or leave it out"`,
		first.ID, first.Port, second.Port)
	waitFor(t, 5*time.Second, "the collision logged", func() bool { return strings.Contains(h2.logs.String(), want) })
	// Three more heartbeats of the newcomer: the holder stays, passing,
	// and the error is not repeated.
	holdFor(t, 3*h2.r.HeartbeatInterval(), "the holder keeps the ID", func() bool {
		return heldAddress(a, first.ID) == fmt.Sprintf("10.9.8.7:%d", first.Port) && registered(t, a, first.Name, true)()
	})
	if n := count(h2.logs.String(), "level=ERROR"); n != 1 {
		t.Errorf("%d ERROR lines, want one:\n%s", n, h2.logs)
	}
	if reg := h2.r.Registration(); reg.Registered || reg.HeldBy != fmt.Sprintf("10.9.8.7:%d", first.Port) {
		t.Errorf("newcomer's registration = %+v, want not registered, held by the first", reg)
	}

	// The holder leaves: the newcomer takes the ID within two heartbeats.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := h1.record(h1.r.Deregister(ctx)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*h2.r.HeartbeatInterval()+time.Second, "the newcomer registered", func() bool {
		return heldAddress(a, first.ID) == fmt.Sprintf("10.9.8.6:%d", second.Port) && registered(t, a, first.Name, true)()
	})
	if reg := h2.r.Registration(); reg.HeldBy != "" {
		t.Errorf("still held by %q after registering", reg.HeldBy)
	}
}

// The newcomer never deregisters an ID another instance holds.
func TestIDHeldByLiveInstanceNotDeregistered(t *testing.T) {
	a := needAgent(t)
	svc := newService(3 * time.Second)
	registerByHand(t, a, svc.ID, svc.Name, "10.1.1.1", 4000, "passing")
	h := newHarness(t, Config{Address: a.Addr()}, svc)
	h.run()
	h.r.SetStatus(discovery.Passing, "ok")
	waitFor(t, 5*time.Second, "the collision logged", func() bool { return strings.Contains(h.logs.String(), "is already registered by 10.1.1.1:4000") })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := h.record(h.r.Deregister(ctx)); err != nil {
		t.Fatal(err)
	}
	if got := heldAddress(a, svc.ID); got != "10.1.1.1:4000" {
		t.Fatalf("after the newcomer's Deregister the agent holds %q, want the other instance 10.1.1.1:4000", got)
	}
}

// A leftover whose check is critical (this instance's previous life, at
// another address) is replaced quietly: an info line, no error.
func TestStaleRegistrationReplaced(t *testing.T) {
	a := needAgent(t)
	svc := newService(3 * time.Second)
	registerByHand(t, a, svc.ID, svc.Name, "10.1.1.2", 4001, "critical")
	h := newHarness(t, Config{Address: a.Addr()}, svc)
	h.run()
	h.r.SetStatus(discovery.Passing, "ok")
	waitFor(t, 5*time.Second, "registered over the leftover", registered(t, a, svc.Name, true))
	if got := heldAddress(a, svc.ID); got != fmt.Sprintf("%s:%d", svc.Address, svc.Port) {
		t.Errorf("agent holds %q", got)
	}
	waitFor(t, time.Second, "the replacement logged", func() bool {
		return strings.Contains(h.logs.String(), `level=INFO msg="consul: replacing a stale registration of this service ID" `+
			`service=`+svc.Name+` service_id=`+svc.ID+` held_by=10.1.1.2:4001 status=critical`)
	})
	if n := count(h.logs.String(), "level=(ERROR|WARN)"); n != 0 {
		t.Errorf("warnings or errors replacing a stale leftover:\n%s", h.logs)
	}
}

// This instance's own registration (same address and port, e.g. pilot
// restarted in the same container) is taken over without a word.
func TestOwnRegistrationTakenOver(t *testing.T) {
	a := needAgent(t)
	svc := newService(3 * time.Second)
	registerByHand(t, a, svc.ID, svc.Name, svc.Address, svc.Port, "passing")
	h := newHarness(t, Config{Address: a.Addr()}, svc)
	h.run()
	h.r.SetStatus(discovery.Passing, "ok")
	waitFor(t, 5*time.Second, "registered", func() bool { return h.r.Registration().Registered })
	if st := h.r.Registration().Status; st != discovery.Passing {
		t.Errorf("registered with status %q, want passing", st)
	}
	if n := count(h.logs.String(), "level=(ERROR|WARN)|stale"); n != 0 {
		t.Errorf("taking over its own registration was reported:\n%s", h.logs)
	}
}

// Two instances that register at the same moment both find the ID free;
// the last write wins. The loser learns it at its next heartbeat, says so
// and stops touching the winner's check.
func TestIDTakenAfterRegistering(t *testing.T) {
	a := needAgent(t)
	svc := newService(3 * time.Second)
	h := newHarness(t, Config{Address: a.Addr()}, svc)
	h.run()
	h.r.SetStatus(discovery.Passing, "ok")
	waitFor(t, 5*time.Second, "registered", func() bool { return h.r.Registration().Registered })
	registerByHand(t, a, svc.ID, svc.Name, "10.1.1.3", 4002, "passing") // the other write, just after ours
	waitFor(t, 2*h.r.HeartbeatInterval()+time.Second, "the loss noticed", func() bool {
		return strings.Contains(h.logs.String(), "is already registered by 10.1.1.3:4002")
	})
	if reg := h.r.Registration(); reg.Registered || reg.HeldBy != "10.1.1.3:4002" {
		t.Errorf("registration = %+v, want not registered, held by 10.1.1.3:4002", reg)
	}
	if got := heldAddress(a, svc.ID); got != "10.1.1.3:4002" {
		t.Errorf("agent holds %q, want the winner", got)
	}
}
