package jobs

import "time"

// Backoff shapes the delay before a restart.
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
	// ResetAfter: a run that stayed up this long is stable, so the next
	// failure starts again from Initial and the restart count clears.
	ResetAfter time.Duration
}

// jitterSpread is the ± fraction applied to each delay so that replicas that
// crashed together do not restart in lockstep.
const jitterSpread = 0.2

// delay returns the wait before restart number attempt (0-based). jitter is
// a sample from [0,1) supplied by the caller, which keeps this pure. The
// result never exceeds Max.
func (b Backoff) delay(attempt int, jitter float64) time.Duration {
	d := b.Initial
	for i := 0; i < attempt && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	d = time.Duration(float64(d) * (1 - jitterSpread + 2*jitterSpread*jitter))
	return min(d, b.Max)
}
