package dockerproxy

import (
	"sync"
	"time"
)

// Log rate: a burst of logBurst lines, then one every logEvery.
const (
	logBurst = 10
	logEvery = 6 * time.Second
)

// logLimiter is a token bucket for log lines: a client that sends a
// thousand refused requests a second costs a few lines a minute, and the
// next line that gets through says how many were dropped.
type logLimiter struct {
	now   func() time.Time
	burst int
	every time.Duration

	mu         sync.Mutex
	tokens     int
	last       time.Time // when tokens was last topped up
	suppressed int
}

func newLogLimiter(now func() time.Time, burst int, every time.Duration) *logLimiter {
	return &logLimiter{now: now, burst: burst, every: every, tokens: burst, last: now()}
}

// allow reports whether a line may be logged now and, if so, how many
// were dropped since the last one.
func (l *logLimiter) allow() (ok bool, dropped int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if n := int(now.Sub(l.last) / l.every); n > 0 {
		l.tokens = min(l.burst, l.tokens+n)
		l.last = l.last.Add(time.Duration(n) * l.every)
	}
	if l.tokens == l.burst {
		l.last = now // a full bucket does not bank time
	}
	if l.tokens == 0 {
		l.suppressed++
		return false, 0
	}
	l.tokens--
	dropped, l.suppressed = l.suppressed, 0
	return true, dropped
}
