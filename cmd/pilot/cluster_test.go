package main

// Issue 12: Node cluster mode and the rolling reload, through the real pilot,
// a real Node app that is not changed for pilot, wrk and a loop of fresh
// connections.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nodepilot/pilot/pilot/control"
	"github.com/nodepilot/pilot/telemetry"
	"github.com/nodepilot/pilot/test/consulagent"
	"github.com/nodepilot/pilot/test/toolbin"
)

type clusterApp struct {
	p       *pilotProc
	port    int
	url     string
	cfgPath string
	flag    string // NOT_READY_FLAG
}

// clusterConfig is a cluster job of the test app; extra is YAML added to
// the job (indented by four spaces) and top is added at the top.
func clusterConfig(t *testing.T, node string, port int, flag, top, extra string) string {
	app, err := filepath.Abs("testdata/cluster-app.js")
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`%sjobs:
  - name: web
    main: true
    exec: [%q, %q]
    instances: 4
    listen: ["127.0.0.1:%d"]
    readiness: message
    readyTimeout: 5s
    stopTimeout: 5s
    restart: {policy: always}
    env: {APP_PORT: "%d", NOT_READY_FLAG: %q}
%s`, top, node, app, port, port, flag, extra)
}

func startCluster(t *testing.T, top, extra string) *clusterApp {
	t.Helper()
	node := requireNode(t)
	ports, err := consulagent.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	c := &clusterApp{port: ports[0], url: fmt.Sprintf("http://127.0.0.1:%d/", ports[0]),
		flag: filepath.Join(t.TempDir(), "not-ready")}
	c.cfgPath = writeConfig(t, clusterConfig(t, node, c.port, c.flag, top, extra))
	c.p = startPilot(t, pilotOpts{}, "run", "--config", c.cfgPath)
	c.waitReady(t, 4)
	return c
}

func (c *clusterApp) status(t *testing.T) telemetry.JobStatus {
	t.Helper()
	st, err := controlClient(c.p).Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st.Jobs[0]
}

// waitReady waits until the job has exactly n instances, all healthy
// (ready), and returns their pids by instance.
func (c *clusterApp) waitReady(t *testing.T, n int) []int {
	t.Helper()
	return waitFor(t, 20*time.Second, fmt.Sprintf("%d ready instances", n), func() ([]int, bool) {
		st, err := controlClient(c.p).Status(context.Background())
		if err != nil || len(st.Jobs) == 0 || len(st.Jobs[0].Instances) != n {
			return nil, false
		}
		var pids []int
		for _, in := range st.Jobs[0].Instances {
			if in.State != "healthy" {
				return nil, false
			}
			pids = append(pids, in.Pid)
		}
		return pids, true
	})
}

// socketInodes lists the inodes of the sockets pid holds open.
func socketInodes(t *testing.T, pid int) []string {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		l, err := os.Readlink(filepath.Join(dir, e.Name()))
		if ino, ok := strings.CutPrefix(l, "socket:["); err == nil && ok {
			out = append(out, strings.TrimSuffix(ino, "]"))
		}
	}
	return out
}

// listeningInodes are the inodes of the TCP sockets listening on port.
func listeningInodes(t *testing.T, port int) []string {
	t.Helper()
	var out []string
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 10 || fields[3] != "0A" { // LISTEN
				continue
			}
			local := fields[1]
			if p, err := strconv.ParseUint(local[strings.LastIndexByte(local, ':')+1:], 16, 16); err == nil && int(p) == port {
				out = append(out, fields[9])
			}
		}
	}
	return out
}

// N=4: one listening socket, pilot's, inherited by every worker as fd 3;
// connections spread over all four; PILOT_INSTANCE 0…3.
func TestClusterOneSocketFourWorkers(t *testing.T) {
	c := startCluster(t, "", "")
	pids := c.waitReady(t, 4)

	listening := listeningInodes(t, c.port)
	if len(listening) != 1 {
		t.Fatalf("%d sockets listen on port %d, want exactly one (pilot's): %v", len(listening), c.port, listening)
	}
	if !slices.Contains(socketInodes(t, c.p.pid), listening[0]) {
		t.Errorf("pilot (pid %d) does not hold the listening socket %s", c.p.pid, listening[0])
	}
	for i, pid := range pids {
		fd3, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/3", pid))
		if err != nil || fd3 != "socket:["+listening[0]+"]" {
			t.Errorf("instance %d (pid %d): fd 3 is %q (%v), want the listening socket %s", i, pid, fd3, err, listening[0])
		}
		env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		vars := strings.Split(string(env), "\x00")
		for _, want := range []string{"PILOT_INSTANCE=" + strconv.Itoa(i), "LISTEN_FDS=1", "LISTEN_PID=" + strconv.Itoa(pid), "LISTEN_FDNAMES=listen0"} {
			if !slices.Contains(vars, want) {
				t.Errorf("instance %d (pid %d): no %s in its environment", i, pid, want)
			}
		}
	}

	served := map[string]int{}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	for range 400 {
		body, err := get(client, c.url)
		if err != nil {
			t.Fatal(err)
		}
		served[strings.Fields(body)[0]]++
	}
	for _, pid := range pids {
		if served[strconv.Itoa(pid)] == 0 {
			t.Errorf("worker %d served none of 400 connections: %v", pid, served)
		}
	}
	t.Logf("400 connections over the workers: %v", served)
}

func get(client *http.Client, url string) (string, error) {
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 512)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if resp.StatusCode != 200 {
		return b.String(), fmt.Errorf("status %d", resp.StatusCode)
	}
	return b.String(), nil
}

// load is wrk (keep-alive) and a loop of fresh connections at the same
// time against url, until stop; it counts every failure by kind.
type load struct {
	wrk     *exec.Cmd
	wrkOut  *toolbin.LockedBuffer
	stop    chan struct{}
	done    sync.WaitGroup
	ok      atomic.Int64
	refused atomic.Int64
	reset   atomic.Int64
	other   atomic.Int64
	mu      sync.Mutex
	errs    []string
}

func startLoad(t *testing.T, url string, d time.Duration) *load {
	t.Helper()
	wrk := toolbin.RequireCommand(t, "wrk")
	l := &load{stop: make(chan struct{}), wrkOut: &toolbin.LockedBuffer{}}
	l.wrk = exec.Command(wrk, "-t1", "-c16", "-d"+strconv.Itoa(int(d.Seconds()))+"s", url)
	l.wrk.Stdout, l.wrk.Stderr = l.wrkOut, l.wrkOut
	if err := l.wrk.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.wrk.Process.Kill() })
	for range 2 {
		l.done.Go(func() {
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				_, err := get(client, url)
				switch {
				case err == nil:
					l.ok.Add(1)
					continue
				case errors.Is(err, syscall.ECONNREFUSED):
					l.refused.Add(1)
				case errors.Is(err, syscall.ECONNRESET):
					l.reset.Add(1)
				default:
					l.other.Add(1)
				}
				l.mu.Lock()
				l.errs = append(l.errs, err.Error())
				l.mu.Unlock()
			}
		})
	}
	return l
}

var (
	wrkRequests = regexp.MustCompile(`(\d+) requests in`)
	wrkSocket   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

// finish stops the loop, waits for wrk and fails t on any failed request.
func (l *load) finish(t *testing.T) {
	t.Helper()
	close(l.stop)
	l.done.Wait()
	if err := l.wrk.Wait(); err != nil {
		t.Fatalf("wrk: %v\n%s", err, l.wrkOut.String())
	}
	out := l.wrkOut.String()
	m := wrkRequests.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("wrk printed no request count:\n%s", out)
	}
	if s := wrkSocket.FindStringSubmatch(out); s != nil {
		t.Errorf("wrk (keep-alive): socket errors: connect %s, read %s, write %s, timeout %s", s[1], s[2], s[3], s[4])
	}
	if s := wrkNon2xx.FindStringSubmatch(out); s != nil {
		t.Errorf("wrk (keep-alive): %s non-2xx responses", s[1])
	}
	if n := l.refused.Load() + l.reset.Load() + l.other.Load(); n > 0 {
		l.mu.Lock()
		t.Errorf("fresh connections: %d refused, %d reset, %d other failures of %d: %v", l.refused.Load(), l.reset.Load(), l.other.Load(),
			n+l.ok.Load(), l.errs[:min(len(l.errs), 5)])
		l.mu.Unlock()
	}
	t.Logf("load: wrk (keep-alive) %s requests, fresh connections %d", m[1], l.ok.Load())
}

func reloadApp(t *testing.T, p *pilotProc) (control.RollResult, error) {
	t.Helper()
	return control.NewClient(p.socket, time.Minute).ReloadJob(context.Background(), "web")
}

func newPids(before, after []int) bool {
	return len(after) == len(before) && !slices.ContainsFunc(after, func(p int) bool { return slices.Contains(before, p) })
}

// A rolling reload of 4 instances under wrk's keep-alive load and a loop
// of fresh connections fails no request: no refusal, no reset, no non-2xx.
// So does a config reload that changes the job (it rolls too).
func TestClusterRollingReloadUnderLoad(t *testing.T) {
	c := startCluster(t, "", "")
	before := c.waitReady(t, 4)
	l := startLoad(t, c.url, 8*time.Second)
	time.Sleep(time.Second) // the load is under way (a pace, not a wait for state)

	res, err := reloadApp(t, c.p)
	if err != nil {
		t.Fatal(err)
	}
	after := c.waitReady(t, 4)
	if !newPids(before, after) || res.Replaced != 4 {
		t.Fatalf("reload-app replaced %d: pids %v → %v, want 4 new", res.Replaced, before, after)
	}
	t.Logf("reload-app under load: %.2fs", res.Seconds)

	cfg, _ := os.ReadFile(c.cfgPath)
	rewrite(t, c.cfgPath, strings.Replace(string(cfg), `APP_PORT:`, `GEN: "2", APP_PORT:`, 1))
	rr, err := controlClient(c.p).Reload(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rr.Rolled, []string{"web"}) || len(rr.Restarted) > 0 {
		t.Errorf("config reload: %+v, want web rolled, nothing restarted", rr)
	}
	l.finish(t)
	body, err := get(http.DefaultClient, c.url)
	if err != nil || !strings.HasSuffix(strings.TrimSpace(body), " 2") {
		t.Errorf("after the config reload the app answers %q (%v), want GEN 2", body, err)
	}
}

// A new instance that never becomes ready aborts the reload: reload-app
// fails (exit 1), the old instances keep serving, status and the metric
// say so.
func TestClusterReloadNotReady(t *testing.T) {
	ports, err := consulagent.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	c := startCluster(t, fmt.Sprintf("telemetry: {listen: \"127.0.0.1:%d\"}\n", ports[0]), "")
	before := c.waitReady(t, 4)
	if err := os.WriteFile(c.flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runPilotCommand(t, c.p, "reload-app", "web")
	if code != 1 || !strings.Contains(errOut, "new instance 0") || !strings.Contains(errOut, "not ready") {
		t.Fatalf("reload-app: exit %d, stdout %q, stderr %q; want exit 1 naming new instance 0 not ready", code, out, errOut)
	}
	if after := c.waitReady(t, 4); !slices.Equal(after, before) {
		t.Errorf("after the failed reload: pids %v, want the old %v", after, before)
	}
	if _, err := get(http.DefaultClient, c.url); err != nil {
		t.Errorf("the old instances do not serve: %v", err)
	}
	st := c.status(t)
	if st.LastReload == nil || !strings.Contains(st.LastReload.Error, "not ready") {
		t.Errorf("status lastReload %+v, want the failure", st.LastReload)
	}
	scrapeUntil(t, fmt.Sprintf("http://127.0.0.1:%d", ports[0]), 5*time.Second, "the failed reload counted", func(s scrape) bool {
		return s.samples[`pilot_rolling_reloads_total{job="web",result="failed"}`] == 1
	})
	if c.p.errLog.count(`rolling reload: failed`) == 0 && c.p.out.count(`rolling reload: failed`) == 0 {
		t.Error("no log line of the failed reload")
	}
	// Once the app is fixed, the reload goes through.
	os.Remove(c.flag)
	if _, err := reloadApp(t, c.p); err != nil {
		t.Fatal(err)
	}
}

// runPilotCommand runs `pilot ARGS…` against p's socket.
func runPilotCommand(t *testing.T, p *pilotProc, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(self(t), args...)
	cmd.Env = append(os.Environ(), roleEnv+"=pilot", "PILOT_SOCKET="+p.socket)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errOut.String()
}

// 20 rolling reloads in a row: still 4 workers, no zombie, pilot holds no
// more descriptors than before.
func TestCluster20Reloads(t *testing.T) {
	c := startCluster(t, "", "")
	c.waitReady(t, 4)
	fdsBefore := countFDs(t, c.p.pid)
	for i := range 20 {
		if _, err := reloadApp(t, c.p); err != nil {
			t.Fatalf("reload %d: %v", i+1, err)
		}
	}
	c.waitReady(t, 4)
	// A descriptor may be on its way out (the last reload's control
	// connection); a leak stays.
	waitFor(t, 5*time.Second, fmt.Sprintf("pilot holding no more than the %d descriptors it held before the reloads", fdsBefore), func() (int, bool) {
		n := countFDs(t, c.p.pid)
		return n, n <= fdsBefore
	})
	waitFor(t, 5*time.Second, "no zombie among pilot's descendants", func() (bool, bool) {
		for _, pe := range descendantsOf(c.p.pid) {
			if pe.state == 'Z' {
				return false, false
			}
		}
		return true, true
	})
	if kids := childPids(c.p.pid); len(kids) != 4 {
		t.Errorf("pilot has %d children after 20 reloads, want 4: %v", len(kids), kids)
	}
}

// maxMemory on a cluster job replaces the instance above it through the
// rolling path: a new one is ready before the old one stops, and the
// others are untouched.
func TestClusterMaxMemoryRolls(t *testing.T) {
	c := startCluster(t, "", "    maxMemory: 96MiB\n")
	before := c.waitReady(t, 4)
	// Grow one worker (whichever accepts) past the limit.
	body, err := get(&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}, c.url+"grow")
	if err != nil {
		t.Fatal(err)
	}
	grown, _ := strconv.Atoi(strings.Fields(body)[0])
	after := waitFor(t, 30*time.Second, "the grown worker replaced", func() ([]int, bool) {
		st := c.status(t)
		var pids []int
		for _, in := range st.Instances {
			if in.State == "healthy" {
				pids = append(pids, in.Pid)
			}
		}
		return pids, len(pids) == 4 && !slices.Contains(pids, grown)
	})
	kept := 0
	for _, p := range before {
		if slices.Contains(after, p) {
			kept++
		}
	}
	if kept != 3 {
		t.Errorf("pids %v → %v: want the 3 workers under the limit kept", before, after)
	}
	if c.p.errLog.count(`instance above maxMemory`)+c.p.out.count(`instance above maxMemory`) == 0 {
		t.Error("no log line saying why the instance was replaced")
	}
}

// The job's reloadSignal, sent to pilot, rolls the job: new workers, and
// the signal does not reach the old ones (they stop by their stop signal).
func TestClusterReloadSignal(t *testing.T) {
	c := startCluster(t, "", "    reloadSignal: SIGUSR1\n")
	before := c.waitReady(t, 4)
	c.p.signal(syscall.SIGUSR1)
	st := waitFor(t, 30*time.Second, "the reload done", func() (telemetry.JobStatus, bool) {
		st := c.status(t)
		return st, st.LastReload != nil
	})
	if st.LastReload.Error != "" || st.LastReload.Replaced != 4 {
		t.Errorf("lastReload %+v, want 4 replaced", st.LastReload)
	}
	if after := c.waitReady(t, 4); !newPids(before, after) {
		t.Errorf("pids %v → %v, want 4 new", before, after)
	}
}

// A socket that cannot be bound is an error naming the job's entry: at
// start (exit 1) and at a reload (nothing changes). A reload that moves the
// job to another address restarts it on the new socket and closes the old.
func TestClusterListenBindErrorsAndMove(t *testing.T) {
	node := requireNode(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	takenPort := taken.Addr().(*net.TCPAddr).Port
	cfg := writeConfig(t, clusterConfig(t, node, takenPort, "/nonexistent", "", ""))
	p := startPilot(t, pilotOpts{}, "run", "--config", cfg)
	if code := p.wait(10 * time.Second); code != 1 {
		t.Fatalf("pilot with its listen address taken: exit %d, want 1", code)
	}
	if want := fmt.Sprintf("jobs[0].listen[0]: listen tcp 127.0.0.1:%d", takenPort); !strings.Contains(p.errLog.String(), want) ||
		!strings.Contains(p.errLog.String(), "address already in use") {
		t.Errorf("stderr lacks %q … address already in use:\n%s", want, p.errLog.String())
	}

	c := startCluster(t, "", "")
	before := c.waitReady(t, 4)
	cfgText, _ := os.ReadFile(c.cfgPath)
	moved := strings.Replace(string(cfgText), fmt.Sprintf(`listen: ["127.0.0.1:%d"]`, c.port), fmt.Sprintf(`listen: ["127.0.0.1:%d"]`, takenPort), 1)
	rewrite(t, c.cfgPath, strings.Replace(moved, fmt.Sprintf(`APP_PORT: "%d"`, c.port), fmt.Sprintf(`APP_PORT: "%d"`, takenPort), 1))
	_, err = controlClient(c.p).Reload(context.Background())
	if err == nil || !strings.Contains(err.Error(), "jobs[0].listen[0]") {
		t.Fatalf("reload onto a taken port: %v, want an error naming jobs[0].listen[0]", err)
	}
	if after := c.waitReady(t, 4); !slices.Equal(after, before) {
		t.Errorf("a refused reload changed the workers: %v → %v", before, after)
	}
	if _, err := get(http.DefaultClient, c.url); err != nil {
		t.Errorf("the job no longer serves after a refused reload: %v", err)
	}

	taken.Close()
	rr, err := controlClient(c.p).Reload(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rr.Restarted, []string{"web"}) {
		t.Errorf("moving the socket: %+v, want web restarted (not rolled)", rr)
	}
	c.waitReady(t, 4)
	if _, err := get(http.DefaultClient, fmt.Sprintf("http://127.0.0.1:%d/", takenPort)); err != nil {
		t.Errorf("not serving on the new address: %v", err)
	}
	if l := listeningInodes(t, c.port); len(l) != 0 {
		t.Errorf("the old socket on port %d is still open: %v", c.port, l)
	}
}
