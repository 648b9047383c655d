package health

import "time"

// Status is what a run of checks concludes.
type Status int

const (
	Unknown Status = iota // no verdict yet
	Healthy
	Unhealthy
)

func (s Status) String() string {
	switch s {
	case Healthy:
		return "healthy"
	case Unhealthy:
		return "unhealthy"
	default:
		return "unknown"
	}
}

// MarshalText writes the status's name, so that JSON logs say "healthy".
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Policy is when to check and how many results make a verdict. Config
// validation owns the user-facing defaults and bounds; zero values here
// fall back to DefaultPolicy's so the package never spins or divides by
// nothing.
type Policy struct {
	Interval    time.Duration // from the start of one check to the start of the next
	Timeout     time.Duration // per check
	StartPeriod time.Duration // failures before this (since Run) do not count
	// StartInterval paces the checks until the first pass (the start
	// phase), so that a new instance passes as soon as it answers rather
	// than a whole Interval later. The start phase ends at the first pass,
	// and at the latest when StartPeriod ends or, with no StartPeriod,
	// after one Interval. 0, or a value not below Interval, means no start
	// phase.
	StartInterval time.Duration
	// Consecutive successes to become Healthy, failures to become Unhealthy.
	HealthyThreshold, UnhealthyThreshold int
}

// DefaultPolicy matches the values shown in PRODUCT.md.
var DefaultPolicy = Policy{
	Interval:           5 * time.Second,
	Timeout:            2 * time.Second,
	HealthyThreshold:   1,
	UnhealthyThreshold: 3,
}

func (p Policy) withDefaults() Policy {
	if p.Interval <= 0 {
		p.Interval = DefaultPolicy.Interval
	}
	if p.Timeout <= 0 {
		p.Timeout = DefaultPolicy.Timeout
	}
	if p.StartPeriod < 0 {
		p.StartPeriod = 0
	}
	if p.StartInterval < 0 {
		p.StartInterval = 0
	}
	if p.HealthyThreshold < 1 {
		p.HealthyThreshold = DefaultPolicy.HealthyThreshold
	}
	if p.UnhealthyThreshold < 1 {
		p.UnhealthyThreshold = DefaultPolicy.UnhealthyThreshold
	}
	return p
}

// startPhaseEnd is when the start phase ends at the latest (since Run), 0
// when the policy has none.
func (p Policy) startPhaseEnd() time.Duration {
	switch {
	case p.StartInterval <= 0 || p.StartInterval >= p.Interval:
		return 0
	case p.StartPeriod > 0:
		return p.StartPeriod
	}
	return p.Interval
}

// tracker turns check results into a Status and paces the checks. All its
// state is here: the verdict, the two run lengths and the start phase.
//
// Start period (Docker's --start-period, kubelet's startup probe): while
// sinceStart < StartPeriod and the status has never left Unknown, a failure
// breaks a run of successes but does not count toward Unhealthy; a success
// counts as always, and once Healthy the start period no longer shields
// anything. From StartPeriod on, failures count normally, also while still
// Unknown.
//
// Start phase (Docker's --start-interval): until the first pass, within
// Policy.startPhaseEnd, checks come every StartInterval instead of every
// Interval, so that a new instance passes as soon as it answers. The fast
// checks must not bring an unhealthy verdict sooner than the regular
// schedule would, so during the phase a failure counts only if none has
// counted in the last Interval: a slow starter with onUnhealthy: restart is
// not restarted by the fast checks.
type tracker struct {
	policy    Policy
	status    Status
	successes int // consecutive
	failures  int // consecutive, counted ones only
	// passed is set by the first passing check: the start phase is over.
	passed bool
	// lastCounted is when the last counted failure was checked, since Run;
	// negative before the first.
	lastCounted time.Duration
}

func newTracker(p Policy) *tracker { return &tracker{policy: p.withDefaults(), lastCounted: -1} }

func (t *tracker) inStartPhase(sinceStart time.Duration) bool {
	return !t.passed && sinceStart < t.policy.startPhaseEnd()
}

// interval is the time from the start of a check begun at sinceStart to the
// start of the next: StartInterval in the start phase, else Interval.
func (t *tracker) interval(sinceStart time.Duration) time.Duration {
	if t.inStartPhase(sinceStart) {
		return t.policy.StartInterval
	}
	return t.policy.Interval
}

// observe records one result of a check begun at sinceStart and returns
// the status, with changed set only when this result moved it (edge, not
// level).
func (t *tracker) observe(success bool, sinceStart time.Duration) (Status, bool) {
	prev := t.status
	if success {
		t.passed = true
		t.successes++
		t.failures = 0
		if t.successes >= t.policy.HealthyThreshold {
			t.status = Healthy
		}
		return t.status, t.status != prev
	}
	t.successes = 0
	if t.status == Unknown && sinceStart < t.policy.StartPeriod {
		return t.status, false
	}
	if t.inStartPhase(sinceStart) && t.lastCounted >= 0 && sinceStart-t.lastCounted < t.policy.Interval {
		return t.status, false // the regular schedule would not have checked yet
	}
	t.lastCounted = sinceStart
	t.failures++
	if t.failures >= t.policy.UnhealthyThreshold {
		t.status = Unhealthy
	}
	return t.status, t.status != prev
}
