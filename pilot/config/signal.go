package config

import (
	"fmt"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ParseSignal reads a signal name as users write it: "SIGTERM" or "TERM", in
// any case. It knows every named signal of the platform; whether a signal
// suits a given use (SIGKILL as a stop signal, say) is for the caller.
func ParseSignal(name string) (syscall.Signal, error) {
	upper := strings.ToUpper(name)
	if !strings.HasPrefix(upper, "SIG") {
		upper = "SIG" + upper
	}
	if sig := unix.SignalNum(upper); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q", name)
}

// forwardableSignals names, for messages, the signals a job may ask pilot
// to pass on; forwardable decides.
const forwardableSignals = "SIGHUP, SIGUSR1, SIGUSR2, SIGQUIT, SIGWINCH, SIGALRM"

// forwardable reports whether pilot may pass sig on to a job. TERM and INT
// are not forwarded but start pilot's ordered shutdown; CHLD is pilot's own.
func forwardable(sig syscall.Signal) bool {
	switch sig {
	case unix.SIGHUP, unix.SIGUSR1, unix.SIGUSR2, unix.SIGQUIT, unix.SIGWINCH, unix.SIGALRM:
		return true
	default:
		return false
	}
}
