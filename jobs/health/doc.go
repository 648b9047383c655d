// Package health runs a job's health checks the kubelet way: one small
// Checker per kind (HTTP, TCP, Exec), a pure tracker that turns results into
// a Status with success and failure thresholds, a start period and a start
// phase (checks every StartInterval until the first pass, failures counted
// no faster than the regular Interval would), and a Prober that runs one
// Checker on a Policy and reports every result, marking the ones that
// change the Status (edge, not level).
//
// It owns only checking: it knows nothing of job state, Consul or metrics
// (from jobs it takes only Command and its result, so that an exec check
// runs as a hook or a reload command does). pilot builds the Checker from config and runs a
// Prober for each run of a job; the job turns verdicts into states.
//
// Concurrency: a Prober's Run is one goroutine and must be called once; it
// runs checks one at a time, never two at once, calls report synchronously
// on that goroutine, and returns with nothing left running when its context
// ends. The tracker is owned by that goroutine. Checkers keep no state
// between checks beyond their configuration. Time is read with the monotonic
// clock only (time.Now/time.Since differences, timers).
//
// Exec checks run their commands through an injected CommandRunner rather
// than os/exec: when pilot is PID 1 its reaper waits on every child it does
// not know, and a check's shell would be such a child. pilot passes its
// *jobs.Reaper, whose RunCommand registers each check's pid before the
// reaper can see it, so the reaper never steals the exit status that decides
// the check (ContainerPilot #439). Each run leads its own process group; at
// the check's timeout the whole group gets SIGKILL, and any member left when
// the run ends is killed too. Grandchildren orphaned that way are reaped by
// the reaper like any orphan.
package health
