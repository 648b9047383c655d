package consulcluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nodepilot/pilot/test/consulcluster"
)

// The cluster comes up whole (StartT fails otherwise); a killed leader is
// replaced by another server, which every live server then names; the
// killed server comes back on its old state, and a client wiped of its
// state comes back on its old address and node ID.
func TestCluster(t *testing.T) {
	c := consulcluster.StartT(t, consulcluster.Options{})
	if len(c.Servers) != 3 || len(c.Clients) != 2 {
		t.Fatalf("%d servers, %d clients; want the defaults 3 and 2", len(c.Servers), len(c.Clients))
	}
	for i, a := range c.Agents() {
		if want := fmt.Sprintf("127.0.0.%d", 2+i); a.IP != want {
			t.Errorf("agent %d (%s) on %s, want %s", i, a.Name, a.IP, want)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	old, err := c.WaitLeader(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	if err := old.Kill(); err != nil {
		t.Fatal(err)
	}
	if old.Running() || old.Pid() != 0 {
		t.Fatalf("%s still running after Kill", old.Name)
	}
	l, err := c.WaitLeader(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("leader %s killed → %s elected after %s", old.Name, l.Name, time.Since(killed).Round(time.Millisecond))
	if got, err := c.Leader(ctx); err != nil || got != l {
		t.Errorf("Leader = %v, %v; want %s", got, err, l.Name)
	}
	if err := old.Restart(false); err != nil {
		t.Fatal(err)
	}

	client := c.Clients[0]
	pid := client.Pid()
	if err := client.Restart(true); err != nil {
		t.Fatal(err)
	}
	if client.Pid() == pid {
		t.Error("Restart kept the old process")
	}
	if self, err := client.API().Agent().Self(); err != nil || self["Config"]["NodeID"] != client.NodeID {
		t.Errorf("wiped client's node ID %v (%v), want %s", self["Config"]["NodeID"], err, client.NodeID)
	}
}
