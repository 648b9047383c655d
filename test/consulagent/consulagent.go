// Package consulagent runs a real Consul agent (`consul agent -dev`) for
// tests and benchmarks: on free loopback ports, killable (a crash: dev mode
// loses all state) and restartable on the same ports.
//
// The binary is $PILOT_CONSUL_BIN when set, else the one test/consul.sh
// builds (pinned, cached under .cache/consul; the first build takes several
// minutes; see test/toolbin). When it cannot be had, Start's error satisfies
// toolbin.Unavailable, and StartT and Shared fail the test.
//
//	func TestMain(m *testing.M) {           // one agent per test binary
//		a, err := consulagent.Start()
//		...
//	}
//	a := consulagent.Shared(t)             // or: one lazily started agent per process
//	a := consulagent.StartT(t)             // or: one agent for this test only
package consulagent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nodepilot/pilot/test/toolbin"
)

// Consul is the agent's binary: $PILOT_CONSUL_BIN, or what
// `bash test/consul.sh` prints.
var Consul = toolbin.Tool{Name: "consul", What: "consul agent", EnvVar: "PILOT_CONSUL_BIN", Script: "consul.sh"}

// Agent is one `consul agent -dev` on loopback. Its methods are safe for
// concurrent use.
type Agent struct {
	bin                                string
	http, serfLAN, serfWAN, serverPort int
	client                             *http.Client
	out                                *toolbin.LockedBuffer

	mu      sync.Mutex
	cmd     *exec.Cmd
	end     chan struct{}
	stopped bool
}

// Start finds the binary, starts an agent on free ports and waits until it
// has a leader (at most 60 s). The caller must Stop it. On failure the error
// carries the agent's log tail.
func Start() (*Agent, error) {
	bin, err := Consul.Path()
	if err != nil {
		return nil, err
	}
	a, err := New(bin)
	if err != nil {
		return nil, err
	}
	if err := a.Up(); err != nil {
		a.Stop()
		return nil, err
	}
	return a, nil
}

// New returns an agent for bin on fresh free ports, not started yet.
func New(bin string) (*Agent, error) {
	ports, err := FreePorts(4)
	if err != nil {
		return nil, err
	}
	return &Agent{
		bin: bin, http: ports[0], serfLAN: ports[1], serfWAN: ports[2], serverPort: ports[3],
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}},
		out:    &toolbin.LockedBuffer{},
	}, nil
}

// StartT starts an agent for this test only, stopped at its cleanup; it
// fails the test when it cannot.
func StartT(tb testing.TB) *Agent {
	tb.Helper()
	a, err := Start()
	Consul.Require(tb, err)
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("consul agent log (tail):\n%s", Tail(a.Logs(), 4000))
		}
		a.Stop()
	})
	return a
}

var (
	shared    *Agent
	sharedErr error
	sharedOne sync.Once
)

// Shared returns the process's one agent, started on first use; it fails
// the test when it cannot, and restarts the agent when an
// earlier test left it down. Nothing stops it but the end of the process (the agent gets SIGKILL
// when its parent dies); call StopShared from a TestMain to stop it earlier.
func Shared(tb testing.TB) *Agent {
	tb.Helper()
	sharedOne.Do(func() { shared, sharedErr = Start() })
	Consul.Require(tb, sharedErr)
	if !shared.Running() {
		if err := shared.Up(); err != nil {
			tb.Fatalf("restarting the agent an earlier test left down: %v", err)
		}
	}
	return shared
}

// StopShared stops Shared's agent if it was started.
func StopShared() {
	if shared != nil {
		shared.Stop()
	}
}

// FreePorts returns n distinct ports of 127.0.0.1 free for both TCP and
// UDP (serf uses both).
func FreePorts(n int) ([]int, error) { return FreePortsOn("127.0.0.1", n) }

// FreePortsOn returns n distinct ports of the address ip (a loopback alias
// such as 127.0.0.3: each has ports of its own) free for both TCP and UDP.
// They are free when it returns; a process that binds one later may still
// lose a race for it.
func FreePortsOn(ip string, n int) ([]int, error) {
	var ports []int
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	for len(ports) < n {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			return nil, err
		}
		closers = append(closers, l)
		p := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort(ip, strconv.Itoa(p)))
		if err != nil {
			continue // UDP side taken; try another
		}
		closers = append(closers, u)
		ports = append(ports, p)
	}
	return ports, nil
}

// Addr is the agent's HTTP address, host:port (as CONSUL_HTTP_ADDR).
func (a *Agent) Addr() string { return fmt.Sprintf("127.0.0.1:%d", a.http) }

// Running reports whether the agent process is up (started and not killed).
func (a *Agent) Running() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cmd != nil
}

// Up starts the agent if it is not running and waits for a leader.
func (a *Agent) Up() error {
	a.mu.Lock()
	if a.stopped {
		a.mu.Unlock()
		return errors.New("consulagent: agent stopped for good")
	}
	if a.cmd != nil {
		a.mu.Unlock()
		return nil
	}
	cmd := exec.Command(a.bin, "agent", "-dev",
		"-client", "127.0.0.1", "-bind", "127.0.0.1",
		"-node", "pilot-test",
		"-http-port", fmt.Sprint(a.http),
		"-serf-lan-port", fmt.Sprint(a.serfLAN),
		"-serf-wan-port", fmt.Sprint(a.serfWAN),
		"-server-port", fmt.Sprint(a.serverPort),
		"-grpc-port", "-1", "-grpc-tls-port", "-1", "-dns-port", "-1",
		"-log-level", "warn",
	)
	cmd.Stdout, cmd.Stderr = a.out, a.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		a.mu.Unlock()
		return err
	}
	end := make(chan struct{})
	go func() { _ = cmd.Wait(); close(end) }()
	a.cmd, a.end = cmd, end
	a.mu.Unlock()

	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-end:
			a.mu.Lock()
			if a.cmd == cmd {
				a.cmd = nil
			}
			a.mu.Unlock()
			return fmt.Errorf("agent exited during startup: %s", Tail(a.Logs(), 2000))
		default:
		}
		if leader, err := a.Leader(); err == nil && leader != "" {
			return nil
		}
		time.Sleep(20 * time.Millisecond) // poll interval, bounded by the deadline
	}
	a.Kill()
	return fmt.Errorf("no leader within 60s: %s", Tail(a.Logs(), 2000))
}

// Leader returns the agent's view of the raft leader ("" while none).
func (a *Agent) Leader() (string, error) {
	var s string
	_, err := a.Get("/v1/status/leader", &s)
	return s, err
}

// Kill SIGKILLs the agent (a crash: dev mode loses every registration) and
// waits until it is gone. Up or Restart bring it back on the same ports.
func (a *Agent) Kill() {
	a.mu.Lock()
	cmd, end := a.cmd, a.end
	a.cmd = nil
	a.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	_ = cmd.Process.Kill()
	<-end
	a.client.CloseIdleConnections()
}

// Restart kills the agent and starts a fresh one (no state) on the same
// ports, waiting for its leader.
func (a *Agent) Restart() error {
	a.Kill()
	return a.Up()
}

// Stop ends the agent for good: SIGTERM, then SIGKILL after 10 s. It also
// closes the agent's idle HTTP connections (no goroutine left behind).
func (a *Agent) Stop() {
	a.mu.Lock()
	cmd, end := a.cmd, a.end
	a.stopped = true
	a.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-end:
		case <-time.After(10 * time.Second):
		}
	}
	a.Kill()
	a.client.CloseIdleConnections()
}

// Logs returns everything the agent printed (at log level warn), across
// restarts.
func (a *Agent) Logs() string { return a.out.String() }

// Get GETs path from the agent's HTTP API (2 s timeout) and decodes the
// JSON body into out (unless nil). A non-200 answer is an error carrying the
// code.
func (a *Agent) Get(path string, out any) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+a.Addr()+path, nil)
	if err != nil {
		return 0, err
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode != 200 {
		return resp.StatusCode, fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	if out != nil {
		return 200, json.Unmarshal(body, out)
	}
	return 200, nil
}

// HealthEntry is one element of /v1/health/service/NAME.
type HealthEntry struct {
	Service struct {
		ID, Service, Address string
		Port                 int
		Tags                 []string
		Meta                 map[string]string
		EnableTagOverride    bool
	}
	Checks []struct {
		CheckID, Status, Output, Notes string
		ServiceID                      string
		Definition                     struct {
			DeregisterCriticalServiceAfter string
		}
	}
}

// Health returns /v1/health/service/NAME (passingOnly: ?passing) — what
// consumers of the catalog see.
func (a *Agent) Health(name string, passingOnly bool) ([]HealthEntry, error) {
	path := "/v1/health/service/" + name
	if passingOnly {
		path += "?passing"
	}
	var out []HealthEntry
	_, err := a.Get(path, &out)
	return out, err
}

// Tail returns the last n bytes of s.
func Tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
