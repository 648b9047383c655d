package jobs

import (
	"sync"
	"testing"
)

// Issue 10 item 14: an Unsubscribe while Publish delivers must not make
// another subscriber skip a change or get one twice (Unsubscribe used to
// shift the slice Publish was iterating, in place).
func TestBusUnsubscribeDuringPublish(t *testing.T) {
	const rounds, changes = 200, 20
	for range rounds {
		bus := NewBus()
		leaving := bus.Subscribe()
		a, b := bus.Subscribe(), bus.Subscribe()
		var wg sync.WaitGroup
		wg.Go(func() {
			for i := range changes {
				bus.Publish(StateChange{Job: "x", State: State(i % 3)})
			}
		})
		wg.Go(func() { bus.Unsubscribe(leaving) })
		wg.Wait()
		for name, s := range map[string]*Subscription{"a": a, "b": b} {
			if got := len(s.Drain()); got != changes {
				t.Fatalf("subscriber %s got %d changes, want %d", name, got, changes)
			}
		}
	}
}
