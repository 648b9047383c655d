package watches

import "time"

// Clock is time as a watch sees it: the debounce reads it, and every wait
// of a watch (the debounce, the backoff between reload attempts, the
// first-render wait) is one of its timers, so that a test steers them all.
// RealClock is the default.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f, on a goroutine of its own, once d has passed,
	// unless the Timer is stopped first (time.AfterFunc).
	AfterFunc(d time.Duration, f func()) Timer
	// NewTimer sends the time on C once d has passed (time.NewTimer).
	NewTimer(d time.Duration) ResettableTimer
}

// Timer is a timer that can be stopped: Stop reports whether it stopped it
// before it fired.
type Timer interface {
	Stop() bool
}

// ResettableTimer is a timer with a channel, as time.Timer since Go 1.23:
// after Reset or Stop returns, no value sent before is received from C.
type ResettableTimer interface {
	Timer
	C() <-chan time.Time
	// Reset rearms the timer to fire d from now; it reports whether the
	// timer was still armed.
	Reset(d time.Duration) bool
}

// RealClock is the clock of package time.
type RealClock struct{}

func (RealClock) Now() time.Time { return time.Now() }

func (RealClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

func (RealClock) NewTimer(d time.Duration) ResettableTimer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time        { return r.t.C }
func (r realTimer) Reset(d time.Duration) bool { return r.t.Reset(d) }
func (r realTimer) Stop() bool                 { return r.t.Stop() }
