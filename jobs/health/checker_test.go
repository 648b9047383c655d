package health

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func withTimeout(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func serverPort(t *testing.T, srv *httptest.Server) (string, int) {
	t.Helper()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(u.Host)
	p, _ := strconv.Atoi(port)
	return host, p
}

// closedPort returns a port on 127.0.0.1 that nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

func TestHTTP(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var lastHost, lastPath string
	// Built once, not per request: under load, building 10 MiB inside the
	// handler could outlast the check's timeout before the headers go out.
	big := bytes.Repeat([]byte("x"), 10<<20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		lastHost, lastPath = r.Host, r.URL.RequestURI()
		mu.Unlock()
		switch r.URL.Path {
		case "/ok":
			w.Write([]byte("fine"))
		case "/redirect":
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		case "/down":
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("db\nunreachable"))
		case "/big":
			w.Write(big)
		case "/hang":
			select {
			case <-r.Context().Done():
			case <-release:
			}
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	host, port := serverPort(t, srv)

	tests := []struct {
		name    string
		cfg     HTTPConfig
		wantErr string // "" = pass
	}{
		{"200", HTTPConfig{Port: port, Path: "/ok"}, ""},
		{"default host", HTTPConfig{Host: "", Port: port, Path: "ok"}, ""},
		{"3xx passes, not followed", HTTPConfig{Host: host, Port: port, Path: "/redirect"}, ""},
		{"503", HTTPConfig{Host: host, Port: port, Path: "/down"}, "status 503 Service Unavailable: db unreachable"},
		{"404", HTTPConfig{Host: host, Port: port, Path: "/nope"}, "status 404"},
		{"expected set", HTTPConfig{Host: host, Port: port, Path: "/down", ExpectStatus: []int{200, 503}}, ""},
		{"200 not in expected set", HTTPConfig{Host: host, Port: port, Path: "/ok", ExpectStatus: []int{204}}, "status 200"},
		{"big body limited", HTTPConfig{Host: host, Port: port, Path: "/big"}, ""},
		{"hang", HTTPConfig{Host: host, Port: port, Path: "/hang"}, "timeout after"},
		{"refused", HTTPConfig{Host: host, Port: closedPort(t), Path: "/"}, "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := NewHTTP(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			// Only the hang case needs a short timeout; the others get room
			// for a loaded machine.
			timeout := 2 * time.Second
			if tt.wantErr == "timeout after" {
				timeout = 200 * time.Millisecond
			}
			start := time.Now()
			err = h.Check(withTimeout(t, timeout))
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("check took %s", took)
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("want pass, got %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("want error containing %q, got %v", tt.wantErr, err)
			}
			if !strings.Contains(err.Error(), h.URL()) {
				t.Errorf("error %q does not name the URL", err)
			}
			if tt.name == "hang" && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("timeout error %v does not match context.DeadlineExceeded", err)
			}
		})
	}

	t.Run("host header and query", func(t *testing.T) {
		h, err := NewHTTP(HTTPConfig{Port: port, Path: "/ok?probe=1", HostHeader: "web.internal"})
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Check(withTimeout(t, time.Second)); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if lastHost != "web.internal" || lastPath != "/ok?probe=1" {
			t.Errorf("server saw Host %q path %q", lastHost, lastPath)
		}
	})
}

func TestHTTPConfigErrors(t *testing.T) {
	for _, c := range []HTTPConfig{{Port: 0}, {Port: 70000}, {Port: 80, Host: "bad host%"}} {
		if _, err := NewHTTP(c); err == nil {
			t.Errorf("NewHTTP(%+v): want error", c)
		}
	}
}

// TestHTTPHungAppDoesNotPinConnections: checks against an app that never
// answers each time out and leave no connection open behind them.
func TestHTTPHungAppDoesNotPinConnections(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	open := 0
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		mu.Lock()
		defer mu.Unlock()
		switch s {
		case http.StateNew:
			open++
		case http.StateClosed, http.StateHijacked:
			open--
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	_, port := serverPort(t, srv)
	h, err := NewHTTP(HTTPConfig{Port: port})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := h.Check(withTimeout(t, 30*time.Millisecond)); err == nil {
			t.Fatal("hung app passed")
		}
	}
	waitFor(t, 5*time.Second, "server connections to close", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return open == 0
	})
}

func TestTCP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	port := l.Addr().(*net.TCPAddr).Port

	if err := NewTCP("", port).Check(withTimeout(t, time.Second)); err != nil {
		t.Fatalf("listening port: %v", err)
	}
	err = NewTCP("127.0.0.1", closedPort(t)).Check(withTimeout(t, time.Second))
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("closed port: want connection refused, got %v", err)
	}
	// A non-routable address (TEST-NET-1) makes the dial hang until the
	// timeout, or fail at once where there is no route; either way it fails.
	err = NewTCP("192.0.2.1", 9).Check(withTimeout(t, 50*time.Millisecond))
	if err == nil {
		t.Fatal("unreachable address passed")
	}
	if errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "timeout after") {
		t.Errorf("timeout error does not say so: %v", err)
	}
}

func sh(t *testing.T, script string) *Exec {
	t.Helper()
	e, err := NewExec(ExecConfig{Argv: []string{"/bin/sh", "-c", script}, WaitDelay: 200 * time.Millisecond}, newRunner())
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestExec(t *testing.T) {
	tests := []struct {
		name, script string
		wantErr      string
	}{
		{"exit 0", "exit 0", ""},
		{"exit 1 with output", "echo starting; echo 'db down' >&2; exit 1", "exit status 1: starting\ndb down"},
		{"killed by signal", "kill -TERM $$", "signal: terminated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := sh(t, tt.script).Check(withTimeout(t, 5*time.Second))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("want pass, got %v", err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("want error containing %q, got %v", tt.wantErr, err)
			}
			assertNothingLeft(t)
		})
	}
}

func TestExecEnvDirAndPath(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\n[ \"$PROBE\" = yes ] && [ \"$(pwd)\" = " + dir + " ]\n"
	if err := os.WriteFile(filepath.Join(bin, "probe"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := ExecConfig{Argv: []string{"probe"}, Env: []string{"PATH=" + bin + ":/usr/bin:/bin", "PROBE=yes"}, Dir: dir}
	e, err := NewExec(cfg, newRunner())
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Check(withTimeout(t, 5*time.Second)); err != nil {
		t.Fatalf("probe in the check's own PATH, env and dir: %v", err)
	}

	cfg.Argv = []string{"no-such-probe"}
	e, _ = NewExec(cfg, newRunner())
	if err := e.Check(withTimeout(t, 5*time.Second)); !errors.Is(err, exec.ErrNotFound) {
		t.Fatalf("missing command: want ErrNotFound, got %v", err)
	}
	if _, err := NewExec(ExecConfig{}, newRunner()); err == nil {
		t.Error("empty argv accepted")
	}
	if _, err := NewExec(ExecConfig{Argv: []string{"true"}}, nil); err == nil {
		t.Error("nil runner accepted")
	}
}

// TestExecHangKillsGroup: a check that forks a grandchild and hangs is
// killed with its whole group at the timeout; the leader is waited for and
// nothing of the group — alive or zombie — is left.
func TestExecHangKillsGroup(t *testing.T) {
	e := sh(t, "sleep 100 & echo forked; wait")
	start := time.Now()
	err := e.Check(withTimeout(t, 100*time.Millisecond))
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timeout after") ||
		!strings.Contains(err.Error(), "process group killed: forked") {
		t.Fatalf("want a timeout error with the output, got %v", err)
	}
	if took > time.Second {
		t.Errorf("check took %s; the group was not killed at the timeout", took)
	}
	assertNothingLeft(t)
}

// TestExecDaemonisedGrandchildKilled: a check that passes but leaves a
// grandchild behind (output redirected, so Wait does not wait for it) still
// leaves nothing running.
func TestExecDaemonisedGrandchildKilled(t *testing.T) {
	for _, script := range []string{
		"sleep 100 >/dev/null 2>&1 & exit 0",
		// Holding the output open instead: passes after WaitDelay, group killed.
		"sleep 100 & exit 0",
	} {
		if err := sh(t, script).Check(withTimeout(t, 5*time.Second)); err != nil {
			t.Fatalf("%s: %v", script, err)
		}
		assertNothingLeft(t)
	}
}

// assertNothingLeft waits until this process has no child left. It is a
// subreaper, like pilot, so every process a check started and left behind
// would end up as its child: live ones must have been killed; zombies are
// reaped pid by pid, as pilot's reaper does, but a check's leader (the one
// leading its own group) must have been waited for by the check, never
// left a zombie.
func assertNothingLeft(t *testing.T) {
	t.Helper()
	waitFor(t, 5*time.Second, "the checks' processes to be gone", func() bool {
		kids := children()
		for _, p := range kids {
			if p.state != 'Z' {
				continue
			}
			if p.pid == p.pgrp {
				t.Fatalf("check leader %d left a zombie", p.pid)
			}
			var ws syscall.WaitStatus
			_, _ = syscall.Wait4(p.pid, &ws, syscall.WNOHANG, nil)
		}
		return len(kids) == 0
	})
}

type proc struct {
	pid, pgrp int
	state     byte
}

// children lists this process's children.
func children() []proc {
	entries, _ := os.ReadDir("/proc")
	var out []proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(data, ')')
		if i < 0 {
			continue
		}
		f := bytes.Fields(data[i+1:])
		if len(f) < 3 {
			continue
		}
		ppid, _ := strconv.Atoi(string(f[1]))
		pgrp, _ := strconv.Atoi(string(f[2]))
		if ppid == os.Getpid() {
			out = append(out, proc{pid: pid, pgrp: pgrp, state: f[0][0]})
		}
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestTail(t *testing.T) {
	tl := &tail{max: 8}
	tl.Write([]byte("abc"))
	if got := tl.String(); got != "abc" {
		t.Fatalf("got %q", got)
	}
	tl.Write([]byte("defghij"))
	if got := tl.String(); got != "…cdefghij" {
		t.Fatalf("got %q", got)
	}
	tl = &tail{max: 4}
	tl.Write([]byte("0123456789"))
	if got := tl.String(); got != "…6789" {
		t.Fatalf("got %q", got)
	}
}
