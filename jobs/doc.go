// Package jobs supervises processes: one Job is one goroutine (Run) owning
// one pure state machine (next, in machine.go) and at most one live process
// group. Everything outside talks to a job through events (Stop, Kill,
// Forward, Trigger) and learns about it through StateChanges on the Bus,
// whose Publish never blocks.
//
// Jobs come and go while pilot runs (a reload adds, replaces and removes
// them), so the Bus remembers the latest change of every job: a subscriber
// first gets those, one per job and marked Replayed, then every change
// after. A job created late thus sees its dependencies where they stand —
// already healthy, it starts; already ended in another state, it is
// blocked — and counters skip the replayed copies. Bus.Forget drops a job
// that is gone, before a job of the same name replaces it.
//
// States (the names users write in `after:` and see in /status and
// pilot_job_state):
//
//   - idle: not running and not waiting out a backoff — before the first
//     run (waiting for its dependencies), and between the runs of a job
//     that runs again by design: a periodic job (`every:`) between ticks, a
//     triggered job (a watch's onChange.run) until the next change. Its last
//     exit is in Status.LastExit and pilot_job_exits_total.
//   - starting, running: a run is being started, is up.
//   - healthy, unhealthy: the run's health check's verdict.
//   - stopping: the run is being stopped (preStop, the stop signal).
//   - restarting: the run ended and the job waits out a backoff before it
//     runs again — restart policy, onUnhealthy: restart, a start that failed
//     for lack of resources, a triggered job's retry; briefly also a
//     maxMemory restart, which has no backoff.
//   - stopped: stopped for good (pilot's shutdown), or never to start (a
//     dependency ended without reaching its state; Status.Blocked says
//     which).
//   - succeeded, failed: the last run ended with code 0, or not, and no
//     automatic run follows: failed means failed for good. The one
//     exception is a good run of a periodic or triggered job: it publishes
//     succeeded (not final) and then idle, so that `after: succeeded` fires
//     on its first good run. A failed run of such a job goes straight to
//     idle.
//
// Status.Runs counts the runs started; Status.Restarts only those that
// replaced a run that ended (restart policy, onUnhealthy, maxMemory, a
// retry), never a periodic tick or a trigger. The routine runs of periodic
// and triggered jobs log "started" and "exited" at debug level; a run that
// fails while no stop was asked for logs "exited" at warn.
//
// The package also owns process control: starting each run as the leader of
// its own process group, signalling the group, mapping exits to shell-style
// codes, and the Reaper. The reaper lives here rather than in pilot because
// it must know every pid a job or hook starts: it waits only on children it
// did not start, so it never steals an exit status from os/exec. It also
// gates the runs of jobs at shutdown (CloseJobStarts): a run either starts
// before the shutdown begins or not at all, while hooks and exec health
// checks still start.
//
// Every command run to completion — a job's hooks, exec health checks
// (jobs/health), watch reload commands — runs one way, Reaper.RunCommand:
// the leader of its own group, through the reaper, its whole group killed
// at its timeout and whatever is left of the group once the leader exits.
//
// A run's environment is fixed at its start: its Spec's Env, with the
// runtime overlay (EnvOverlay, set by putenv, shared through Deps) over it
// as the overlay stands at that start, but for the keys the job's own env:
// sets. Hooks get the same; a run already started keeps what it had.
//
// A Job with Spec.Instances is a pool (cluster mode, pool.go): the same
// API over N plain Jobs, one per instance, each with PILOT_INSTANCE, its own
// process group, restarts and probe. The instances publish on the pool's
// private bus; the pool publishes one aggregate state for the job on the
// shared one (healthy while any instance is; final once all have ended), so
// dependants, services and the supervisor keep seeing one job. Roll
// replaces the instances one by one — new one up and ready, then the old
// one through its stop sequence — and a pool with MaxMemory replaces an
// instance above it the same way. Status lists the instances.
//
// A run with Spec.Listeners inherits those sockets as fds 3… with
// LISTEN_FDS and LISTEN_FDNAMES; LISTEN_PID must be the run's own pid,
// which os/exec cannot set after the fork, so the run starts through
// pilot's own binary as a trampoline (`pilot __listen-exec PATH ARGV…`,
// RunTrampoline) that sets it and execs the command in place.
//
// Concurrency: a Job's methods are safe for concurrent use; Run must be
// called once. The Bus, the Reaper and an EnvOverlay are safe for
// concurrent use. Time is read only in the loop, with the monotonic clock; the
// machine itself sees durations only.
package jobs
