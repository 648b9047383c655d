package main

// Binary-level proof of pilot behind a real Traefik (v3, built from its Go
// module by test/traefik.sh; test/traefikproc runs it): three app replicas,
// each under its own pilot, register the same Consul service with a
// `service.traefik:` block; Traefik's Consul Catalog provider (watch mode:
// blocking queries on the catalog's services and checks) routes to them.
// Like the Consul tests these do not call t.Parallel: they measure latencies
// and share the process's Consul agent.

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nodepilot/pilot/test/consulagent"
	"github.com/nodepilot/pilot/test/traefikproc"
)

// traefikThrottle is Traefik's providersThrottleDuration in these tests:
// after applying a provider's configuration Traefik ignores the provider for
// that long (default 2 s). A drain must cover it plus the watch's latency.
const traefikThrottle = 500 * time.Millisecond

// traefikDrain is each replica's service.drain.
const traefikDrain = 1500 * time.Millisecond

// traefikReplica is one `helper http` app job with a service block carrying
// a traefik: block, under its own pilot. The config leaves the service ID
// at its default; id is that default.
type traefikReplica struct {
	name, id, host string
	port           int
	marker         string
	consul         string
	p              *pilotProc
	appPid         int
}

func (r *traefikReplica) url() string { return fmt.Sprintf("http://127.0.0.1:%d", r.port) }

func (r *traefikReplica) config(t *testing.T) string {
	t.Helper()
	return writeConfig(t, fmt.Sprintf(`consul:
  address: %s
stopTimeout: 9s
jobs:
  - name: app
    main: true
    exec: %s
    restart: {policy: on-failure, backoff: {initial: 30s, max: 30s}}
    health:
      http: {port: %d, path: /health}
      interval: 200ms
      timeout: 150ms
      unhealthyThreshold: 2
    service:
      name: %s
      port: %d
      address: {static: 127.0.0.1}
      ttl: 3s
      drain: %s
      traefik:
        rule: "Host(%s)"
        entrypoints: [web]
`, r.consul, yamlArgv(helperArgv(t, "http", strconv.Itoa(r.port), r.marker)...),
		r.port, r.name, r.port, traefikDrain, "`"+r.host+"`"))
}

// startTraefikReplicas starts n pilots for one service name and waits until
// every app serves.
func startTraefikReplicas(t *testing.T, consulAddr, name string, n int) []*traefikReplica {
	t.Helper()
	ports, err := consulagent.FreePorts(n)
	if err != nil {
		t.Fatal(err)
	}
	var rs []*traefikReplica
	for i := range n {
		r := &traefikReplica{
			name: name, id: defaultID(name, ports[i]), host: name + ".test",
			port: ports[i], marker: filepath.Join(t.TempDir(), "unhealthy"), consul: consulAddr,
		}
		r.p = startPilot(t, pilotOpts{}, "run", "--config", r.config(t))
		rs = append(rs, r)
	}
	for _, r := range rs {
		r.appPid, _ = strconv.Atoi(r.p.out.waitLine(t, 10*time.Second, `^ready (\d+)`)[1])
	}
	return rs
}

// traefikServers returns the URLs of the service's servers as Traefik's API
// shows them; ok is false when the API did not answer.
func traefikServers(tr *traefikproc.Proxy, svc string) ([]string, bool) {
	s, err := tr.Service(svc)
	if err != nil {
		return nil, false
	}
	u := s.URLs() // nil for a missing service
	slices.Sort(u)
	return u, true
}

// loadResult counts the outcomes of a load run through Traefik.
type loadResult struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	failures   []string    // the first few, with their times
	failedAt   []time.Time // when each failed request was sent
}

func (l *loadResult) fail(start time.Time, what string) {
	l.failed.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failedAt = append(l.failedAt, start)
	if len(l.failures) < 20 {
		l.failures = append(l.failures, start.Format("15:04:05.000000")+" "+what)
	}
}

// runLoad sends GET / with Host host through Traefik's web entrypoint from
// workers goroutines until stop is called or limit passes. A non-200, a
// body other than the helper's, or a transport error is a failure.
func runLoad(tr *traefikproc.Proxy, host string, workers int, limit time.Duration) (res *loadResult, stop func()) {
	res = &loadResult{}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				start := time.Now()
				rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
				resp, err := tr.Get(rctx, host, "/")
				if err != nil {
					rcancel()
					if ctx.Err() == nil {
						res.fail(start, "transport: "+err.Error())
					}
					continue
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				rcancel()
				switch {
				case err != nil && ctx.Err() != nil:
				case err != nil:
					res.fail(start, "body: "+err.Error())
				case resp.StatusCode != 200 || string(body) != "hello\n":
					res.fail(start, fmt.Sprintf("%d %q", resp.StatusCode, body))
				default:
					res.ok.Add(1)
				}
			}
		})
	}
	return res, func() { cancel(); wg.Wait() }
}

// accessByServer counts the access log's entries for host by the server
// (ServiceURL) that answered them; from, when set, leaves out earlier ones.
func accessByServer(t *testing.T, tr *traefikproc.Proxy, host string, from time.Time) map[string]int {
	t.Helper()
	es, err := tr.AccessLog()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, e := range es {
		if e.RequestHost == host && !e.StartUTC.Before(from) {
			out[e.ServiceURL]++
		}
	}
	return out
}

// lastSentTo returns when Traefik received the last request for host it
// sent to server (zero if none), by its access log.
func lastSentTo(t *testing.T, tr *traefikproc.Proxy, host, server string) time.Time {
	t.Helper()
	es, err := tr.AccessLog()
	if err != nil {
		t.Fatal(err)
	}
	var last time.Time
	for _, e := range es {
		if e.RequestHost == host && e.ServiceURL == server && e.StartUTC.After(last) {
			last = e.StartUTC
		}
	}
	return last
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// watchUntil polls cond every 5 ms in the background and records the first
// time it holds; get returns that time (zero if never) once stopped.
func watchUntil(cond func() bool) (get func() time.Time) {
	var (
		at   time.Time
		done = make(chan struct{})
		quit = make(chan struct{})
	)
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			default:
			}
			if cond() {
				at = time.Now()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	var once sync.Once
	return func() time.Time {
		once.Do(func() { close(quit) })
		<-done
		return at
	}
}

func TestProxyTraefik(t *testing.T) {
	a := consulagent.Shared(t)
	tr := traefikproc.StartT(t, traefikproc.Options{ConsulAddr: a.Addr(), ThrottleDuration: traefikThrottle})
	name := fmt.Sprintf("tfk%d", consulSerial.Add(1))
	svcName, routerName := name+"@consulcatalog", name+"@consulcatalog"
	rs := startTraefikReplicas(t, a.Addr(), name, 3)
	host := rs[0].host
	var urls []string
	for _, r := range rs {
		urls = append(urls, r.url())
	}
	slices.Sort(urls)

	waitFor(t, 10*time.Second, "three passing instances in Consul", func() (int, bool) {
		es, ok := entries(a, name, true)
		return len(es), ok && len(es) == 3
	})
	// The replicas' traefik.* tags are the same but for the server port:
	// here they share a host, so each listens on its own port. Traefik takes
	// the port per instance, into the server's URL, before it compares the
	// replicas' definitions.
	es, _ := entries(a, name, true)
	portTag := "traefik.http.services." + name + ".loadbalancer.server.port="
	for _, e := range es {
		want := portTag + strconv.Itoa(e.Service.Port)
		if !slices.Contains(e.Service.Tags, want) {
			t.Errorf("%s: no %s in %q", e.Service.ID, want, e.Service.Tags)
		}
		if !slices.Equal(withoutPrefix(e.Service.Tags, portTag), withoutPrefix(es[0].Service.Tags, portTag)) {
			t.Errorf("replica tags differ beyond the port: %q vs %q", e.Service.Tags, es[0].Service.Tags)
		}
	}
	t.Logf("tags of %s: %q", es[0].Service.ID, es[0].Service.Tags)

	// 3. One router, enabled, with the service's three servers.
	d := timed(t, 15*time.Second, "Traefik's service with the three servers", func() ([]string, bool) {
		u, ok := traefikServers(tr, svcName)
		return u, ok && slices.Equal(u, urls)
	})
	t.Logf("three passing → three servers in Traefik after %s", d)
	routers, err := tr.Routers()
	if err != nil {
		t.Fatal(err)
	}
	var ours []traefikproc.Router
	for _, r := range routers {
		if r.Provider == "consulcatalog" && (r.Name == routerName || r.Service == name || r.Service == svcName || strings.Contains(r.Rule, host)) {
			ours = append(ours, r)
		}
	}
	if len(ours) != 1 {
		t.Fatalf("want exactly one consulcatalog router for %s, got %+v", name, ours)
	}
	r := ours[0]
	if r.Name != routerName || (r.Service != name && r.Service != svcName) || r.Rule != "Host(`"+host+"`)" ||
		!slices.Equal(r.EntryPoints, []string{"web"}) || r.Status != "enabled" || len(r.Error) != 0 {
		t.Errorf("router %+v, want %s → service %s, rule Host(`%s`), entrypoints [web], enabled, no error", r, routerName, name, host)
	}
	svc, err := tr.Service(svcName)
	if err != nil || svc == nil {
		t.Fatalf("service %s: %v", svcName, err)
	}
	if svc.Status != "enabled" || len(svc.Error) != 0 || !slices.Equal(svc.UsedBy, []string{routerName}) {
		t.Errorf("service %s: status %q errors %q usedBy %q", svcName, svc.Status, svc.Error, svc.UsedBy)
	}
	for _, u := range urls {
		if st := svc.ServerStatus[u]; st != "UP" {
			t.Errorf("server %s status %q, want UP (all: %v)", u, st, svc.ServerStatus)
		}
	}
	if logs := tr.Logs(); strings.Contains(logs, "defined multiple times") {
		t.Errorf("Traefik saw conflicting definitions:\n%s", grepLines(logs, "defined multiple times"))
	}

	// 2. Requests through the web entrypoint reach every replica. The helper
	// answers the same "hello" everywhere, so Traefik's access log tells who
	// served each request.
	begin := time.Now()
	const n = 30
	byHeader := map[string]int{} // X-Helper-Port, where the helper sets it
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := tr.Get(ctx, host, "/")
		if err != nil {
			cancel()
			t.Fatalf("request %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		if resp.StatusCode != 200 || string(body) != "hello\n" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
		if p := resp.Header.Get("X-Helper-Port"); p != "" {
			byHeader["http://127.0.0.1:"+p]++
		}
	}
	by := waitFor(t, 5*time.Second, "the access log holding the requests", func() (map[string]int, bool) {
		m := accessByServer(t, tr, host, begin.UTC().Add(-time.Millisecond))
		return m, sum(m) >= n
	})
	t.Logf("%d requests through Traefik, by server: %v", n, by)
	if got := slices.Sorted(maps.Keys(by)); !slices.Equal(got, urls) {
		t.Errorf("requests reached %v, want all of %v", got, urls)
	}
	// The helper may name its port in a header: the apps' view then agrees.
	if len(byHeader) > 0 {
		t.Logf("by the apps' X-Helper-Port header: %v", byHeader)
	}
	if len(byHeader) > 0 && !maps.Equal(byHeader, by) {
		t.Errorf("by the apps' X-Helper-Port: %v; by Traefik's access log: %v", byHeader, by)
	}

	// 4. Graceful stop under load: pilot marks the instance critical,
	// deregisters it and drains before the app gets SIGTERM; Traefik's
	// watch drops the server in the meantime, so no request fails.
	load, stopLoad := runLoad(tr, host, 4, 60*time.Second)
	waitFor(t, 10*time.Second, "the load running", func() (int64, bool) {
		n := load.ok.Load() + load.failed.Load()
		return n, n >= 200
	})
	victim := rs[0]
	consulGone := watchUntil(func() bool {
		es, ok := entries(a, name, true)
		return ok && !slices.ContainsFunc(es, func(e consulagent.HealthEntry) bool { return e.Service.ID == victim.id })
	})
	traefikGone := watchUntil(func() bool {
		u, ok := traefikServers(tr, svcName)
		return ok && len(u) > 0 && !slices.Contains(u, victim.url())
	})
	okBefore := load.ok.Load()
	sent := time.Now()
	victim.p.signal(syscall.SIGTERM)
	us, _ := strconv.ParseInt(victim.p.out.waitLine(t, traefikDrain+10*time.Second, `^got SIGTERM (\d+)`)[1], 10, 64)
	appSignalled := time.UnixMicro(us)
	if code := victim.p.wait(15 * time.Second); code != 0 {
		t.Errorf("stopped pilot exited %d", code)
	}
	exited := victim.p.ended
	okAtExit, atExit := load.ok.Load(), load.ok.Load()+load.failed.Load()
	waitFor(t, 10*time.Second, "400 more requests after the stopped pilot exited", func() (int64, bool) {
		n := load.ok.Load() + load.failed.Load()
		return n, n >= atExit+400
	})
	stopLoad()
	tConsul, tTraefik := consulGone(), traefikGone()
	rel := func(at time.Time) string {
		if at.IsZero() {
			return "never"
		}
		return "+" + at.Sub(sent).Round(time.Millisecond).String()
	}
	t.Logf("graceful stop (drain %s, Traefik throttle %s): SIGTERM → left Consul ?passing %s, left Traefik's servers %s, app signalled %s, pilot exited %s",
		traefikDrain, traefikThrottle, rel(tConsul), rel(tTraefik), rel(appSignalled), rel(exited))
	t.Logf("load: %d ok (%d during the stop), %d failed", load.ok.Load(), okAtExit-okBefore, load.failed.Load())
	if tTraefik.IsZero() {
		t.Errorf("Traefik never dropped %s", victim.url())
	} else if !tTraefik.Before(appSignalled) {
		t.Errorf("Traefik dropped the server %s after the app got SIGTERM", tTraefik.Sub(appSignalled))
	} else {
		t.Logf("margin: Traefik dropped the server %s before the app got SIGTERM", appSignalled.Sub(tTraefik).Round(time.Millisecond))
	}
	late := accessByServer(t, tr, host, appSignalled.UTC())[victim.url()]
	t.Logf("requests answered by the stopped replica after its app got SIGTERM: %d; the last one it got was sent %s",
		late, rel(lastSentTo(t, tr, host, victim.url())))
	if f := load.failed.Load(); f != 0 {
		load.mu.Lock()
		t.Errorf("%d requests failed during the graceful stop (first: %q)\naccess log non-200s:\n%s",
			f, load.failures, non200(t, tr, host))
		load.mu.Unlock()
	}
	if u, _ := traefikServers(tr, svcName); !slices.Equal(u, without(urls, victim.url())) {
		t.Errorf("after the stop Traefik routes to %v", u)
	}

	// 5. kill -9 of one app: pilot sees the child die at once and pushes
	// critical; how long until Traefik stops routing to it.
	killed := rs[1]
	load2, stopLoad2 := runLoad(tr, host, 4, 60*time.Second)
	waitFor(t, 10*time.Second, "the load running again", func() (int64, bool) {
		n := load2.ok.Load() + load2.failed.Load()
		return n, n >= 200
	})
	consulGone = watchUntil(func() bool {
		es, ok := entries(a, name, true)
		return ok && !slices.ContainsFunc(es, func(e consulagent.HealthEntry) bool { return e.Service.ID == killed.id })
	})
	start := time.Now()
	if err := syscall.Kill(killed.appPid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	d = timed(t, 10*time.Second, "Traefik dropping the killed replica", func() ([]string, bool) {
		u, ok := traefikServers(tr, svcName)
		return u, ok && len(u) > 0 && !slices.Contains(u, killed.url())
	})
	goneAt := start.Add(d)
	atGone := load2.ok.Load() + load2.failed.Load()
	waitFor(t, 10*time.Second, "400 more requests after Traefik dropped it", func() (int64, bool) {
		n := load2.ok.Load() + load2.failed.Load()
		return n, n >= atGone+400
	})
	stopLoad2()
	tc := consulGone()
	t.Logf("kill -9 of the app: → left Consul ?passing after %s, left Traefik's servers after %s", tc.Sub(start).Round(time.Millisecond), d.Round(time.Millisecond))
	load2.mu.Lock()
	var last time.Time
	after := 0
	for _, at := range load2.failedAt {
		if at.After(last) {
			last = at
		}
		if at.After(goneAt) {
			after++
		}
	}
	t.Logf("load during kill -9 (informational, no drain possible): %d ok, %d failed (first: %q)", load2.ok.Load(), load2.failed.Load(), load2.failures)
	if !last.IsZero() {
		t.Logf("failed requests: last sent %s after the kill; %d sent after Traefik's API stopped listing the server", last.Sub(start).Round(time.Millisecond), after)
	}
	load2.mu.Unlock()
	if st := instanceStatus(a, name, killed.id); st != "critical" {
		t.Errorf("after kill -9 the check is %q, want critical (still registered)", st)
	}

	// The rest stop (the killed app's pilot with whatever code its job's
	// failure gives) and the service leaves Traefik.
	for _, r := range rs[1:] {
		r.p.signal(syscall.SIGTERM)
	}
	killed.p.wait(15 * time.Second)
	if code := rs[2].p.wait(15 * time.Second); code != 0 {
		t.Errorf("pilot %s exited %d", rs[2].id, code)
	}
	waitFor(t, 10*time.Second, "the service gone from Traefik", func() ([]string, bool) {
		u, ok := traefikServers(tr, svcName)
		return u, ok && len(u) == 0
	})
	logs := tr.Logs()
	t.Logf("Traefik's log: %d configurations received from consulcatalog, %d of them unchanged",
		strings.Count(logs, "Configuration received config="), strings.Count(logs, "Skipping unchanged configuration"))
	if t.Failed() {
		t.Logf("Traefik dir (config, logs): %s", tr.Dir())
	}
}

func withoutPrefix(s []string, prefix string) []string {
	return slices.DeleteFunc(slices.Clone(s), func(v string) bool { return strings.HasPrefix(v, prefix) })
}

func without(s []string, x string) []string {
	return slices.DeleteFunc(slices.Clone(s), func(v string) bool { return v == x })
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// non200 lists the access log's entries for host that did not answer 200.
func non200(t *testing.T, tr *traefikproc.Proxy, host string) string {
	t.Helper()
	es, err := tr.AccessLog()
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, e := range es {
		if e.RequestHost == host && e.DownstreamStatus != 200 {
			fmt.Fprintf(&b, "%s %s → %s %d (origin %d)\n", e.StartUTC.Format("15:04:05.000000"), e.RequestPath, e.ServiceURL, e.DownstreamStatus, e.OriginStatus)
		}
	}
	return b.String()
}

// Issue 10: three replicas on one host with no id: in their config, as a
// user would run them (several containers with network_mode: host, or a
// test): three distinct instances in Consul, three servers in the real
// Traefik (Consul Catalog) and in the real nginx (a watch rendering its
// upstream), and requests through each proxy reach all three. With the
// old default ID NAME-HOSTNAME they overwrote each other: one instance.
func TestProxyThreeReplicasDefaultIDs(t *testing.T) {
	nginx := requireNginx(t)
	a := consulagent.Shared(t)
	tr := traefikproc.StartT(t, traefikproc.Options{ConsulAddr: a.Addr(), ThrottleDuration: traefikThrottle})
	name := fmt.Sprintf("replicas%d", consulSerial.Add(1))
	free, err := consulagent.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	proxy := startNginxProxy(t, a, nginx, name, free[0])
	rs := startTraefikReplicas(t, a.Addr(), name, 3)
	for _, r := range rs {
		stopOnCleanup(t, r.p)
	}
	var urls, ids []string
	var ports []int
	for _, r := range rs {
		urls, ids, ports = append(urls, r.url()), append(ids, r.id), append(ports, r.port)
	}
	slices.Sort(urls)
	slices.Sort(ids)

	got := waitFor(t, 10*time.Second, "three passing instances in Consul", func() ([]string, bool) {
		es, ok := entries(a, name, true)
		var seen []string
		for _, e := range es {
			seen = append(seen, e.Service.ID)
		}
		slices.Sort(seen)
		return seen, ok && slices.Equal(seen, ids)
	})
	t.Logf("instances in Consul: %v", got)

	// Traefik: three servers, and requests reach each.
	svcName := name + "@consulcatalog"
	waitFor(t, 15*time.Second, "Traefik's service with the three servers", func() ([]string, bool) {
		u, ok := traefikServers(tr, svcName)
		return u, ok && slices.Equal(u, urls)
	})
	begin := time.Now()
	const n = 30
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := tr.Get(ctx, rs[0].host, "/")
		if err != nil {
			cancel()
			t.Fatalf("request %d through Traefik: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		if resp.StatusCode != 200 || string(body) != "hello\n" {
			t.Fatalf("request %d through Traefik: %d %q", i, resp.StatusCode, body)
		}
	}
	by := waitFor(t, 5*time.Second, "the access log holding the requests", func() (map[string]int, bool) {
		m := accessByServer(t, tr, rs[0].host, begin.UTC().Add(-time.Millisecond))
		return m, sum(m) >= n
	})
	t.Logf("%d requests through Traefik, by server: %v", n, by)
	if reached := slices.Sorted(maps.Keys(by)); !slices.Equal(reached, urls) {
		t.Errorf("requests through Traefik reached %v, want all of %v", reached, urls)
	}

	// nginx: the watch renders the three, and requests reach each.
	waitFor(t, 10*time.Second, "three servers in the rendered upstream", func() (string, bool) {
		b, _ := os.ReadFile(proxy.upstream)
		for _, p := range ports {
			if !strings.Contains(string(b), serverLine(p)) {
				return string(b), false
			}
		}
		return string(b), true
	})
	seen := steadyThrough(t, newProxyClient(), fmt.Sprintf("http://127.0.0.1:%d/", proxy.port), 30, ports...)
	t.Logf("30 requests through nginx, by replica port: %v", seen)

	for _, r := range rs {
		if code := stopPilot(t, r.p); code != 0 {
			t.Errorf("replica %s: pilot exited %d", r.id, code)
		}
	}
	waitFor(t, 10*time.Second, "the replicas gone from Consul", func() (int, bool) {
		es, ok := entries(a, name, false)
		return len(es), ok && len(es) == 0
	})
	if code := stopPilot(t, proxy.p); code != 0 {
		t.Errorf("the nginx pilot exited %d", code)
	}
}
