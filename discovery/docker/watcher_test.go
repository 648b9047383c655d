package docker

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"
	"go.uber.org/goleak"

	"github.com/nodepilot/pilot/discovery"
	"github.com/nodepilot/pilot/test/toolbin"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const waitLimit = 5 * time.Second

type published struct {
	at   time.Time
	snap discovery.Snapshot
}

// watchRun is one Watch under test against a fake engine, its
// publications and logs recorded.
type watchRun struct {
	t      *testing.T
	logs   *toolbin.LockedBuffer
	cancel context.CancelFunc
	done   chan error

	mu   sync.Mutex
	pubs []published
}

func startWatch(t *testing.T, f *fakeEngine, spec discovery.WatchSpec) *watchRun {
	t.Helper()
	c, err := NewClient(f.Host())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := &watchRun{t: t, logs: &toolbin.LockedBuffer{}, done: make(chan error, 1)}
	log := slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w, err := NewWatcher(c, WatcherOptions{MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		r.done <- w.Watch(ctx, spec, func(s discovery.Snapshot) {
			r.mu.Lock()
			r.pubs = append(r.pubs, published{time.Now(), s})
			r.mu.Unlock()
		})
	}()
	t.Cleanup(r.stop)
	return r
}

// stop cancels the watch and checks that it returns nil promptly.
func (r *watchRun) stop() {
	r.t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok && err != nil {
			r.t.Errorf("Watch returned %v after cancel, want nil", err)
		}
		if ok {
			close(r.done)
		}
	case <-time.After(waitLimit):
		r.t.Errorf("Watch did not return within %v of its ctx's end", waitLimit)
	}
}

func (r *watchRun) all() []published {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.pubs)
}

// waitPub polls until the publication number n (0-based) exists and
// returns it; it fails t at the deadline.
func (r *watchRun) waitPub(n int) published {
	r.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		if p := r.all(); len(p) > n {
			return p[n]
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("publication #%d not within %v; have %s\nlogs:\n%s", n+1, waitLimit, r.describe(), r.logs)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitFor polls until the latest publication satisfies ok and returns it.
func (r *watchRun) waitFor(what string, ok func(discovery.Snapshot) bool) published {
	r.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		if p := r.all(); len(p) > 0 && ok(p[len(p)-1].snap) {
			return p[len(p)-1]
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("no publication with %s within %v; have %s\nlogs:\n%s", what, waitLimit, r.describe(), r.logs)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitLog polls until the logs contain s.
func (r *watchRun) waitLog(s string) {
	r.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !strings.Contains(r.logs.String(), s) {
		if time.Now().After(deadline) {
			r.t.Fatalf("logs lack %q after %v:\n%s", s, waitLimit, r.logs)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (r *watchRun) describe() string {
	var b strings.Builder
	for i, p := range r.all() {
		fmt.Fprintf(&b, "\n  #%d %s", i+1, describe(p.snap))
	}
	return b.String()
}

// describe is "id:status id:status …" of a snapshot.
func describe(s discovery.Snapshot) string {
	parts := make([]string, len(s.Instances))
	for i, in := range s.Instances {
		parts[i] = in.ID + ":" + string(in.Status)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func ids(s discovery.Snapshot) []string {
	out := make([]string, len(s.Instances))
	for i, in := range s.Instances {
		out[i] = in.ID
	}
	return out
}

func hasIDs(want ...string) func(discovery.Snapshot) bool {
	return func(s discovery.Snapshot) bool { return slices.Equal(ids(s), want) }
}

func statusOf(id string, st discovery.Status) func(discovery.Snapshot) bool {
	return func(s discovery.Snapshot) bool {
		for _, in := range s.Instances {
			if in.ID == id {
				return in.Status == st
			}
		}
		return false
	}
}

// web is replica n of compose service svc of project proj, on the
// project's default network with address 10.0.0.n, exposing 3000/tcp.
func web(proj, svc string, n int) fakeContainer {
	return fakeContainer{
		Name: fmt.Sprintf("%s-%s-%d", proj, svc, n),
		Labels: map[string]string{labelProject: proj, labelService: svc, labelNumber: strconv.Itoa(n),
			"com.docker.compose.oneoff": "False"},
		Networks: map[string]string{proj + "_default": fmt.Sprintf("10.0.0.%d", n)},
		Exposed:  []string{"3000/tcp"},
	}
}

func spec(proj, svc string) discovery.WatchSpec {
	return discovery.WatchSpec{Service: svc, Docker: discovery.DockerQuery{Project: proj}}
}

// The first snapshot of a service with no container is published, empty,
// and it is the only one until something changes.
func TestInitialEmpty(t *testing.T) {
	f := newFakeEngine(t)
	f.Run(web("shop", "api", 1)) // another service
	r := startWatch(t, f, spec("shop", "web"))
	first := r.waitPub(0)
	if first.snap.Service != "web" || first.snap.Instances == nil || len(first.snap.Instances) != 0 {
		t.Fatalf("first snapshot = %+v, want an empty (non-nil) set of web", first.snap)
	}
	f.Run(web("shop", "web", 1))
	r.waitFor("web-1", hasIDs("shop-web-1"))
	if n := len(r.all()); n != 2 {
		t.Errorf("%d publications, want 2 (empty, then web-1):%s", n, r.describe())
	}
}

// The first snapshot holds every matching running container, each turned
// into an instance as the package documents.
func TestInitialSet(t *testing.T) {
	f := newFakeEngine(t)
	id1 := f.Run(web("shop", "web", 1))
	f.Run(web("shop", "web", 2))
	f.Run(web("shop", "api", 1))  // another service
	f.Run(web("other", "web", 1)) // another project
	stopped := web("shop", "web", 3)
	stopped.State = container.StateExited
	f.Run(stopped)
	r := startWatch(t, f, spec("shop", "web"))
	got := r.waitPub(0).snap
	if want := []string{"shop-web-1", "shop-web-2"}; !slices.Equal(ids(got), want) {
		t.Fatalf("first snapshot %s, want %v", describe(got), want)
	}
	want := discovery.Instance{
		ID: "shop-web-1", Node: "fakehost", Address: "10.0.0.1", Port: 3000, Status: discovery.Passing,
		Meta: map[string]string{MetaContainerID: id1, MetaImage: "pilot-e2e/node:standin",
			MetaComposeProject: "shop", MetaComposeService: "web", MetaComposeNumber: "1"},
	}
	if !discovery.NewSnapshot("web", []discovery.Instance{want}).Equal(discovery.NewSnapshot("web", got.Instances[:1])) {
		t.Errorf("instance = %+v\nwant       %+v", got.Instances[0], want)
	}
	if len(got.Instances[0].Tags) != 0 {
		t.Errorf("tags = %v, want none", got.Instances[0].Tags)
	}
}

// What a spec selects: project+service (+labels), labels alone, or the
// compose service label in any project.
func TestSelection(t *testing.T) {
	f := newFakeEngine(t)
	a := web("shop", "web", 1)
	a.Labels["tier"] = "front"
	f.Run(a)
	f.Run(web("shop", "web", 2))
	b := web("blog", "web", 3)
	b.Labels["tier"] = "front"
	f.Run(b)
	f.Run(web("blog", "api", 4))
	for _, tc := range []struct {
		name string
		q    discovery.DockerQuery
		want []string
	}{
		{"project and service", discovery.DockerQuery{Project: "shop"}, []string{"shop-web-1", "shop-web-2"}},
		{"project, service and labels", discovery.DockerQuery{Project: "shop", Labels: map[string]string{"tier": "front"}}, []string{"shop-web-1"}},
		{"labels alone", discovery.DockerQuery{Labels: map[string]string{"tier": "front"}}, []string{"blog-web-3", "shop-web-1"}},
		{"service in any project", discovery.DockerQuery{}, []string{"blog-web-3", "shop-web-1", "shop-web-2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := startWatch(t, f, discovery.WatchSpec{Service: "web", Docker: tc.q})
			if got := ids(r.waitPub(0).snap); !slices.Equal(got, tc.want) {
				t.Errorf("instances %v, want %v", got, tc.want)
			}
		})
	}
}

// Containers come and go through events; each change is one publication.
// An event's latency to its publication is logged.
func TestAddRemove(t *testing.T) {
	f := newFakeEngine(t)
	r := startWatch(t, f, spec("shop", "web"))
	r.waitPub(0)
	var lat []time.Duration
	start := time.Now()
	id1 := f.Run(web("shop", "web", 1))
	lat = append(lat, r.waitFor("web-1", hasIDs("shop-web-1")).at.Sub(start))
	start = time.Now()
	f.Run(web("shop", "web", 2))
	lat = append(lat, r.waitFor("web-1,2", hasIDs("shop-web-1", "shop-web-2")).at.Sub(start))
	start = time.Now()
	f.Remove(id1)
	lat = append(lat, r.waitFor("web-2", hasIDs("shop-web-2")).at.Sub(start))
	if n := len(r.all()); n != 4 {
		t.Errorf("%d publications, want 4:%s", n, r.describe())
	}
	slices.Sort(lat)
	t.Logf("event → publish latency: median %v, max %v", lat[1], lat[2])
	if lat[2] > 500*time.Millisecond {
		t.Errorf("event → publish took %v; the watcher follows events, it should be well under 100 ms", lat[2])
	}
}

// Health follows Docker's: starting is warning, healthy passing, unhealthy
// critical; paused is critical. Without PassingOnly every state is kept.
func TestHealthPassingOnlyFalse(t *testing.T) {
	f := newFakeEngine(t)
	c := web("shop", "web", 1)
	c.Health = container.Starting
	id := f.Run(c)
	f.Run(web("shop", "web", 2)) // no health check: passing
	r := startWatch(t, f, spec("shop", "web"))
	if got := r.waitPub(0).snap; !statusOf("shop-web-1", discovery.Warning)(got) || !statusOf("shop-web-2", discovery.Passing)(got) {
		t.Fatalf("first snapshot %s, want web-1 warning (starting), web-2 passing (no health check)", describe(got))
	}
	for _, step := range []struct {
		do   func()
		want discovery.Status
	}{
		{func() { f.SetHealth(id, container.Healthy) }, discovery.Passing},
		{func() { f.SetHealth(id, container.Unhealthy) }, discovery.Critical},
		{func() { f.SetHealth(id, container.Healthy) }, discovery.Passing},
		{func() { f.Pause(id, true) }, discovery.Critical},
		{func() { f.Pause(id, false) }, discovery.Passing},
	} {
		step.do()
		r.waitFor("web-1 "+string(step.want), statusOf("shop-web-1", step.want))
	}
	if n := len(r.all()); n != 6 {
		t.Errorf("%d publications, want 6:%s", n, r.describe())
	}
	for _, p := range r.all() {
		if len(p.snap.Instances) != 2 {
			t.Errorf("a publication without both instances: %s", describe(p.snap))
		}
	}
}

// With PassingOnly, an instance that is not passing leaves the set and
// comes back when it passes again.
func TestHealthPassingOnly(t *testing.T) {
	f := newFakeEngine(t)
	c := web("shop", "web", 1)
	c.Health = container.Starting
	id := f.Run(c)
	f.Run(web("shop", "web", 2))
	sp := spec("shop", "web")
	sp.PassingOnly = true
	r := startWatch(t, f, sp)
	if got := r.waitPub(0).snap; !hasIDs("shop-web-2")(got) {
		t.Fatalf("first snapshot %s, want only web-2 (web-1 is starting)", describe(got))
	}
	steps := []struct {
		do   func()
		want []string
	}{
		{func() { f.SetHealth(id, container.Healthy) }, []string{"shop-web-1", "shop-web-2"}},
		{func() { f.SetHealth(id, container.Unhealthy) }, []string{"shop-web-2"}},
		{func() { f.SetHealth(id, container.Healthy) }, []string{"shop-web-1", "shop-web-2"}},
		{func() { f.Pause(id, true) }, []string{"shop-web-2"}},
		{func() { f.Pause(id, false) }, []string{"shop-web-1", "shop-web-2"}},
	}
	for _, s := range steps {
		s.do()
		r.waitFor(fmt.Sprint(s.want), hasIDs(s.want...))
	}
	if n := len(r.all()); n != 1+len(steps) {
		t.Errorf("%d publications, want %d:%s", n, 1+len(steps), r.describe())
	}
	for _, p := range r.all() {
		for _, in := range p.snap.Instances {
			if in.Status != discovery.Passing {
				t.Errorf("PassingOnly published %s", describe(p.snap))
			}
		}
	}
}

// A container on two networks with no network named is skipped, with one
// warning however often it is re-read; once on one network it is an
// instance. With the network named (short compose name), its address there.
func TestNetworkSelection(t *testing.T) {
	f := newFakeEngine(t)
	c := web("shop", "web", 1)
	c.Networks["shop_back"] = "10.9.0.1"
	id := f.Run(c)
	id2 := f.Run(web("shop", "web", 2))

	back := spec("shop", "web")
	back.Docker.Network = "back" // compose's short name of shop_back
	rb := startWatch(t, f, back)
	if got := rb.waitPub(0).snap; !hasIDs("shop-web-1")(got) || got.Instances[0].Address != "10.9.0.1" {
		t.Errorf("network back: %+v, want only web-1 at 10.9.0.1 (web-2 is not on it)", got.Instances)
	}
	rb.waitLog(`reason="not on network \"back\" (on shop_default)"`)

	r := startWatch(t, f, spec("shop", "web"))
	if got := r.waitPub(0).snap; !hasIDs("shop-web-2")(got) {
		t.Fatalf("first snapshot %s, want only web-2 (web-1 is on two networks)", describe(got))
	}
	r.waitLog(`container=shop-web-1 reason="on several networks (shop_back, shop_default)`)
	// a re-read of web-1 (its health event) does not warn again
	before := f.Inspects(id)
	f.SetHealth(id, container.Healthy)
	deadline := time.Now().Add(waitLimit)
	for f.Inspects(id) < before+2 { // both watches re-read it
		if time.Now().After(deadline) {
			t.Fatalf("web-1 was not inspected again after its health event")
		}
		time.Sleep(2 * time.Millisecond)
	}
	// network events alone move it
	f.Disconnect(id, "shop_back")
	r.waitFor("web-1 and web-2", hasIDs("shop-web-1", "shop-web-2"))
	rb.waitFor("none on back", hasIDs())
	// web-2 joins shop_back: an instance there, skipped by the other watch
	f.Connect(id2, "shop_back", "10.9.0.2")
	rb.waitFor("web-2 on back", hasIDs("shop-web-2"))
	r.waitFor("web-1 alone", hasIDs("shop-web-1"))
	r.waitLog(`container=shop-web-2 reason="on several networks (shop_back, shop_default)`)
	if n := strings.Count(r.logs.String(), "container=shop-web-1 reason="); n != 1 {
		t.Errorf("web-1's skip logged %d times, want once:\n%s", n, r.logs)
	}
	if got := r.all(); len(got) != 3 {
		t.Errorf("%d publications, want 3 (web-2, both, web-1):%s", len(got), r.describe())
	}
}

// instanceOf's choices of address and port, and its reasons to skip.
func TestInstanceOf(t *testing.T) {
	for _, tc := range []struct {
		name    string
		network string
		port    int
		nets    map[string]string
		exposed []string
		addr    string
		wantErr string
	}{
		{name: "only network, only port", nets: map[string]string{"shop_default": "10.0.0.1"}, exposed: []string{"3000/tcp"}, addr: "10.0.0.1:3000"},
		{name: "full network name", network: "shop_back", nets: map[string]string{"shop_default": "10.0.0.1", "shop_back": "10.9.0.1"}, exposed: []string{"3000/tcp"}, addr: "10.9.0.1:3000"},
		{name: "short compose name", network: "back", nets: map[string]string{"shop_default": "10.0.0.1", "shop_back": "10.9.0.1"}, exposed: []string{"3000/tcp"}, addr: "10.9.0.1:3000"},
		{name: "full name wins over short", network: "back", nets: map[string]string{"back": "10.8.0.1", "shop_back": "10.9.0.1"}, exposed: []string{"3000/tcp"}, addr: "10.8.0.1:3000"},
		{name: "several networks, none named", nets: map[string]string{"shop_default": "10.0.0.1", "shop_back": "10.9.0.1"}, exposed: []string{"3000/tcp"}, wantErr: "on several networks (shop_back, shop_default)"},
		{name: "not on the named network", network: "front", nets: map[string]string{"shop_default": "10.0.0.1"}, exposed: []string{"3000/tcp"}, wantErr: `not on network "front" (on shop_default)`},
		{name: "no network", nets: map[string]string{}, exposed: []string{"3000/tcp"}, wantErr: "on no network"},
		{name: "no address (host network)", nets: map[string]string{"host": ""}, exposed: []string{"3000/tcp"}, wantErr: `no address on network "host"`},
		{name: "spec port wins", port: 8080, nets: map[string]string{"n": "10.0.0.1"}, exposed: []string{"3000/tcp", "9000/tcp"}, addr: "10.0.0.1:8080"},
		{name: "spec port, nothing exposed", port: 8080, nets: map[string]string{"n": "10.0.0.1"}, addr: "10.0.0.1:8080"},
		{name: "udp does not count", nets: map[string]string{"n": "10.0.0.1"}, exposed: []string{"53/udp", "3000/tcp"}, addr: "10.0.0.1:3000"},
		{name: "nothing exposed", nets: map[string]string{"n": "10.0.0.1"}, wantErr: "exposes no TCP port"},
		{name: "only udp exposed", nets: map[string]string{"n": "10.0.0.1"}, exposed: []string{"53/udp"}, wantErr: "exposes no TCP port"},
		{name: "several exposed", nets: map[string]string{"n": "10.0.0.1"}, exposed: []string{"9000/tcp", "3000/tcp"}, wantErr: "exposes several TCP ports [3000 9000]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeEngine(t)
			c := web("shop", "web", 1)
			c.Networks, c.Exposed = tc.nets, tc.exposed
			id := f.Run(c)
			cl, err := NewClient(f.Host())
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			res, err := cl.ContainerInspect(t.Context(), id, client.ContainerInspectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			ins := &res.Container
			sp := spec("shop", "web")
			sp.Docker.Network, sp.Docker.Port = tc.network, tc.port
			in, err := instanceOf(sp, "n1", ins)
			switch {
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("err = %v, want one with %q", err, tc.wantErr)
				}
			case err != nil:
				t.Errorf("err = %v", err)
			case in.HostPort() != tc.addr:
				t.Errorf("instance at %s, want %s", in.HostPort(), tc.addr)
			}
		})
	}
}

// status's mapping, including states the list filter never lets through.
func TestStatus(t *testing.T) {
	for _, tc := range []struct {
		s    *container.State
		want discovery.Status
	}{
		{&container.State{Running: true}, discovery.Passing},
		{&container.State{Running: true, Health: &container.Health{Status: container.Healthy}}, discovery.Passing},
		{&container.State{Running: true, Health: &container.Health{Status: container.NoHealthcheck}}, discovery.Passing},
		{&container.State{Running: true, Health: &container.Health{Status: container.Starting}}, discovery.Warning},
		{&container.State{Running: true, Health: &container.Health{Status: container.Unhealthy}}, discovery.Critical},
		{&container.State{Running: true, Paused: true, Health: &container.Health{Status: container.Healthy}}, discovery.Critical},
		{&container.State{Running: true, Restarting: true}, discovery.Critical},
		{&container.State{}, discovery.Critical},
		{nil, discovery.Critical},
	} {
		if got := status(tc.s); got != tc.want {
			t.Errorf("status(%+v) = %s, want %s", tc.s, got, tc.want)
		}
	}
}

// Events that change nothing publish nothing; unrelated events cost no
// request, and a relevant one re-inspects only the container it names.
func TestNoPublishWithoutChange(t *testing.T) {
	f := newFakeEngine(t)
	c := web("shop", "web", 1)
	c.Health = container.Healthy
	id1 := f.Run(c)
	id2 := f.Run(web("shop", "web", 2))
	r := startWatch(t, f, spec("shop", "web"))
	r.waitPub(0)
	lists, in1, in2 := f.Lists(), f.Inspects(id1), f.Inspects(id2)

	// unrelated: another service's life, exec events, a network event of a
	// container the watch does not follow
	other := f.Run(web("shop", "api", 7))
	f.SetHealth(other, container.Unhealthy)
	f.Emit(events.Message{Type: events.ContainerEventType, Action: "exec_start: test -f /tmp/ok",
		Actor: events.Actor{ID: id1, Attributes: map[string]string{labelProject: "shop", labelService: "web"}}})
	f.Connect(other, "shop_back", "10.9.0.7")
	f.Remove(other)
	// relevant but changing nothing: web-1 healthy again
	f.SetHealth(id1, container.Healthy)
	// the barrier: a change, whose publication comes after all of the above
	f.Run(web("shop", "web", 3))
	r.waitFor("web-1,2,3", hasIDs("shop-web-1", "shop-web-2", "shop-web-3"))

	if n := len(r.all()); n != 2 {
		t.Errorf("%d publications, want 2 (the first, then web-3):%s", n, r.describe())
	}
	if got := f.Inspects(id1) - in1; got < 1 || got > 2 {
		t.Errorf("web-1 inspected %d more times, want 1 or 2 (its health event, maybe with web-3's)", got)
	}
	if got := f.Inspects(id2) - in2; got != 0 {
		t.Errorf("web-2 inspected %d more times, want 0: no event named it", got)
	}
	if got := f.Inspects(other); got != 0 {
		t.Errorf("the other service's container was inspected %d times, want 0", got)
	}
	if got := f.Lists() - lists; got < 1 || got > 2 {
		t.Errorf("%d more lists, want 1 or 2 (web-1's health event and web-3's start, maybe coalesced)", got)
	}
}

// The daemon goes away (socket removed, streams cut) and comes back on the
// same path: no publication while it is down, in particular no empty one;
// then one resync that carries everything changed meanwhile. Logs: one
// warning, repeats at debug, "reachable again" at info.
func TestDaemonDownAndBack(t *testing.T) {
	f := newFakeEngine(t)
	id1 := f.Run(web("shop", "web", 1))
	c2 := web("shop", "web", 2)
	c2.Health = container.Healthy
	id2 := f.Run(c2)
	r := startWatch(t, f, spec("shop", "web"))
	r.waitFor("web-1,2", hasIDs("shop-web-1", "shop-web-2"))

	f.Stop()
	r.waitLog("docker: watch failing")
	r.waitLog("docker: watch still failing") // it retried against no socket
	// changed while down: web-1 gone, web-2 unhealthy, web-3 new
	f.Quietly(func(cs map[string]*fakeContainer) {
		delete(cs, id1)
		cs[id2].Health = container.Unhealthy
	})
	f.Run(web("shop", "web", 3))
	if n := len(r.all()); n != 1 {
		t.Fatalf("published while the daemon was down:%s", r.describe())
	}
	f.Start()
	r.waitFor("the state made while down", func(s discovery.Snapshot) bool {
		return hasIDs("shop-web-2", "shop-web-3")(s) && statusOf("shop-web-2", discovery.Critical)(s)
	})
	r.waitLog("docker: daemon reachable again")
	pubs := r.all()
	if len(pubs) != 2 {
		t.Errorf("%d publications, want 2 (before, after the resync):%s", len(pubs), r.describe())
	}
	for _, p := range pubs {
		if len(p.snap.Instances) == 0 {
			t.Errorf("an empty snapshot was published:%s", r.describe())
		}
	}
	logs := r.logs.String()
	if n := strings.Count(logs, "level=WARN msg=\"docker: watch failing"); n != 1 {
		t.Errorf("%d warnings of the failure, want 1:\n%s", n, logs)
	}
	if n := strings.Count(logs, "level=INFO msg=\"docker: daemon reachable again"); n != 1 {
		t.Errorf("%d recovery lines at info, want 1:\n%s", n, logs)
	}
	// and it follows events again
	f.SetHealth(id2, container.Healthy)
	r.waitFor("web-2 passing", statusOf("shop-web-2", discovery.Passing))
}

// A daemon that is not there at the start: nothing is published until it
// answers; then the first snapshot.
func TestDaemonDownAtStart(t *testing.T) {
	f := newFakeEngine(t)
	f.Run(web("shop", "web", 1))
	f.Stop()
	r := startWatch(t, f, spec("shop", "web"))
	r.waitLog("docker: watch still failing")
	if n := len(r.all()); n != 0 {
		t.Fatalf("published with no daemon:%s", r.describe())
	}
	f.Start()
	if got := r.waitPub(0).snap; !hasIDs("shop-web-1")(got) {
		t.Errorf("first snapshot %s, want web-1", describe(got))
	}
}

// Watch returns nil promptly when its ctx ends, and leaves no goroutine
// behind (the client's event reader included).
func TestCancelReturnsPromptly(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	f := newFakeEngine(t)
	f.Run(web("shop", "web", 1))
	c, err := NewClient(f.Host())
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWatcher(c, WatcherOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	pub := make(chan discovery.Snapshot, 1)
	go func() { done <- w.Watch(ctx, spec("shop", "web"), func(s discovery.Snapshot) { pub <- s }) }()
	select {
	case <-pub:
	case <-time.After(waitLimit):
		t.Fatal("no first snapshot")
	}
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Watch = %v after cancel, want nil", err)
		}
		t.Logf("Watch returned %v after cancel", time.Since(start))
		if d := time.Since(start); d > time.Second {
			t.Errorf("Watch took %v to return after cancel", d)
		}
	case <-time.After(waitLimit):
		t.Fatal("Watch did not return after cancel")
	}
	c.Close()
	f.Stop()
	goleak.VerifyNone(t, ignore)
}

func TestBadArguments(t *testing.T) {
	if _, err := NewWatcher(nil, WatcherOptions{}, nil); err == nil {
		t.Error("NewWatcher(nil) succeeded")
	}
	c, err := NewClient("unix:///nonexistent/docker.sock")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w, _ := NewWatcher(c, WatcherOptions{}, nil)
	if err := w.Watch(t.Context(), discovery.WatchSpec{}, func(discovery.Snapshot) {}); err == nil {
		t.Error("Watch with an empty service succeeded")
	}
	if err := w.Watch(t.Context(), spec("p", "s"), nil); err == nil {
		t.Error("Watch with a nil publish succeeded")
	}
	if _, err := NewClient("no-scheme"); err == nil {
		t.Error(`NewClient("no-scheme") succeeded`)
	}
}

func TestNewClientHost(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix:///tmp/from-env.sock")
	for host, want := range map[string]string{"": "unix:///tmp/from-env.sock", "unix:///tmp/given.sock": "unix:///tmp/given.sock"} {
		c, err := NewClient(host)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.DaemonHost(); got != want {
			t.Errorf("NewClient(%q) host = %s, want %s", host, got, want)
		}
		c.Close()
	}
	t.Setenv("DOCKER_HOST", "")
	c, err := NewClient("")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.DaemonHost(); got != "unix:///var/run/docker.sock" {
		t.Errorf(`NewClient("") without DOCKER_HOST: host = %s, want the local socket`, got)
	}
}

// since turns the daemon's clock into an events "since" value; an
// unreadable one subscribes from now on rather than failing forever.
func TestSince(t *testing.T) {
	for in, want := range map[string]string{
		"2026-12-05T23:57:55.182000001Z":       "1796515075.182000001",
		"2026-12-06T00:57:55.5+01:00":          "1796515075.500000000",
		"":                                     "",
		"Mon Jan 2 15:04:05 MST 2006 (not it)": "",
	} {
		if got := since(in); got != want {
			t.Errorf("since(%q) = %q, want %q", in, got, want)
		}
	}
}

// The daemon-side list filters, and the client-side match of an event's
// attributes.
func TestSelector(t *testing.T) {
	s := newSelector(discovery.WatchSpec{Service: "web", Docker: discovery.DockerQuery{Project: "shop", Labels: map[string]string{"tier": "front"}}})
	got := s.filters()
	for _, want := range []string{labelProject + "=shop", labelService + "=web", "tier=front"} {
		if !got["label"][want] {
			t.Errorf("filters %v lack label %s", got, want)
		}
	}
	if !got["status"]["running"] || !got["status"]["paused"] || len(got["status"]) != 2 {
		t.Errorf("status filters %v, want running and paused", got["status"])
	}
	attrs := map[string]string{labelProject: "shop", labelService: "web", "tier": "front", "name": "shop-web-1", "image": "x"}
	if !s.matches(attrs) {
		t.Errorf("selector does not match %v", attrs)
	}
	attrs["tier"] = "back"
	if s.matches(attrs) {
		t.Errorf("selector matches %v", attrs)
	}
	if s.ambiguous {
		t.Error("selector without name or image labels is ambiguous")
	}
	if !newSelector(discovery.WatchSpec{Service: "web", Docker: discovery.DockerQuery{Labels: map[string]string{"name": "x"}}}).ambiguous {
		t.Error(`selector on label "name" is not ambiguous`)
	}
}
