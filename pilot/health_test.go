package pilot

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/nodepilot/pilot/jobs"
	"github.com/nodepilot/pilot/pilot/control"
)

func TestHealthVerdict(t *testing.T) {
	t.Parallel()
	st := func(s jobs.State) jobs.Status { return jobs.Status{State: s} }
	exited := func(s jobs.State, code int) jobs.Status {
		return jobs.Status{State: s, LastExit: &jobs.ExitStatus{Code: code}}
	}
	main := func(s jobs.Status) jobView { return jobView{name: "app", main: true, checked: true, status: s} }
	plainMain := func(s jobs.Status) jobView { return jobView{name: "app", main: true, status: s} }
	checked := func(name string, s jobs.Status) jobView { return jobView{name: name, checked: true, status: s} }
	pool := func(agg jobs.State, instances ...jobs.State) jobs.Status {
		s := jobs.Status{State: agg}
		for i, in := range instances {
			s.Instances = append(s.Instances, jobs.Status{Instance: i, State: in})
		}
		return s
	}
	const failing = "GET http://127.0.0.1:3000/health: status 503 Service Unavailable"

	cases := []struct {
		name    string
		snap    healthSnapshot
		healthy bool
		reason  string
		checked int
		faults  []string // the jobs at fault, in order
	}{
		{name: "no jobs", healthy: true},
		{name: "tini mode: a main job without a check, running", healthy: true,
			snap: healthSnapshot{jobs: []jobView{plainMain(st(jobs.Running))}}},
		{name: "main job healthy, a one-shot without a check done", healthy: true, checked: 1,
			snap: healthSnapshot{jobs: []jobView{{name: "migrate", status: exited(jobs.Succeeded, 0)}, main(st(jobs.Healthy))}}},
		{name: "a periodic or triggered job does not count (never checked)", healthy: true, checked: 1,
			snap: healthSnapshot{jobs: []jobView{main(st(jobs.Healthy)), {name: "heartbeat", status: exited(jobs.Idle, 1)}}}},
		{name: "failing check, with its error", checked: 1, faults: []string{"app"},
			reason: "unhealthy: app (health check failing: " + failing + ")",
			snap:   healthSnapshot{jobs: []jobView{{name: "app", main: true, checked: true, status: st(jobs.Unhealthy), lastCheck: failing}}}},
		{name: "failing check, no error noted", checked: 1, faults: []string{"app"},
			reason: "unhealthy: app (health check failing)",
			snap:   healthSnapshot{jobs: []jobView{main(st(jobs.Unhealthy))}}},
		{name: "no verdict yet", checked: 1, faults: []string{"app"}, reason: "unhealthy: app is starting",
			snap: healthSnapshot{jobs: []jobView{main(st(jobs.Running))}}},
		{name: "still starting, its checks failing", checked: 1, faults: []string{"app"},
			reason: "unhealthy: app is starting (last check: GET http://127.0.0.1:3000/health: connection refused)",
			snap: healthSnapshot{jobs: []jobView{{name: "app", main: true, checked: true, status: st(jobs.Starting),
				lastCheck: "GET http://127.0.0.1:3000/health: connection refused"}}}},
		{name: "main job waiting for its dependencies", checked: 2, faults: []string{"app"},
			reason: "main job app has not started yet",
			snap:   healthSnapshot{jobs: []jobView{checked("migrate-free", st(jobs.Healthy)), main(st(jobs.Idle))}}},
		{name: "main job blocked", faults: []string{"app"},
			reason: "main job app will never start: dependency migrate failed",
			snap:   healthSnapshot{jobs: []jobView{plainMain(jobs.Status{State: jobs.Stopped, Blocked: "dependency migrate failed"})}}},
		{name: "main job restarting after an exit", checked: 1, faults: []string{"app"},
			reason: "main job app exited (code 1); restarting",
			snap:   healthSnapshot{jobs: []jobView{main(exited(jobs.Restarting, 1))}}},
		{name: "main job killed, restarting", faults: []string{"app"},
			reason: "main job app exited (signal SIGKILL); restarting",
			snap: healthSnapshot{jobs: []jobView{plainMain(jobs.Status{State: jobs.Restarting,
				LastExit: &jobs.ExitStatus{Code: 137, Signal: 9}})}}},
		{name: "main job exited for good", faults: []string{"app"}, reason: "main job app exited (code 3)",
			snap: healthSnapshot{jobs: []jobView{plainMain(exited(jobs.Failed, 3))}}},
		{name: "main job could not start", faults: []string{"app"}, reason: "main job app exited (could not start: exec: \"nod\": not found); restarting",
			snap: healthSnapshot{jobs: []jobView{plainMain(jobs.Status{State: jobs.Restarting,
				LastExit: &jobs.ExitStatus{Code: 127, Err: errors.New(`exec: "nod": not found`)}})}}},
		{name: "main job stopping", faults: []string{"app"}, reason: "main job app is stopping",
			snap: healthSnapshot{jobs: []jobView{plainMain(st(jobs.Stopping))}}},
		{name: "main job and a sidecar at fault: main first, one line", checked: 2, faults: []string{"app", "cache"},
			reason: "main job app exited (code 1); restarting; unhealthy: cache is restarting (last exit: signal SIGTERM)",
			snap: healthSnapshot{jobs: []jobView{
				checked("cache", jobs.Status{State: jobs.Restarting, LastExit: &jobs.ExitStatus{Code: 143, Signal: 15}}),
				main(exited(jobs.Restarting, 1))}}},
		{name: "two checked jobs at fault, in the config's order", checked: 3, faults: []string{"api", "cache"},
			reason: "unhealthy: api (health check failing: " + failing + "), cache is starting",
			snap: healthSnapshot{jobs: []jobView{
				{name: "api", checked: true, status: st(jobs.Unhealthy), lastCheck: failing},
				checked("cache", st(jobs.Starting)),
				main(st(jobs.Healthy))}}},
		{name: "a checked sidecar that ended", checked: 2, faults: []string{"cache"},
			reason: "unhealthy: cache exited (code 2)",
			snap:   healthSnapshot{jobs: []jobView{main(st(jobs.Healthy)), checked("cache", exited(jobs.Failed, 2))}}},
		{name: "a checked sidecar stopped for good without a run", checked: 2, faults: []string{"cache"},
			reason: "unhealthy: cache is stopped",
			snap:   healthSnapshot{jobs: []jobView{main(st(jobs.Healthy)), checked("cache", st(jobs.Stopped))}}},
		{name: "cluster job: healthy while any instance is", healthy: true, checked: 1,
			snap: healthSnapshot{jobs: []jobView{main(pool(jobs.Healthy, jobs.Unhealthy, jobs.Healthy, jobs.Restarting))}}},
		{name: "cluster job mid-roll: the new instance starting, an old one stopping, keeps its verdict", healthy: true, checked: 1,
			snap: healthSnapshot{jobs: []jobView{main(pool(jobs.Healthy, jobs.Healthy, jobs.Healthy, jobs.Starting, jobs.Stopping))}}},
		{name: "cluster job: no instance healthy", checked: 1, faults: []string{"web"},
			reason: "unhealthy: web (no instance of 2 healthy; health check failing: " + failing + ")",
			snap: healthSnapshot{jobs: []jobView{{name: "web", main: true, checked: true,
				status: pool(jobs.Unhealthy, jobs.Unhealthy, jobs.Restarting), lastCheck: failing}}}},
		{name: "a job a reload is restarting", checked: 2, faults: []string{"cache"},
			reason: "unhealthy: cache is restarting (reload)",
			snap:   healthSnapshot{jobs: []jobView{main(st(jobs.Healthy)), {name: "cache", checked: true, pending: true}}}},
		{name: "the main job a restart is replacing", faults: []string{"app"},
			reason: "main job app is restarting (reload)",
			snap:   healthSnapshot{jobs: []jobView{{name: "app", main: true, pending: true}}}},
		{name: "shutdown", reason: "stopping: signal SIGTERM",
			snap: healthSnapshot{stopping: "signal SIGTERM", jobs: []jobView{main(st(jobs.Healthy))}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := healthVerdict(tc.snap)
			var faults []string
			for _, u := range got.Unhealthy {
				faults = append(faults, u.Job)
				if u.Reason == "" {
					t.Errorf("%s at fault with no reason", u.Job)
				}
			}
			if got.Healthy != tc.healthy || got.Reason != tc.reason || got.Checked != tc.checked ||
				!reflect.DeepEqual(faults, tc.faults) || got.Unhealthy == nil {
				t.Errorf("got healthy=%v checked=%d faults=%q reason:\n  %q\nwant healthy=%v checked=%d faults=%q reason:\n  %q",
					got.Healthy, got.Checked, faults, got.Reason, tc.healthy, tc.checked, tc.faults, tc.reason)
			}
		})
	}
}

// The jobs at fault carry their state and health as /status has them.
func TestHealthVerdictJobs(t *testing.T) {
	t.Parallel()
	got := healthVerdict(healthSnapshot{jobs: []jobView{
		{name: "cache", checked: true, status: jobs.Status{State: jobs.Unhealthy}, lastCheck: "tcp 127.0.0.1:6379: connection refused"},
		{name: "app", main: true, status: jobs.Status{State: jobs.Restarting, LastExit: &jobs.ExitStatus{Code: 1}}},
		{name: "db", checked: true, pending: true},
	}})
	want := []control.JobHealth{
		{Job: "app", State: "restarting", Reason: "main job app exited (code 1); restarting"},
		{Job: "cache", Health: "unhealthy", State: "unhealthy", Reason: "cache (health check failing: tcp 127.0.0.1:6379: connection refused)"},
		{Job: "db", Health: "unknown", State: "restarting", Reason: "db is restarting (reload)"},
	}
	if !reflect.DeepEqual(got.Unhealthy, want) {
		t.Errorf("got %+v\nwant %+v", got.Unhealthy, want)
	}
}

// Which jobs' checks count: not a periodic or a triggered job's, nor a
// job without one.
func TestHealthCounts(t *testing.T) {
	t.Parallel()
	probe := jobs.Probe(func(context.Context, int, func(bool)) {})
	for _, tc := range []struct {
		spec jobs.Spec
		want bool
	}{
		{jobs.Spec{Probe: probe}, true},
		{jobs.Spec{Probe: probe, Instances: 3}, true},
		{jobs.Spec{}, false},
		{jobs.Spec{Probe: probe, Policy: jobs.Policy{Every: time.Minute}}, false},
		{jobs.Spec{Probe: probe, Policy: jobs.Policy{Triggered: true}}, false},
	} {
		if got := counts(tc.spec); got != tc.want {
			t.Errorf("counts(%+v) = %v, want %v", tc.spec.Policy, got, tc.want)
		}
	}
}

// The notes keep each job's latest check: an error, then "" once it
// passes.
func TestCheckNotes(t *testing.T) {
	t.Parallel()
	var n checkNotes
	if got := n.get("app"); got != "" {
		t.Errorf("before any check: %q", got)
	}
	n.observe("app", errors.New("GET …: status 503"))
	if got := n.get("app"); got != "GET …: status 503" {
		t.Errorf("after a failure: %q", got)
	}
	n.observe("app", nil)
	if got := n.get("app"); got != "" {
		t.Errorf("after a pass: %q", got)
	}
}
