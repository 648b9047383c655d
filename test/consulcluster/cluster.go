package consulcluster

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/nodepilot/pilot/test/consulagent"
	"github.com/nodepilot/pilot/test/toolbin"
)

const (
	// StartTimeout bounds Start, ports retries included.
	StartTimeout = 90 * time.Second
	// RestartTimeout bounds Agent.Restart's wait for the agent to be ready.
	RestartTimeout = 60 * time.Second
	// retryInterval is -retry-interval: Consul's default (30 s) would leave
	// an agent whose first join attempt came before the servers listened
	// out of the cluster for half a minute.
	retryInterval = time.Second
	// pollInterval paces the readiness and leader polls.
	pollInterval = 100 * time.Millisecond
	// memberAlive is serf's MemberStatus for an alive member.
	memberAlive = 1
)

// Options says what cluster to start. Zero values take the defaults.
type Options struct {
	// Servers is the number of server agents (-bootstrap-expect), default 3.
	Servers int
	// Clients is the number of client agents, default 2.
	Clients int
	// FirstIP is the first agent's loopback address, default 127.0.0.2:
	// agent i (servers first, then clients) gets FirstIP+i.
	FirstIP string
	// RaftMultiplier is the servers' performance.raft_multiplier, default 1
	// (HashiCorp's recommendation for production; Consul's own default is
	// 5). See the package documentation.
	RaftMultiplier int
	// HCL, when set, is extra agent configuration given to every agent
	// (-hcl), e.g. `limits { http_max_conns_per_client = 1000 }`.
	HCL string
	// Logf, when set, receives the harness's progress lines (t.Logf).
	Logf func(format string, args ...any)
}

// Cluster is one Consul datacenter of real agents on loopback aliases.
type Cluster struct {
	Servers, Clients []*Agent

	bin            string
	root           string // holds every agent's data dir
	gossipKey      string
	raftMultiplier int
	hcl            string
	logf           func(string, ...any)
	stopOnce       sync.Once
}

// Start starts the cluster and waits, at most StartTimeout, until it is
// whole: a leader elected, every agent alive to the servers and registered
// in the catalog, and every agent knowing the leader. The caller must Stop
// it. When the consul binary cannot be had the error satisfies
// toolbin.Unavailable; other errors carry the agents' log tails.
func Start(ctx context.Context, o Options) (*Cluster, error) {
	if o.Servers == 0 {
		o.Servers = 3
	}
	if o.Clients == 0 {
		o.Clients = 2
	}
	if o.FirstIP == "" {
		o.FirstIP = "127.0.0.2"
	}
	if o.RaftMultiplier == 0 {
		o.RaftMultiplier = 1
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	first, err := netip.ParseAddr(o.FirstIP)
	if err != nil || !first.Is4() || !first.IsLoopback() {
		return nil, fmt.Errorf("consulcluster: FirstIP %q: want an IPv4 loopback address (127.x.y.z)", o.FirstIP)
	}
	if o.Servers < 1 || o.Clients < 0 {
		return nil, fmt.Errorf("consulcluster: %d servers, %d clients: want ≥ 1 server and ≥ 0 clients", o.Servers, o.Clients)
	}
	bin, err := consulagent.Consul.Path()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, StartTimeout)
	defer cancel()
	began := time.Now()
	for attempt := 1; ; attempt++ {
		c, err := start(ctx, o, first, bin)
		if err == nil {
			leader, _ := c.Leader(ctx)
			o.Logf("consulcluster: %d servers + %d clients up in %s (leader %s, raft_multiplier %d)",
				o.Servers, o.Clients, time.Since(began).Round(time.Millisecond), leader.name(), o.RaftMultiplier)
			return c, nil
		}
		// Free ports are only free until someone binds them: another
		// test binary may have taken one in between. Fresh ports, again.
		if !errors.Is(err, errPortTaken) || attempt == 3 || ctx.Err() != nil {
			return nil, err
		}
		o.Logf("consulcluster: attempt %d: %v; again on fresh ports", attempt, err)
	}
}

var errPortTaken = errors.New("a port was taken before the agent bound it")

// start is one attempt of Start.
func start(ctx context.Context, o Options, first netip.Addr, bin string) (*Cluster, error) {
	root, err := os.MkdirTemp("", "consulcluster-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{bin: bin, root: root, gossipKey: newGossipKey(), raftMultiplier: o.RaftMultiplier, hcl: o.HCL, logf: o.Logf}
	ip := first
	for i := range o.Servers + o.Clients {
		server := i < o.Servers
		a := &Agent{IP: ip.String(), Server: server, NodeID: newNodeID(), c: c, out: &toolbin.LockedBuffer{}}
		ip = ip.Next()
		nports := 2 // HTTP, serf LAN
		if server {
			a.Name = fmt.Sprintf("server%d", i+1)
			nports = 4 // and serf WAN, server RPC
		} else {
			a.Name = fmt.Sprintf("client%d", i-o.Servers+1)
		}
		ports, err := consulagent.FreePortsOn(a.IP, nports)
		if err != nil {
			c.Stop()
			return nil, fmt.Errorf("consulcluster: free ports on %s: %w", a.IP, err)
		}
		a.HTTP, a.SerfLAN = ports[0], ports[1]
		if server {
			a.SerfWAN, a.RPC = ports[2], ports[3]
		}
		a.dataDir = fmt.Sprintf("%s/%s", root, a.Name)
		if err := os.Mkdir(a.dataDir, 0o700); err != nil {
			c.Stop()
			return nil, err
		}
		transport := http.DefaultTransport.(*http.Transport).Clone()
		a.httpc = &http.Client{Transport: transport}
		a.api, err = api.NewClient(&api.Config{Address: a.HTTPAddr(), HttpClient: a.httpc})
		if err == nil {
			// Not every API call takes a context (Members): a request to
			// an agent that hangs must still end.
			a.probe, err = api.NewClient(&api.Config{Address: a.HTTPAddr(),
				HttpClient: &http.Client{Transport: transport, Timeout: 3 * time.Second}})
		}
		if err != nil {
			c.Stop()
			return nil, err
		}
		if server {
			c.Servers = append(c.Servers, a)
		} else {
			c.Clients = append(c.Clients, a)
		}
	}
	for _, a := range c.Agents() {
		if err := a.start(); err != nil {
			c.Stop()
			return nil, err
		}
	}
	err = poll(ctx, func(ctx context.Context) error {
		for _, a := range c.Agents() {
			if a.exited() {
				if strings.Contains(a.Logs(), "address already in use") {
					return fmt.Errorf("%s: %w", a.Name, errPortTaken)
				}
				return fmt.Errorf("%s: %w", a.Name, errExited)
			}
		}
		for _, a := range c.Agents() {
			if err := c.ready(ctx, a); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		err = fmt.Errorf("consulcluster: not up: %w\n%s", err, c.LogTails(2000))
		c.Stop()
		return nil, err
	}
	return c, nil
}

// newGossipKey is a fresh -encrypt key: no agent of another cluster (or of
// an earlier attempt, or another test binary) can ever join this one.
func newGossipKey() string {
	var k [32]byte
	_, _ = rand.Read(k[:])
	return base64.StdEncoding.EncodeToString(k[:])
}

// newNodeID is a random node ID (a UUID, as Consul makes them).
func newNodeID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// StartT starts a cluster for this test (default Options fields as in
// Start; Logf defaults to tb.Logf), stopped at its cleanup, with every
// agent's log tail logged when the test failed. A missing consul binary
// fails the test (toolbin's policy: a test that skips proves nothing).
func StartT(tb testing.TB, o Options) *Cluster {
	tb.Helper()
	if o.Logf == nil {
		o.Logf = tb.Logf
	}
	c, err := Start(context.Background(), o)
	consulagent.Consul.Require(tb, err)
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("consul agents' logs (tails):\n%s", c.LogTails(4000))
		}
		c.Stop()
	})
	return c
}

// Agents lists the servers, then the clients.
func (c *Cluster) Agents() []*Agent {
	return append(append([]*Agent(nil), c.Servers...), c.Clients...)
}

// Stop kills every agent and removes their data dirs. It may be called
// more than once.
func (c *Cluster) Stop() {
	c.stopOnce.Do(func() {
		var wg sync.WaitGroup
		for _, a := range c.Agents() {
			wg.Go(func() {
				if err := a.stop(); err != nil {
					c.logf("consulcluster: %v", err)
				}
			})
		}
		wg.Wait()
		if err := os.RemoveAll(c.root); err != nil {
			c.logf("consulcluster: removing %s: %v", c.root, err)
		}
	})
}

// LogTails is the last n bytes of each agent's log, under its name.
func (c *Cluster) LogTails(n int) string {
	var b strings.Builder
	for _, a := range c.Agents() {
		fmt.Fprintf(&b, "--- %s (%s) ---\n%s\n", a.Name, a.HTTPAddr(), consulagent.Tail(a.Logs(), n))
	}
	return b.String()
}

// Leader returns the current raft leader as the first live server that
// answers names it; an error when none does (no leader, or all down).
func (c *Cluster) Leader(ctx context.Context) (*Agent, error) {
	var errs []error
	for _, s := range c.Servers {
		if !s.live() {
			continue
		}
		l, err := c.leaderAsSeenBy(ctx, s)
		if err == nil {
			return l, nil
		}
		errs = append(errs, err)
	}
	if errs == nil {
		return nil, errors.New("consulcluster: no live server to ask for the leader")
	}
	return nil, errors.Join(errs...)
}

// WaitLeader waits until every live server names the same leader, live and
// other than not (nil: any), and returns it.
func (c *Cluster) WaitLeader(ctx context.Context, not *Agent) (*Agent, error) {
	var leader *Agent
	err := poll(ctx, func(ctx context.Context) error {
		leader = nil
		for _, s := range c.Servers {
			if !s.live() {
				continue
			}
			l, err := c.leaderAsSeenBy(ctx, s)
			switch {
			case err != nil:
				return err
			case l == not:
				return fmt.Errorf("%s still names %s the leader", s.Name, l.Name)
			case !l.live():
				return fmt.Errorf("%s names %s the leader, which is down", s.Name, l.Name)
			case leader != nil && l != leader:
				return fmt.Errorf("servers disagree: %s and %s", leader.Name, l.Name)
			}
			leader = l
		}
		if leader == nil {
			return errors.New("no live server")
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("consulcluster: waiting for a leader: %w", err)
	}
	return leader, nil
}

// leaderAsSeenBy asks server s for the leader.
func (c *Cluster) leaderAsSeenBy(ctx context.Context, s *Agent) (*Agent, error) {
	addr, err := s.probe.Status().LeaderWithQueryOptions((&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Name, err)
	}
	if addr == "" {
		return nil, fmt.Errorf("%s: no leader", s.Name)
	}
	for _, l := range c.Servers {
		if l.raftAddr() == addr {
			return l, nil
		}
	}
	return nil, fmt.Errorf("%s names %s the leader: not a server of this cluster", s.Name, addr)
}

// ready returns nil when agent a answers, knows a leader, and a live
// server sees it alive and holds its node, under its node ID, with a
// passing serfHealth in the catalog.
func (c *Cluster) ready(ctx context.Context, a *Agent) error {
	if !a.live() {
		return fmt.Errorf("%s: not running", a.Name)
	}
	q := (&api.QueryOptions{}).WithContext(ctx)
	if l, err := a.probe.Status().LeaderWithQueryOptions(q); err != nil || l == "" {
		return fmt.Errorf("%s: no leader known (%v)", a.Name, err)
	}
	s := a // a server asks itself only when it is the one live server
	for _, cand := range c.Servers {
		if cand != a && cand.live() {
			s = cand
			break
		}
	}
	if !s.Server {
		return fmt.Errorf("%s: no live server to ask about it", a.Name)
	}
	members, err := s.probe.Agent().Members(false)
	if err != nil {
		return fmt.Errorf("%s: members: %w", s.Name, err)
	}
	alive := false
	for _, m := range members {
		if m.Name == a.Name && m.Addr == a.IP && m.Status == memberAlive {
			alive = true
		}
	}
	if !alive {
		return fmt.Errorf("%s does not see %s alive", s.Name, a.Name)
	}
	node, _, err := s.probe.Catalog().Node(a.Name, q)
	if err != nil {
		return fmt.Errorf("%s: catalog node %s: %w", s.Name, a.Name, err)
	}
	if node == nil || node.Node == nil || node.Node.ID != a.NodeID {
		return fmt.Errorf("%s: %s not in the catalog under node ID %s yet", s.Name, a.Name, a.NodeID)
	}
	checks, _, err := s.probe.Health().Node(a.Name, q)
	if err != nil {
		return fmt.Errorf("%s: node health of %s: %w", s.Name, a.Name, err)
	}
	for _, ch := range checks {
		if ch.CheckID == "serfHealth" && ch.Status == api.HealthPassing {
			return nil
		}
	}
	return fmt.Errorf("%s: %s has no passing serfHealth in the catalog", s.Name, a.Name)
}

// poll runs f every pollInterval until it returns nil or ctx ends; then
// the error is f's last one.
func poll(ctx context.Context, f func(ctx context.Context) error) error {
	for {
		reqCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := f(reqCtx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(pollInterval):
		}
	}
}

// name is a's name, "none" for nil.
func (a *Agent) name() string {
	if a == nil {
		return "none"
	}
	return a.Name
}
