package pilot

import (
	"fmt"
	"strings"
	"sync"

	"github.com/nodepilot/pilot/jobs"
	"github.com/nodepilot/pilot/pilot/config"
	"github.com/nodepilot/pilot/pilot/control"
)

// pilot's own health (GET /v1/health, pilot health, Docker's HEALTHCHECK)
// is a pure verdict over a snapshot of the jobs: healthVerdict. The rules:
//
//   - a shutting-down pilot is unhealthy ("stopping: why");
//   - the main job must run (starting, running, healthy or unhealthy —
//     its health is judged by the next rule); idle, restarting, stopping
//     or ended is unhealthy, and so is a main job a reload or `pilot
//     restart` is replacing;
//   - every job with a health check must be healthy, except periodic
//     (every:) and triggered (onChange.run) jobs, which come and go by
//     design; jobs without one do not count, one-shot or not;
//   - a cluster job counts by its pool's aggregate state, which is healthy
//     while any instance is. A rolling reload starts a new instance before
//     it stops an old one, so the pool keeps the verdict it had through the
//     roll; a plain job a reload replaces is down meanwhile, and says so
//     ("app is restarting (reload)").
//
// Maintenance does not count: it takes services out of Consul, and a
// HEALTHCHECK that failed for it would have an orchestrator replace a
// container someone is working on.

// jobView is what the verdict reads of one job.
type jobView struct {
	name    string
	main    bool
	checked bool // has a health check that counts
	status  jobs.Status
	// pending: a reload or restart stopped the job and is to start it
	// again; status is then empty.
	pending bool
	// lastCheck is the error of the job's latest health check, "" when it
	// passed or none ran.
	lastCheck string
}

// healthSnapshot is the input of healthVerdict.
type healthSnapshot struct {
	// stopping is why the shutdown began; "" while pilot runs.
	stopping string
	jobs     []jobView
}

// counts says whether a job's health check counts toward pilot's health.
func counts(spec jobs.Spec) bool {
	return spec.Probe != nil && spec.Policy.Every == 0 && !spec.Policy.Triggered
}

// healthVerdict judges a snapshot. It is pure.
func healthVerdict(s healthSnapshot) control.HealthReport {
	report := control.HealthReport{Healthy: true, Unhealthy: []control.JobHealth{}}
	if s.stopping != "" {
		report.Healthy, report.Reason = false, "stopping: "+s.stopping
		return report
	}
	var mainReason string
	var checks []string
	for _, v := range s.jobs {
		if v.checked {
			report.Checked++
		}
		fault := ""
		if v.main {
			if fault = mainFault(v); fault != "" {
				mainReason = fault
			}
		}
		if fault == "" && v.checked {
			if fault = checkFault(v); fault != "" {
				checks = append(checks, fault)
			}
		}
		if fault != "" {
			at := control.JobHealth{Job: v.name, State: stateOf(v), Health: healthOf(v), Reason: fault}
			if v.main { // the main job first, then the config's order
				report.Unhealthy = append([]control.JobHealth{at}, report.Unhealthy...)
			} else {
				report.Unhealthy = append(report.Unhealthy, at)
			}
		}
	}
	var parts []string
	if mainReason != "" {
		parts = append(parts, mainReason)
	}
	if len(checks) > 0 {
		parts = append(parts, "unhealthy: "+strings.Join(checks, ", "))
	}
	if len(parts) > 0 {
		report.Healthy, report.Reason = false, strings.Join(parts, "; ")
	}
	return report
}

// mainFault says why the main job does not count as running, "" when it
// does.
func mainFault(v jobView) string {
	name := "main job " + v.name
	st := v.status
	switch {
	case v.pending:
		return name + " is restarting (reload)"
	case st.State == jobs.Starting, st.State == jobs.Running, st.State == jobs.Healthy, st.State == jobs.Unhealthy:
		return ""
	case st.Blocked != "":
		return name + " will never start: " + st.Blocked
	case st.State == jobs.Idle:
		return name + " has not started yet"
	case st.State == jobs.Restarting:
		return name + " exited" + exitPhrase(st.LastExit, " (", ")") + "; restarting"
	case st.State == jobs.Stopping:
		return name + " is stopping"
	case st.LastExit != nil:
		return name + " exited" + exitPhrase(st.LastExit, " (", ")")
	}
	return name + " " + st.State.String()
}

// checkFault says why a job with a health check is not healthy, "" when it
// is: "app (health check failing: …)", "app is starting".
func checkFault(v jobView) string {
	st := v.status
	switch {
	case v.pending:
		return v.name + " is restarting (reload)"
	case st.State == jobs.Healthy:
		return ""
	case st.State == jobs.Unhealthy:
		var detail []string
		if n := len(st.Instances); n > 0 {
			detail = append(detail, fmt.Sprintf("no instance of %d healthy", n))
		}
		if v.lastCheck != "" {
			detail = append(detail, "health check failing: "+v.lastCheck)
		} else {
			detail = append(detail, "health check failing")
		}
		return v.name + " (" + strings.Join(detail, "; ") + ")"
	case st.State == jobs.Starting, st.State == jobs.Running:
		if v.lastCheck != "" {
			return v.name + " is starting (last check: " + v.lastCheck + ")"
		}
		return v.name + " is starting"
	case st.Blocked != "":
		return v.name + " will never start: " + st.Blocked
	case st.State == jobs.Idle:
		return v.name + " has not started yet"
	case st.State == jobs.Restarting:
		return v.name + " is restarting" + exitPhrase(st.LastExit, " (last exit: ", ")")
	case st.State == jobs.Stopping:
		return v.name + " is stopping"
	case st.LastExit != nil:
		return v.name + " exited" + exitPhrase(st.LastExit, " (", ")")
	}
	return v.name + " is " + st.State.String()
}

// exitPhrase is how a run ended, between open and close: "code 1",
// "signal SIGKILL", "could not start: …"; "" when there was no run.
func exitPhrase(e *jobs.ExitStatus, open, close string) string {
	switch {
	case e == nil:
		return ""
	case e.Err != nil:
		return open + "could not start: " + e.Err.Error() + close
	case e.Signal != 0:
		return open + "signal " + config.Signal(e.Signal).String() + close
	}
	return fmt.Sprintf("%scode %d%s", open, e.Code, close)
}

func stateOf(v jobView) string {
	if v.pending {
		return jobs.Restarting.String()
	}
	return v.status.State.String()
}

// healthOf is the job's health as /status shows it: "" without a check.
func healthOf(v jobView) string {
	switch {
	case !v.checked:
		return ""
	case v.status.State == jobs.Healthy && !v.pending:
		return "healthy"
	case v.status.State == jobs.Unhealthy && !v.pending:
		return "unhealthy"
	}
	return "unknown"
}

// checkNotes keeps the error of each job's latest health check, so that
// an unhealthy verdict can say what failed. The instances of a cluster job
// share their job's note: the latest of theirs wins.
type checkNotes struct {
	mu   sync.Mutex
	last map[string]string
}

func (n *checkNotes) observe(job string, err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.last == nil {
		n.last = map[string]string{}
	}
	n.last[job] = msg
}

func (n *checkNotes) get(job string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.last[job]
}

// health is pilot's verdict now: a snapshot of the supervisor's jobs, no
// status document, no Consul, so that it answers in microseconds.
func (c *core) health() control.HealthReport {
	if c.sup == nil {
		return control.HealthReport{Reason: "pilot is starting", Unhealthy: []control.JobHealth{}}
	}
	snap := c.sup.healthSnapshot()
	for i := range snap.jobs {
		if v := &snap.jobs[i]; v.checked {
			v.lastCheck = c.checks.get(v.name)
		}
	}
	return healthVerdict(snap)
}
