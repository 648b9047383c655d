package jobs

import (
	"log/slog"
	"syscall"
	"time"
)

// This file is the job's whole decision logic: next(machine, event) returns
// the new machine and the actions to perform. It does no I/O and reads no
// clock, so every transition is table-tested without a process.

// RestartPolicy says when a job that exited runs again.
type RestartPolicy uint8

const (
	RestartNever RestartPolicy = iota
	RestartOnFailure
	RestartAlways
)

// Policy is the part of a Spec that drives transitions.
type Policy struct {
	Restart RestartPolicy
	// MaxRestarts is the number of restarts in a row allowed; negative means
	// unlimited. A stable run (Backoff.ResetAfter) clears the count.
	MaxRestarts int
	Backoff     Backoff
	Every       time.Duration // periodic when > 0
	Timeout     time.Duration // a run is stopped after this long; 0 means never
	StopSignal  syscall.Signal
	StopTimeout time.Duration
	HasPreStop  bool
	// MaxMemory, in bytes, is the group RSS above which a run is restarted
	// gracefully after memorySamples samples in a row; 0 means no limit.
	MaxMemory uint64
	// RestartUnhealthy (onUnhealthy: restart) stops a run that turned
	// unhealthy and starts it again after the backoff, whatever Restart says.
	RestartUnhealthy bool
	// Triggered jobs never start on their own: each Trigger runs them once
	// (a watch's onChange.run). Triggers during a run coalesce into one
	// more run; a failed run is retried per Restart (never or on-failure).
	Triggered bool
}

// memorySamples is how many samples in a row must exceed MaxMemory before
// a restart, so that a short spike (a GC about to run) does not count.
const memorySamples = 3

type machine struct {
	policy Policy
	state  State
	final  bool
	// alive is true while a process of this job exists (spawned, not reaped).
	alive bool
	// shutdown is set once a stop was requested: nothing spawns after it.
	shutdown bool
	// timedOut marks a run being stopped because it outlived Timeout.
	timedOut bool
	// signalled is true once the stop signal went to the group.
	signalled bool
	// restartPending is true while a backoff timer runs.
	restartPending bool
	// spawnRestarts says that the spawn under way replaces a run that
	// ended (restart policy, onUnhealthy, maxMemory, a triggered job's
	// retry); retryRestarts says the same of the spawn restartPending
	// waits for. A retried spawn that failed for lack of resources keeps
	// what the failed one was.
	spawnRestarts, retryRestarts bool
	// failures counts restarts since the last stable run; it picks the
	// backoff step and is compared with MaxRestarts.
	failures int
	// overMemory counts the samples in a row above MaxMemory this run.
	overMemory int
	// unhealthyRestart is set while a run that turned unhealthy is stopped
	// to be restarted.
	unhealthyRestart bool
	// recycling is set while a run is stopped to be started again at once
	// (maxMemory); it is not a failure and has no backoff.
	recycling bool
	// ready is set once the job's dependencies are met (evStart).
	ready bool
	// triggerPending is set by a trigger that could not run at once; the
	// next spawn serves it, as every spawn takes the latest trigger.
	triggerPending bool
	// runs counts the runs started, and those that could not start for
	// good (a missing command); restarts counts those of them that
	// replaced a run that ended (spawnRestarts). Periodic ticks and
	// triggers start runs, not restarts.
	runs, restarts int
	last           *ExitStatus
}

type event interface{ isEvent() }

type (
	// evStart: the job's dependencies are met (or it has none).
	evStart struct{}
	// evNeverStart: a dependency ended without reaching the awaited state.
	evNeverStart struct{}
	evSpawned    struct{}
	// evSpawnFailed: the process could not be started. Transient errors
	// (EAGAIN, EMFILE…) are retried with backoff whatever the policy;
	// others become an exit with Status.Code (126 or 127).
	evSpawnFailed struct {
		Status    ExitStatus
		Transient bool
		Jitter    float64
	}
	// evSpawnRefused: pilot's shutdown had begun, so the run was not
	// started (Reaper.CloseJobStarts).
	evSpawnRefused struct{}
	// evExited: the run's process ended, after Uptime.
	evExited struct {
		Status ExitStatus
		Uptime time.Duration
		Jitter float64
	}
	evRestartDue struct{}
	evTick       struct{}
	evTimeout    struct{}
	// evStop asks the job to stop for good with the given signal unless
	// the policy names its own.
	evStop       struct{ Signal syscall.Signal }
	evPreStopped struct{}
	evKillDue    struct{}
	// evKill: the shutdown deadline passed; KILL now.
	evKill struct{}
	// evForward passes a signal pilot received on to the running process.
	evForward struct{ Signal syscall.Signal }
	// evMemorySample is one reading of the running group's resident memory.
	evMemorySample struct{ RSS uint64 }
	// evHealth is a change of the health check's verdict on the current run.
	evHealth struct{ Healthy bool }
	// evTrigger asks a triggered job for one run with Env added to its
	// environment.
	evTrigger struct{ Env []string }
)

func (evStart) isEvent()        {}
func (evNeverStart) isEvent()   {}
func (evSpawned) isEvent()      {}
func (evSpawnFailed) isEvent()  {}
func (evSpawnRefused) isEvent() {}
func (evExited) isEvent()       {}
func (evRestartDue) isEvent()   {}
func (evTick) isEvent()         {}
func (evTimeout) isEvent()      {}
func (evStop) isEvent()         {}
func (evPreStopped) isEvent()   {}
func (evKillDue) isEvent()      {}
func (evKill) isEvent()         {}
func (evForward) isEvent()      {}
func (evMemorySample) isEvent() {}
func (evHealth) isEvent()       {}
func (evTrigger) isEvent()      {}

type action interface{ isAction() }

type (
	actSpawn   struct{}
	actPublish struct {
		State State
		Final bool
		Exit  *ExitStatus
	}
	actScheduleRestart struct{ After time.Duration }
	actCancelRestart   struct{}
	actArmTimeout      struct{ After time.Duration }
	actRunPreStop      struct{}
	actSignal          struct{ Signal syscall.Signal }
	actArmKill         struct{ After time.Duration }
	actKill            struct{}
	actStartTicker     struct{ Every time.Duration }
	// actLog reports a decision worth a line in pilot's log.
	actLog struct {
		Level slog.Level
		Msg   string
		Args  []any
	}
)

func (actSpawn) isAction()           {}
func (actPublish) isAction()         {}
func (actScheduleRestart) isAction() {}
func (actCancelRestart) isAction()   {}
func (actArmTimeout) isAction()      {}
func (actRunPreStop) isAction()      {}
func (actSignal) isAction()          {}
func (actArmKill) isAction()         {}
func (actKill) isAction()            {}
func (actStartTicker) isAction()     {}
func (actLog) isAction()             {}

func (m machine) periodic() bool { return m.policy.Every > 0 }

// done reports that the job's loop has nothing left to do.
func (m machine) done() bool { return m.final && !m.alive }

func (m machine) to(s State, final bool, exit *ExitStatus) (machine, action) {
	m.state, m.final = s, final
	return m, actPublish{State: s, Final: final, Exit: exit}
}

func next(m machine, ev event) (machine, []action) {
	switch ev := ev.(type) {
	case evStart:
		if m.ready || m.shutdown || m.final {
			return m, nil
		}
		m.ready = true
		if m.policy.Triggered && !m.triggerPending {
			return m, nil
		}
		m, acts := m.spawn(false)
		if m.periodic() {
			acts = append(acts, actStartTicker{m.policy.Every})
		}
		return m, acts

	case evTrigger:
		if !m.policy.Triggered || m.shutdown || m.final {
			return m, nil
		}
		if !m.ready || m.alive || m.restartPending {
			m.triggerPending = true
			return m, nil
		}
		return m.spawn(false)

	case evForward:
		if !m.alive {
			return m, nil
		}
		return m, []action{actSignal{ev.Signal}}

	case evNeverStart:
		if m.state != Idle || m.final {
			return m, nil
		}
		m, pub := m.to(Stopped, true, nil)
		return m, []action{pub}

	case evSpawned:
		m.alive = true
		m = m.counted()
		m, pub := m.to(Running, false, nil)
		acts := []action{pub}
		if m.policy.Timeout > 0 {
			acts = append(acts, actArmTimeout{m.policy.Timeout})
		}
		return m, acts

	case evSpawnFailed:
		if ev.Transient && !m.shutdown {
			delay := m.policy.Backoff.delay(m.failures, ev.Jitter)
			m.failures++
			m.restartPending, m.retryRestarts = true, m.spawnRestarts
			m, pub := m.to(Restarting, false, nil)
			return m, []action{
				pub,
				actLog{slog.LevelWarn, "cannot start, will retry", []any{"err", ev.Status.Err, "in", delay}},
				actScheduleRestart{delay},
			}
		}
		return m.counted().exited(ev.Status, 0, ev.Jitter)

	case evSpawnRefused:
		m.shutdown = true
		m, pub := m.to(Stopped, true, m.last)
		return m, []action{pub, actLog{slog.LevelInfo, "not started: shutdown under way", nil}}

	case evExited:
		m.alive = false
		return m.exited(ev.Status, ev.Uptime, ev.Jitter)

	case evRestartDue:
		if !m.restartPending || m.shutdown {
			return m, nil
		}
		m.restartPending = false
		return m.spawn(m.retryRestarts)

	case evTick:
		if !m.periodic() || m.shutdown || m.final || !m.ready || m.restartPending {
			return m, nil
		}
		if m.alive {
			return m, []action{actLog{slog.LevelWarn, "previous run still going, skipping this tick", nil}}
		}
		return m.spawn(false)

	case evTimeout:
		if !m.alive || m.signalled {
			return m, nil
		}
		m.timedOut = true
		return m.beginStop([]action{actLog{slog.LevelWarn, "run timed out, stopping it", []any{"timeout", m.policy.Timeout}}}, m.policy.StopSignal)

	case evStop:
		if m.shutdown {
			return m, nil // a second request changes nothing
		}
		m.shutdown = true
		sig := m.policy.StopSignal
		if sig == 0 {
			sig = ev.Signal
		}
		m.policy.StopSignal = sig
		if !m.alive {
			var acts []action
			if m.restartPending {
				m.restartPending = false
				acts = append(acts, actCancelRestart{})
			}
			m, pub := m.to(Stopped, true, m.last)
			return m, append(acts, pub)
		}
		if m.signalled || m.state == Stopping {
			return m, nil // already stopping (timeout, maxMemory): that sequence goes on
		}
		if m.policy.HasPreStop {
			m, pub := m.to(Stopping, false, nil)
			return m, []action{pub, actRunPreStop{}}
		}
		return m.beginStop(nil, sig)

	case evMemorySample:
		if m.policy.MaxMemory == 0 || !m.alive || m.signalled || m.shutdown || m.recycling {
			return m, nil
		}
		if ev.RSS <= m.policy.MaxMemory {
			m.overMemory = 0
			return m, nil
		}
		m.overMemory++
		if m.overMemory < memorySamples {
			return m, nil
		}
		m.recycling = true
		log := actLog{slog.LevelWarn, "memory above maxMemory: restarting gracefully", []any{"rss", ev.RSS, "maxMemory", m.policy.MaxMemory, "samples", memorySamples}}
		if m.policy.HasPreStop {
			m, pub := m.to(Stopping, false, nil)
			return m, []action{log, pub, actRunPreStop{}}
		}
		return m.beginStop([]action{log}, m.policy.StopSignal)

	case evHealth:
		if !m.alive || m.signalled || m.state == Stopping {
			return m, nil
		}
		if ev.Healthy {
			m, pub := m.to(Healthy, false, nil)
			return m, []action{pub}
		}
		m, pub := m.to(Unhealthy, false, nil)
		if !m.policy.RestartUnhealthy || m.shutdown {
			return m, []action{pub}
		}
		m.unhealthyRestart = true
		return m.beginStop([]action{pub, actLog{slog.LevelWarn, "unhealthy: restarting", nil}}, m.policy.StopSignal)

	case evPreStopped:
		if !m.alive || m.signalled {
			return m, nil
		}
		return m.beginStop(nil, m.policy.StopSignal)

	case evKillDue, evKill:
		if !m.alive {
			return m, nil
		}
		return m, []action{actKill{}}
	}
	return m, nil
}

// spawn starts a run; restart says it replaces a run that ended.
func (m machine) spawn(restart bool) (machine, []action) {
	m.spawnRestarts = restart
	m.triggerPending = false
	m.timedOut, m.signalled, m.recycling, m.unhealthyRestart = false, false, false, false
	m.overMemory = 0
	m, pub := m.to(Starting, false, nil)
	return m, []action{pub, actSpawn{}}
}

// counted counts the spawn under way as a run (and a restart if it is one).
func (m machine) counted() machine {
	m.runs++
	if m.spawnRestarts {
		m.restarts++
	}
	return m
}

// beginStop sends the stop signal to the group and arms the KILL timer.
func (m machine) beginStop(acts []action, sig syscall.Signal) (machine, []action) {
	if sig == 0 {
		sig = syscall.SIGTERM
	}
	m.signalled = true
	if m.state != Stopping {
		var pub action
		m, pub = m.to(Stopping, false, nil)
		acts = append(acts, pub)
	}
	return m, append(acts, actSignal{sig}, actArmKill{m.policy.StopTimeout})
}

// exited decides what follows the end of a run. Succeeded and Failed are
// said only when no automatic run follows; a job that waits out a backoff
// is Restarting, and one that runs again by design (periodic, triggered)
// is Idle between runs.
func (m machine) exited(status ExitStatus, uptime time.Duration, jitter float64) (machine, []action) {
	m.last = &status
	if m.shutdown {
		m, pub := m.to(Stopped, true, &status)
		return m, []action{pub}
	}
	if m.recycling {
		m, pub := m.to(Restarting, false, &status)
		m, acts := m.spawn(true)
		return m, append([]action{pub}, acts...)
	}
	if m.periodic() {
		return m.betweenRuns(status)
	}
	if m.policy.Triggered {
		return m.triggeredExited(status, jitter)
	}
	state := Succeeded
	if !status.Success() {
		state = Failed
	}
	if m.policy.Backoff.ResetAfter > 0 && uptime >= m.policy.Backoff.ResetAfter {
		m.failures = 0
	}
	wantRestart := m.policy.Restart == RestartAlways || m.unhealthyRestart ||
		(m.policy.Restart == RestartOnFailure && state == Failed)
	if !wantRestart {
		m, pub := m.to(state, true, &status)
		return m, []action{pub}
	}
	if m.policy.MaxRestarts >= 0 && m.failures >= m.policy.MaxRestarts {
		m, pub := m.to(state, true, &status)
		return m, []action{pub, actLog{slog.LevelError, "giving up: restart limit reached", []any{"max", m.policy.MaxRestarts}}}
	}
	delay := m.policy.Backoff.delay(m.failures, jitter)
	m.failures++
	m.restartPending, m.retryRestarts = true, true
	m, pub := m.to(Restarting, false, &status)
	return m, []action{pub, actScheduleRestart{delay}, actLog{slog.LevelInfo, "restarting", []any{"in", delay, "restart", m.failures}}}
}

// betweenRuns ends a run of a job that runs again by design: a good run
// publishes Succeeded (not final, so that `after: succeeded` fires on it),
// then the job is Idle until its next tick or trigger. A failed run goes
// straight to Idle, carrying its exit: it is not failed for good.
func (m machine) betweenRuns(status ExitStatus) (machine, []action) {
	var acts []action
	idleExit := &status
	if status.Success() {
		var pub action
		m, pub = m.to(Succeeded, false, &status)
		acts, idleExit = append(acts, pub), nil
	}
	m, pub := m.to(Idle, false, idleExit)
	return m, append(acts, pub)
}

// triggeredExited retries a failed run of a triggered job per its policy,
// else waits for the next trigger, running at once if one came meanwhile.
func (m machine) triggeredExited(status ExitStatus, jitter float64) (machine, []action) {
	retry := !status.Success() && m.policy.Restart == RestartOnFailure &&
		(m.policy.MaxRestarts < 0 || m.failures < m.policy.MaxRestarts)
	if retry {
		delay := m.policy.Backoff.delay(m.failures, jitter)
		m.failures++
		m.restartPending, m.retryRestarts = true, true
		m, pub := m.to(Restarting, false, &status)
		return m, []action{pub, actScheduleRestart{delay}, actLog{slog.LevelWarn, "run failed, retrying", []any{"in", delay, "retry", m.failures}}}
	}
	m.failures = 0
	m, acts := m.betweenRuns(status)
	if !m.triggerPending {
		return m, acts
	}
	m, spawn := m.spawn(false)
	return m, append(acts, spawn...)
}
