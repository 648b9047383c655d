package watchertest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodepilot/pilot/discovery"
)

// The suite's time limits. A backend's watcher must fit them (see Backend).
const (
	// ChangeTimeout bounds the wait for any expected publication: the
	// first snapshot, and the one after each change.
	ChangeTimeout = 5 * time.Second
	// DownHold is how long the backend stays down while the suite checks
	// that nothing is published, and how long it then waits after Up for
	// the watcher to recover (and publish nothing) before changing anything.
	DownHold = 1500 * time.Millisecond
	// QuietHold is how long the suite checks that nothing more is
	// published after the last expected publication of a subtest.
	QuietHold = 300 * time.Millisecond
	// CancelTimeout bounds Watch's return after its context is cancelled,
	// and its error return for a bad spec.
	CancelTimeout = 2 * time.Second
)

// Run runs the discovery.Watcher suite against the backend newBackend
// builds. newBackend is called once per subtest, with the subtest's t;
// each subtest uses its own service name. Subtests run one after another.
//
// Every subtest's publications are also checked as a whole when its Watch
// has returned: each names the watched service, is canonical (as
// discovery.NewSnapshot builds it), is never Equal to the one before it, and
// none comes after Watch returned.
func Run(t *testing.T, newBackend func(t *testing.T) Backend) {
	t.Run("initial", func(t *testing.T) {
		// A service nobody runs is published as one empty snapshot, and
		// then nothing: empty is a real answer, not "not known yet".
		t.Run("empty", func(t *testing.T) {
			b := newBackend(t)
			w := startWatch(t, b, serviceName(t), true)
			w.waitFor("first snapshot of a service without instances", want{})
			w.quiet(QuietHold, "after the first snapshot")
		})
		// Instances present before the watch are all in the first
		// snapshot: no partial set is published first.
		t.Run("two", func(t *testing.T) {
			b := newBackend(t)
			svc := serviceName(t)
			x, y := b.Add(t, svc), b.Add(t, svc)
			w := startWatch(t, b, svc, false)
			w.waitFor("first snapshot of a service with two instances", want{x: discovery.Passing, y: discovery.Passing})
			w.quiet(QuietHold, "after the first snapshot")
		})
	})

	// Each add is published once, as the whole new set.
	t.Run("add", func(t *testing.T) {
		b := newBackend(t)
		svc := serviceName(t)
		w := startWatch(t, b, svc, true)
		set := want{}
		w.waitFor("first snapshot", set)
		for i := range 3 {
			start := time.Now()
			set[b.Add(t, svc)] = discovery.Passing
			w.waitFor(fmt.Sprintf("snapshot after add %d", i+1), set).logLatency(t, start)
		}
		w.quiet(QuietHold, "after the last add")
	})

	// Each remove is published once; removing the last instance publishes
	// the empty set (a real empty).
	t.Run("remove", func(t *testing.T) {
		b := newBackend(t)
		svc := serviceName(t)
		set := want{}
		var ids []string
		for range 3 {
			id := b.Add(t, svc)
			ids = append(ids, id)
			set[id] = discovery.Passing
		}
		w := startWatch(t, b, svc, true)
		w.waitFor("first snapshot", set)
		for i, id := range ids {
			start := time.Now()
			b.Remove(t, svc, id)
			delete(set, id)
			w.waitFor(fmt.Sprintf("snapshot after remove %d", i+1), set).logLatency(t, start)
		}
		w.quiet(QuietHold, "after the last remove")
	})

	t.Run("health", func(t *testing.T) {
		// PassingOnly: an unhealthy instance leaves the set and comes back
		// when healthy again.
		t.Run("passing-only", func(t *testing.T) {
			b := newBackend(t)
			svc := serviceName(t)
			x, y := b.Add(t, svc), b.Add(t, svc)
			w := startWatch(t, b, svc, true)
			w.waitFor("first snapshot", want{x: discovery.Passing, y: discovery.Passing})
			start := time.Now()
			b.SetHealthy(t, svc, x, false)
			w.waitFor("snapshot after "+x+" turned unhealthy", want{y: discovery.Passing}).logLatency(t, start)
			start = time.Now()
			b.SetHealthy(t, svc, x, true)
			w.waitFor("snapshot after "+x+" turned healthy", want{x: discovery.Passing, y: discovery.Passing}).logLatency(t, start)
			w.quiet(QuietHold, "after the last change")
		})
		// Without PassingOnly: the instance stays, with its status.
		t.Run("all", func(t *testing.T) {
			b := newBackend(t)
			svc := serviceName(t)
			x, y := b.Add(t, svc), b.Add(t, svc)
			w := startWatch(t, b, svc, false)
			w.waitFor("first snapshot", want{x: discovery.Passing, y: discovery.Passing})
			start := time.Now()
			b.SetHealthy(t, svc, x, false)
			w.waitFor("snapshot after "+x+" turned unhealthy", want{x: discovery.Critical, y: discovery.Passing}).logLatency(t, start)
			start = time.Now()
			b.SetHealthy(t, svc, x, true)
			w.waitFor("snapshot after "+x+" turned healthy", want{x: discovery.Passing, y: discovery.Passing}).logLatency(t, start)
			w.quiet(QuietHold, "after the last change")
		})
	})

	// Stale beats partial. While the backend is down nothing is published
	// (above all no empty set). Nothing can change while it is down, so
	// when it is back with the same state the watcher must publish nothing
	// either; it must recover by itself, which the next add proves: the
	// very next publication is the old set plus the new instance.
	t.Run("down-up", func(t *testing.T) {
		b := newBackend(t)
		svc := serviceName(t)
		x, y := b.Add(t, svc), b.Add(t, svc)
		w := startWatch(t, b, svc, true)
		set := want{x: discovery.Passing, y: discovery.Passing}
		w.waitFor("first snapshot", set)

		up := downFor(t, b)
		w.quiet(DownHold, "while the backend is down")
		start := time.Now()
		up()
		t.Logf("Up took %v", time.Since(start))
		w.quiet(DownHold, "after Up with the state of before Down")

		start = time.Now()
		set[b.Add(t, svc)] = discovery.Passing
		w.waitFor("snapshot after an add once the backend is back", set).logLatency(t, start)
		w.quiet(QuietHold, "after the add")
	})

	t.Run("cancel", func(t *testing.T) {
		// A running watch returns nil promptly when cancelled.
		t.Run("running", func(t *testing.T) {
			b := newBackend(t)
			svc := serviceName(t)
			x := b.Add(t, svc)
			w := startWatch(t, b, svc, true)
			w.waitFor("first snapshot", want{x: discovery.Passing})
			w.stop()
		})
		// So does one retrying against a backend that is down.
		t.Run("backend-down", func(t *testing.T) {
			b := newBackend(t)
			svc := serviceName(t)
			x := b.Add(t, svc)
			w := startWatch(t, b, svc, true)
			w.waitFor("first snapshot", want{x: discovery.Passing})
			up := downFor(t, b)
			w.quiet(DownHold/3, "while the backend is down")
			w.stop()
			up()
		})
		// A context cancelled before Watch starts: nil at once.
		t.Run("before-start", func(t *testing.T) {
			b := newBackend(t)
			w := startWatchCtx(t, b, serviceName(t), true, true)
			w.stop()
		})
	})

	// A bad spec is an error at once, with nothing published.
	t.Run("bad-spec", func(t *testing.T) {
		b := newBackend(t)
		spec := b.Spec(serviceName(t), false)
		spec.Service = ""
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var mu sync.Mutex
		published := 0
		done := make(chan error, 1)
		start := time.Now()
		go func() {
			done <- b.Watcher().Watch(ctx, spec, func(discovery.Snapshot) {
				mu.Lock()
				published++
				mu.Unlock()
			})
		}()
		timer := time.NewTimer(CancelTimeout)
		defer timer.Stop()
		select {
		case err := <-done:
			if err == nil {
				t.Fatal("Watch with an empty service returned nil")
			}
			t.Logf("Watch with an empty service: %v (after %v)", err, time.Since(start))
		case <-timer.C:
			cancel()
			<-done
			t.Fatalf("Watch with an empty service did not return within %v", CancelTimeout)
		}
		mu.Lock()
		defer mu.Unlock()
		if published != 0 {
			t.Fatalf("Watch with an empty service published %d times", published)
		}
	})
}

// downFor takes b down and returns the func that brings it back; if the
// test ends first (a failure), b is brought back at its cleanup.
func downFor(t *testing.T, b Backend) (up func()) {
	t.Helper()
	start := time.Now()
	b.Down(t)
	t.Logf("Down took %v", time.Since(start))
	var once sync.Once
	up = func() { once.Do(func() { b.Up(t) }) }
	t.Cleanup(up)
	return up
}

// serviceName returns a service name unique to this subtest and run
// (backends may keep state across runs: a Docker daemon does). It is
// lower-case letters, digits and dashes, valid for every backend.
func serviceName(t *testing.T) string {
	leaf := t.Name()[strings.LastIndex(t.Name(), "/")+1:]
	leaf = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			return r
		case r >= 'A' && r <= 'Z':
			return r - 'A' + 'a'
		}
		return '-'
	}, leaf)
	return fmt.Sprintf("wt-%s-%08x", leaf, rand.Uint32())
}

// want is an expected set: instance ID → status.
type want map[string]discovery.Status

// matches reports whether s holds exactly the instances of w, with their
// statuses.
func (w want) matches(s discovery.Snapshot) bool {
	if len(s.Instances) != len(w) {
		return false
	}
	seen := make(map[string]bool, len(w))
	for _, in := range s.Instances {
		st, ok := w[in.ID]
		if !ok || seen[in.ID] || in.Status != st {
			return false
		}
		seen[in.ID] = true
	}
	return true
}

func (w want) String() string {
	return describe(discovery.NewSnapshot("", w.instances()))
}

func (w want) instances() []discovery.Instance {
	var out []discovery.Instance
	for id, st := range w {
		out = append(out, discovery.Instance{ID: id, Status: st})
	}
	return out
}

// describe is s in brief: [id:status ...].
func describe(s discovery.Snapshot) string {
	parts := make([]string, len(s.Instances))
	for i, in := range s.Instances {
		parts[i] = in.ID + ":" + string(in.Status)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// publication is one call of publish.
type publication struct {
	at   time.Time
	snap discovery.Snapshot
	late bool // after Watch had returned
}

func (p publication) logLatency(t *testing.T, since time.Time) {
	t.Helper()
	t.Logf("change → publication: %v", p.at.Sub(since))
}

// watch is one Watch under test: it records every publication (publish
// appends under mu and signals) for the test goroutine to consume in
// order.
type watch struct {
	t       *testing.T
	service string
	cancel  context.CancelFunc
	ended   chan struct{} // closed when Watch has returned
	err     error         // Watch's result, set before ended closes
	signal  chan struct{} // one slot: "something was published"

	mu       sync.Mutex
	pubs     []publication
	next     int  // index of the first publication not yet consumed
	returned bool // Watch has returned
	stopped  bool // stop ran
}

// startWatch runs Watch on b for service until the test ends.
func startWatch(t *testing.T, b Backend, service string, passingOnly bool) *watch {
	t.Helper()
	return startWatchCtx(t, b, service, passingOnly, false)
}

// startWatchCtx is startWatch, with the context cancelled before Watch is
// called when precancel is set.
func startWatchCtx(t *testing.T, b Backend, service string, passingOnly, precancel bool) *watch {
	t.Helper()
	spec := b.Spec(service, passingOnly)
	if spec.Service != service || spec.PassingOnly != passingOnly {
		t.Fatalf("Backend.Spec(%q, %v) = service %q, passing only %v", service, passingOnly, spec.Service, spec.PassingOnly)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &watch{t: t, service: service, cancel: cancel, ended: make(chan struct{}), signal: make(chan struct{}, 1)}
	if precancel {
		cancel()
	}
	watcher := b.Watcher()
	go func() {
		err := watcher.Watch(ctx, spec, w.publish)
		w.mu.Lock()
		w.returned = true
		w.mu.Unlock()
		w.err = err
		close(w.ended)
	}()
	t.Cleanup(func() {
		w.stop()
		w.check()
	})
	return w
}

func (w *watch) publish(s discovery.Snapshot) {
	w.mu.Lock()
	w.pubs = append(w.pubs, publication{at: time.Now(), snap: s, late: w.returned})
	w.mu.Unlock()
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

// take returns the next publication not consumed yet, if any.
func (w *watch) take() (publication, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.next == len(w.pubs) {
		return publication{}, false
	}
	p := w.pubs[w.next]
	w.next++
	return p, true
}

// waitFor waits up to ChangeTimeout for the next publication and fails
// the test unless it is exactly set: every publication is accounted for,
// so a partial or intermediate snapshot, or a second publication of one
// change, fails here (or in quiet).
func (w *watch) waitFor(what string, set want) publication {
	w.t.Helper()
	timer := time.NewTimer(ChangeTimeout)
	defer timer.Stop()
	for {
		if p, ok := w.take(); ok {
			if !set.matches(p.snap) {
				w.t.Fatalf("%s: published %s, want %s", what, describe(p.snap), set)
			}
			return p
		}
		select {
		case <-w.signal:
		case <-w.ended:
			if p, ok := w.take(); ok {
				w.t.Fatalf("%s: published %s, then Watch returned %v", what, describe(p.snap), w.err)
			}
			w.t.Fatalf("%s: Watch returned %v before publishing", what, w.err)
		case <-timer.C:
			w.t.Fatalf("%s: nothing published within %v (want %s)", what, ChangeTimeout, set)
		}
	}
}

// quiet fails the test if anything is published, or Watch returns, within
// d. It watches throughout (it fails as soon as a publication lands), and
// also fails on a publication not consumed before it was called.
func (w *watch) quiet(d time.Duration, what string) {
	w.t.Helper()
	start := time.Now()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		if p, ok := w.take(); ok {
			w.t.Fatalf("%s: published %s (%v from the start of a %v hold); nothing should be", what, describe(p.snap), p.at.Sub(start), d)
		}
		select {
		case <-w.signal:
		case <-w.ended:
			w.t.Fatalf("%s: Watch returned %v", what, w.err)
		case <-timer.C:
			if p, ok := w.take(); ok {
				w.t.Fatalf("%s: published %s at the end of a %v hold; nothing should be", what, describe(p.snap), d)
			}
			return
		}
	}
}

// stop cancels the watch and checks Watch returns nil within
// CancelTimeout. Only the first call does anything.
func (w *watch) stop() {
	w.t.Helper()
	w.mu.Lock()
	stopped := w.stopped
	w.stopped = true
	w.mu.Unlock()
	if stopped {
		return
	}
	start := time.Now()
	w.cancel()
	timer := time.NewTimer(CancelTimeout)
	defer timer.Stop()
	select {
	case <-w.ended:
		if w.err != nil {
			w.t.Errorf("Watch returned %v after cancel, want nil", w.err)
		}
		w.t.Logf("Watch returned %v after cancel", time.Since(start))
	case <-timer.C:
		w.t.Errorf("Watch did not return within %v of cancel", CancelTimeout)
	}
}

// check verifies what holds for every publication of the watch: each
// names the service and is canonical, none is Equal to the one before it
// (no duplicate publishes), none came after Watch returned.
func (w *watch) check() {
	w.t.Helper()
	w.mu.Lock()
	pubs := w.pubs
	w.mu.Unlock()
	for i, p := range pubs {
		s := p.snap
		switch {
		case s.Service != w.service:
			w.t.Errorf("publication %d names service %q, want %q", i+1, s.Service, w.service)
		case !discovery.NewSnapshot(s.Service, s.Instances).Equal(s):
			w.t.Errorf("publication %d is not canonical (sorted, tags sorted): %s", i+1, describe(s))
		}
		if i > 0 && s.Equal(pubs[i-1].snap) {
			w.t.Errorf("publications %d and %d are Equal: %s (a duplicate publish)", i, i+1, describe(s))
		}
		if p.late {
			w.t.Errorf("publication %d came after Watch returned: %s", i+1, describe(s))
		}
	}
	w.t.Logf("%d publications", len(pubs))
}
