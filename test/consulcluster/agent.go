package consulcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/nodepilot/pilot/test/consulagent"
	"github.com/nodepilot/pilot/test/toolbin"
)

// Agent is one `consul agent` of a Cluster, server or client, on its own
// loopback address. Its methods are safe for concurrent use.
type Agent struct {
	Name   string // the Consul node name: server1…, client1…
	IP     string // the loopback alias it binds, advertises and serves HTTP on
	Server bool

	// Ports on IP. SerfWAN and RPC are 0 for a client (it opens neither).
	HTTP, SerfLAN, SerfWAN, RPC int
	// NodeID is the agent's -node-id, kept across restarts, wiped or not
	// (see Restart).
	NodeID string

	c       *Cluster
	dataDir string
	out     *toolbin.LockedBuffer
	api     *api.Client
	probe   *api.Client // the harness's: every request bounded
	httpc   *http.Client

	mu      sync.Mutex
	cmd     *exec.Cmd
	end     chan struct{} // closed when cmd has exited
	paused  bool
	stopped bool
}

// HTTPAddr is the agent's HTTP API address, IP:PORT, as CONSUL_HTTP_ADDR
// or api.Config.Address take it.
func (a *Agent) HTTPAddr() string { return net.JoinHostPort(a.IP, strconv.Itoa(a.HTTP)) }

// serfAddr is the agent's serf LAN address, IP:PORT, as -retry-join takes it.
func (a *Agent) serfAddr() string { return net.JoinHostPort(a.IP, strconv.Itoa(a.SerfLAN)) }

// raftAddr is a server's RPC (and Raft) address, as /v1/status/leader
// names the leader.
func (a *Agent) raftAddr() string { return net.JoinHostPort(a.IP, strconv.Itoa(a.RPC)) }

// API is a client of the agent's HTTP API. Bound its calls with
// QueryOptions.WithContext: it has no timeout of its own (blocking
// queries).
func (a *Agent) API() *api.Client { return a.api }

// Pid is the agent process's pid, 0 while it is not running.
func (a *Agent) Pid() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd == nil {
		return 0
	}
	return a.cmd.Process.Pid
}

// Running reports whether the process is up (it may be paused).
func (a *Agent) Running() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cmd != nil
}

// Paused reports whether the agent is stopped by Pause.
func (a *Agent) Paused() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.paused
}

// live reports whether the agent runs and is not paused: it can answer.
func (a *Agent) live() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cmd != nil && !a.paused
}

// Logs returns everything the agent printed, across restarts.
func (a *Agent) Logs() string { return a.out.String() }

func (a *Agent) args() []string {
	args := []string{"agent",
		"-node", a.Name, "-node-id", a.NodeID, "-datacenter", "dc1", "-data-dir", a.dataDir,
		"-bind", a.IP, "-advertise", a.IP, "-client", a.IP,
		"-http-port", strconv.Itoa(a.HTTP), "-serf-lan-port", strconv.Itoa(a.SerfLAN),
		"-grpc-port", "-1", "-grpc-tls-port", "-1", "-dns-port", "-1",
		"-encrypt", a.c.gossipKey,
		"-retry-interval", retryInterval.String(),
		"-log-level", "info",
		"-hcl", "disable_update_check = true", // no call home from a test
	}
	if a.Server {
		args = append(args, "-server", "-bootstrap-expect", strconv.Itoa(len(a.c.Servers)),
			"-serf-wan-port", strconv.Itoa(a.SerfWAN), "-server-port", strconv.Itoa(a.RPC),
			"-hcl", fmt.Sprintf("performance { raft_multiplier = %d }", a.c.raftMultiplier))
	}
	for _, s := range a.c.Servers {
		args = append(args, "-retry-join", s.serfAddr())
	}
	if a.c.hcl != "" {
		args = append(args, "-hcl", a.c.hcl)
	}
	return args
}

// start execs the agent; it does not wait for anything.
func (a *Agent) start() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopped {
		return fmt.Errorf("consulcluster: %s: stopped for good", a.Name)
	}
	if a.cmd != nil {
		return fmt.Errorf("consulcluster: %s: already running (pid %d)", a.Name, a.cmd.Process.Pid)
	}
	fmt.Fprintf(a.out, "=== consulcluster: starting %s at %s\n", a.Name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(a.c.bin, a.args()...)
	cmd.Stdout, cmd.Stderr = a.out, a.out
	// Its own process group (a signal to the test's group does not reach
	// it), and SIGKILL when the test process dies, whatever way it dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("consulcluster: %s: %w", a.Name, err)
	}
	end := make(chan struct{})
	go func() { _ = cmd.Wait(); close(end) }()
	a.cmd, a.end, a.paused = cmd, end, false
	return nil
}

// exited reports whether the process started last has ended by itself.
func (a *Agent) exited() bool {
	a.mu.Lock()
	end := a.end
	a.mu.Unlock()
	if end == nil {
		return false
	}
	select {
	case <-end:
		return true
	default:
		return false
	}
}

// Kill sends SIGKILL (a crash: no leave, no graceful anything) and waits
// for the process to be gone. The data dir stays: Restart(false) brings
// the same node back.
func (a *Agent) Kill() error {
	a.mu.Lock()
	cmd, end := a.cmd, a.end
	a.cmd, a.paused = nil, false
	a.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	_ = cmd.Process.Kill()
	select {
	case <-end:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("consulcluster: %s (pid %d) still there 10s after SIGKILL", a.Name, cmd.Process.Pid)
	}
	a.httpc.CloseIdleConnections()
	fmt.Fprintf(a.out, "=== consulcluster: killed %s at %s\n", a.Name, time.Now().Format(time.RFC3339Nano))
	return nil
}

// Restart starts the agent again on the same IP and ports (killing it
// first if it runs) and waits, at most RestartTimeout, until it is ready:
// it answers, knows the leader, and the live servers see it alive. With
// wipe it starts from an empty data dir: an agent that lost its state (no
// services, no checks, no serf snapshot), as after the loss of its volume.
//
// It keeps its node ID even so, as an agent does whose ID comes from its
// host (-node-id, or disable_host_node_id = false). An agent that came
// back under its old name with a new ID would be refused by the catalog
// ("Node name … is reserved by node …") for as long as the old node's
// serfHealth is not critical — and a node that comes back at the same
// address before it is detected as failed never is: its services would
// never reach the catalog, whatever pilot does.
func (a *Agent) Restart(wipe bool) error {
	if err := a.Kill(); err != nil {
		return err
	}
	if wipe {
		if err := emptyDir(a.dataDir); err != nil {
			return fmt.Errorf("consulcluster: %s: wiping its data dir: %w", a.Name, err)
		}
	}
	if err := a.start(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), RestartTimeout)
	defer cancel()
	err := poll(ctx, func(ctx context.Context) error {
		if a.exited() {
			return errExited
		}
		return a.c.ready(ctx, a)
	})
	if err != nil {
		return fmt.Errorf("consulcluster: %s not ready after restart: %w\n%s", a.Name, err, consulagent.Tail(a.Logs(), 3000))
	}
	return nil
}

// Pause sends SIGSTOP: the process stays, answers nothing and gossips
// nothing — to the others it is partitioned away. Resume undoes it.
func (a *Agent) Pause() error { return a.signal(syscall.SIGSTOP, true) }

// Resume sends SIGCONT to a paused agent.
func (a *Agent) Resume() error { return a.signal(syscall.SIGCONT, false) }

func (a *Agent) signal(sig syscall.Signal, paused bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd == nil {
		return fmt.Errorf("consulcluster: %s: not running", a.Name)
	}
	if err := syscall.Kill(-a.cmd.Process.Pid, sig); err != nil {
		return fmt.Errorf("consulcluster: %s: %v: %w", a.Name, sig, err)
	}
	a.paused = paused
	fmt.Fprintf(a.out, "=== consulcluster: %v to %s at %s\n", sig, a.Name, time.Now().Format(time.RFC3339Nano))
	return nil
}

// stop kills the agent for good.
func (a *Agent) stop() error {
	a.mu.Lock()
	a.stopped = true
	a.mu.Unlock()
	return a.Kill()
}

var errExited = errors.New("the agent exited")

// emptyDir removes everything inside dir, keeping dir.
func emptyDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}
