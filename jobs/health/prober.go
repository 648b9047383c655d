package health

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"
)

// Result is one check's outcome as the Prober saw it.
type Result struct {
	Status   Status        // the status after this check
	Changed  bool          // this check moved Status (report edges on this)
	Err      error         // nil when the check passed
	Duration time.Duration // how long the check took
}

// Prober runs one Checker on a Policy and reports every result.
type Prober struct {
	checker Checker
	policy  Policy
	log     *slog.Logger
	report  func(Result)
	tracker *tracker
}

// NewProber builds a Prober. report is called on Run's goroutine after
// every check — every one, so metrics can observe durations; consumers of
// health transitions act only when Result.Changed is set. It should return
// quickly: the next check waits for it. log may be nil; report may be nil.
func NewProber(c Checker, p Policy, log *slog.Logger, report func(Result)) *Prober {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if report == nil {
		report = func(Result) {}
	}
	p = p.withDefaults()
	return &Prober{checker: c, policy: p, log: log, report: report, tracker: newTracker(p)}
}

// maxFirstDelay caps the first check's jitter.
const maxFirstDelay = 100 * time.Millisecond

// firstDelay is the wait before the first check: uniform in
// [0, min(interval, 1s)/10), so at most 100ms. The first verdict comes
// quickly after start, yet probers started together (several jobs in one
// pilot, replicas started by one deploy) do not check in lockstep.
func firstDelay(interval time.Duration) time.Duration {
	bound := min(interval, time.Second) / 10
	if bound <= 0 {
		return 0
	}
	return rand.N(bound)
}

// Run checks until ctx ends, then returns, leaving no goroutine behind. It
// must be called once. The start period and the start phase are measured
// from the call, so call it when the process starts. Checks never overlap:
// the next starts Interval (StartInterval in the start phase) after the
// start of the previous one, or right after it ends if it took longer. A
// check cut short because ctx ended is not reported.
func (p *Prober) Run(ctx context.Context) {
	start := time.Now()
	timer := time.NewTimer(firstDelay(p.tracker.interval(0)))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		began := time.Now()
		err := p.checkOnce(ctx)
		took := time.Since(began)
		if ctx.Err() != nil {
			return
		}
		status, changed := p.tracker.observe(err == nil, began.Sub(start))
		p.logResult(status, changed, err, took)
		p.report(Result{Status: status, Changed: changed, Err: err, Duration: took})
		timer.Reset(max(p.tracker.interval(began.Sub(start))-time.Since(began), 0))
	}
}

func (p *Prober) checkOnce(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.policy.Timeout)
	defer cancel()
	err := p.checker.Check(ctx)
	dl, _ := ctx.Deadline()
	if err == nil && (errors.Is(ctx.Err(), context.DeadlineExceeded) || !time.Now().Before(dl)) {
		// A checker that ignores ctx and returns nil late still failed.
		// The clock is read too: ctx.Err is set by a timer, which a busy
		// machine can run after the late checker has returned.
		err = context.DeadlineExceeded
	}
	return err
}

func (p *Prober) logResult(status Status, changed bool, err error, took time.Duration) {
	switch {
	case changed && status == Healthy:
		p.log.Info("health check passing", "status", status, "took", took)
	case changed:
		p.log.Warn("health check failing", "status", status, "err", err, "took", took)
	case err != nil:
		p.log.Debug("health check failed", "status", status, "err", err, "took", took)
	}
}
