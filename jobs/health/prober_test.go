package health

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// checkerFunc adapts a function to Checker.
type checkerFunc func(ctx context.Context) error

func (f checkerFunc) Check(ctx context.Context) error { return f(ctx) }

// results collects reports under a lock.
type results struct {
	mu  sync.Mutex
	got []Result
}

func (r *results) add(res Result) {
	r.mu.Lock()
	r.got = append(r.got, res)
	r.mu.Unlock()
}

func (r *results) snapshot() []Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Result(nil), r.got...)
}

// runProber runs p until the test ends and waits for Run to return.
func runProber(t *testing.T, p *Prober) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	stop = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
	}
	t.Cleanup(stop)
	return stop
}

func TestProberNoOverlap(t *testing.T) {
	const interval = 10 * time.Millisecond
	var inFlight, maxInFlight, checks atomic.Int32
	var mu sync.Mutex
	var starts, ends []time.Time
	c := checkerFunc(func(ctx context.Context) error {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := maxInFlight.Load()
			if n <= m || maxInFlight.CompareAndSwap(m, n) {
				break
			}
		}
		mu.Lock()
		starts = append(starts, time.Now())
		mu.Unlock()
		select {
		case <-time.After(3 * interval):
		case <-ctx.Done():
		}
		mu.Lock()
		ends = append(ends, time.Now())
		mu.Unlock()
		checks.Add(1)
		return nil
	})
	p := NewProber(c, Policy{Interval: interval, Timeout: time.Second}, nil, nil)
	stop := runProber(t, p)
	waitFor(t, 5*time.Second, "6 checks", func() bool { return checks.Load() >= 6 })
	stop()
	if m := maxInFlight.Load(); m != 1 {
		t.Fatalf("%d checks ran at once", m)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(starts); i++ {
		if starts[i].Before(ends[i-1]) {
			t.Errorf("check %d started before check %d ended", i, i-1)
		}
	}
}

func TestProberIntervalFromStartOfCheck(t *testing.T) {
	const interval = 40 * time.Millisecond
	var mu sync.Mutex
	var starts []time.Time
	c := checkerFunc(func(ctx context.Context) error {
		mu.Lock()
		starts = append(starts, time.Now())
		mu.Unlock()
		time.Sleep(15 * time.Millisecond) // the check's own work
		return nil
	})
	stop := runProber(t, NewProber(c, Policy{Interval: interval, Timeout: time.Second}, nil, nil))
	waitFor(t, 5*time.Second, "5 checks", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(starts) >= 5
	})
	stop()
	mu.Lock()
	defer mu.Unlock()
	var total time.Duration
	for i := 1; i < len(starts); i++ {
		gap := starts[i].Sub(starts[i-1])
		if gap < interval-time.Millisecond {
			t.Errorf("checks %d and %d started %s apart, want ≥ %s", i-1, i, gap, interval)
		}
		total += gap
	}
	// Measured from the start, the average gap stays near the interval,
	// well under interval+check time (55ms) even on a slow runner.
	if avg := total / time.Duration(len(starts)-1); avg >= interval+15*time.Millisecond {
		t.Errorf("average gap %s: interval measured from the end of the check", avg)
	}
}

func TestProberReportsEveryCheckChangedOnlyOnEdges(t *testing.T) {
	script := []bool{false, false, true, true, false, false, false, true, true, true}
	var i atomic.Int32
	boom := errors.New("boom")
	c := checkerFunc(func(ctx context.Context) error {
		n := int(i.Add(1)) - 1
		if n < len(script) && script[n] {
			return nil
		}
		if n >= len(script) {
			<-ctx.Done() // park until the test stops the prober
			return ctx.Err()
		}
		return boom
	})
	var got results
	p := NewProber(c, Policy{Interval: 5 * time.Millisecond, Timeout: 10 * time.Second, HealthyThreshold: 2, UnhealthyThreshold: 2}, nil, got.add)
	stop := runProber(t, p)
	waitFor(t, 5*time.Second, "all scripted checks reported", func() bool { return len(got.snapshot()) >= len(script) })
	stop()

	want := []struct {
		s       Status
		changed bool
	}{
		{Unknown, false}, {Unhealthy, true}, {Unhealthy, false}, {Healthy, true}, {Healthy, false},
		{Unhealthy, true}, {Unhealthy, false}, {Unhealthy, false}, {Healthy, true}, {Healthy, false},
	}
	res := got.snapshot()
	if len(res) != len(script) {
		t.Fatalf("got %d reports, want %d (a check cut short by cancel must not be reported)", len(res), len(script))
	}
	for k, r := range res {
		if r.Status != want[k].s || r.Changed != want[k].changed {
			t.Errorf("report %d: got %v changed=%v, want %v changed=%v", k, r.Status, r.Changed, want[k].s, want[k].changed)
		}
		if (r.Err == nil) != script[k] || (r.Err != nil && !errors.Is(r.Err, boom)) {
			t.Errorf("report %d: err %v for ok=%v", k, r.Err, script[k])
		}
		if r.Duration <= 0 {
			t.Errorf("report %d: duration %s", k, r.Duration)
		}
	}
}

func TestProberTimeoutIsFailure(t *testing.T) {
	const timeout = 20 * time.Millisecond
	var got results
	c := checkerFunc(func(ctx context.Context) error {
		dl, ok := ctx.Deadline()
		if !ok || time.Until(dl) > timeout {
			t.Errorf("check context has no deadline within %s", timeout)
		}
		<-ctx.Done()
		return ctx.Err()
	})
	stop := runProber(t, NewProber(c, Policy{Interval: 5 * time.Millisecond, Timeout: timeout, UnhealthyThreshold: 1}, nil, got.add))
	waitFor(t, 5*time.Second, "a report", func() bool { return len(got.snapshot()) >= 1 })
	stop()
	r := got.snapshot()[0]
	if !errors.Is(r.Err, context.DeadlineExceeded) || r.Status != Unhealthy || !r.Changed {
		t.Fatalf("got %+v", r)
	}
	if r.Duration < timeout {
		t.Errorf("duration %s < timeout %s", r.Duration, timeout)
	}

	// A checker that ignores its context and passes late has still failed.
	got = results{}
	late := checkerFunc(func(ctx context.Context) error { time.Sleep(2 * timeout); return nil })
	stop = runProber(t, NewProber(late, Policy{Interval: time.Hour, Timeout: timeout, UnhealthyThreshold: 1}, nil, got.add))
	waitFor(t, 5*time.Second, "a report", func() bool { return len(got.snapshot()) >= 1 })
	stop()
	if r := got.snapshot()[0]; !errors.Is(r.Err, context.DeadlineExceeded) {
		t.Fatalf("late pass: got %+v", r)
	}
}

func TestFirstDelayBounded(t *testing.T) {
	for _, tt := range []struct{ interval, bound time.Duration }{
		{10 * time.Millisecond, time.Millisecond},
		{500 * time.Millisecond, 50 * time.Millisecond},
		{time.Second, 100 * time.Millisecond},
		{time.Minute, 100 * time.Millisecond},
	} {
		seen := map[time.Duration]bool{}
		for range 1000 {
			d := firstDelay(tt.interval)
			if d < 0 || d >= tt.bound || d > maxFirstDelay {
				t.Fatalf("interval %s: delay %s outside [0, %s)", tt.interval, d, tt.bound)
			}
			seen[d] = true
		}
		if len(seen) < 10 {
			t.Errorf("interval %s: only %d distinct delays; no jitter", tt.interval, len(seen))
		}
	}
	if d := firstDelay(0); d != 0 {
		t.Errorf("zero interval: %s", d)
	}
}

func TestProberFirstCheckComesQuickly(t *testing.T) {
	first := make(chan time.Time, 1)
	c := checkerFunc(func(ctx context.Context) error {
		select {
		case first <- time.Now():
		default:
		}
		return nil
	})
	start := time.Now()
	runProber(t, NewProber(c, Policy{Interval: time.Hour, Timeout: time.Second}, nil, nil))
	select {
	case at := <-first:
		// Jitter is < 100ms; allow generous scheduling slack, far below the hour.
		if d := at.Sub(start); d > time.Second {
			t.Errorf("first check after %s", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no first check")
	}
}

func TestProberCancelEndsRun(t *testing.T) {
	t.Run("while waiting", func(t *testing.T) {
		var checks atomic.Int32
		c := checkerFunc(func(context.Context) error { checks.Add(1); return nil })
		stop := runProber(t, NewProber(c, Policy{Interval: time.Hour, Timeout: time.Second}, nil, nil))
		waitFor(t, 5*time.Second, "first check", func() bool { return checks.Load() == 1 })
		stop()
	})
	t.Run("during a hung check", func(t *testing.T) {
		entered := make(chan struct{})
		var reports atomic.Int32
		c := checkerFunc(func(ctx context.Context) error {
			close(entered)
			<-ctx.Done()
			return ctx.Err()
		})
		stop := runProber(t, NewProber(c, Policy{Interval: time.Hour, Timeout: time.Hour}, nil, func(Result) { reports.Add(1) }))
		<-entered
		start := time.Now()
		stop()
		if d := time.Since(start); d > time.Second {
			t.Errorf("Run took %s to return", d)
		}
		if reports.Load() != 0 {
			t.Error("a check cut short by cancel was reported")
		}
	})
	t.Run("before the first tick", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		c := checkerFunc(func(context.Context) error { t.Error("checked after cancel"); return nil })
		NewProber(c, Policy{Interval: time.Hour}, nil, nil).Run(ctx)
	})
}

// TestProberExecEndToEnd: a Prober driving an exec check that hangs fails
// at each timeout, never overlaps, and leaves no process behind.
func TestProberExecEndToEnd(t *testing.T) {
	e := sh(t, "sleep 100 & wait")
	var got results
	stop := runProber(t, NewProber(e, Policy{Interval: 10 * time.Millisecond, Timeout: 30 * time.Millisecond, UnhealthyThreshold: 2}, nil, got.add))
	waitFor(t, 10*time.Second, "3 reports", func() bool { return len(got.snapshot()) >= 3 })
	stop()
	res := got.snapshot()
	if res[1].Status != Unhealthy || !res[1].Changed || res[2].Changed {
		t.Errorf("got %+v", res[:3])
	}
	assertNothingLeft(t)
}

// Issue 10 item 3: with a start interval, an app that answers after a few
// failed checks passes at once, not an Interval (here an hour) later.
func TestProberStartIntervalPassesSoon(t *testing.T) {
	var checks atomic.Int32
	c := checkerFunc(func(context.Context) error {
		if checks.Add(1) <= 3 {
			return errors.New("starting")
		}
		return nil
	})
	var got results
	runProber(t, NewProber(c, Policy{Interval: time.Hour, StartInterval: 5 * time.Millisecond, Timeout: time.Second}, nil, got.add))
	waitFor(t, 5*time.Second, "healthy", func() bool {
		res := got.snapshot()
		return len(res) > 0 && res[len(res)-1].Status == Healthy
	})
	if n := checks.Load(); n != 4 {
		t.Errorf("%d checks, want 4 (three failures, then the pass; then the regular hour)", n)
	}
}

// The fast checks of the start phase do not bring the unhealthy verdict
// sooner than the regular schedule would: with threshold 2, not before one
// Interval, however many fast checks failed.
func TestProberStartPhaseDoesNotHurryUnhealthy(t *testing.T) {
	const interval = 300 * time.Millisecond
	var checks atomic.Int32
	c := checkerFunc(func(context.Context) error { checks.Add(1); return errors.New("still starting") })
	var got results
	start := time.Now()
	runProber(t, NewProber(c, Policy{Interval: interval, StartInterval: 5 * time.Millisecond, Timeout: time.Second,
		HealthyThreshold: 1, UnhealthyThreshold: 2}, nil, got.add))
	var unhealthyAfter time.Duration
	waitFor(t, 5*time.Second, "unhealthy", func() bool {
		for _, r := range got.snapshot() {
			if r.Status == Unhealthy {
				unhealthyAfter = time.Since(start)
				return true
			}
		}
		return false
	})
	if unhealthyAfter < interval {
		t.Errorf("unhealthy after %v, before one interval (%v)", unhealthyAfter, interval)
	}
	if n := checks.Load(); n < 3 {
		t.Errorf("only %d checks: the start phase did not check fast", n)
	}
}
