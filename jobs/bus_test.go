package jobs

import (
	"fmt"
	"strings"
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

// jobStates reads a drained queue as "job:state" for each change, with a
// "*" for a replayed one.
func jobStates(cs []StateChange) string {
	var parts []string
	for _, c := range cs {
		p := c.Job + ":" + c.State.String()
		if c.Replayed {
			p += "*"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, " ")
}

// A subscriber gets the latest change of every job, in the order of each
// job's first publish and marked replayed, then the changes that follow.
func TestBusSubscribeReplaysTheLatestOfEachJob(t *testing.T) {
	bus := NewBus()
	early := bus.Subscribe()
	select {
	case <-early.Ready():
		t.Fatal("a subscriber of an empty bus was signalled")
	default:
	}
	bus.Publish(StateChange{Job: "db", State: Starting})
	bus.Publish(StateChange{Job: "web", State: Starting})
	bus.Publish(StateChange{Job: "db", State: Running})
	bus.Publish(StateChange{Job: "db", State: Healthy})

	late := bus.Subscribe()
	select {
	case <-late.Ready():
	default:
		t.Fatal("a subscriber with a snapshot waiting was not signalled")
	}
	bus.Publish(StateChange{Job: "web", State: Running})
	if got, want := jobStates(late.Drain()), "db:healthy* web:starting* web:running"; got != want {
		t.Errorf("late subscriber got %q, want %q", got, want)
	}
	if got, want := jobStates(early.Drain()), "db:starting web:starting db:running db:healthy web:running"; got != want {
		t.Errorf("early subscriber got %q, want %q", got, want)
	}
}

// Forget drops a job from what later subscribers hear; published again, it
// counts as a new job, after the others.
func TestBusForget(t *testing.T) {
	bus := NewBus()
	bus.Publish(StateChange{Job: "db", State: Stopped, Final: true})
	bus.Publish(StateChange{Job: "web", State: Running})
	before := bus.Subscribe()
	bus.Forget("db")
	bus.Forget("unknown")
	if got, want := jobStates(bus.Subscribe().Drain()), "web:running*"; got != want {
		t.Errorf("after Forget: %q, want %q", got, want)
	}
	bus.Publish(StateChange{Job: "db", State: Starting})
	if got, want := jobStates(bus.Subscribe().Drain()), "web:running* db:starting*"; got != want {
		t.Errorf("after a new db: %q, want %q", got, want)
	}
	if got, want := jobStates(before.Drain()), "db:stopped* web:running* db:starting"; got != want {
		t.Errorf("a subscriber from before Forget: %q, want %q", got, want)
	}
}

// Subscribing while jobs publish loses no change and duplicates none: each
// subscriber sees, per job, at most one replayed change and then every later
// one in order, through to the last.
func TestBusSubscribeDuringPublish(t *testing.T) {
	const publishers, changes, subscribers = 4, 300, 20
	bus := NewBus()
	subs := make(chan *Subscription, subscribers)
	var wg sync.WaitGroup
	for p := range publishers {
		job := fmt.Sprint("job", p)
		wg.Go(func() {
			for i := range changes {
				bus.Publish(StateChange{Job: job, State: Running, Exit: &ExitStatus{Code: i}})
			}
		})
	}
	for range subscribers {
		wg.Go(func() { subs <- bus.Subscribe() })
	}
	wg.Wait()
	close(subs)
	for s := range subs {
		next := map[string]int{} // the sequence number due next, per job
		for _, c := range s.Drain() {
			due, seen := next[c.Job]
			switch {
			case c.Replayed && seen:
				t.Fatalf("%s: replayed change %d after live ones", c.Job, c.Exit.Code)
			case !c.Replayed && c.Exit.Code != due:
				t.Fatalf("%s: change %d where %d was due: lost or duplicated", c.Job, c.Exit.Code, due)
			}
			next[c.Job] = c.Exit.Code + 1
		}
		for p := range publishers {
			if job := fmt.Sprint("job", p); next[job] != changes {
				t.Fatalf("%s: last change %d, want %d", job, next[job]-1, changes-1)
			}
		}
	}
}
