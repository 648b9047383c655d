package main

// The nginx proxy proof, at binary level: three replicas of an app, each
// under its own pilot, registered in a real Consul agent; a fourth pilot
// runs a real nginx as a job and keeps its upstream in step with Consul
// through a watch (render + SIGHUP). It shows that a replica killed with
// kill -9 leaves the upstream within 500 ms of Consul marking it critical,
// and that a replica stopped gracefully (SIGTERM to its pilot) is withdrawn
// before it stops: not one request through nginx fails under load.
//
// nginx is configured with `proxy_next_upstream off`: nginx's default
// (`error timeout`) would retry a refused connection on another replica and
// hide exactly the failure this test exists to catch.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nodepilot/pilot/discovery/render"
	"github.com/nodepilot/pilot/test/consulagent"
	"github.com/nodepilot/pilot/test/toolbin"
)

// requireNginx returns the nginx binary; without it the test fails.
func requireNginx(t *testing.T) string {
	t.Helper()
	return toolbin.RequireCommand(t, "nginx")
}

// nginxProxy is a pilot running nginx with a watch on service.
type nginxProxy struct {
	dir, upstream string
	port          int
	p             *pilotProc
}

func startNginxProxy(t *testing.T, a *consulagent.Agent, bin, service string, port int) *nginxProxy {
	t.Helper()
	dir := t.TempDir()
	n := &nginxProxy{dir: dir, upstream: filepath.Join(dir, "upstream.conf"), port: port}
	conf := fmt.Sprintf(`worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log notice;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path %[1]s/tmp/client;
  proxy_temp_path %[1]s/tmp/proxy;
  fastcgi_temp_path %[1]s/tmp/fastcgi;
  uwsgi_temp_path %[1]s/tmp/uwsgi;
  scgi_temp_path %[1]s/tmp/scgi;
  include %[2]s;
  server {
    listen 127.0.0.1:%[3]d;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_next_upstream off;
    }
  }
}
`, dir, n.upstream, port)
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// nginx must find the upstream file at its first load. Pre-write exactly
	// what the watch renders for the empty set, so that its first render is
	// a no-op and no SIGHUP can reach nginx before it handles signals.
	placeholder, err := render.NGINX(render.Snapshot{Service: service}, render.NGINXOptions{Name: "backend"})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.upstream, placeholder, 0o644); err != nil {
		t.Fatal(err)
	}
	argv := []string{bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", filepath.Join(dir, "nginx.conf"), "-g", "daemon off;"}
	cfg := writeConfig(t, fmt.Sprintf(`consul: {address: %q}
stopTimeout: 9s
jobs:
  - name: nginx
    main: true
    exec: %s
    stopTimeout: 5s
watches:
  - service: %s
    debounce: {min: 0s, max: 100ms}
    onChange:
      render: {format: nginx, dest: %q, name: backend}
      reload: {job: nginx, signal: SIGHUP}
`, a.Addr(), yamlArgv(argv...), service, n.upstream))
	n.p = startPilot(t, pilotOpts{}, "run", "--config", cfg)
	stopOnCleanup(t, n.p)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx error.log (tail):\n%s", consulagent.Tail(string(b), 4000))
			u, _ := os.ReadFile(n.upstream)
			t.Logf("upstream.conf:\n%s", u)
		}
	})
	return n
}

// stopOnCleanup ends p and everything below it at the test's end: startPilot's
// own cleanup SIGKILLs pilot alone, which (pilot not being PID 1 here) would
// leave nginx and the apps running. Registered after startPilot, it runs
// first.
func stopOnCleanup(t *testing.T, p *pilotProc) {
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = syscall.Kill(p.pid, syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
			}
		}
		for _, d := range descendantsOf(p.pid) {
			_ = syscall.Kill(d.pid, syscall.SIGKILL)
		}
	})
}

// proxyResult is one request through nginx: the replica's port, or the
// failure.
type proxyResult struct {
	port int
	err  error
}

// proxyGet sends one request through nginx on a fresh connection; any
// answer but 200 "hello" with the replica's X-Helper-Port is an error.
func proxyGet(client *http.Client, url string) proxyResult {
	resp, err := client.Get(url)
	if err != nil {
		return proxyResult{err: err}
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return proxyResult{err: err}
	}
	if resp.StatusCode != 200 {
		return proxyResult{err: fmt.Errorf("%s: %q", resp.Status, strings.TrimSpace(string(body)))}
	}
	n, perr := strconv.Atoi(resp.Header.Get("X-Helper-Port"))
	if string(body) != "hello\n" || perr != nil {
		return proxyResult{err: fmt.Errorf("unexpected answer %q, X-Helper-Port %q", body, resp.Header.Get("X-Helper-Port"))}
	}
	return proxyResult{port: n}
}

func newProxyClient() *http.Client {
	return &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{DisableKeepAlives: true},
	}
}

// firstCritical follows /v1/health/checks/SERVICE with blocking queries and
// returns when the check of instance id is first seen critical. It closes
// ready once it has the first answer: from then on a change wakes it.
func firstCritical(ctx context.Context, a *consulagent.Agent, service, id string, ready chan<- struct{}) (time.Time, error) {
	client := &http.Client{}
	index := "0"
	for first := true; ; first = false {
		url := fmt.Sprintf("http://%s/v1/health/checks/%s?index=%s&wait=10s", a.Addr(), service, index)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return time.Time{}, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return time.Time{}, err
		}
		now := time.Now()
		var checks []struct{ ServiceID, Status string }
		err = json.NewDecoder(resp.Body).Decode(&checks)
		resp.Body.Close()
		if err != nil {
			return time.Time{}, err
		}
		for _, c := range checks {
			if c.ServiceID == id && c.Status == "critical" {
				return now, nil
			}
		}
		if first {
			close(ready)
		}
		index = resp.Header.Get("X-Consul-Index")
		if index == "" {
			index = "0"
		}
	}
}

// lineGone polls path every 2 ms and returns when line is no longer in it
// (a missing file does not count).
func lineGone(ctx context.Context, path, line string) (time.Time, error) {
	for {
		b, err := os.ReadFile(path)
		if err == nil && !strings.Contains(string(b), line) {
			return time.Now(), nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// eventually runs f in a goroutine; wait returns its result.
func eventually(f func() (time.Time, error)) (wait func() (time.Time, error)) {
	var (
		at   time.Time
		err  error
		done = make(chan struct{})
	)
	go func() { defer close(done); at, err = f() }()
	return func() (time.Time, error) { <-done; return at, err }
}

// instanceStatus is the status of instance id's TTL check ("" when absent).
func instanceStatus(a *consulagent.Agent, service, id string) string {
	es, _ := entries(a, service, false)
	for _, e := range es {
		for _, ch := range e.Checks {
			if e.Service.ID == id && ch.CheckID == "service:"+id {
				return ch.Status
			}
		}
	}
	return ""
}

func serverLine(port int) string { return fmt.Sprintf("server 127.0.0.1:%d;", port) }

func TestProxyNginx(t *testing.T) {
	nginx := requireNginx(t)
	a := consulagent.Shared(t)
	service := fmt.Sprintf("proxy%d-%d", consulSerial.Add(1), time.Now().UnixNano()%1e6)
	ports, err := consulagent.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	proxy := startNginxProxy(t, a, nginx, service, ports[0])
	url := fmt.Sprintf("http://127.0.0.1:%d/", proxy.port)
	client := newProxyClient()
	// Up, with the fail-closed placeholder: 502.
	waitFor(t, 10*time.Second, "nginx answering 502 on the empty upstream", func() (string, bool) {
		r := proxyGet(client, url)
		return fmt.Sprint(r.err), r.err != nil && strings.HasPrefix(r.err.Error(), "502")
	})

	// Three replicas of one service, each under its own pilot.
	apps := make([]*consulApp, 3)
	pilots := make([]*pilotProc, 3)
	pids := make([]int, 3)
	for i := range apps {
		c := newConsulApp(t, a.Addr())
		c.name, c.id = service, defaultID(service, c.port) // no id: in the config
		c.drain = time.Second
		// A killed replica stays down (and registered, critical) for the
		// rest of the test: the measurement below is unambiguous.
		c.restart = "{policy: on-failure, backoff: {initial: 60s, max: 60s}}"
		apps[i] = c
		pilots[i] = c.start(t, pilotOpts{})
		stopOnCleanup(t, pilots[i])
	}
	for i, p := range pilots {
		pids[i], _ = strconv.Atoi(p.out.waitLine(t, 10*time.Second, `^ready (\d+)`)[1])
	}
	waitFor(t, 10*time.Second, "three passing instances in Consul", func() (int, bool) {
		es, ok := entries(a, service, true)
		return len(es), ok && len(es) == 3
	})
	waitFor(t, 5*time.Second, "three servers in the rendered upstream", func() (string, bool) {
		b, _ := os.ReadFile(proxy.upstream)
		for _, c := range apps {
			if !strings.Contains(string(b), serverLine(c.port)) {
				return string(b), false
			}
		}
		return string(b), !strings.Contains(string(b), render.Placeholder)
	})

	// 1. nginx reaches every replica; once reloaded, 60 requests in a row
	// succeed and are spread over all three.
	seen := steadyThrough(t, client, url, 60, apps[0].port, apps[1].port, apps[2].port)
	t.Logf("through nginx, 60 requests in a row: %v (port → count)", seen)

	// 2. kill -9 one replica: from Consul's critical to out of the upstream.
	killed := apps[0]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	watching := make(chan struct{})
	critical := eventually(func() (time.Time, error) { return firstCritical(ctx, a, service, killed.id, watching) })
	gone := eventually(func() (time.Time, error) { return lineGone(ctx, proxy.upstream, serverLine(killed.port)) })
	select {
	case <-watching:
	case <-ctx.Done():
		t.Fatal("no first answer from /v1/health/checks")
	}
	killedAt := time.Now()
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	criticalAt, err := critical()
	if err != nil {
		t.Fatalf("watching for the critical check: %v", err)
	}
	goneAt, err := gone()
	if err != nil {
		t.Fatalf("the killed replica's server line never left %s: %v", proxy.upstream, err)
	}
	lag := goneAt.Sub(criticalAt)
	t.Logf("kill -9 → critical in Consul after %s; → out of the upstream file after %s; critical → out of upstream: %s",
		criticalAt.Sub(killedAt).Round(100*time.Microsecond), goneAt.Sub(killedAt).Round(100*time.Microsecond), lag.Round(100*time.Microsecond))
	if lag > 500*time.Millisecond {
		t.Errorf("the killed replica left the upstream %s after Consul marked it critical, want ≤ 500ms", lag)
	}
	if st := instanceStatus(a, service, killed.id); st != "critical" {
		t.Errorf("the killed replica's check is %q, want critical (still registered, not restarted)", st)
	}

	// 3. Graceful stop under load: SIGTERM to a second replica's pilot while
	// four workers send requests through nginx; not one may fail.
	stopped, survivor := apps[1], apps[2]
	seen = steadyThrough(t, client, url, 40, stopped.port, survivor.port)
	t.Logf("after the kill, 40 requests in a row: %v", seen)

	var (
		total, failed atomic.Int64
		mu            sync.Mutex
		perPort       = map[int]int{}
		failures      []string
		stopWorkers   = make(chan struct{})
		wg            sync.WaitGroup
		loadDeadline  = time.Now().Add(30 * time.Second)
	)
	loadURL := url + "?sleep=5ms" // requests in flight through every reload
	for range 4 {
		wg.Go(func() {
			c := newProxyClient()
			for {
				select {
				case <-stopWorkers:
					return
				default:
				}
				if time.Now().After(loadDeadline) {
					return
				}
				r := proxyGet(c, loadURL)
				total.Add(1)
				mu.Lock()
				if r.err != nil {
					failed.Add(1)
					if len(failures) < 10 {
						failures = append(failures, fmt.Sprintf("%s: %v", time.Now().Format("15:04:05.000000"), r.err))
					}
				} else {
					perPort[r.port]++
				}
				mu.Unlock()
			}
		})
	}
	waitFor(t, 10*time.Second, "load flowing to both replicas", func() (map[int]int, bool) {
		mu.Lock()
		defer mu.Unlock()
		return perPort, perPort[stopped.port] >= 20 && perPort[survivor.port] >= 20
	})
	outCtx, cancelOut := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancelOut()
	out := eventually(func() (time.Time, error) {
		return lineGone(outCtx, proxy.upstream, serverLine(stopped.port))
	})
	beforeStop := total.Load()
	sent := time.Now()
	pilots[1].signal(syscall.SIGTERM)
	code := pilots[1].wait(15 * time.Second)
	stopDone := time.Now()
	// Keep the load on for 500 ms after the stop: nginx must not send
	// anything to the stopped replica any more either.
	time.Sleep(min(500*time.Millisecond, time.Until(loadDeadline))) // load, not synchronisation
	close(stopWorkers)
	wg.Wait()
	if code != 0 {
		t.Errorf("the stopped replica's pilot exited %d, want 0", code)
	}
	outAt, err := out()
	if err != nil {
		t.Errorf("the stopped replica never left the upstream: %v", err)
	}
	m := pilots[1].out.waitLine(t, time.Second, `^got SIGTERM (\d+)`)
	us, _ := strconv.ParseInt(m[1], 10, 64)
	appSignalled := time.UnixMicro(us)
	t.Logf("SIGTERM to pilot → out of the upstream at +%s, app signalled at +%s, pilot exited at +%s (drain %s)",
		outAt.Sub(sent).Round(100*time.Microsecond), appSignalled.Sub(sent).Round(100*time.Microsecond),
		stopDone.Sub(sent).Round(time.Millisecond), stopped.drain)
	if !outAt.IsZero() && !outAt.Before(appSignalled) {
		t.Errorf("the app got SIGTERM %s before it left the upstream", outAt.Sub(appSignalled))
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("under load: %d requests (%d before the SIGTERM), %d failed; per replica port: %v",
		total.Load(), beforeStop, failed.Load(), perPort)
	if failed.Load() != 0 {
		t.Errorf("%d of %d requests through nginx failed during the graceful stop; first ones:\n%s",
			failed.Load(), total.Load(), strings.Join(failures, "\n"))
	}
	if perPort[killed.port] != 0 {
		t.Errorf("%d requests reached the killed replica", perPort[killed.port])
	}
	if time.Now().After(loadDeadline) {
		t.Errorf("the load ran into its deadline")
	}

	// nginx itself stops cleanly with its pilot.
	proxy.p.signal(syscall.SIGTERM)
	if code := proxy.p.wait(15 * time.Second); code != 0 {
		t.Errorf("the nginx pilot exited %d, want 0", code)
	}
}

// steadyThrough waits until n requests in a row through url succeed, reach
// only the given ports and reach each of them; it returns the counts.
func steadyThrough(t *testing.T, client *http.Client, url string, n int, ports ...int) map[int]int {
	t.Helper()
	want := map[int]bool{}
	for _, p := range ports {
		want[p] = true
	}
	var last error
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		counts := map[int]int{}
		ok := true
		for range n {
			r := proxyGet(client, url)
			if r.err == nil && !want[r.port] {
				r.err = fmt.Errorf("reached port %d, not one of %v", r.port, ports)
			}
			if r.err != nil {
				last, ok = r.err, false
				break
			}
			counts[r.port]++
		}
		if ok && len(counts) == len(ports) {
			return counts
		}
		if ok {
			last = fmt.Errorf("only %v reached", counts)
		}
		time.Sleep(20 * time.Millisecond) // between rounds, bounded by the deadline
	}
	t.Fatalf("no %d requests in a row through nginx reaching exactly %v within 10s; last: %v", n, ports, last)
	return nil
}

// A proxy restarted while its backends are already in Consul: the watch's
// first render differs from the file nginx would load, and a reload signal
// sent while nginx starts kills it (nginx dies of SIGHUP until it has
// installed its handlers, ~30 ms into its start). pilot starts a job that a
// watch reloads only after the watch's first render, so nginx starts on the
// full set and lives. Before that gate, 3 of 5 such starts ended with
// nginx, and the proxy's pilot, exiting 129.
func TestProxyNginxStartsOnTheCurrentSet(t *testing.T) {
	nginx := requireNginx(t)
	a := consulagent.Shared(t)
	service := fmt.Sprintf("prestart%d-%d", consulSerial.Add(1), time.Now().UnixNano()%1e6)
	var ports []int
	for range 2 {
		srv := httptest.NewServer(nil)
		port := srv.Listener.Addr().(*net.TCPAddr).Port
		srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("X-Helper-Port", strconv.Itoa(port))
			fmt.Fprintln(w, "hello")
		})
		t.Cleanup(srv.Close)
		registerInstance(t, a, service, fmt.Sprintf("%s-%d", service, port), port)
		ports = append(ports, port)
	}
	client := newProxyClient()
	for round := range 5 {
		free, err := consulagent.FreePorts(1)
		if err != nil {
			t.Fatal(err)
		}
		proxy := startNginxProxy(t, a, nginx, service, free[0])
		url := fmt.Sprintf("http://127.0.0.1:%d/", proxy.port)
		steadyThrough(t, client, url, 10, ports...)
		if proxy.p.errLog.count(`exited.*job=nginx`) > 0 {
			t.Fatalf("round %d: nginx exited:\n%s", round, proxy.p.errLog.String())
		}
		// The first render comes before nginx starts: no reload signal
		// can have been sent then, and none may be claimed.
		for _, l := range proxy.p.errLog.Lines() {
			if strings.Contains(l, "msg=started") && strings.Contains(l, "job=nginx") {
				break
			}
			if strings.Contains(l, "reload signal sent") {
				t.Fatalf("round %d: a reload signal claimed before nginx started: %s", round, l)
			}
		}
		if code := stopPilot(t, proxy.p); code != 0 {
			t.Fatalf("round %d: the proxy's pilot exited %d:\n%s", round, code, proxy.p.errLog.String())
		}
	}
}
