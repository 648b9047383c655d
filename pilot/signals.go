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
)

// forwardable are the signals a job may ask to receive (forwardSignals).
var forwardable = []syscall.Signal{syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH, syscall.SIGALRM}

// jobControl are caught and dropped, not ignored: pilot is never stopped by
// them while its children still start with default dispositions; SIGPIPE
// likewise, so that a closed log pipe costs log lines, not pilot.
var jobControl = []syscall.Signal{syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGTSTP, syscall.SIGPIPE}

// listenSignals starts the delivery of the signals pilot acts on: TERM and
// INT (the shutdown), the forwardable ones and job control. A signal pilot
// inherited as ignored (SIGHUP under nohup, SIGINT in a background shell
// job) stays ignored, so its children inherit it ignored too, as under
// tini; pilot warns once of those it would otherwise act on.
//
// The delivery lasts as long as the process: Run is called once per
// process, and signal.Stop would cost two thread handoffs per signal on
// the way out (a third of a millisecond of pilot's exit).
func listenSignals(log *slog.Logger, js []*jobs.Job) <-chan os.Signal {
	var wanted []os.Signal
	var ignored []string
	for _, sig := range slices.Concat([]syscall.Signal{syscall.SIGTERM, syscall.SIGINT}, jobControl, forwardable) {
		switch {
		case !signal.Ignored(sig):
			wanted = append(wanted, sig)
		case sig == syscall.SIGTERM || sig == syscall.SIGINT || forwardedByAny(js, sig):
			ignored = append(ignored, unix.SignalName(sig))
		}
	}
	if len(ignored) > 0 {
		log.Warn("pilot was started with these signals ignored and leaves them so: it will not act on them, and its jobs inherit them ignored",
			"signals", strings.Join(ignored, ","))
	}
	c := make(chan os.Signal, 16)
	signal.Notify(c, wanted...)
	return c
}

// onSignal acts on a signal other than TERM and INT: a forwardable one goes
// to the jobs that asked for it, job control is dropped.
func (s *supervisor) onSignal(sig syscall.Signal) {
	if slices.Contains(jobControl, sig) {
		s.log.Debug("ignoring signal", "signal", sig)
		return
	}
	forwarded := false
	for _, j := range s.jobs {
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
