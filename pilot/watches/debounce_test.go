package watches

import (
	"slices"
	"testing"
	"time"

	"github.com/nodepilot/pilot/pilot/config"
)

const ms = time.Millisecond

// advanceTo moves the fake clock to at (since epoch).
func advanceTo(c *fakeClock, at time.Duration) { c.Advance(at - c.Now().Sub(epoch)) }

// wantArmed fails unless exactly the timers at (since epoch) are armed.
func wantArmed(t *testing.T, c *fakeClock, at ...time.Duration) {
	t.Helper()
	if got := c.sinceEpoch(c.armed()); !slices.Equal(got, at) {
		t.Fatalf("timers armed for %v, want %v", got, at)
	}
}

// The first snapshot is the state at start, not a burst: it is applied at
// once, whatever debounce.min says, and arms no timer.
func TestDebounceFirstSnapshotAtOnce(t *testing.T) {
	w, e := testWatch(t, config.OnChange{}, debounce(time.Minute, time.Hour))
	run(t, w)
	e.watcher.send(t, snap(3))
	if a := e.nextApplied(t); a.instances != 3 || a.at != 0 {
		t.Fatalf("applied %+v, want 3 instances at once", a)
	}
	wantArmed(t, e.clock)
}

// A burst whose changes come less than min apart is applied once, min
// after its last change, with the latest snapshot.
func TestDebounceMin(t *testing.T) {
	w, e := testWatch(t, config.OnChange{}, debounce(60*ms, 200*ms))
	stop := run(t, w)
	e.watcher.send(t, snap(1))
	e.nextApplied(t)

	for _, c := range []struct {
		at, due time.Duration
		n       int
	}{
		{0, 60 * ms, 2},
		{30 * ms, 90 * ms, 3},
		{80 * ms, 140 * ms, 4},
	} {
		advanceTo(e.clock, c.at)
		e.watcher.send(t, snap(c.n))
		e.clock.waitArmed(t, epoch.Add(c.due)) // the debounce took it
	}
	advanceTo(e.clock, 139*ms) // quiet for 59 ms of 60
	wantArmed(t, e.clock, 140*ms)
	e.noneApplied(t) // only that timer applies a set
	e.clock.Advance(ms)
	if a := e.nextApplied(t); a.instances != 4 || a.at != 140*ms {
		t.Fatalf("applied %+v, want the latest (4 instances) at 140ms", a)
	}
	stop()
	e.noneApplied(t)
}

// A stream of changes that never leaves min of quiet is applied at max
// after the first change of each burst, with the latest snapshot.
func TestDebounceMax(t *testing.T) {
	w, e := testWatch(t, config.OnChange{}, debounce(60*ms, 200*ms))
	stop := run(t, w)
	e.watcher.send(t, snap(1))
	e.nextApplied(t)

	n := 1
	burst := func(began time.Duration) {
		t.Helper()
		// A change every 50 ms: without max, the last would apply at
		// began+210ms.
		for i, due := range []time.Duration{60 * ms, 110 * ms, 160 * ms, 200 * ms} {
			advanceTo(e.clock, began+time.Duration(i)*50*ms)
			n++
			e.watcher.send(t, snap(n))
			e.clock.waitArmed(t, epoch.Add(began+due))
		}
		advanceTo(e.clock, began+199*ms)
		wantArmed(t, e.clock, began+200*ms)
		e.noneApplied(t)
		e.clock.Advance(ms)
		if a := e.nextApplied(t); a.instances != n || a.at != began+200*ms {
			t.Fatalf("applied %+v, want the latest (%d instances) at %v", a, n, began+200*ms)
		}
	}
	burst(0)
	burst(200 * ms) // the stream goes on: the next change begins a burst
	stop()
	e.noneApplied(t)
}

// With debounce.min 0 every change is applied at once, without a timer.
func TestDebounceOff(t *testing.T) {
	w, e := testWatch(t, config.OnChange{}, debounce(0, 0))
	run(t, w)
	for n := 1; n <= 3; n++ {
		e.watcher.send(t, snap(n))
		if a := e.nextApplied(t); a.instances != n || a.at != 0 {
			t.Fatalf("applied %+v, want %d instances at once", a, n)
		}
	}
	wantArmed(t, e.clock)
}

// While a set is being applied the watcher is not held up, and the
// debounce then sees only the latest snapshot, not a backlog.
func TestDebounceLatestWins(t *testing.T) {
	release := make(chan struct{})
	w, e := testWatch(t, config.OnChange{}, func(o *Options) {
		applied := o.Applied
		o.Applied = func(n, skipped int) {
			applied(n, skipped)
			if n == 1 {
				<-release // the first apply is slow
			}
		}
	})
	stop := run(t, w)
	e.watcher.send(t, snap(1))
	e.nextApplied(t)
	for n := 2; n <= 5; n++ {
		e.watcher.send(t, snap(n)) // fails if publish blocks
	}
	close(release)
	e.clock.waitArmed(t, epoch.Add(60*ms))
	e.clock.Advance(60 * ms)
	if a := e.nextApplied(t); a.instances != 5 {
		t.Fatalf("applied %+v, want the latest (5 instances)", a)
	}
	stop()
	e.noneApplied(t)
}
