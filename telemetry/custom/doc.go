// Package custom owns the user's own metrics, declared under `metrics:` in
// pilot's config: it builds them as collectors on a Registerer it is given
// (no registry of its own, nothing global), sets them by name (Set; sensor
// jobs are its only callers today), parses
// sensor lines (ParseLine: one sample in Prometheus text-format syntax,
// `name value` or `name{label="v",…} value`), and applies a sensor job's
// stdout line by line (Sensor), logging and counting the lines it rejects.
//
// Set's contract, per type: a gauge is set to the value, a counter has the
// value added (never negative), a histogram observes it. NaN is refused
// everywhere, ±Inf for counters and histograms (one such value would poison
// the sum for good). The labels given must be exactly the declared ones,
// and each metric holds at most MaxSeries label combinations, so a sensor
// that writes a timestamp into a label cannot grow pilot without bound.
//
// Concurrency: a *Metrics is safe for concurrent use once New has returned
// (several sensor jobs call Set at once). The hook
// Sensor returns is meant for one job's stdout, called from one goroutine
// at a time, as jobs does.
package custom
