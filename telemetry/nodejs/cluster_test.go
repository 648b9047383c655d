package nodejs

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// holdSocket binds a loopback port as pilot would and returns the listener
// (never accepted from here, as pilot never accepts) and a copy of its fd
// for ExtraFiles.
func holdSocket(t *testing.T) (*net.TCPListener, *os.File) {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	f, err := ln.File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close(); ln.Close() })
	return ln, f
}

func portOf(a net.Addr) string { return strconv.Itoa(a.(*net.TCPAddr).Port) }

// freePort is a loopback port nobody listens on (bound and released).
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return portOf(ln.Addr())
}

func inode(t *testing.T, f *os.File) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// listeningSockets returns pid's listening TCP sockets: inode → port.
func listeningSockets(t *testing.T, pid int) map[uint64]int {
	t.Helper()
	mine := map[uint64]bool{}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err != nil {
			continue
		}
		var ino uint64
		if _, err := fmt.Sscanf(l, "socket:[%d]", &ino); err == nil {
			mine[ino] = true
		}
	}
	out := map[uint64]int{}
	for _, tab := range []string{"tcp", "tcp6"} {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, tab))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "0A" { // LISTEN
				continue
			}
			ino, _ := strconv.ParseUint(f[9], 10, 64)
			if !mine[ino] {
				continue
			}
			_, hexPort, _ := strings.Cut(f[1], ":")
			port, _ := strconv.ParseUint(hexPort, 16, 32)
			out[ino] = int(port)
		}
	}
	return out
}

// fdTarget is what /proc/<pid>/fd/<fd> points to.
func fdTarget(pid, fd int) string {
	l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pid, fd))
	return l
}

// get fetches / from addr with c and returns the body (the answering pid).
func get(c *http.Client, addr string) (string, error) {
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	return string(b), nil
}

func newClient(keepAlive bool) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: !keepAlive, MaxIdleConnsPerHost: 4}}
}

// frameworksDir returns testdata/frameworks with express and fastify
// installed, installing them when missing; the test is skipped (loudly)
// when npm cannot, and in CI unless they are already there.
func frameworksDir(t *testing.T) string {
	t.Helper()
	dir, _ := filepath.Abs(testdata("frameworks"))
	have := func() bool {
		for _, m := range []string{"express", "fastify"} {
			if _, err := os.Stat(filepath.Join(dir, "node_modules", m, "package.json")); err != nil {
				return false
			}
		}
		return true
	}
	frameworksOnce.Do(func() {
		if have() || os.Getenv("CI") != "" {
			return
		}
		npm, err := exec.LookPath("npm")
		if err != nil {
			frameworksErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, npm, "install", "--no-audit", "--no-fund", "--no-package-lock")
		cmd.Dir = dir
		if b, err := cmd.CombinedOutput(); err != nil {
			frameworksErr = fmt.Errorf("npm install: %v\n%s", err, b)
		}
	})
	if !have() {
		if os.Getenv("CI") != "" {
			t.Skip("SKIPPED: express/fastify not installed in testdata/frameworks, and CI is set (CI never depends on npm)")
		}
		t.Skipf("SKIPPED LOUDLY: cannot install express/fastify for this test: %v", frameworksErr)
	}
	return dir
}

var (
	frameworksOnce sync.Once
	frameworksErr  error
)

func version(t *testing.T, dir, mod string) string {
	b, err := os.ReadFile(filepath.Join(dir, "node_modules", mod, "package.json"))
	if err != nil {
		return "?"
	}
	_, rest, _ := strings.Cut(string(b), `"version": "`)
	v, _, _ := strings.Cut(rest, `"`)
	return v
}

// serveEnv is the environment of serve.js for job, instance (-1: none) on
// the held listeners.
func (h *harness) serveEnv(job string, instance int, lns []*net.TCPListener, extra ...string) []string {
	addrs := make([]net.Addr, len(lns))
	for i, ln := range lns {
		addrs[i] = ln.Addr()
	}
	env := append(baseEnv(extra...), listenEnv(addrs)...)
	if instance >= 0 {
		env = append(env, envInstance+"="+strconv.Itoa(instance))
	}
	return h.a.Env(job, env)
}

// startServe starts serve.js as one more process of job and waits until it
// says it listens.
func (h *harness) startServe(job string, env []string, files []*os.File) *app {
	h.t.Helper()
	a := startNode(h.t, env, files, func(pid int) { h.addPid(job, pid) }, "serve.js")
	waitFor(h.t, 10*time.Second, "serve.js to listen", func() bool {
		return strings.Contains(a.stdout.String(), "listening ") || a.exited()
	})
	if a.exited() {
		h.t.Fatalf("serve.js exited:\n%s%s", a.stdout, a.stderr)
	}
	return a
}

func (a *app) exited() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

// signaled reports whether the app died of sig.
func (a *app) signaled(sig syscall.Signal) bool {
	ws, ok := a.cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}

// TestInheritedSocket: an app written for a fixed port serves on the socket
// pilot holds (fd 3, no listening socket of its own for that port), with
// plain http, listen(port, 'localhost'), listen({fd: 3}), express and
// fastify; a port pilot does not hold is the app's own listen.
func TestInheritedSocket(t *testing.T) {
	requireNode(t)
	cases := []struct {
		name, fw, host string
	}{
		{"http listen(port)", "http", ""},
		{"http listen(port, localhost)", "http", "localhost"},
		{"http listen(port, 0.0.0.0)", "http", "0.0.0.0"},
		{"listen({fd: 3})", "fd", ""},
		{"express", "express", ""},
		{"fastify", "fastify", "127.0.0.1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var fwDir string
			if tc.fw == "express" || tc.fw == "fastify" {
				fwDir = frameworksDir(t)
				t.Logf("%s %s on node %s", tc.fw, version(t, fwDir, tc.fw), nodeVersion(t))
			}
			h := newHarness(t, nil)
			ln, f := holdSocket(t)
			other := freePort(t)
			env := h.serveEnv("app", -1, []*net.TCPListener{ln}, "PORT="+portOf(ln.Addr()), "FRAMEWORK="+tc.fw, "OTHER_PORT="+other, "FW_DIR="+fwDir)
			if tc.host != "" {
				env = append(env, "HOST="+tc.host)
			}
			a := h.startServe("app", env, []*os.File{f})
			pid := a.cmd.Process.Pid
			waitFor(t, 5*time.Second, "the other port to listen", func() bool { return strings.Contains(a.stdout.String(), "other "+other) })
			body, err := get(newClient(false), ln.Addr().String())
			if err != nil || body != strconv.Itoa(pid) {
				t.Fatalf("GET on the held socket: %q, %v\n%s%s", body, err, a.stdout, a.stderr)
			}
			if body, err := get(newClient(false), "127.0.0.1:"+other); err != nil || body != strconv.Itoa(pid) {
				t.Fatalf("GET on the other port: %q, %v", body, err)
			}
			if want := fmt.Sprintf("socket:[%d]", inode(t, f)); fdTarget(pid, 3) != want {
				t.Errorf("fd 3 is %q, want the held socket %s", fdTarget(pid, 3), want)
			}
			ls := listeningSockets(t, pid)
			for ino, port := range ls {
				switch {
				case ino == inode(t, f):
				case strconv.Itoa(port) == other:
				default:
					t.Errorf("a listening socket of its own on port %d (inode %d)", port, ino)
				}
			}
			if len(ls) != 2 {
				t.Errorf("listening sockets %v, want the held one and the other port's", ls)
			}
			waitFor(t, 5*time.Second, "the listening event", func() bool { return len(h.pubOf(EventListening, pid)) > 0 })
			if ev := h.pubOf(EventListening, pid)[0]; !slices.Equal(ev.FDs, []int{3}) || ev.Job != "app" || ev.Instance != -1 {
				t.Errorf("listening event %+v", ev)
			}
			a.stdin.Close()
			a.wait(t, exitWithin)
			if a.code != 0 {
				t.Errorf("exit %d\n%s%s", a.code, a.stdout, a.stderr)
			}
		})
	}
}

func nodeVersion(t *testing.T) string {
	out, _ := exec.Command(requireNode(t), "--version").Output()
	return strings.TrimSpace(string(out))
}

// TestCluster: two instances of one job on one held socket both get
// connections, report their instance, listening and ready, have a series
// each, and the gone instance's series go with a gone event.
func TestCluster(t *testing.T) {
	requireNode(t)
	h := newHarness(t, nil)
	ln, f := holdSocket(t)
	var apps []*app
	for i := range 2 {
		env := h.serveEnv("app", i, []*net.TCPListener{ln}, "PORT="+portOf(ln.Addr()), "READY=1")
		apps = append(apps, h.startServe("app", env, []*os.File{f}))
	}
	pids := []int{apps[0].cmd.Process.Pid, apps[1].cmd.Process.Pid}
	seen := map[string]int{}
	c := newClient(false)
	waitFor(t, 10*time.Second, "both instances to answer", func() bool {
		body, err := get(c, ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		seen[body]++
		return seen[strconv.Itoa(pids[0])] > 0 && seen[strconv.Itoa(pids[1])] > 0
	})
	t.Logf("answers by pid: %v", seen)
	for i, pid := range pids {
		waitFor(t, 5*time.Second, "ready and listening events", func() bool {
			return len(h.pubOf(EventReady, pid)) == 1 && len(h.pubOf(EventListening, pid)) > 0
		})
		if ev := h.pubOf(EventReady, pid)[0]; ev.Instance != i || ev.Job != "app" {
			t.Errorf("ready %+v, want instance %d", ev, i)
		}
	}
	waitFor(t, 5*time.Second, "a heap series per instance", func() bool {
		s := h.series("pilot_nodejs_heap_used_bytes")
		return len(s) == 2 && s["instance=0,job=app"] != nil && s["instance=1,job=app"] != nil
	})
	apps[0].stdin.Close()
	apps[0].wait(t, exitWithin)
	waitFor(t, 5*time.Second, "instance 0's series to go, instance 1's to stay", func() bool {
		s := h.series("pilot_nodejs_heap_used_bytes")
		return len(s) == 1 && s["instance=1,job=app"] != nil
	})
	if g := h.pubOf(EventGone, pids[0]); len(g) != 1 || g[0].Instance != 0 {
		t.Errorf("gone events %+v", g)
	}
	if g := h.pubOf(EventGone, pids[1]); len(g) != 0 {
		t.Errorf("gone events of the live instance %+v", g)
	}
}

// TestDrain: SIGTERM to one of two instances sharing a held socket while
// keep-alive clients send back-to-back requests: no client sees an error,
// the clients move to the other instance, and the drained one dies of
// SIGTERM once its connections are gone (no app handler), or is left to
// the app's own SIGTERM handler.
func TestDrain(t *testing.T) {
	requireNode(t)
	for _, appHandler := range []bool{false, true} {
		t.Run(fmt.Sprintf("app handler %v", appHandler), func(t *testing.T) {
			testDrain(t, appHandler)
		})
	}
}

func testDrain(t *testing.T, appHandler bool) {
	h := newHarness(t, nil)
	ln, f := holdSocket(t)
	extra := []string{"PORT=" + portOf(ln.Addr()), "DELAY_MS=2", envDrainGrace + "=300"}
	if appHandler {
		extra = append(extra, "APP_SIGTERM=1")
	}
	// The clients connect while the first instance is alone, so that all
	// their kept-alive connections are its own when it is told to stop.
	first := h.startServe("app", h.serveEnv("app", 0, []*net.TCPListener{ln}, extra...), []*os.File{f})
	p1 := strconv.Itoa(first.cmd.Process.Pid)

	var (
		mu       sync.Mutex
		byPid    = map[string]int{}
		errs     []error
		stop     atomic.Bool
		wg       sync.WaitGroup
		afterEnd atomic.Int64 // answers after the first instance ended
	)
	for range 4 {
		c := newClient(true)
		wg.Go(func() {
			defer c.CloseIdleConnections()
			for !stop.Load() {
				body, err := get(c, ln.Addr().String())
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					byPid[body]++
				}
				mu.Unlock()
				if first.exited() || strings.Contains(first.stdout.String(), "app: drained") {
					afterEnd.Add(1)
				}
			}
		})
	}
	count := func(pid string) int { mu.Lock(); defer mu.Unlock(); return byPid[pid] }
	waitFor(t, 10*time.Second, "the first instance to serve the keep-alive clients", func() bool { return count(p1) > 50 })
	// One more kept-alive connection that stays idle: the drain must close
	// it after the grace (300 ms here), or the process would never end.
	idle := newClient(true)
	if body, err := get(idle, ln.Addr().String()); err != nil || body != p1 {
		t.Fatalf("idle client: %q %v", body, err)
	}
	second := h.startServe("app", h.serveEnv("app", 1, []*net.TCPListener{ln}, extra...), []*os.File{f})
	p2 := strconv.Itoa(second.cmd.Process.Pid)
	if err := first.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	sigterm := time.Now()
	if appHandler {
		waitFor(t, 10*time.Second, "the app's handler to see its server drained", func() bool {
			return strings.Contains(first.stdout.String(), "app: drained") || first.exited()
		})
		if first.exited() {
			t.Fatalf("the agent ended a process whose app handles SIGTERM\n%s%s", first.stdout, first.stderr)
		}
	} else {
		first.wait(t, 10*time.Second)
		if !first.signaled(syscall.SIGTERM) {
			t.Errorf("first instance: %v, want death by SIGTERM (143)\n%s%s", first.cmd.ProcessState, first.stdout, first.stderr)
		}
	}
	drained := time.Since(sigterm)
	t.Logf("drained in %v", drained.Round(time.Millisecond))
	if drained < 250*time.Millisecond {
		t.Errorf("drained in %v: the idle connection was not given its grace", drained)
	}
	n := count(p2)
	waitFor(t, 10*time.Second, "the clients to go on with the second instance", func() bool { return afterEnd.Load() > 50 && count(p2) > n+50 })
	stop.Store(true)
	wg.Wait()
	mu.Lock()
	t.Logf("answers by pid: %v; errors %d", byPid, len(errs))
	for i, err := range errs {
		if i < 5 {
			t.Errorf("client error: %v", err)
		}
	}
	mu.Unlock()
	if appHandler {
		first.stdin.Close()
		first.wait(t, exitWithin)
		if first.code != 7 {
			t.Errorf("first instance exit %d, want the app's 7", first.code)
		}
	}
	second.stdin.Close()
	second.wait(t, exitWithin)
}

// listenEnv returns the variables that tell a process it inherits the
// sockets bound at addrs as fds 3, 4, … (in that order: exec.Cmd's
// ExtraFiles), as pilot sets them (jobs.Spec.Listeners, pilot's
// PILOT_LISTEN_ADDRS): systemd's way plus the addresses the agent matches listen()
// calls against: LISTEN_FDS, LISTEN_FDNAMES (listen0:listen1:…) and
// PILOT_LISTEN_ADDRS, a JSON array of addr.String(). LISTEN_PID is not
// among them: it is the child's pid, unknown before it starts; when set,
// the agent takes the sockets only if it is its own pid.
func listenEnv(addrs []net.Addr) []string {
	names := make([]string, len(addrs))
	strs := make([]string, len(addrs))
	for i, a := range addrs {
		names[i] = "listen" + strconv.Itoa(i)
		strs[i] = a.String()
	}
	js, _ := json.Marshal(strs) // strings always marshal
	return []string{
		envListenFDs + "=" + strconv.Itoa(len(addrs)),
		envListenNames + "=" + strings.Join(names, ":"),
		envListenAddrs + "=" + string(js),
	}
}
