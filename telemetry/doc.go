// Package telemetry owns pilot's Prometheus side: the collectors for pilot's
// own metrics (build info, job state, exits, health checks, Consul requests,
// watches, the jobs' processes read from /proc) and the HTTP server that
// serves /metrics and /status.
//
// It holds no registry of its own and registers nothing by itself: pilot
// builds one *prometheus.Registry per run and registers these collectors
// into it (ARCHITECTURE 9: no init(), no package-level metric variables).
// The Node agent (telemetry/nodejs) and custom metrics (telemetry/custom)
// register into the same registry.
//
// Where a value already lives elsewhere it is read at scrape time, not
// mirrored: job state, pid, restarts and health come from each job's
// Status() when Prometheus scrapes (JobCollector), and process figures from
// /proc/PID for the jobs that have a process at that moment
// (ProcessCollector), so their series vanish with the process. Only what
// nothing else counts is counted here, on events: exits (Exits, fed by the
// jobs' bus), health-check durations (HealthChecks, fed by each prober),
// Consul requests (Consul, fed by the Consul client) and watch changes
// (Watches).
//
// Concurrency: every type is safe for concurrent use. Collect may run on
// any number of scrapes at once while events arrive; the observers called
// from jobs, probers and the Consul client never block beyond a mutex.
// Exits.Run is the package's only goroutine, run by pilot as part of the
// telemetry actor; Listen binds the server's address, retrying with capped
// backoff while it cannot (a port in use never stops pilot), and
// Server.Serve runs the HTTP server on it until Shutdown.
package telemetry
