package watchertest_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/nodepilot/pilot/discovery"
	"github.com/nodepilot/pilot/discovery/watchertest"
)

// TestRunInMemory runs the suite against memBackend, a minimal correct
// watcher over an in-memory catalog: the suite passes what keeps the
// contract, and this is the smallest example of a Backend.
func TestRunInMemory(t *testing.T) {
	watchertest.Run(t, func(t *testing.T) watchertest.Backend {
		return &memBackend{changed: make(chan struct{}), services: map[string]map[string]discovery.Status{}}
	})
}

// memBackend is its own Watcher. Each change closes changed (and makes a
// new one), which wakes every Watch to compare the current set with the
// last it published. While down, a Watch reads nothing.
type memBackend struct {
	mu       sync.Mutex
	changed  chan struct{}
	down     bool
	n        int
	services map[string]map[string]discovery.Status // service → ID → status
}

func (m *memBackend) Watcher() discovery.Watcher { return m }

func (m *memBackend) Spec(service string, passingOnly bool) discovery.WatchSpec {
	return discovery.WatchSpec{Service: service, PassingOnly: passingOnly}
}

func (m *memBackend) Watch(ctx context.Context, spec discovery.WatchSpec, publish func(discovery.Snapshot)) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	var (
		last discovery.Snapshot
		have bool
	)
	for {
		m.mu.Lock()
		changed, down := m.changed, m.down
		var ins []discovery.Instance
		for id, st := range m.services[spec.Service] {
			if !spec.PassingOnly || st == discovery.Passing {
				ins = append(ins, discovery.Instance{ID: id, Node: "mem", Address: "127.0.0.1", Port: 80, Status: st})
			}
		}
		m.mu.Unlock()
		if snap := discovery.NewSnapshot(spec.Service, ins); !down && (!have || !snap.Equal(last)) {
			last, have = snap, true
			publish(snap.Clone())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

// change runs f under the lock and wakes every Watch.
func (m *memBackend) change(f func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f()
	close(m.changed)
	m.changed = make(chan struct{})
}

func (m *memBackend) Add(t testing.TB, service string) string {
	var id string
	m.change(func() {
		m.n++
		id = fmt.Sprintf("%s-%d", service, m.n)
		if m.services[service] == nil {
			m.services[service] = map[string]discovery.Status{}
		}
		m.services[service][id] = discovery.Passing
	})
	return id
}

func (m *memBackend) Remove(t testing.TB, service, id string) {
	m.change(func() { delete(m.services[service], id) })
}

func (m *memBackend) SetHealthy(t testing.TB, service, id string, healthy bool) {
	m.change(func() {
		if healthy {
			m.services[service][id] = discovery.Passing
		} else {
			m.services[service][id] = discovery.Critical
		}
	})
}

func (m *memBackend) Down(testing.TB) { m.change(func() { m.down = true }) }
func (m *memBackend) Up(testing.TB)   { m.change(func() { m.down = false }) }
