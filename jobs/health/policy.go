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
	// than a whole Interval later.
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
	if p.HealthyThreshold < 1 {
		p.HealthyThreshold = DefaultPolicy.HealthyThreshold
	}
	if p.UnhealthyThreshold < 1 {
		p.UnhealthyThreshold = DefaultPolicy.UnhealthyThreshold
	}
	return p
}

// tracker turns check results into a Status. All its state is here: the
// verdict and the two run lengths.
//
// Start period (Docker's --start-period, kubelet's startup probe): while
// sinceStart < StartPeriod and the status has never left Unknown, a failure
// breaks a run of successes but does not count toward Unhealthy; a success
// counts as always, and once Healthy the start period no longer shields
// anything. From StartPeriod on, failures count normally, also while still
// Unknown.
type tracker struct {
	policy    Policy
	status    Status
	successes int // consecutive
	failures  int // consecutive, counted ones only
}

func newTracker(p Policy) *tracker { return &tracker{policy: p.withDefaults()} }

// observe records one result and returns the status, with changed set only
// when this result moved it (edge, not level).
func (t *tracker) observe(success bool, sinceStart time.Duration) (Status, bool) {
	prev := t.status
	if success {
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
	t.failures++
	if t.failures >= t.policy.UnhealthyThreshold {
		t.status = Unhealthy
	}
	return t.status, t.status != prev
}
