package pilot

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nodepilot/pilot/jobs"
	"github.com/nodepilot/pilot/pilot/control"
)

// supervisor runs the jobs, replaces them while pilot runs (a reload, a
// restart asked for on the control socket), notices when pilot must stop,
// and carries out the shutdown as one bounded sequence.
//
// The set of jobs changes only through replace, which is serialised by the
// core; every read of the set holds mu.
type supervisor struct {
	log         *slog.Logger
	bus         *jobs.Bus
	reaper      *jobs.Reaper
	deps        jobs.Deps
	stopTimeout time.Duration
	// withdraw takes the services of jobs about to stop out of Consul
	// (services.withdraw); nil without services.
	withdraw func(ctx context.Context, js []*jobs.Job, phase string)
	// signals delivers the signals pilot acts on (listenSignals): the
	// supervisor's own loop turns TERM and INT into the shutdown, with no
	// goroutine between the signal and the stop.
	signals <-chan os.Signal
	// onHangup, when set (config mode), is called for SIGHUP instead of
	// forwarding it at once: it reloads the config, then forwards.
	onHangup func()
	// onReloadSignal makes the rolling reloads of the jobs whose
	// reloadSignal is sig.
	onReloadSignal func(sig syscall.Signal)

	// wake asks the loop to look again whether pilot is done (after a
	// replace).
	wake chan struct{}

	mu   sync.Mutex
	jobs []*jobs.Job // the current set, in the config's order
	main *jobs.Job
	// retiring are jobs a replace is stopping; the shutdown waits for them
	// too.
	retiring []*jobs.Job
	// replacing is set while a replace runs: a main job stopped to be
	// replaced has not ended pilot.
	replacing bool
	// stopping is set once the shutdown has begun: no replace starts a job
	// after it. stopReason says why it began, set as it begins, before
	// stopping.
	stopping   bool
	stopReason string
	// pending are the jobs a replace is to start, from the moment it
	// begins stopping what it replaces until it has started them: for
	// pilot's health, a job being restarted is down, not gone.
	pending []jobs.Spec
	running sync.WaitGroup
}

// newSupervisor builds a supervisor for the jobs of specs, not yet running.
func newSupervisor(log *slog.Logger, deps jobs.Deps, stopTimeout time.Duration, specs []jobs.Spec) *supervisor {
	s := &supervisor{log: log, bus: deps.Bus, reaper: deps.Reaper, deps: deps, stopTimeout: stopTimeout,
		wake: make(chan struct{}, 1)}
	for _, spec := range specs {
		j := jobs.New(spec, deps)
		if spec.Main {
			s.main = j
		}
		s.jobs = append(s.jobs, j)
	}
	return s
}

// healthSnapshot is what pilot's health verdict reads: the current jobs
// (the main job's flag from the supervisor's own record), the jobs a
// replace is about to start, and whether the shutdown has begun.
func (s *supervisor) healthSnapshot() healthSnapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopReason != "" {
		return healthSnapshot{stopping: s.stopReason}
	}
	snap := healthSnapshot{}
	seen := map[string]bool{}
	mainSeen := false
	for _, j := range s.jobs {
		spec := j.Spec()
		seen[j.Name()] = true
		isMain := j == s.main
		mainSeen = mainSeen || isMain
		snap.jobs = append(snap.jobs, jobView{name: j.Name(), main: isMain, checked: counts(spec), status: j.Status()})
	}
	for _, spec := range s.pending {
		if !seen[spec.Name] {
			mainSeen = mainSeen || spec.Main
			snap.jobs = append(snap.jobs, jobView{name: spec.Name, main: spec.Main, checked: counts(spec), pending: true})
		}
	}
	if s.main != nil && !mainSeen { // being stopped by a replace that does not start it again
		snap.jobs = append(snap.jobs, jobView{name: s.main.Name(), main: true, checked: counts(s.main.Spec()), status: s.main.Status()})
	}
	return snap
}

// errShuttingDown refuses a change once pilot's shutdown has begun.
var errShuttingDown = control.ErrShuttingDown

// sweepGrace is how long leftover processes get between SIGTERM and SIGKILL
// in the final sweep, when the shutdown deadline leaves that much.
const sweepGrace = 2 * time.Second

// killWait bounds the wait for processes after SIGKILL past the deadline.
const killWait = time.Second

// current returns the jobs now in the set, in the config's order.
func (s *supervisor) current() []*jobs.Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.jobs)
}

// job returns the job of that name in the current set, nil if none.
func (s *supervisor) job(name string) *jobs.Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, j := range s.jobs {
		if j.Name() == name {
			return j
		}
	}
	return nil
}

func (s *supervisor) start(j *jobs.Job) {
	s.running.Add(1)
	go func() {
		defer s.running.Done()
		j.Run(context.Background()) // stopped explicitly
	}()
}

func (s *supervisor) run(ctx context.Context) int {
	changes := s.bus.Subscribe()
	defer s.bus.Unsubscribe(changes)
	s.mu.Lock()
	for _, j := range s.jobs {
		s.start(j)
	}
	s.mu.Unlock()
	defer s.running.Wait()

	var trigger syscall.Signal // the signal that stopped pilot, if one did
	reason := ""
	for reason == "" {
		select {
		case received := <-s.signals:
			sig := received.(syscall.Signal)
			if !stopsPilot(sig) {
				s.onSignal(sig)
				continue
			}
			s.log.Info("received signal", "signal", sig)
			trigger, reason = sig, "signal "+unix.SignalName(sig)
		case <-ctx.Done():
			reason = "context cancelled"
		case <-changes.Ready():
			changes.Drain()
			reason = s.finished()
		case <-s.wake:
			reason = s.finished()
		}
	}
	stopSignal := trigger
	if stopSignal == 0 {
		stopSignal = syscall.SIGTERM
	}
	s.shutdown(stopSignal, reason)
	return s.exitCode(trigger)
}

// finished says why pilot should stop now, or "" to keep going.
func (s *supervisor) finished() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.replacing {
		return "" // asked again once the replace is done
	}
	if s.main != nil {
		if st := s.main.Status(); st.Final {
			return mainEnded(st)
		}
		return ""
	}
	for _, j := range s.jobs {
		if !j.Status().Final {
			return ""
		}
	}
	return "every job ended"
}

// mainEnded says how the main job ended, for the shutdown's reason.
func mainEnded(st jobs.Status) string {
	switch {
	case st.Blocked != "":
		return fmt.Sprintf("main job %s will never start: %s", st.Name, st.Blocked)
	case st.LastExit != nil:
		return fmt.Sprintf("main job %s %s (exit code %d)", st.Name, st.State, st.LastExit.Code)
	}
	return fmt.Sprintf("main job %s %s", st.Name, st.State)
}

func (s *supervisor) exitCode(trigger syscall.Signal) int {
	s.mu.Lock()
	main, all := s.main, slices.Clone(s.jobs)
	s.mu.Unlock()
	if main == nil {
		for _, j := range all {
			if st := j.Status(); st.State == jobs.Failed {
				return 1
			}
		}
		return 0
	}
	st := main.Status()
	switch {
	case st.LastExit != nil:
		return st.LastExit.Code
	case st.Runs == 0 && st.State == jobs.Stopped && trigger != 0:
		return 128 + int(trigger) // stopped before it ever ran
	}
	return 1
}

// replace stops the jobs named in stop and then starts a job for each of
// start, in the set's order given by order (every name of the new set).
// The stopped jobs go the way of a shutdown, dependants first: out of
// Consul (critical, deregistered, drained), preStop, their stop signal,
// KILL at their stopTimeout, postStop. A job in both is restarted. The
// jobs in neither keep running untouched.
//
// Stopped jobs are forgotten by the bus before the new ones subscribe, so
// that a new job's dependency gate never sees the old instance's "stopped".
// It returns errShuttingDown, having started nothing, when the shutdown
// began meanwhile.
//
// With carry (an operator's restart), a started job continues the run and
// restart counts of the one it replaces.
func (s *supervisor) replace(ctx context.Context, stop []string, start []jobs.Spec, order []string, carry bool) error {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		return errShuttingDown
	}
	s.replacing = true
	s.pending = start
	var keep []*jobs.Job
	for _, j := range s.jobs {
		if slices.Contains(stop, j.Name()) {
			s.retiring = append(s.retiring, j)
		} else {
			keep = append(keep, j)
		}
	}
	retiring := slices.Clone(s.retiring)
	s.jobs = keep
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.replacing, s.pending = false, nil
		s.mu.Unlock()
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}()

	levels := stopOrder(retiring)
	for _, level := range levels {
		if s.withdraw != nil {
			s.withdraw(ctx, level, "reload")
		}
		for _, j := range level {
			j.Stop(syscall.SIGTERM) // the job's own stopSignal wins
		}
		waitAll(context.Background(), level) // each is killed at its stopTimeout
	}
	for _, level := range levels {
		for _, j := range level {
			j.RunPostStop(ctx)
			s.bus.Forget(j.Name())
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.retiring = slices.DeleteFunc(s.retiring, func(j *jobs.Job) bool { return slices.Contains(retiring, j) })
	if s.stopping {
		return errShuttingDown
	}
	byName := map[string]*jobs.Job{}
	for _, j := range s.jobs {
		byName[j.Name()] = j
	}
	var started []*jobs.Job
	for _, spec := range start {
		j := jobs.New(spec, s.deps)
		if i := slices.IndexFunc(retiring, func(r *jobs.Job) bool { return r.Name() == spec.Name }); carry && i >= 0 {
			j.Succeed(retiring[i].Status())
		}
		byName[spec.Name] = j
		started = append(started, j)
	}
	s.jobs, s.main = s.jobs[:0:0], nil
	for _, name := range order {
		if j := byName[name]; j != nil {
			s.jobs = append(s.jobs, j)
			if j.Spec().Main {
				s.main = j
			}
		}
	}
	for _, j := range started {
		s.start(j)
	}
	return nil
}

// shutdown stops every job, dependants before what they depend on — a job
// with a service leaves Consul first (critical, deregistered, drained) —, sweeps
// what is left, runs postStop hooks, and returns as soon as all is gone or
// the stopTimeout has passed. Further stop requests change nothing.
//
// Nothing starts once it has begun: it first closes the reaper's gate for
// job runs, which returns once no run is being started, so every run
// either started (and logged it) before "shutdown: begin" or never starts.
// Hooks and exec health checks still run.
func (s *supervisor) shutdown(sig syscall.Signal, reason string) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), s.stopTimeout)
	defer cancel()
	s.mu.Lock()
	s.stopReason = reason // unhealthy from now on
	s.mu.Unlock()
	s.reaper.CloseJobStarts()
	s.mu.Lock()
	s.stopping = true
	all := slices.Concat(s.jobs, s.retiring)
	s.mu.Unlock()
	s.log.Info("shutdown: begin", "reason", reason, "stopTimeout", s.stopTimeout)
	go func() { // signals keep working during the shutdown, but for a second stop
		for {
			select {
			case received := <-s.signals:
				if sig := received.(syscall.Signal); stopsPilot(sig) {
					s.log.Info("shutdown already under way; signal ignored", "signal", sig)
				} else {
					s.forward(sig)
				}
			case <-ctx.Done():
				return
			}
		}
	}()

	order := stopOrder(all)
	for _, level := range order {
		if s.withdraw != nil {
			s.withdraw(ctx, level, "shutdown")
		}
		for _, j := range level {
			j.Stop(sig)
		}
		if !waitAll(ctx, level) {
			break
		}
	}
	if ctx.Err() != nil {
		s.log.Warn("shutdown: deadline passed, killing what is left")
		for _, j := range all {
			j.Kill()
		}
		killCtx, cancelKill := context.WithTimeout(context.Background(), killWait)
		waitAll(killCtx, all)
		cancelKill()
	}

	grace := min(sweepGrace, time.Until(start.Add(s.stopTimeout)))
	sweepCtx, cancelSweep := context.WithTimeout(context.Background(), max(grace, 0)+killWait)
	s.reaper.Sweep(sweepCtx, max(grace, 0))
	cancelSweep()

	for _, level := range order {
		for _, j := range level {
			if ctx.Err() != nil {
				s.log.Warn("shutdown: deadline passed, postStop skipped", "job", j.Name())
				continue
			}
			j.RunPostStop(ctx)
		}
	}
	s.log.Info("shutdown: done", "took", time.Since(start).Round(time.Millisecond))
}

// waitAll waits until every job's loop has ended; false if ctx ended first.
func waitAll(ctx context.Context, js []*jobs.Job) bool {
	for _, j := range js {
		select {
		case <-j.Done():
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// stopOrder groups jobs into levels to stop one after the other: a job
// stops only after every job that waits on it. A job's level is one more
// than the highest level among its dependants; jobs nobody waits on are level
// 0. Validation has ruled out cycles, so len(js) rounds of relaxation reach
// the fixed point.
func stopOrder(js []*jobs.Job) [][]*jobs.Job {
	level := make(map[string]int, len(js))
	for range js {
		for _, j := range js {
			for _, d := range j.Spec().After {
				level[d.Job] = max(level[d.Job], level[j.Name()]+1)
			}
		}
	}
	var order [][]*jobs.Job
	for _, j := range js {
		l := level[j.Name()]
		for len(order) <= l {
			order = append(order, nil)
		}
		order[l] = append(order[l], j)
	}
	return order
}
