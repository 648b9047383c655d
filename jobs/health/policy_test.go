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

func TestStatusString(t *testing.T) {
	for s, want := range map[Status]string{Unknown: "unknown", Healthy: "healthy", Unhealthy: "unhealthy", Status(9): "unknown"} {
		if s.String() != want {
			t.Errorf("%d: got %q want %q", s, s.String(), want)
		}
	}
}
