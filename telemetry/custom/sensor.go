package custom

import (
	"log/slog"
	"sync"
	"time"
)

// How often Sensor logs rejected lines: the first sensorLogBurst of every
// sensorLogWindow, then a count of the ones left out with the next logged.
const (
	sensorLogBurst  = 5
	sensorLogWindow = time.Minute
)

// Apply parses one sensor line and sets the metric it names. Blank and
// comment lines are skipped (nil). The error names the line or the metric.
func (m *Metrics) Apply(line []byte) error {
	if Skippable(line) {
		return nil
	}
	s, err := ParseLine(line)
	if err != nil {
		return err
	}
	return m.Set(s.Name, s.Labels, s.Value)
}

// Sensor returns the hook for a sensor job's stdout (jobs.Spec.StdoutLines):
// each line is applied; a line that cannot be is counted in
// pilot_sensor_lines_rejected_total{job} and logged at warn, at most
// sensorLogBurst a minute per job, with how many went unlogged. It never
// fails or panics on what the job writes. Call the hook from one goroutine
// at a time; a late call from a run that is ending is safe too.
func (m *Metrics) Sensor(job string, log *slog.Logger) func(line []byte) {
	log = log.With("job", job)
	rejected := m.rejected.WithLabelValues(job)
	var (
		mu          sync.Mutex
		windowStart time.Time
		logged      int
		unlogged    int
	)
	return func(line []byte) {
		err := m.Apply(line)
		if err == nil {
			return
		}
		rejected.Inc()
		mu.Lock()
		defer mu.Unlock()
		now := time.Now()
		if windowStart.IsZero() || now.Sub(windowStart) >= sensorLogWindow {
			windowStart, logged = now, 0
		}
		if logged >= sensorLogBurst {
			unlogged++
			return
		}
		logged++
		shown := line
		if len(shown) > maxQuotedLine {
			shown = shown[:maxQuotedLine]
		}
		attrs := []any{"line", string(shown), "err", err}
		if unlogged > 0 {
			attrs = append(attrs, "unlogged", unlogged)
			unlogged = 0
		}
		if logged == sensorLogBurst {
			attrs = append(attrs, "note", "further rejected lines are only counted (pilot_sensor_lines_rejected_total) for the rest of the minute")
		}
		log.Warn("sensor line rejected", attrs...)
	}
}
