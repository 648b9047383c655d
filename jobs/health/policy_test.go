package health

import (
	"testing"
	"time"
)

func TestTracker(t *testing.T) {
	type step struct {
		ok          bool
		since       time.Duration
		want        Status
		wantChanged bool
	}
	const s = time.Second
	pass := func(since time.Duration, want Status, changed bool) step { return step{true, since, want, changed} }
	fail := func(since time.Duration, want Status, changed bool) step { return step{false, since, want, changed} }

	tests := []struct {
		name   string
		policy Policy
		steps  []step
	}{
		{"one success makes healthy, reported once", Policy{HealthyThreshold: 1, UnhealthyThreshold: 3}, []step{
			pass(1*s, Healthy, true), pass(2*s, Healthy, false), pass(3*s, Healthy, false),
		}},
		{"healthy threshold needs consecutive successes", Policy{HealthyThreshold: 3, UnhealthyThreshold: 3}, []step{
			pass(1*s, Unknown, false), pass(2*s, Unknown, false), fail(3*s, Unknown, false),
			pass(4*s, Unknown, false), pass(5*s, Unknown, false), pass(6*s, Healthy, true),
		}},
		{"unhealthy threshold needs consecutive failures", Policy{HealthyThreshold: 1, UnhealthyThreshold: 3}, []step{
			pass(1*s, Healthy, true), fail(2*s, Healthy, false), fail(3*s, Healthy, false), pass(4*s, Healthy, false),
			fail(5*s, Healthy, false), fail(6*s, Healthy, false), fail(7*s, Unhealthy, true), fail(8*s, Unhealthy, false),
		}},
		{"recovery needs the healthy threshold", Policy{HealthyThreshold: 2, UnhealthyThreshold: 1}, []step{
			fail(1*s, Unhealthy, true), pass(2*s, Unhealthy, false), fail(3*s, Unhealthy, false),
			pass(4*s, Unhealthy, false), pass(5*s, Healthy, true), fail(6*s, Unhealthy, true),
		}},
		{"flapping below both thresholds changes nothing", Policy{HealthyThreshold: 2, UnhealthyThreshold: 2}, []step{
			pass(1*s, Unknown, false), fail(2*s, Unknown, false), pass(3*s, Unknown, false), fail(4*s, Unknown, false),
			pass(5*s, Unknown, false), fail(6*s, Unknown, false),
		}},
		{"flapping at threshold 1 reports every edge", Policy{HealthyThreshold: 1, UnhealthyThreshold: 1}, []step{
			pass(1*s, Healthy, true), fail(2*s, Unhealthy, true), pass(3*s, Healthy, true), pass(4*s, Healthy, false),
			fail(5*s, Unhealthy, true),
		}},
		{"failures in the start period do not count", Policy{StartPeriod: 10 * s, HealthyThreshold: 1, UnhealthyThreshold: 2}, []step{
			fail(1*s, Unknown, false), fail(2*s, Unknown, false), fail(3*s, Unknown, false), fail(9*s, Unknown, false),
			// From the end of the start period they count, from zero.
			fail(10*s, Unknown, false), fail(11*s, Unhealthy, true),
		}},
		{"a success in the start period counts", Policy{StartPeriod: 10 * s, HealthyThreshold: 1, UnhealthyThreshold: 2}, []step{
			fail(1*s, Unknown, false), pass(2*s, Healthy, true),
			// Once healthy the start period shields nothing.
			fail(3*s, Healthy, false), fail(4*s, Unhealthy, true),
		}},
		{"start period failure breaks a run of successes", Policy{StartPeriod: 10 * s, HealthyThreshold: 2, UnhealthyThreshold: 1}, []step{
			pass(1*s, Unknown, false), fail(2*s, Unknown, false), pass(3*s, Unknown, false), pass(4*s, Healthy, true),
		}},
		{"still unknown after the start period counts normally", Policy{StartPeriod: 5 * s, HealthyThreshold: 3, UnhealthyThreshold: 1}, []step{
			pass(1*s, Unknown, false), fail(6*s, Unhealthy, true),
		}},
		{"zero thresholds fall back to defaults", Policy{}, []step{
			fail(1*s, Unknown, false), fail(2*s, Unknown, false), fail(3*s, Unhealthy, true), pass(4*s, Healthy, true),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTracker(tt.policy)
			for i, st := range tt.steps {
				got, changed := tr.observe(st.ok, st.since)
				if got != st.want || changed != st.wantChanged {
					t.Fatalf("step %d (ok=%v at %s): got %v changed=%v, want %v changed=%v",
						i, st.ok, st.since, got, changed, st.want, st.wantChanged)
				}
			}
		})
	}
}

// The start phase: checks every StartInterval until the first pass (or the
// phase's end), and failures in it count no faster than one per Interval.
func TestTrackerStartPhase(t *testing.T) {
	const ms = time.Millisecond
	type step struct {
		ok           bool
		since        time.Duration
		want         Status
		wantChanged  bool
		wantInterval time.Duration // to the next check
	}
	tests := []struct {
		name   string
		policy Policy
		steps  []step
	}{
		{"fast until the first pass, then regular",
			Policy{Interval: 1000 * ms, StartInterval: 100 * ms, HealthyThreshold: 2, UnhealthyThreshold: 3}, []step{
				{false, 10 * ms, Unknown, false, 100 * ms},
				{true, 110 * ms, Unknown, false, 1000 * ms},
				{true, 1110 * ms, Healthy, true, 1000 * ms},
			}},
		{"without a start period the phase ends after one interval",
			Policy{Interval: 1000 * ms, StartInterval: 100 * ms, HealthyThreshold: 1, UnhealthyThreshold: 3}, []step{
				{false, 10 * ms, Unknown, false, 100 * ms},
				{false, 910 * ms, Unknown, false, 100 * ms},
				{false, 1010 * ms, Unknown, false, 1000 * ms},
				{true, 2010 * ms, Healthy, true, 1000 * ms},
			}},
		{"with a start period the phase lasts as long",
			Policy{Interval: 1000 * ms, StartInterval: 100 * ms, StartPeriod: 5000 * ms, HealthyThreshold: 1, UnhealthyThreshold: 1}, []step{
				{false, 10 * ms, Unknown, false, 100 * ms},
				{false, 4910 * ms, Unknown, false, 100 * ms},
				{false, 5010 * ms, Unhealthy, true, 1000 * ms},
			}},
		{"fast failures count one per interval, as the regular schedule would",
			Policy{Interval: 1000 * ms, StartInterval: 100 * ms, HealthyThreshold: 1, UnhealthyThreshold: 2}, []step{
				{false, 10 * ms, Unknown, false, 100 * ms}, // counted: 1
				{false, 110 * ms, Unknown, false, 100 * ms},
				{false, 910 * ms, Unknown, false, 100 * ms},
				{false, 1010 * ms, Unhealthy, true, 1000 * ms}, // counted: 2, one interval later
			}},
		{"threshold 1 is as quick as the regular first check",
			Policy{Interval: 1000 * ms, StartInterval: 100 * ms, HealthyThreshold: 1, UnhealthyThreshold: 1}, []step{
				{false, 10 * ms, Unhealthy, true, 100 * ms},
				{true, 110 * ms, Healthy, true, 1000 * ms},
			}},
		{"a start interval not below the interval means no start phase",
			Policy{Interval: 1000 * ms, StartInterval: 1000 * ms, HealthyThreshold: 1, UnhealthyThreshold: 2}, []step{
				{false, 10 * ms, Unknown, false, 1000 * ms},
				{false, 1010 * ms, Unhealthy, true, 1000 * ms},
			}},
		{"no start interval, no start phase",
			Policy{Interval: 1000 * ms, HealthyThreshold: 1, UnhealthyThreshold: 2}, []step{
				{false, 10 * ms, Unknown, false, 1000 * ms},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTracker(tt.policy)
			for i, st := range tt.steps {
				got, changed := tr.observe(st.ok, st.since)
				if got != st.want || changed != st.wantChanged {
					t.Fatalf("step %d (ok=%v at %s): got %v changed=%v, want %v changed=%v",
						i, st.ok, st.since, got, changed, st.want, st.wantChanged)
				}
				if next := tr.interval(st.since); next != st.wantInterval {
					t.Fatalf("step %d: next check in %v, want %v", i, next, st.wantInterval)
				}
			}
		})
	}
}

func TestStatusString(t *testing.T) {
	for s, want := range map[Status]string{Unknown: "unknown", Healthy: "healthy", Unhealthy: "unhealthy", Status(9): "unknown"} {
		if s.String() != want {
			t.Errorf("%d: got %q want %q", s, s.String(), want)
		}
		if text, err := s.MarshalText(); string(text) != want || err != nil {
			t.Errorf("%d: MarshalText = %q, %v", s, text, err)
		}
	}
}
