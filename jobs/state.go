package jobs

import (
	"fmt"
	"time"
)

// State is where a job is in its life. The names are the ones users write in
// `after:` and see in /status and pilot_job_state; doc.go says what each
// means.
type State uint8

const (
	Idle State = iota
	Starting
	Running
	Healthy
	Unhealthy
	Stopping
	Restarting
	Stopped
	Succeeded
	Failed
)

var stateNames = [...]string{"idle", "starting", "running", "healthy", "unhealthy", "stopping", "restarting", "stopped", "succeeded", "failed"}

// States lists every State, in order.
func States() []State {
	out := make([]State, len(stateNames))
	for i := range out {
		out[i] = State(i)
	}
	return out
}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", s)
}

// MarshalText writes the state's name, so that JSON logs and documents say
// "healthy", not 3.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// ExitStatus is how a run ended. Code follows the shell convention: the exit
// code, or 128+N when the process died of signal N.
type ExitStatus struct {
	Code   int
	Signal int // the killing signal, 0 when the process exited
	Err    error
}

func (e ExitStatus) Success() bool { return e.Code == 0 && e.Err == nil }

func (e ExitStatus) String() string {
	switch {
	case e.Err != nil:
		return fmt.Sprintf("code %d (%v)", e.Code, e.Err)
	case e.Signal != 0:
		return fmt.Sprintf("code %d (signal %d)", e.Code, e.Signal)
	}
	return fmt.Sprintf("code %d", e.Code)
}

// StateChange is published on the Bus each time a job changes state.
type StateChange struct {
	Job   string
	State State
	// Final is true when the job will never run again: it ended for good, or
	// it was stopped, or it can never start.
	Final bool
	// Exit is set on the change that reports the end of a run (succeeded,
	// failed, restarting, or idle after a failed periodic or triggered run),
	// and on Stopped after a run, which repeats the last.
	Exit *ExitStatus
	At   time.Time
	// Replayed marks a copy from the bus's memory, handed to a subscriber
	// that came after the change was published (Bus.Subscribe): it says
	// where the job stands, not that it just moved. Whoever counts events
	// (exits) skips it, so that nothing is counted twice.
	Replayed bool
}
