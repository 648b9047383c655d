package watches

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeClock is a Clock that moves only when the test advances it.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer // every timer made, armed or not
	// changed is closed, and replaced, at every change of the armed
	// timers: waitArmed waits on it instead of sleeping.
	changed chan struct{}
}

var epoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func newFakeClock() *fakeClock { return &fakeClock{now: epoch, changed: make(chan struct{})} }

// fakeTimer is one of fakeClock's timers: AfterFunc's (f) or NewTimer's (c).
type fakeTimer struct {
	clock *fakeClock
	when  time.Time
	armed bool
	f     func()
	c     chan time.Time
}

var _ Clock = (*fakeClock)(nil)

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	t := &fakeTimer{clock: c, f: f}
	t.Reset(d)
	return t
}

func (c *fakeClock) NewTimer(d time.Duration) ResettableTimer {
	t := &fakeTimer{clock: c, c: make(chan time.Time, 1)}
	t.Reset(d)
	return t
}

// notify wakes waitArmed; c.mu held.
func (c *fakeClock) notify() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Reset(d time.Duration) bool {
	c := t.clock
	c.mu.Lock()
	defer c.mu.Unlock()
	if !slices.Contains(c.timers, t) {
		c.timers = append(c.timers, t)
	}
	was := t.armed
	t.drain()
	t.when, t.armed = c.now.Add(d), true
	c.notify()
	return was
}

func (t *fakeTimer) Stop() bool {
	c := t.clock
	c.mu.Lock()
	defer c.mu.Unlock()
	was := t.armed
	t.drain()
	t.armed = false
	c.notify()
	return was
}

// drain drops a tick not yet received, as time.Timer does since Go 1.23.
func (t *fakeTimer) drain() {
	if t.c == nil {
		return
	}
	select {
	case <-t.c:
	default:
	}
}

// Advance moves the clock d on, firing in order every timer due by then,
// each at its own time: a NewTimer's sends on its channel; an AfterFunc's
// function runs on the caller's goroutine before Advance returns.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	for {
		var next *fakeTimer
		for _, t := range c.timers {
			if t.armed && !t.when.After(end) && (next == nil || t.when.Before(next.when)) {
				next = t
			}
		}
		if next == nil {
			break
		}
		c.now = maxTime(c.now, next.when)
		next.armed = false
		c.notify()
		if next.f != nil {
			c.mu.Unlock()
			next.f()
			c.mu.Lock()
			continue
		}
		select {
		case next.c <- c.now:
		default:
		}
	}
	c.now = end
	c.mu.Unlock()
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// armed lists the times at which armed timers fire, in order.
func (c *fakeClock) armed() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []time.Time
	for _, t := range c.timers {
		if t.armed {
			out = append(out, t.when)
		}
	}
	slices.SortFunc(out, time.Time.Compare)
	return out
}

// waitArmed waits until a timer is armed to fire at at: the code under
// test has reached its wait. It fails the test after a real-time deadline.
func (c *fakeClock) waitArmed(t testing.TB, at time.Time) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		c.mu.Lock()
		changed := c.changed
		found := false
		for _, tm := range c.timers {
			found = found || tm.armed && tm.when.Equal(at)
		}
		c.mu.Unlock()
		if found {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("no timer armed for +%v; armed: %v", at.Sub(epoch), c.sinceEpoch(c.armed()))
		}
	}
}

func (c *fakeClock) sinceEpoch(ts []time.Time) []time.Duration {
	out := make([]time.Duration, len(ts))
	for i, t := range ts {
		out[i] = t.Sub(epoch)
	}
	return out
}

// The fake clock fires what is due, in order, and nothing early; Reset and
// Stop leave no stale tick, as time.Timer does.
func TestFakeClock(t *testing.T) {
	c := newFakeClock()
	var fired []time.Duration
	c.AfterFunc(3*time.Second, func() { fired = append(fired, c.Now().Sub(epoch)) })
	c.AfterFunc(time.Second, func() { fired = append(fired, c.Now().Sub(epoch)) })
	tm := c.NewTimer(2 * time.Second)
	c.Advance(999 * time.Millisecond)
	if len(fired) != 0 || len(tm.C()) != 0 {
		t.Fatal("fired early")
	}
	c.Advance(5 * time.Second)
	if !slices.Equal(fired, []time.Duration{time.Second, 3 * time.Second}) {
		t.Fatalf("fired at %v", fired)
	}
	if at := <-tm.C(); at.Sub(epoch) != 2*time.Second {
		t.Fatalf("tick at %v", at.Sub(epoch))
	}
	c.Advance(time.Hour) // nothing armed
	tm.Reset(time.Second)
	c.Advance(time.Second)
	if tm.Reset(time.Second) || len(tm.C()) != 0 {
		t.Fatal("a stale tick survived Reset")
	}
	if !tm.Stop() || tm.Stop() {
		t.Fatal("Stop does not report whether the timer was armed")
	}
}
