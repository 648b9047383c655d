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

	// Instances, when > 0, makes the job a pool (cluster mode): that many
	// copies of the command, each a Job of its own with PILOT_INSTANCE set
	// (0…Instances-1), restarted per Policy independently. The pool's
	// Status and its changes on the bus are the aggregate (Pool).
	Instances int
	// ReadyTimeout bounds how long a rolling reload waits for a new
	// instance to be ready (Healthy when there is a Probe, else Running).
	ReadyTimeout time.Duration
	// ReloadSignal, received by pilot, makes a rolling reload of the pool
	// (0: none).
	ReloadSignal syscall.Signal
	// Listeners are sockets handed to every run as fds 3, 4, … under the
	// systemd convention (LISTEN_FDS, LISTEN_FDNAMES, and LISTEN_PID set
	// to the process's own pid by pilot's trampoline). pilot holds them
	// open, so a socket never closes while runs come and go.
	Listeners []Listener

	// instance is a pool member's index; pools set it.
	instance int
}

// Listener is one inherited socket.
type Listener struct {
	// Name goes into LISTEN_FDNAMES (no ':' allowed there).
	Name string
	File *os.File
}

// Probe runs a health check of the run whose process is pid until ctx
// ends, reporting each change of verdict. pilot builds it from jobs/health
// (and, for a pool, from the Node agent's readiness message of that pid);
// jobs only runs it per run.
type Probe func(ctx context.Context, pid int, report func(healthy bool))

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
