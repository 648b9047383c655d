//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/nodepilot/pilot/discovery"
	dockerwatch "github.com/nodepilot/pilot/discovery/docker"
	"github.com/nodepilot/pilot/test/toolbin"
)

// dwPub is one publication of a watch under test.
type dwPub struct {
	at   time.Time
	snap discovery.Snapshot
}

// dwWatch is a discovery/docker Watch against a real daemon, its
// publications and logs recorded.
type dwWatch struct {
	t    *testing.T
	name string
	logs *toolbin.LockedBuffer

	mu   sync.Mutex
	pubs []dwPub
}

func startDockerWatch(t *testing.T, c *client.Client, name string, spec discovery.WatchSpec) *dwWatch {
	t.Helper()
	w := &dwWatch{t: t, name: name, logs: &toolbin.LockedBuffer{}}
	log := slog.New(slog.NewTextHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	watcher, err := dockerwatch.NewWatcher(c, dockerwatch.WatcherOptions{}, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- watcher.Watch(ctx, spec, func(s discovery.Snapshot) {
			w.mu.Lock()
			w.pubs = append(w.pubs, dwPub{time.Now(), s})
			w.mu.Unlock()
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s: Watch = %v after cancel", name, err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("%s: Watch did not return within 5 s of cancel", name)
		}
		if t.Failed() {
			t.Logf("%s: publications:%s\nlogs:\n%s", name, w.describe(), w.logs)
		}
	})
	return w
}

func (w *dwWatch) all() []dwPub {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.pubs)
}

func (w *dwWatch) describe() string {
	var b strings.Builder
	for i, p := range w.all() {
		fmt.Fprintf(&b, "\n  #%d %s %s", i+1, p.at.Format("15:04:05.000"), dwDescribe(p.snap))
	}
	return b.String()
}

func dwDescribe(s discovery.Snapshot) string {
	parts := make([]string, len(s.Instances))
	for i, in := range s.Instances {
		parts[i] = fmt.Sprintf("%s@%s:%s", in.ID, in.HostPort(), in.Status)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// waitFor polls until the latest publication satisfies ok, for at most
// limit, and returns it.
func (w *dwWatch) waitFor(limit time.Duration, what string, ok func(discovery.Snapshot) bool) dwPub {
	w.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		if p := w.all(); len(p) > 0 && ok(p[len(p)-1].snap) {
			return p[len(p)-1]
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("%s: no publication with %s within %v; have:%s", w.name, what, limit, w.describe())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (w *dwWatch) waitLog(limit time.Duration, s string) {
	w.t.Helper()
	deadline := time.Now().Add(limit)
	for !strings.Contains(w.logs.String(), s) {
		if time.Now().After(deadline) {
			w.t.Fatalf("%s: logs lack %q after %v:\n%s", w.name, s, limit, w.logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// noEmptyAfterFirst fails t if the watch published an empty set after a
// non-empty one.
func (w *dwWatch) noEmptyAfterFirst() {
	w.t.Helper()
	seen := false
	for _, p := range w.all() {
		if len(p.snap.Instances) > 0 {
			seen = true
		} else if seen {
			w.t.Errorf("%s: an empty snapshot after a non-empty one:%s", w.name, w.describe())
			return
		}
	}
}

func dwIDs(want ...string) func(discovery.Snapshot) bool {
	return func(s discovery.Snapshot) bool {
		got := make([]string, len(s.Instances))
		for i, in := range s.Instances {
			got[i] = in.ID
		}
		return slices.Equal(got, want)
	}
}

func dwStatus(id string, st discovery.Status) func(discovery.Snapshot) bool {
	return func(s discovery.Snapshot) bool {
		for _, in := range s.Instances {
			if in.ID == id {
				return in.Status == st
			}
		}
		return false
	}
}

// eventClock records, from the daemon's own event stream, when each
// container event happened: the start of the event → publish latency.
type eventClock struct {
	mu sync.Mutex
	at map[string]time.Time // "name action" → the event's time
}

func startEventClock(t *testing.T, c *client.Client, project string) *eventClock {
	t.Helper()
	ec := &eventClock{at: make(map[string]time.Time)}
	ctx, cancel := context.WithCancel(context.Background())
	res := c.Events(ctx, client.EventsListOptions{Filters: make(client.Filters).
		Add("type", string(events.ContainerEventType)).Add("label", "com.docker.compose.project="+project)})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case m := <-res.Messages:
				ec.mu.Lock()
				ec.at[m.Actor.Attributes["name"]+" "+string(m.Action)] = time.Unix(0, m.TimeNano)
				ec.mu.Unlock()
			case <-res.Err:
				return
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return ec
}

// since is how long after the event (container name, action) t is; the
// event may reach the clock's stream a little after the watcher's.
func (ec *eventClock) since(t *testing.T, name, action string, at time.Time) time.Duration {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		ec.mu.Lock()
		ev, ok := ec.at[name+" "+action]
		ec.mu.Unlock()
		if ok {
			return at.Sub(ev)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q event of %s in the daemon's stream", action, name)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// runReplica starts replica n of compose service web of project on the
// suite's network: a health check (test -f /tmp/ok, every second, one
// failure is unhealthy) and port 3000 exposed.
func runReplica(t *testing.T, dockerArgs []string, project, network string, n int) string {
	t.Helper()
	name := fmt.Sprintf("%s-web-%d", project, n)
	args := append(slices.Clone(dockerArgs), "run", "-d", "--name", name, "--label", "pilot-e2e",
		"--label", "com.docker.compose.project="+project, "--label", "com.docker.compose.service=web",
		"--label", "com.docker.compose.container-number="+strconv.Itoa(n),
		"--network", network, "--expose", "3000",
		"--health-cmd", "test -f /tmp/ok", "--health-interval", "1s", "--health-timeout", "1s", "--health-retries", "1",
		nodeStandin, "sh", "-c", "touch /tmp/ok && exec sleep 3600")
	docker(t, args...)
	return name
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// A compose service's containers on a user network, followed by two
// watches (every instance; passing only): the set follows 1 → 3 → 2, each
// change published within 1 s; a container made unhealthy leaves the
// passing set and comes back. The latency from the daemon's event to the
// publication is measured and logged.
func TestDockerWatcherFollowsContainers(t *testing.T) {
	needEngine(t)
	project := fmt.Sprintf("pdw%d", os.Getpid()%100000)
	t.Cleanup(func() {
		for n := 1; n <= 3; n++ {
			run(time.Minute, dockerCLI, "rm", "-f", fmt.Sprintf("%s-web-%d", project, n))
		}
	})
	c, err := dockerwatch.NewClient("") // DOCKER_HOST: the harness's daemon
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	clock := startEventClock(t, c, project)
	spec := discovery.WatchSpec{Service: "web", Docker: discovery.DockerQuery{Project: project, Network: netName}}
	all := startDockerWatch(t, c, "all", spec)
	spec.PassingOnly = true
	passing := startDockerWatch(t, c, "passing", spec)
	all.waitFor(10*time.Second, "the first (empty) set", dwIDs())
	passing.waitFor(10*time.Second, "the first (empty) set", dwIDs())

	var lat []time.Duration
	step := func(what, name, action string, ok func(discovery.Snapshot) bool, do func()) dwPub {
		t.Helper()
		do()
		p := all.waitFor(time.Second, what, ok)
		d := clock.since(t, name, action, p.at)
		lat = append(lat, d)
		t.Logf("%-28s published %v after the %q event", what, d.Round(100*time.Microsecond), action)
		return p
	}
	w1, w2, w3 := project+"-web-1", project+"-web-2", project+"-web-3"
	p := step("1 instance", w1, "start", dwIDs(w1), func() { runReplica(t, nil, project, netName, 1) })
	step("2 instances", w2, "start", dwIDs(w1, w2), func() { runReplica(t, nil, project, netName, 2) })
	step("3 instances", w3, "start", dwIDs(w1, w2, w3), func() { runReplica(t, nil, project, netName, 3) })
	step("2 instances (web-2 removed)", w2, "die", dwIDs(w1, w3), func() { docker(t, "rm", "-f", w2) })

	// the instance as the package documents it
	in := p.snap.Instances[0]
	ip := docker(t, "inspect", "-f", `{{(index .NetworkSettings.Networks "`+netName+`").IPAddress}}`, w1)
	full := docker(t, "inspect", "-f", "{{.Id}}", w1)
	node := docker(t, "info", "-f", "{{.Name}}")
	if in.Address != ip || in.Port != 3000 || in.Node != node || in.Meta["container_id"] != full ||
		in.Meta["compose_project"] != project || in.Meta["compose_service"] != "web" || in.Meta["compose_number"] != "1" ||
		in.Meta["image"] != nodeStandin {
		t.Errorf("instance %+v; want %s:3000 on node %s, meta with id %s, image %s and the compose labels", in, ip, node, full, nodeStandin)
	}

	// health: both healthy (one interval), then web-1 unhealthy and back
	passing.waitFor(10*time.Second, "web-1 and web-3 healthy", dwIDs(w1, w3))
	all.waitFor(time.Second, "web-1 and web-3 passing", func(s discovery.Snapshot) bool {
		return dwStatus(w1, discovery.Passing)(s) && dwStatus(w3, discovery.Passing)(s)
	})
	docker(t, "exec", w1, "rm", "/tmp/ok")
	pp := passing.waitFor(5*time.Second, "web-1 gone (unhealthy)", dwIDs(w3))
	d := clock.since(t, w1, "health_status: unhealthy", pp.at)
	lat = append(lat, d)
	t.Logf("%-28s published %v after the health_status: unhealthy event", "web-1 unhealthy", d.Round(100*time.Microsecond))
	all.waitFor(time.Second, "web-1 critical", dwStatus(w1, discovery.Critical))
	docker(t, "exec", w1, "touch", "/tmp/ok")
	pp = passing.waitFor(5*time.Second, "web-1 back (healthy)", dwIDs(w1, w3))
	d = clock.since(t, w1, "health_status: healthy", pp.at)
	lat = append(lat, d)
	t.Logf("%-28s published %v after the health_status: healthy event", "web-1 healthy again", d.Round(100*time.Microsecond))

	all.noEmptyAfterFirst()
	passing.noEmptyAfterFirst()
	t.Logf("event → publish latency over %d changes: median %v, max %v", len(lat),
		median(lat).Round(100*time.Microsecond), slices.Max(lat).Round(100*time.Microsecond))
	if m := median(lat); m > 100*time.Millisecond {
		t.Errorf("median event → publish latency %v; want well under 100 ms", m)
	}
}

// A second private daemon with --live-restore (the harness's one is shared
// and stays up): stopped and started again under a watch, with one
// container's process killed meanwhile. The watch keeps its last snapshot
// while the daemon is away (no empty publication), says so once, and
// resyncs when it is back: the live-restored container stays, the killed
// one leaves, in one publication.
func TestDockerWatcherDaemonRestart(t *testing.T) {
	needEngine(t)
	dir, err := os.MkdirTemp("", "pdr") // short: the daemon's socket paths
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(engine.root, "test/e2e/dockerd.sh")
	env := append(os.Environ(), "E2E_DOCKERD_ARGS=--live-restore")
	startDaemon := func() {
		t.Helper()
		cmd := exec.Command("bash", script, "start", dir)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("dockerd.sh start %s: %v\n%s", dir, err, out)
		}
	}
	host := "unix://" + filepath.Join(dir, "docker.sock")
	h := []string{"-H", host}
	startDaemon()
	t.Cleanup(func() {
		if ids, _ := run(time.Minute, dockerCLI, "-H", host, "ps", "-aq"); ids != "" {
			run(time.Minute, dockerCLI, append([]string{"-H", host, "rm", "-f"}, strings.Fields(ids)...)...)
		}
		run(time.Minute, "bash", script, "stop", dir)
		// with --live-restore the daemon leaves its containerd running
		if b, err := os.ReadFile(filepath.Join(dir, "exec/containerd/containerd.pid")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 && syscall.Kill(pid, 0) == nil {
				syscall.Kill(pid, syscall.SIGTERM)
				waitGone(pid, 20*time.Second)
			}
		}
		run(time.Minute, "bash", script, "stop", dir) // unmounts what is left
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("remove %s: %v", dir, err)
		}
	})
	cmd := exec.Command("bash", filepath.Join(engine.root, "test/e2e/standins.sh"), "node", nodeStandin)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+host)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("standins.sh node: %v\n%s", err, out)
	}
	const network = "pilot-e2e-restart"
	docker(t, append(h, "network", "create", network)...)

	const project = "pdr"
	w1, w2 := project+"-web-1", project+"-web-2"
	runReplica(t, h, project, network, 1)
	runReplica(t, h, project, network, 2)
	c, err := dockerwatch.NewClient(host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	w := startDockerWatch(t, c, "restart", discovery.WatchSpec{Service: "web", Docker: discovery.DockerQuery{Project: project}})
	w.waitFor(10*time.Second, "web-1 and web-2 healthy", func(s discovery.Snapshot) bool {
		return dwIDs(w1, w2)(s) && dwStatus(w1, discovery.Passing)(s) && dwStatus(w2, discovery.Passing)(s)
	})
	pid2, err := strconv.Atoi(docker(t, append(h, "inspect", "-f", "{{.State.Pid}}", w2)...))
	if err != nil || pid2 <= 0 {
		t.Fatalf("web-2's pid: %v", err)
	}
	before := len(w.all())

	// stop the daemon (not dockerd.sh stop: it unmounts the live
	// containers' network namespaces); its containers live on
	b, err := os.ReadFile(filepath.Join(dir, "pid"))
	if err != nil {
		t.Fatal(err)
	}
	dpid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(dpid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !waitGone(dpid, 30*time.Second) {
		t.Fatalf("dockerd %d still alive 30 s after SIGTERM", dpid)
	}
	w.waitLog(10*time.Second, "docker: watch failing")
	w.waitLog(10*time.Second, "docker: watch still failing")
	if err := syscall.Kill(pid2, syscall.SIGKILL); err != nil {
		t.Fatalf("kill web-2's process %d: %v", pid2, err)
	}
	waitGone(pid2, 10*time.Second)
	if n := len(w.all()); n != before {
		t.Fatalf("published while the daemon was down:%s", w.describe())
	}
	restarted := time.Now()
	startDaemon()
	p := w.waitFor(30*time.Second, "web-1 alone", dwIDs(w1))
	t.Logf("daemon answering %v after its start; web-2's exit published %v after", time.Since(restarted).Round(time.Millisecond), p.at.Sub(restarted).Round(time.Millisecond))
	w.waitLog(10*time.Second, "docker: daemon reachable again")
	if got := docker(t, append(h, "inspect", "-f", "{{.State.Running}}", w1)...); got != "true" {
		t.Errorf("web-1 running = %s after the restart; --live-restore should have kept it", got)
	}
	w.noEmptyAfterFirst()
	logs := w.logs.String()
	if n := strings.Count(logs, `level=WARN msg="docker: watch failing`); n != 1 {
		t.Errorf("%d warnings of the outage, want 1:\n%s", n, logs)
	}
	// and it follows events again. (Not web-1's health: dockerd 20.10 does
	// not resume the health checks of a live-restored container.)
	w3 := project + "-web-3"
	runReplica(t, h, project, network, 3)
	w.waitFor(5*time.Second, "web-1 and web-3", dwIDs(w1, w3))
	t.Logf("publications:%s", w.describe())
}

// waitGone polls until process pid is gone.
func waitGone(pid int, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}
