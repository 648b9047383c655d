package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The command line of pilot docker-proxy: what is refused (exit 2, one line
// naming the flag), help, and what fails only once it runs (exit 1).
func TestDockerProxyFlags(t *testing.T) {
	t.Parallel()
	blocked := filepath.Join(t.TempDir(), "no", "such", "dir", "proxy.sock")
	cases := []struct {
		name   string
		args   []string
		env    []string
		code   int
		stdout string // substring of stdout
		stderr string // substring of stderr (exit 2: its only line)
	}{
		{"no --listen", []string{"docker-proxy"}, nil, 2, "", "pilot docker-proxy: --listen is required"},
		{"--listen without a value", []string{"docker-proxy", "--listen"}, nil, 2, "", "flag needs an argument: -listen"},
		{"--listen http", []string{"docker-proxy", "--listen", "http://0.0.0.0:2375"}, nil, 2, "", `--listen "http://0.0.0.0:2375": want tcp://HOST:PORT`},
		{"--listen without a port", []string{"docker-proxy", "--listen", "localhost"}, nil, 2, "", `--listen "localhost"`},
		{"--listen a port alone", []string{"docker-proxy", "--listen", "2375"}, nil, 2, "", `--listen "2375"`},
		{"--listen bad port", []string{"docker-proxy", "--listen", "tcp://0.0.0.0:99999"}, nil, 2, "", `--listen "tcp://0.0.0.0:99999": port "99999"`},
		{"--listen named port", []string{"docker-proxy", "--listen", ":docker"}, nil, 2, "", `--listen ":docker": port "docker"`},
		{"--listen unix without a path", []string{"docker-proxy", "--listen", "unix://"}, nil, 2, "", `--listen "unix://": want unix:///PATH`},
		{"--upstream tcp", []string{"docker-proxy", "--listen", ":2375", "--upstream", "tcp://10.0.0.1:2375"}, nil, 2, "", `--upstream "tcp://10.0.0.1:2375": want unix:///PATH`},
		{"--upstream a path", []string{"docker-proxy", "--listen", ":2375", "--upstream", "/var/run/docker.sock"}, nil, 2, "", `--upstream "/var/run/docker.sock"`},
		{"--upstream empty unix", []string{"docker-proxy", "--listen", ":2375", "--upstream", "unix://"}, nil, 2, "", `--upstream "unix://"`},
		{"unknown flag", []string{"docker-proxy", "--listen", ":2375", "--tls"}, nil, 2, "", "pilot docker-proxy: flag provided but not defined: -tls"},
		{"an argument", []string{"docker-proxy", "--listen", ":2375", "serve"}, nil, 2, "", `pilot docker-proxy: unexpected argument "serve"`},
		{"bad PILOT_LOG_LEVEL", []string{"docker-proxy", "--listen", "unix://" + blocked}, []string{"PILOT_LOG_LEVEL=loud"}, 2, "", `PILOT_LOG_LEVEL: "loud" is not a log level`},

		{"--help", []string{"docker-proxy", "--help"}, nil, 0, "usage: pilot docker-proxy --listen ADDR", ""},
		{"-h", []string{"docker-proxy", "-h"}, nil, 0, "usage: pilot docker-proxy", ""},
		{"help docker-proxy", []string{"help", "docker-proxy"}, nil, 0, "DOCKER_HOST", ""},
		{"pilot --help lists it", []string{"--help"}, nil, 0, "pilot docker-proxy --listen ADDR", ""},

		{"cannot listen", []string{"docker-proxy", "--listen", "unix://" + blocked}, nil, 1, "", "cannot listen"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), c.args, stdio{nil, &stdout, &stderr}, c.env)
			if code != c.code {
				t.Errorf("exit %d, want %d", code, c.code)
			}
			if !strings.Contains(stdout.String(), c.stdout) {
				t.Errorf("stdout lacks %q", c.stdout)
			}
			if !strings.Contains(stderr.String(), c.stderr) {
				t.Errorf("stderr lacks %q", c.stderr)
			}
			if c.code == 2 && strings.Count(strings.TrimSuffix(stderr.String(), "\n"), "\n") != 0 {
				t.Errorf("a usage error of more than one line")
			}
			if t.Failed() {
				t.Logf("args %q\nstdout:\n%s\nstderr:\n%s", c.args, stdout.String(), stderr.String())
			}
		})
	}
}

// What the flags and DOCKER_HOST come to.
func TestDockerProxyParse(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args                    []string
		dockerHost              string
		network, addr, upstream string
	}{
		{[]string{"--listen", "tcp://0.0.0.0:2375"}, "", "tcp", "0.0.0.0:2375", "/var/run/docker.sock"},
		{[]string{"--listen", ":2375"}, "", "tcp", ":2375", "/var/run/docker.sock"},
		{[]string{"--listen", "[::1]:2375"}, "", "tcp", "[::1]:2375", "/var/run/docker.sock"},
		{[]string{"--listen=unix:///run/pilot/docker.sock"}, "", "unix", "/run/pilot/docker.sock", "/var/run/docker.sock"},
		{[]string{"--listen", ":2375"}, "unix:///run/user/1000/docker.sock", "tcp", ":2375", "/run/user/1000/docker.sock"},
		// the app's own DOCKER_HOST (the proxy itself) is not an upstream
		{[]string{"--listen", ":2375"}, "tcp://docker-proxy:2375", "tcp", ":2375", "/var/run/docker.sock"},
		{[]string{"--listen", ":2375", "--upstream", "unix:///srv/docker.sock"}, "unix:///run/other.sock", "tcp", ":2375", "/srv/docker.sock"},
	} {
		env := func(k string) string {
			if k == "DOCKER_HOST" {
				return c.dockerHost
			}
			return ""
		}
		inv, err := parseArgs(append([]string{"docker-proxy"}, c.args...), env)
		if err != nil {
			t.Errorf("%q (DOCKER_HOST=%s): %v", c.args, c.dockerHost, err)
			continue
		}
		got := inv.dockerProxy
		if inv.do != doDockerProxy || got.network != c.network || got.addr != c.addr || got.upstream != c.upstream {
			t.Errorf("%q (DOCKER_HOST=%s): %+v, want %s %s upstream %s", c.args, c.dockerHost, got, c.network, c.addr, c.upstream)
		}
	}
}

// fakeDockerSocket is an Engine API on a unix socket that answers /_ping
// and counts every call.
func fakeDockerSocket(t *testing.T) (sock string, calls func() int) {
	t.Helper()
	sock = filepath.Join(t.TempDir(), "docker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	n := make(chan struct{}, 100)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n <- struct{}{}
		w.Header().Set("Api-Version", "1.47")
		io.WriteString(w, "OK")
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return sock, func() int { return len(n) }
}

// unixClient talks HTTP over the unix socket at sock.
func unixClient(t *testing.T, sock string) *http.Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func status(t *testing.T, c *http.Client, method, url string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// As PID 1 of its own PID namespace, as in its container: a unix socket
// of mode 0660, reads through, writes refused, and on SIGTERM a clean exit
// 0 with the socket gone.
func TestDockerProxyAsPID1(t *testing.T) {
	t.Parallel()
	upstream, calls := fakeDockerSocket(t)
	sock := filepath.Join(t.TempDir(), "proxy.sock")
	p := startPilot(t, pilotOpts{pid1: true}, "docker-proxy", "--listen", "unix://"+sock, "--upstream", "unix://"+upstream)
	p.errLog.waitLine(t, 10*time.Second, `msg="serving a read-only Docker Engine API".*listen=unix://`+sock+`.* pid=1 `)
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Errorf("the socket's mode is %v, want a socket of 0660", fi.Mode())
	}
	if lines := p.errLog.count("not reachable"); lines != 0 {
		t.Errorf("a warning of an unreachable upstream that is up")
	}
	c := unixClient(t, sock)
	if got := status(t, c, http.MethodGet, "http://docker/_ping"); got != http.StatusOK {
		t.Errorf("GET /_ping: %d", got)
	}
	if got := status(t, c, http.MethodPost, "http://docker/containers/create"); got != http.StatusForbidden {
		t.Errorf("POST /containers/create: %d", got)
	}
	if n := calls(); n != 1 {
		t.Errorf("the engine got %d calls, want 1 (the ping)", n)
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(5 * time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0", code)
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("the socket outlived the proxy: %v", err)
	}
	if p.errLog.count(`msg="pilot starting"`) != 0 {
		t.Error("the supervisor started")
	}
}

// An upstream that is not there is a warning, not an exit: calls get 502
// until it is up. SIGINT stops the proxy as SIGTERM does.
func TestDockerProxyUpstreamDownAtStart(t *testing.T) {
	t.Parallel()
	absent := filepath.Join(t.TempDir(), "docker.sock")
	p := startPilot(t, pilotOpts{}, "docker-proxy", "--listen", "127.0.0.1:0", "--upstream", "unix://"+absent)
	p.errLog.waitLine(t, 10*time.Second, `level=WARN.*not reachable.*upstream=unix://`+absent)
	addr := p.errLog.waitLine(t, 10*time.Second, `listen=tcp://(127\.0\.0\.1:[0-9]+)`)[1]
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	t.Cleanup(c.CloseIdleConnections)
	if got := status(t, c, http.MethodGet, "http://"+addr+"/v1.47/containers/json"); got != http.StatusBadGateway {
		t.Errorf("GET /containers/json with no engine: %d, want 502", got)
	}
	p.signal(syscall.SIGINT)
	if code := p.wait(5 * time.Second); code != 0 {
		t.Errorf("exit %d after SIGINT, want 0", code)
	}
}

// run itself, in the test process: it ends with 0 when its context does.
func TestDockerProxyRunEndsWithContext(t *testing.T) {
	t.Parallel()
	upstream, _ := fakeDockerSocket(t)
	errLog := newLineLog()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"docker-proxy", "--listen", "tcp://127.0.0.1:0"}, stdio{nil, io.Discard, errLog}, []string{"DOCKER_HOST=unix://" + upstream})
	}()
	addr := errLog.waitLine(t, 10*time.Second, `listen=tcp://(127\.0\.0\.1:[0-9]+).*upstream=unix://`+upstream)[1]
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	t.Cleanup(c.CloseIdleConnections)
	if got := status(t, c, http.MethodHead, "http://"+addr+"/_ping"); got != http.StatusOK {
		t.Errorf("HEAD /_ping: %d", got)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d, want 0\n%s", code, errLog.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run still serving 5s after its context ended")
	}
}

// A socket file left behind by a proxy that died is replaced; one a live
// server holds is not taken over.
func TestDockerProxySocketFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	ln, err = listenDockerProxy("unix", stale)
	if err != nil {
		t.Fatalf("over a stale socket: %v", err)
	}
	defer ln.Close()
	if _, err := listenDockerProxy("unix", stale); err == nil || !strings.Contains(err.Error(), "already listening") {
		t.Errorf("over a live socket: %v, want it refused", err)
	}
	regular := filepath.Join(dir, "file")
	if err := os.WriteFile(regular, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := listenDockerProxy("unix", regular); err == nil {
		t.Error("over a regular file: no error")
	}
	if _, err := os.Stat(regular); err != nil {
		t.Errorf("the regular file is gone: %v", err)
	}
}
