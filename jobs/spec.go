package jobs

import (
	"context"
	"os"
	"syscall"
	"time"

	"github.com/nodepilot/pilot/jobs/output"
)

// Spec is everything a Job needs to run, resolved from a valid config: no
// names left to look up, no defaults left to fill.
type Spec struct {
	Name string
	// Argv is the command; the shell form arrives as ["/bin/sh", "-c", …].
	Argv []string
	Dir  string
	// Env is the complete environment of the process, but for the putenv
	// overlay (Deps.Env), applied at each start.
	Env []string
	// OwnEnv lists the keys the job's own `env:` sets: the overlay never
	// overrides them.
	OwnEnv     []string
	Credential *syscall.Credential
	// Main marks the job whose end ends pilot.
	Main bool
	// Stdin is handed to the process; nil means /dev/null.
	Stdin *os.File
	// Foreground gives the job's process group the controlling terminal
	// (Stdin), so that ^C reaches the app directly, as under tini.
	Foreground bool
	// Output is how stdout and stderr reach pilot's own.
	Output output.Mode
	// StdoutLines, when set, takes the job's stdout instead of Output: each
	// line (without its newline) is handed to it, in order, from one
	// goroutine per run; it must not keep the slice. stderr still follows
	// Output. pilot uses it for sensor jobs, whose stdout is metric samples.
	StdoutLines func(line []byte)
	After       []Dependency
	// StartGate, when set, holds the first start until it is closed, on
	// top of After (pilot closes it once the watches that reload this job
	// have rendered their files, so the job reads them at start instead of
	// being signalled while it starts).
	StartGate <-chan struct{}
	Policy    Policy
	PreStop   *Hook
	PostStop  *Hook
	// Forward lists the signals pilot passes on to the job's group.
	Forward []syscall.Signal
	// Probe, when set, checks each run's health from its start until its
	// end, calling report on every change of verdict.
	Probe Probe
}

// Probe runs a health check until ctx ends, reporting each change of
// verdict. pilot builds it from jobs/health; jobs only runs it per run.
type Probe func(ctx context.Context, report func(healthy bool))

// Dependency makes a job wait until another job has reached a state.
type Dependency struct {
	Job   string
	State State
}

// Hook is a command run around a job's stop as a Command: in the job's
// dir, environment and user, its output where the job's goes, its process
// group killed at Timeout.
type Hook struct {
	Argv    []string
	Timeout time.Duration
}

// String reads as the user wrote it in `after:`, where reaching Running is
// called "started".
func (d Dependency) String() string {
	state := d.State.String()
	if d.State == Running {
		state = "started"
	}
	return d.Job + " " + state
}
