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

// Forwardable are the signals a job may ask pilot to pass on to its group
// (forwardSignals). TERM and INT are not among them: they start pilot's
// ordered shutdown; CHLD is pilot's own.
var Forwardable = []syscall.Signal{unix.SIGHUP, unix.SIGUSR1, unix.SIGUSR2, unix.SIGQUIT, unix.SIGWINCH, unix.SIGALRM}

// forwardableSignals names the Forwardable signals, for messages.
func forwardableSignals() string {
	names := make([]string, len(Forwardable))
	for i, sig := range Forwardable {
		names[i] = unix.SignalName(sig)
	}
	return strings.Join(names, ", ")
}
