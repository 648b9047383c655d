package pilot

import (
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/nodepilot/pilot/jobs"
	"github.com/nodepilot/pilot/pilot/config"
)

// jobControl are caught and dropped, not ignored: pilot is never stopped by
// them while its children still start with default dispositions; SIGPIPE
// likewise, so that a closed log pipe costs log lines, not pilot.
var jobControl = []syscall.Signal{syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGTSTP, syscall.SIGPIPE}

// listenSignals starts the delivery of the signals pilot acts on: TERM and
// INT (the shutdown), the forwardable ones (config.Forwardable) and job
// control. A signal pilot
// inherited as ignored (SIGHUP under nohup, SIGINT in a background shell
// job) stays ignored, so its children inherit it ignored too, as under
// tini; pilot warns once of those it would otherwise act on.
//
// signal.Notify costs two thread handoffs per signal (about a millisecond
// for all of them here), so only TERM and INT, which a `docker stop` may
// send at any moment, are registered before it returns, ahead of the first
// job's start; the rest are registered beside that start, and the returned
// function waits for them. The delivery lasts as long as the process: Run
// is called once per process, and signal.Stop would cost as much again on
// the way out.
func listenSignals(log *slog.Logger, js []*jobs.Job, reloads bool) (<-chan os.Signal, func()) {
	var stops, others []os.Signal
	var ignored []string
	for _, sig := range slices.Concat([]syscall.Signal{syscall.SIGTERM, syscall.SIGINT}, jobControl, config.Forwardable) {
		switch {
		case !signal.Ignored(sig) && stopsPilot(sig):
			stops = append(stops, sig)
		case !signal.Ignored(sig):
			others = append(others, sig)
		case stopsPilot(sig) || forwardedByAny(js, sig) || reloads && sig == syscall.SIGHUP:
			ignored = append(ignored, unix.SignalName(sig))
		}
	}
	if len(ignored) > 0 {
		log.Warn("pilot was started with these signals ignored and leaves them so: it will not act on them, and its jobs inherit them ignored",
			"signals", strings.Join(ignored, ","))
	}
	c := make(chan os.Signal, 16)
	signal.Notify(c, stops...)
	registered := make(chan struct{})
	go func() {
		defer close(registered)
		signal.Notify(c, others...)
	}()
	return c, func() { <-registered }
}

// onSignal acts on a signal other than TERM and INT: SIGHUP reloads the
// config when pilot runs one (onHangup), which forwards it afterwards; a
// forwardable one goes to the jobs that asked for it; job control is
// dropped.
func (s *supervisor) onSignal(sig syscall.Signal) {
	if slices.Contains(jobControl, sig) {
		s.log.Debug("ignoring signal", "signal", sig)
		return
	}
	if sig == syscall.SIGHUP && s.onHangup != nil {
		s.log.Info("received signal: reloading the config", "signal", sig)
		go s.onHangup() // and then the jobs' reloadSignal
		return
	}
	s.forward(sig)
	if s.onReloadSignal != nil {
		go s.onReloadSignal(sig)
	}
}

// forward passes sig on to the jobs whose forwardSignals list it.
func (s *supervisor) forward(sig syscall.Signal) {
	forwarded := false
	for _, j := range s.current() {
		if slices.Contains(j.Spec().Forward, sig) {
			j.Forward(sig)
			forwarded = true
		}
	}
	s.log.Info("received signal", "signal", sig, "forwarded", forwarded)
}

func stopsPilot(sig syscall.Signal) bool { return sig == syscall.SIGTERM || sig == syscall.SIGINT }

func forwardedByAny(js []*jobs.Job, sig syscall.Signal) bool {
	for _, j := range js {
		if slices.Contains(j.Spec().Forward, sig) {
			return true
		}
	}
	return false
}
