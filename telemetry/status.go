package telemetry

import (
	"time"

	"github.com/nodepilot/pilot/jobs"
)

// Status is the document /status serves.
type Status struct {
	Pilot    PilotStatus     `json:"pilot"`
	Jobs     []JobStatus     `json:"jobs"`
	Services []ServiceStatus `json:"services"`
	Watches  []WatchStatus   `json:"watches"`
}

type PilotStatus struct {
	Version string    `json:"version"`
	Commit  string    `json:"commit"`
	Pid     int       `json:"pid"`
	Started time.Time `json:"started"`
	// Maintenance is pilot-wide maintenance (pilot maintenance on): every
	// service held out of rotation. Always present, so that a script
	// reads false rather than a missing key.
	Maintenance bool `json:"maintenance"`
	// PutEnv names the variables set through the control socket (pilot
	// putenv), sorted; the jobs' runs started since have them. Only the
	// names: /status is also served on telemetry's TCP port, and values
	// may be secrets.
	PutEnv []string `json:"putEnv,omitempty"`
}

type JobStatus struct {
	Name string `json:"name"`
	// State is one of jobs.States' names; "restarting" while a backoff
	// runs, "failed" and "succeeded" only once no automatic run follows.
	State string `json:"state"`
	Main  bool   `json:"main,omitempty"`
	// Pid is the job's process, 0 when none runs.
	Pid int `json:"pid"`
	// Started is when that process started; absent when none runs. pilot
	// status shows the uptime from it.
	Started *time.Time `json:"started,omitempty"`
	// Runs counts every run started; Restarts those that replaced a run
	// that ended (not periodic or triggered runs).
	Runs     int         `json:"runs"`
	Restarts int         `json:"restarts"`
	LastExit *ExitStatus `json:"lastExit"`
	// Blocked says why a job will never start ("dependency migrate
	// failed"); omitted otherwise.
	Blocked string `json:"blocked,omitempty"`
	// Health is healthy, unhealthy or unknown (no verdict for the current
	// run yet, or no process); "" for a job without a health check.
	Health string `json:"health,omitempty"`
}

// ExitStatus is how the last run ended: Code as the shell gives it
// (128+N), Signal the killing signal (0 when the process exited).
type ExitStatus struct {
	Code   int    `json:"code"`
	Signal int    `json:"signal"`
	Error  string `json:"error,omitempty"`
}

type ServiceStatus struct {
	// Job is the job whose health the service follows; "" for pilot's own
	// telemetry service.
	Job        string `json:"job,omitempty"`
	Name       string `json:"name"`
	ID         string `json:"id"`
	Address    string `json:"address"`
	Port       int    `json:"port"`
	Registered bool   `json:"registered"`
	// Status is the check status Consul holds (passing, warning or
	// critical): the last one it accepted. Absent while not registered,
	// so that it never reads as a status Consul does not have.
	Status      string `json:"status,omitempty"`
	Maintenance bool   `json:"maintenance,omitempty"`
	// HeldBy is ADDR:PORT of another live instance registered under this
	// service ID, which keeps this one out of Consul.
	HeldBy string `json:"heldBy,omitempty"`
}

type WatchStatus struct {
	// Watch names the watch: its service, "#N" added for the Nth of
	// several watches of one service (WatchName).
	Watch   string `json:"watch"`
	Service string `json:"service"`
	// Instances is the size of the last set applied; null before the first.
	Instances *int `json:"instances"`
	// Skipped counts the instances left out of that set because they
	// cannot be rendered safely (a malformed address or port).
	Skipped    int        `json:"skipped,omitempty"`
	Changes    uint64     `json:"changes"`
	LastChange *time.Time `json:"lastChange"`
}

// JobStatusOf reads j for /status.
func JobStatusOf(j Job) JobStatus {
	st := j.Status()
	spec := j.Spec()
	out := JobStatus{Name: st.Name, State: st.State.String(), Main: spec.Main, Pid: st.Pid, Runs: st.Runs, Restarts: st.Restarts, Blocked: st.Blocked}
	if !st.Started.IsZero() {
		started := st.Started
		out.Started = &started
	}
	if e := st.LastExit; e != nil {
		out.LastExit = &ExitStatus{Code: e.Code, Signal: e.Signal}
		if e.Err != nil {
			out.LastExit.Error = e.Err.Error()
		}
	}
	if spec.Probe != nil {
		switch {
		case st.State == jobs.Healthy:
			out.Health = "healthy"
		case st.State == jobs.Unhealthy:
			out.Health = "unhealthy"
		default:
			out.Health = "unknown"
		}
	}
	return out
}
