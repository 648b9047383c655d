package consul

// Test harness: one real Consul agent (-dev) per test binary, on free
// loopback ports, located via test/consul.sh. In CI (env CI set) a missing
// or failed build fails the run; elsewhere the agent tests skip loudly.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

var (
	agent    *testAgent // nil when no binary
	agentErr error
)

func TestMain(m *testing.M) {
	code := func() int {
		bin, err := consulBinary()
		if err != nil {
			agentErr = err
			if os.Getenv("CI") != "" {
				fmt.Fprintf(os.Stderr, "FAIL: consul binary unavailable in CI: %v\n", err)
				return 1
			}
			fmt.Fprintf(os.Stderr, "\n*** SKIPPING Consul agent tests: %v ***\n\n", err)
		} else {
			a, err := newTestAgent(bin)
			if err == nil {
				err = a.start()
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "FAIL: starting consul agent: %v\n", err)
				if a != nil {
					a.stop()
					fmt.Fprintf(os.Stderr, "agent log:\n%s\n", a.logs())
				}
				return 1
			}
			agent = a
		}
		code := m.Run()
		if agent != nil {
			agent.stop()
			if code != 0 {
				fmt.Fprintf(os.Stderr, "agent log (tail):\n%s\n", tail(agent.logs(), 4000))
			}
			os.RemoveAll(agent.dir)
		}
		http.DefaultClient.CloseIdleConnections()
		if err := goleak.Find(); err != nil && code == 0 {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			return 1
		}
		return code
	}()
	os.Exit(code)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// consulBinary runs test/consul.sh (which builds the pinned agent the first
// time, several minutes) and returns the path it prints.
func consulBinary() (string, error) {
	if p := os.Getenv("PILOT_CONSUL_BIN"); p != "" { // a prebuilt agent
		if st, err := os.Stat(p); err != nil || st.Mode()&0o111 == 0 {
			return "", fmt.Errorf("PILOT_CONSUL_BIN=%q is not an executable", p)
		}
		return p, nil
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "test", "consul.sh"))
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("test/consul.sh: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	p := strings.TrimSpace(string(out))
	if st, err := os.Stat(p); err != nil || st.Mode()&0o111 == 0 {
		return "", fmt.Errorf("test/consul.sh printed %q, which is not an executable", p)
	}
	return p, nil
}

// needAgent skips (or, with no agent, fails in CI — TestMain already did)
// a test that needs the real agent.
func needAgent(t *testing.T) *testAgent {
	t.Helper()
	if agent == nil {
		t.Skipf("no consul agent: %v", agentErr)
	}
	if !agent.running() {
		if err := agent.start(); err != nil {
			t.Fatalf("restarting agent left down by an earlier test: %v", err)
		}
	}
	return agent
}

type testAgent struct {
	bin                                string
	dir                                string
	http, serfLAN, serfWAN, serverPort int

	mu  sync.Mutex
	cmd *exec.Cmd
	out *lockedBuffer
	end chan struct{}
}

func newTestAgent(bin string) (*testAgent, error) {
	dir, err := os.MkdirTemp("", "pilot-consul-")
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	return &testAgent{bin: bin, dir: dir, http: ports[0], serfLAN: ports[1], serfWAN: ports[2], serverPort: ports[3], out: &lockedBuffer{}}, nil
}

// freePorts returns n distinct loopback ports free for both TCP and UDP
// (serf uses both).
func freePorts(n int) ([]int, error) {
	var ports []int
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		closers = append(closers, l)
		p := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue // UDP side taken; try another
		}
		closers = append(closers, u)
		ports = append(ports, p)
	}
	return ports, nil
}

func (a *testAgent) addr() string { return fmt.Sprintf("127.0.0.1:%d", a.http) }

func (a *testAgent) running() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cmd != nil
}

// start launches the agent and waits for a leader.
func (a *testAgent) start() error {
	a.mu.Lock()
	if a.cmd != nil {
		a.mu.Unlock()
		return errors.New("agent already running")
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
	go func() { cmd.Wait(); close(end) }()
	a.cmd, a.end = cmd, end
	a.mu.Unlock()

	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-end:
			a.mu.Lock()
			a.cmd = nil
			a.mu.Unlock()
			return fmt.Errorf("agent exited during startup: %s", tail(a.logs(), 2000))
		default:
		}
		if leader, err := a.leader(); err == nil && leader != "" {
			return nil
		}
		time.Sleep(20 * time.Millisecond) // poll interval, bounded by the deadline
	}
	a.stop()
	return fmt.Errorf("no leader within 60s: %s", tail(a.logs(), 2000))
}

func (a *testAgent) leader() (string, error) {
	var s string
	_, err := a.get("/v1/status/leader", &s)
	return s, err
}

// kill SIGKILLs the agent by pid (a crash: dev mode loses all state) and
// waits for it to be gone.
func (a *testAgent) kill() {
	a.mu.Lock()
	cmd, end := a.cmd, a.end
	a.cmd = nil
	a.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-end
	http.DefaultClient.CloseIdleConnections()
}

// stop ends the agent: SIGTERM, then SIGKILL after 10 s.
func (a *testAgent) stop() {
	a.mu.Lock()
	cmd, end := a.cmd, a.end
	a.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-end:
	case <-time.After(10 * time.Second):
	}
	a.kill()
}

// restart kills the agent and starts a fresh one on the same ports.
func (a *testAgent) restart() error {
	a.kill()
	return a.start()
}

func (a *testAgent) logs() string { return a.out.String() }

// get GETs path from the agent's HTTP API and decodes JSON into out.
func (a *testAgent) get(path string, out any) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+a.addr()+path, nil)
	resp, err := http.DefaultClient.Do(req)
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

type healthEntry struct {
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

// health returns /v1/health/service/NAME (passingOnly: ?passing) —
// what consumers of the catalog see.
func (a *testAgent) health(name string, passingOnly bool) ([]healthEntry, error) {
	path := "/v1/health/service/" + name
	if passingOnly {
		path += "?passing"
	}
	var out []healthEntry
	_, err := a.get(path, &out)
	return out, err
}

// waitFor polls cond every 2 ms until it returns true or d passes; it
// returns how long that took.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if cond() {
			return time.Since(start)
		}
		if time.Since(start) > d {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(2 * time.Millisecond) // poll interval, bounded by d
	}
}

// holdFor asserts cond stays true for d (used for "must not happen yet").
func holdFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	start := time.Now()
	for time.Since(start) < d {
		if !cond() {
			t.Fatalf("%s: broken after %s", what, time.Since(start))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
