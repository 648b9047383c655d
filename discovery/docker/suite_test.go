package docker

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/nodepilot/pilot/discovery"
	"github.com/nodepilot/pilot/discovery/watchertest"
)

// suiteProject is the compose project the suite's containers belong to.
const suiteProject = "suite"

// fakeBackend drives the fake engine for the shared watcher suite: each
// instance is a compose container of project "suite" with a health check,
// healthy when added.
type fakeBackend struct {
	f *fakeEngine
	w *Watcher

	mu  sync.Mutex
	n   int
	ids map[string]string // instance ID (container name) → container ID
}

var _ watchertest.Backend = (*fakeBackend)(nil)

func newFakeBackend(t *testing.T) watchertest.Backend {
	f := newFakeEngine(t)
	c, err := NewClient(f.Host())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	w, err := NewWatcher(c, WatcherOptions{MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond},
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return &fakeBackend{f: f, w: w, ids: make(map[string]string)}
}

func (b *fakeBackend) Watcher() discovery.Watcher { return b.w }

func (b *fakeBackend) Spec(service string, passingOnly bool) discovery.WatchSpec {
	return discovery.WatchSpec{Service: service, PassingOnly: passingOnly, Docker: discovery.DockerQuery{Project: suiteProject}}
}

func (b *fakeBackend) Add(t testing.TB, service string) string {
	t.Helper()
	b.mu.Lock()
	b.n++
	n := b.n
	b.mu.Unlock()
	c := web(suiteProject, service, n)
	c.Networks = map[string]string{suiteProject + "_default": fmt.Sprintf("10.1.%d.%d", n/250, n%250+1)}
	c.Health = container.Healthy
	id := b.f.Run(c)
	b.mu.Lock()
	b.ids[c.Name] = id
	b.mu.Unlock()
	return c.Name
}

func (b *fakeBackend) containerID(t testing.TB, id string) string {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	cid, ok := b.ids[id]
	if !ok {
		t.Fatalf("fake backend: no instance %q", id)
	}
	return cid
}

func (b *fakeBackend) Remove(t testing.TB, service, id string) {
	t.Helper()
	b.f.Remove(b.containerID(t, id))
	b.mu.Lock()
	delete(b.ids, id)
	b.mu.Unlock()
}

func (b *fakeBackend) SetHealthy(t testing.TB, service, id string, healthy bool) {
	t.Helper()
	h := container.Unhealthy
	if healthy {
		h = container.Healthy
	}
	b.f.SetHealth(b.containerID(t, id), h)
}

func (b *fakeBackend) Down(t testing.TB) { b.f.Stop() }
func (b *fakeBackend) Up(t testing.TB)   { b.f.Start() }

func TestWatcherSuite(t *testing.T) { runSuite(t, newFakeBackend) }

// runSuite stands in for watchertest.Run until the shared suite lands on
// this branch: a short pass through the Backend the suite will drive, so
// the adapter is exercised rather than only compiled.
func runSuite(t *testing.T, newBackend func(t *testing.T) watchertest.Backend) {
	b := newBackend(t)
	var (
		mu   sync.Mutex
		pubs []discovery.Snapshot
	)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- b.Watcher().Watch(ctx, b.Spec("web", false), func(s discovery.Snapshot) {
			mu.Lock()
			pubs = append(pubs, s)
			mu.Unlock()
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch = %v after cancel", err)
		}
	}()
	waitFor := func(what string, ok func(discovery.Snapshot) bool) {
		t.Helper()
		deadline := time.Now().Add(waitLimit)
		for {
			mu.Lock()
			var last *discovery.Snapshot
			if len(pubs) > 0 {
				last = &pubs[len(pubs)-1]
			}
			ok := last != nil && ok(*last)
			mu.Unlock()
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no snapshot with %s within %v", what, waitLimit)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	waitFor("nothing", hasIDs())
	a := b.Add(t, "web")
	c := b.Add(t, "web")
	waitFor("two passing", func(s discovery.Snapshot) bool {
		return hasIDs(a, c)(s) && statusOf(a, discovery.Passing)(s)
	})
	b.SetHealthy(t, "web", a, false)
	waitFor(a+" critical", statusOf(a, discovery.Critical))
	b.Down(t)
	b.Remove(t, "web", c) // no subscriber sees it: the resync must
	b.SetHealthy(t, "web", a, true)
	b.Up(t)
	waitFor(a+" alone, passing", func(s discovery.Snapshot) bool { return hasIDs(a)(s) && statusOf(a, discovery.Passing)(s) })
	mu.Lock()
	defer mu.Unlock()
	for i, s := range pubs[1:] {
		if len(s.Instances) == 0 {
			t.Errorf("publication #%d is empty: %s", i+2, describe(s))
		}
	}
}
