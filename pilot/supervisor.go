package pilot

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nodepilot/pilot/jobs"
)

// supervisor runs the jobs, notices when pilot must stop, and carries out
// the shutdown as one bounded sequence.
type supervisor struct {
	log         *slog.Logger
	jobs        []*jobs.Job
	main        *jobs.Job
	bus         *jobs.Bus
	reaper      *jobs.Reaper
	services    services
	stopTimeout time.Duration
	// signals delivers the signals pilot acts on (listenSignals): the
	// supervisor's own loop turns TERM and INT into the shutdown, with no
	// goroutine between the signal and the stop.
	signals <-chan os.Signal
}

// sweepGrace is how long leftover processes get between SIGTERM and SIGKILL
// in the final sweep, when the shutdown deadline leaves that much.
const sweepGrace = 2 * time.Second

// killWait bounds the wait for processes after SIGKILL past the deadline.
const killWait = time.Second

func (s *supervisor) run(ctx context.Context) int {
	changes := s.bus.Subscribe()
	defer s.bus.Unsubscribe(changes)
	var running sync.WaitGroup
	for _, j := range s.jobs {
		running.Add(1)
		go func() {
			defer running.Done()
			j.Run(context.Background()) // stopped explicitly by shutdown
		}()
	}
	defer running.Wait()

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
	if s.main == nil {
		for _, j := range s.jobs {
			if st := j.Status(); st.State == jobs.Failed {
				return 1
			}
		}
		return 0
	}
	st := s.main.Status()
	switch {
	case st.LastExit != nil:
		return st.LastExit.Code
	case st.Runs == 0 && st.State == jobs.Stopped && trigger != 0:
		return 128 + int(trigger) // stopped before it ever ran
	}
	return 1
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
	s.reaper.CloseJobStarts()
	s.log.Info("shutdown: begin", "reason", reason, "stopTimeout", s.stopTimeout)
	go func() { // signals keep working during the shutdown, but for a second stop
		for {
			select {
			case received := <-s.signals:
				if sig := received.(syscall.Signal); stopsPilot(sig) {
					s.log.Info("shutdown already under way; signal ignored", "signal", sig)
				} else {
					s.onSignal(sig)
				}
			case <-ctx.Done():
				return
			}
		}
	}()

	order := stopOrder(s.jobs)
	for _, level := range order {
		s.services.withdraw(ctx, level, s.log)
		for _, j := range level {
			j.Stop(sig)
		}
		if !waitAll(ctx, level) {
			break
		}
	}
	if ctx.Err() != nil {
		s.log.Warn("shutdown: deadline passed, killing what is left")
		for _, j := range s.jobs {
			j.Kill()
		}
		killCtx, cancelKill := context.WithTimeout(context.Background(), killWait)
		waitAll(killCtx, s.jobs)
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
