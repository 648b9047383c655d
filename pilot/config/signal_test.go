package config

import (
	"syscall"
	"testing"
)

func TestParseSignal(t *testing.T) {
	tests := []struct {
		name string
		want syscall.Signal
	}{
		{"SIGTERM", syscall.SIGTERM},
		{"TERM", syscall.SIGTERM},
		{"term", syscall.SIGTERM},
		{"SigHup", syscall.SIGHUP},
		{"usr2", syscall.SIGUSR2},
		{"KILL", syscall.SIGKILL},
		{"SIGWINCH", syscall.SIGWINCH},
	}
	for _, tt := range tests {
		if got, err := ParseSignal(tt.name); err != nil || got != tt.want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
	for _, name := range []string{"", "SIG", "FOO", "SIGSIGTERM", "15", " TERM", "SIGRTMIN+1"} {
		if sig, err := ParseSignal(name); err == nil {
			t.Errorf("ParseSignal(%q) = %v, want an error", name, sig)
		}
	}
}
