package jobs

import (
	"fmt"
	"time"
)

// State is where a job is in its life. The names are the ones users write in
// `after:` and see in /status.
type State uint8

const (
	Idle State = iota
	Starting
	Running
	Healthy
	Unhealthy
	Stopping
	Stopped
	Succeeded
	Failed
)

var stateNames = [...]string{"idle", "starting", "running", "healthy", "unhealthy", "stopping", "stopped", "succeeded", "failed"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", s)
}

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
	// Exit is set on Succeeded and Failed, and on Stopped after a run.
	Exit *ExitStatus
	At   time.Time
}
