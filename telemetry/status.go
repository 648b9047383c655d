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
	// Container is the container pilot runs in, as far as it could tell:
	// the id from its cgroup, the rest from the Docker Engine API when its
	// socket is reachable. Absent outside a container.
	Container *ContainerStatus `json:"container,omitempty"`
}

// ContainerStatus is pilot's own container.
type ContainerStatus struct {
	ID        string            `json:"id"`
	Name      string            `json:"name,omitempty"`
	Image     string            `json:"image,omitempty"`
	Project   string            `json:"composeProject,omitempty"`
	Service   string            `json:"composeService,omitempty"`
	Replica   int               `json:"composeReplica,omitempty"`
	Addresses map[string]string `json:"addresses,omitempty"`
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
	// Instances are a cluster job's instances, by index, then those a
	// rolling reload is starting or stopping; the fields above are then
	// the job's aggregate (healthy while any instance is). Absent for a
	// plain job.
	Instances []InstanceStatus `json:"instances,omitempty"`
	// LastReload is a cluster job's latest rolling reload; absent before
	// the first.
	LastReload *RollStatus `json:"lastReload,omitempty"`
}

// InstanceStatus is one instance of a cluster job.
type InstanceStatus struct {
	Instance int        `json:"instance"`
	State    string     `json:"state"`
	Pid      int        `json:"pid"`
	Started  *time.Time `json:"started,omitempty"`
	Runs     int        `json:"runs"`
	Restarts int        `json:"restarts"`
	// Health is as JobStatus.Health, for this instance (with `readiness:
	// message`, healthy once it said it is ready).
	Health   string      `json:"health,omitempty"`
	LastExit *ExitStatus `json:"lastExit"`
}

// RollStatus is how a rolling reload went.
type RollStatus struct {
	At       time.Time `json:"at"`
	Seconds  float64   `json:"seconds"`
	Replaced int       `json:"replaced"`
	// Error says why it failed (the old instances kept serving); absent
	// when it succeeded.
	Error string `json:"error,omitempty"`
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
	out.LastExit = exitStatusOf(st.LastExit)
	out.Health = healthOf(spec, st.State)
	for _, in := range st.Instances {
		is := InstanceStatus{Instance: in.Instance, State: in.State.String(), Pid: in.Pid, Runs: in.Runs,
			Restarts: in.Restarts, Health: healthOf(spec, in.State), LastExit: exitStatusOf(in.LastExit)}
		if !in.Started.IsZero() {
			started := in.Started
			is.Started = &started
		}
		out.Instances = append(out.Instances, is)
	}
	if r, ok := j.(interface{ LastRoll() *jobs.RollReport }); ok {
		if rr := r.LastRoll(); rr != nil {
			out.LastReload = &RollStatus{At: rr.At, Seconds: rr.Took.Seconds(), Replaced: rr.Replaced, Error: rr.Err}
		}
	}
	return out
}

func exitStatusOf(e *jobs.ExitStatus) *ExitStatus {
	if e == nil {
		return nil
	}
	out := &ExitStatus{Code: e.Code, Signal: e.Signal}
	if e.Err != nil {
		out.Error = e.Err.Error()
	}
	return out
}

// healthOf is a job's (or an instance's) health for /status: "" without a
// health check (or readiness message).
func healthOf(spec jobs.Spec, state jobs.State) string {
	switch {
	case spec.Probe == nil:
		return ""
	case state == jobs.Healthy:
		return "healthy"
	case state == jobs.Unhealthy:
		return "unhealthy"
	}
	return "unknown"
}
