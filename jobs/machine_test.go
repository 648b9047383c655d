package jobs

import (
	"log/slog"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

var testBackoff = Backoff{Initial: 100 * time.Millisecond, Max: 1600 * time.Millisecond, ResetAfter: 10 * time.Second}

func policy(r RestartPolicy, max int) Policy {
	return Policy{Restart: r, MaxRestarts: max, Backoff: testBackoff, StopTimeout: 5 * time.Second}
}

// run feeds events in order and returns the machine and every action.
func run(m machine, evs ...event) (machine, []action) {
	var all []action
	for _, ev := range evs {
		var acts []action
		m, acts = next(m, ev)
		all = append(all, acts...)
	}
	return m, all
}

func has[T action](acts []action) (T, bool) {
	for _, a := range acts {
		if t, ok := a.(T); ok {
			return t, true
		}
	}
	var zero T
	return zero, false
}

func lastPublish(t *testing.T, acts []action) actPublish {
	t.Helper()
	for i := len(acts) - 1; i >= 0; i-- {
		if p, ok := acts[i].(actPublish); ok {
			return p
		}
	}
	t.Fatalf("no publish in %v", acts)
	return actPublish{}
}

func exit(code int, uptime time.Duration) evExited {
	return evExited{Status: ExitStatus{Code: code}, Uptime: uptime, Jitter: 0.5}
}

func TestStartSpawns(t *testing.T) {
	m, acts := run(machine{policy: policy(RestartNever, -1)}, evStart{}, evSpawned{})
	if m.state != Running || !m.alive {
		t.Fatalf("state %v alive %v", m.state, m.alive)
	}
	if _, ok := has[actSpawn](acts); !ok {
		t.Fatal("no spawn")
	}
}

func TestExitDecisions(t *testing.T) {
	tests := []struct {
		name        string
		policy      Policy
		code        int
		wantState   State
		wantFinal   bool
		wantRestart bool
	}{
		{"never, success", policy(RestartNever, -1), 0, Succeeded, true, false},
		{"never, failure", policy(RestartNever, -1), 3, Failed, true, false},
		{"on-failure, clean exit is not restarted (C21)", policy(RestartOnFailure, -1), 0, Succeeded, true, false},
		{"on-failure, failure restarts", policy(RestartOnFailure, -1), 1, Restarting, false, true},
		{"always, success restarts", policy(RestartAlways, -1), 0, Restarting, false, true},
		{"max 0 means no restart", policy(RestartAlways, 0), 1, Failed, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, acts := run(machine{policy: tt.policy}, evStart{}, evSpawned{}, exit(tt.code, time.Second))
			p := lastPublish(t, acts)
			if p.State != tt.wantState || p.Final != tt.wantFinal || m.final != tt.wantFinal {
				t.Fatalf("got %v final=%v, want %v final=%v", p.State, p.Final, tt.wantState, tt.wantFinal)
			}
			if p.Exit == nil || p.Exit.Code != tt.code {
				t.Fatalf("exit %v", p.Exit)
			}
			_, restart := has[actScheduleRestart](acts)
			if restart != tt.wantRestart {
				t.Fatalf("restart scheduled = %v", restart)
			}
		})
	}
}

// C18/C19: delays grow exponentially to the cap, fast or slow crashes alike,
// and reset only after a stable run.
func TestBackoffGrowsAndResets(t *testing.T) {
	m := machine{policy: policy(RestartAlways, -1)}
	m, _ = run(m, evStart{}, evSpawned{})
	var delays []time.Duration
	for _, uptime := range []time.Duration{0, 2 * time.Second, 0, 2 * time.Second, 0, 0, 0} {
		var acts []action
		m, acts = run(m, exit(1, uptime))
		r, ok := has[actScheduleRestart](acts)
		if !ok {
			t.Fatal("no restart")
		}
		delays = append(delays, r.After)
		m, _ = run(m, evRestartDue{}, evSpawned{})
	}
	want := []time.Duration{100, 200, 400, 800, 1600, 1600, 1600}
	for i := range want {
		if delays[i] != want[i]*time.Millisecond {
			t.Fatalf("delays %v, want %v ms", delays, want)
		}
	}
	_, acts := run(m, exit(1, 11*time.Second))
	if r, _ := has[actScheduleRestart](acts); r.After != 100*time.Millisecond {
		t.Fatalf("after a stable run the delay is %v, want the initial 100ms", r.After)
	}
}

func TestBackoffJitterStaysInBandAndUnderCap(t *testing.T) {
	b := Backoff{Initial: time.Second, Max: 10 * time.Second}
	for _, j := range []float64{0, 0.25, 0.5, 0.999} {
		d := b.delay(1, j)
		if d < 1600*time.Millisecond || d > 2400*time.Millisecond {
			t.Fatalf("jitter %v: delay %v outside 2s±20%%", j, d)
		}
		if d := b.delay(20, j); d > b.Max {
			t.Fatalf("delay %v above cap", d)
		}
	}
	if b.delay(2, 0) == b.delay(2, 0.99) {
		t.Fatal("jitter has no effect")
	}
}

// C20: give up after max restarts in a row, with the last code.
func TestGiveUpAfterMax(t *testing.T) {
	m := machine{policy: policy(RestartOnFailure, 2)}
	m, _ = run(m, evStart{}, evSpawned{})
	for i := 0; i < 2; i++ {
		var acts []action
		m, acts = run(m, exit(5, 0))
		if _, ok := has[actScheduleRestart](acts); !ok {
			t.Fatalf("restart %d not scheduled", i+1)
		}
		m, _ = run(m, evRestartDue{}, evSpawned{})
	}
	m, acts := run(m, exit(7, 0))
	p := lastPublish(t, acts)
	if !p.Final || p.State != Failed || p.Exit.Code != 7 || !m.done() {
		t.Fatalf("got %+v", p)
	}
}

// B17: a stop during backoff cancels the restart: no new spawn.
func TestStopDuringBackoff(t *testing.T) {
	m := machine{policy: policy(RestartAlways, -1)}
	m, _ = run(m, evStart{}, evSpawned{}, exit(1, 0))
	m, acts := run(m, evStop{Signal: syscall.SIGTERM}, evRestartDue{})
	if _, ok := has[actSpawn](acts); ok {
		t.Fatal("spawned after stop")
	}
	if _, ok := has[actCancelRestart](acts); !ok {
		t.Fatal("restart not cancelled")
	}
	if !m.done() || m.state != Stopped {
		t.Fatalf("state %v done %v", m.state, m.done())
	}
}

// B17: a stop before the job ever started makes it final; it never spawns.
func TestStopWhileWaitingForDependencies(t *testing.T) {
	m, acts := run(machine{policy: policy(RestartAlways, -1)}, evStop{Signal: syscall.SIGTERM}, evStart{})
	if _, ok := has[actSpawn](acts); ok || !m.done() {
		t.Fatalf("acts %v", acts)
	}
}

func TestStopSequence(t *testing.T) {
	t.Run("signal then kill timer, exit is Stopped and final", func(t *testing.T) {
		m, _ := run(machine{policy: policy(RestartAlways, -1)}, evStart{}, evSpawned{})
		m, acts := run(m, evStop{Signal: syscall.SIGINT})
		if s, _ := has[actSignal](acts); s.Signal != syscall.SIGINT {
			t.Fatalf("signal %v, want the triggering SIGINT", s.Signal)
		}
		if k, _ := has[actArmKill](acts); k.After != 5*time.Second {
			t.Fatalf("kill timer %v", k.After)
		}
		m, acts = run(m, evKillDue{})
		if _, ok := has[actKill](acts); !ok {
			t.Fatal("no kill at stopTimeout")
		}
		m, acts = run(m, evExited{Status: ExitStatus{Code: 137, Signal: 9}})
		p := lastPublish(t, acts)
		if p.State != Stopped || !p.Final || p.Exit.Code != 137 || !m.done() {
			t.Fatalf("got %+v", p)
		}
		if _, ok := has[actScheduleRestart](acts); ok {
			t.Fatal("restart scheduled during shutdown")
		}
	})
	t.Run("the job's own stopSignal wins", func(t *testing.T) {
		p := policy(RestartNever, -1)
		p.StopSignal = syscall.SIGINT
		m, _ := run(machine{policy: p}, evStart{}, evSpawned{})
		_, acts := run(m, evStop{Signal: syscall.SIGTERM})
		if s, _ := has[actSignal](acts); s.Signal != syscall.SIGINT {
			t.Fatalf("signal %v", s.Signal)
		}
	})
	t.Run("preStop runs before the signal", func(t *testing.T) {
		p := policy(RestartNever, -1)
		p.HasPreStop = true
		m, _ := run(machine{policy: p}, evStart{}, evSpawned{})
		m, acts := run(m, evStop{Signal: syscall.SIGTERM})
		if _, ok := has[actSignal](acts); ok {
			t.Fatal("signal before preStop")
		}
		if _, ok := has[actRunPreStop](acts); !ok {
			t.Fatal("no preStop")
		}
		_, acts = run(m, evPreStopped{})
		if _, ok := has[actSignal](acts); !ok {
			t.Fatal("no signal after preStop")
		}
	})
	t.Run("a second stop changes nothing (A13)", func(t *testing.T) {
		m, _ := run(machine{policy: policy(RestartNever, -1)}, evStart{}, evSpawned{}, evStop{Signal: syscall.SIGTERM})
		_, acts := run(m, evStop{Signal: syscall.SIGTERM})
		if len(acts) != 0 {
			t.Fatalf("second stop acted: %v", acts)
		}
	})
}

// A6/C22: a missing binary is a final 127 without a restart loop under
// "never"; a transient fork failure is retried with backoff.
func TestSpawnFailures(t *testing.T) {
	m, acts := run(machine{policy: policy(RestartNever, -1)}, evStart{},
		evSpawnFailed{Status: ExitStatus{Code: 127}})
	if p := lastPublish(t, acts); p.State != Failed || !p.Final || p.Exit.Code != 127 || !m.done() {
		t.Fatalf("got %+v", p)
	}
	m, acts = run(machine{policy: policy(RestartNever, -1)}, evStart{},
		evSpawnFailed{Status: ExitStatus{Code: 1}, Transient: true})
	if r, ok := has[actScheduleRestart](acts); !ok || r.After <= 0 {
		t.Fatalf("transient failure not retried: %v", acts)
	}
	_, acts = run(m, evRestartDue{})
	if _, ok := has[actSpawn](acts); !ok {
		t.Fatal("no retry spawn")
	}
}

func TestPeriodic(t *testing.T) {
	p := policy(RestartNever, -1)
	p.Every = time.Second
	p.Timeout = time.Second
	m, acts := run(machine{policy: p}, evStart{})
	if tk, ok := has[actStartTicker](acts); !ok || tk.Every != time.Second {
		t.Fatal("no ticker")
	}
	m, acts = run(m, evSpawned{})
	if a, _ := has[actArmTimeout](acts); a.After != time.Second {
		t.Fatal("no timeout armed")
	}
	m, acts = run(m, evTick{})
	if _, ok := has[actSpawn](acts); ok {
		t.Fatal("overlapping run")
	}
	m, acts = run(m, evTimeout{})
	if _, ok := has[actSignal](acts); !ok {
		t.Fatal("timeout did not stop the run")
	}
	m, acts = run(m, evExited{Status: ExitStatus{Code: 143, Signal: 15}})
	if pub := lastPublish(t, acts); pub.State != Idle || pub.Final || pub.Exit == nil || pub.Exit.Code != 143 {
		t.Fatalf("got %+v", pub)
	}
	_, acts = run(m, evTick{})
	if _, ok := has[actSpawn](acts); !ok {
		t.Fatal("next tick did not run")
	}
}

func TestForwardOnlyToALiveProcess(t *testing.T) {
	m := machine{policy: policy(RestartNever, -1)}
	if _, acts := run(m, evForward{Signal: syscall.SIGHUP}); len(acts) != 0 {
		t.Fatalf("forwarded with no process: %v", acts)
	}
	m, _ = run(m, evStart{}, evSpawned{})
	_, acts := run(m, evForward{Signal: syscall.SIGHUP})
	if !reflect.DeepEqual(acts, []action{actSignal{syscall.SIGHUP}}) {
		t.Fatalf("got %v", acts)
	}
}

func TestNeverStart(t *testing.T) {
	m, acts := run(machine{policy: policy(RestartAlways, -1)}, evNeverStart{})
	if p := lastPublish(t, acts); p.State != Stopped || !p.Final || !m.done() {
		t.Fatalf("got %+v", p)
	}
}

// C24: RSS above maxMemory for memorySamples samples in a row → one graceful
// restart, with no backoff and no duplicate while it is under way; a sample
// under the limit starts the count again.
func TestMaxMemoryRestart(t *testing.T) {
	p := policy(RestartNever, 0)
	p.MaxMemory = 100
	m, _ := run(machine{policy: p}, evStart{}, evSpawned{})
	m, acts := run(m, evMemorySample{200}, evMemorySample{200}, evMemorySample{50}, evMemorySample{200}, evMemorySample{200})
	if _, ok := has[actSignal](acts); ok {
		t.Fatal("restarted without three samples in a row")
	}
	m, acts = run(m, evMemorySample{200})
	if s, ok := has[actSignal](acts); !ok || s.Signal != syscall.SIGTERM {
		t.Fatalf("no graceful stop: %v", acts)
	}
	m, acts = run(m, evMemorySample{200}, evMemorySample{200}, evMemorySample{200})
	if len(acts) != 0 {
		t.Fatalf("duplicate restart: %v", acts)
	}
	m, acts = run(m, evExited{Status: ExitStatus{Code: 143, Signal: 15}})
	if _, ok := has[actSpawn](acts); !ok {
		t.Fatal("not started again")
	}
	if _, ok := has[actScheduleRestart](acts); ok {
		t.Fatal("a memory restart waited out a backoff")
	}
	m, _ = run(m, evSpawned{})
	if m.final || m.runs != 2 || m.overMemory != 0 {
		t.Fatalf("machine %+v", m)
	}
}

func TestHealthStates(t *testing.T) {
	m, _ := run(machine{policy: policy(RestartNever, -1)}, evStart{}, evSpawned{})
	m, acts := run(m, evHealth{Healthy: true})
	if p := lastPublish(t, acts); p.State != Healthy || p.Final {
		t.Fatalf("got %+v", p)
	}
	m, acts = run(m, evHealth{Healthy: false})
	if p := lastPublish(t, acts); p.State != Unhealthy {
		t.Fatalf("got %+v", p)
	}
	if _, ok := has[actSignal](acts); ok {
		t.Fatal("stopped an unhealthy run without onUnhealthy: restart")
	}
	_, acts = run(m, evHealth{Healthy: true})
	if p := lastPublish(t, acts); p.State != Healthy {
		t.Fatalf("no recovery: %+v", p)
	}
}

// D27: onUnhealthy: restart stops the run once the threshold is reached and
// starts it again after the backoff, even under restart policy never.
func TestRestartOnUnhealthy(t *testing.T) {
	p := policy(RestartNever, -1)
	p.RestartUnhealthy = true
	m, _ := run(machine{policy: p}, evStart{}, evSpawned{}, evHealth{Healthy: true})
	m, acts := run(m, evHealth{Healthy: false})
	if _, ok := has[actSignal](acts); !ok {
		t.Fatal("unhealthy run not stopped")
	}
	m, acts = run(m, evHealth{Healthy: false}, evExited{Status: ExitStatus{Code: 143, Signal: 15}, Jitter: 0.5})
	if r, ok := has[actScheduleRestart](acts); !ok || r.After != testBackoff.Initial {
		t.Fatalf("restart not scheduled with the backoff: %v", acts)
	}
	m, _ = run(m, evRestartDue{}, evSpawned{})
	if m.final || m.state != Running || m.unhealthyRestart {
		t.Fatalf("machine %+v", m)
	}
}

func triggered(r RestartPolicy, max int) machine {
	p := policy(r, max)
	p.Triggered = true
	return machine{policy: p}
}

func spawns(acts []action) int {
	n := 0
	for _, a := range acts {
		if _, ok := a.(actSpawn); ok {
			n++
		}
	}
	return n
}

func TestTriggeredRunsOnlyOnTrigger(t *testing.T) {
	m, acts := run(triggered(RestartNever, -1), evStart{})
	if spawns(acts) != 0 || m.state != Idle {
		t.Fatalf("started at boot: state %v, %v", m.state, acts)
	}
	m, acts = run(m, evTrigger{}, evSpawned{}, exit(0, time.Second))
	if spawns(acts) != 1 {
		t.Fatalf("want one run per trigger, got %d", spawns(acts))
	}
	if got := published(acts); got != "starting running succeeded idle" {
		t.Fatalf("a run published %q, want it to end succeeded (not final), then idle", got)
	}
	_, acts = run(m, evTrigger{})
	if spawns(acts) != 1 {
		t.Fatal("the second trigger did not run the job again")
	}
}

func TestTriggersCoalesce(t *testing.T) {
	// A trigger before the dependencies are met waits for them.
	m, acts := run(triggered(RestartNever, -1), evTrigger{}, evTrigger{})
	if spawns(acts) != 0 {
		t.Fatal("ran before its dependencies were met")
	}
	m, acts = run(m, evStart{}, evSpawned{})
	if spawns(acts) != 1 {
		t.Fatalf("two early triggers: want one run, got %d", spawns(acts))
	}
	// Three triggers during a run make exactly one more run, after it.
	m, acts = run(m, evTrigger{}, evTrigger{}, evTrigger{})
	if spawns(acts) != 0 {
		t.Fatal("overlapping run")
	}
	m, acts = run(m, exit(0, time.Second), evSpawned{}, exit(0, time.Second))
	if spawns(acts) != 1 || m.alive {
		t.Fatalf("want exactly one coalesced run, got %d", spawns(acts))
	}
}

func TestTriggeredRetriesFailuresPerPolicy(t *testing.T) {
	m, acts := run(triggered(RestartOnFailure, 1), evStart{}, evTrigger{}, evSpawned{}, exit(1, time.Second))
	if _, ok := has[actScheduleRestart](acts); !ok {
		t.Fatalf("a failed run is not retried: %v", acts)
	}
	// A trigger during the backoff is served by the retry itself.
	m, acts = run(m, evTrigger{}, evRestartDue{}, evSpawned{}, exit(1, time.Second))
	if spawns(acts) != 1 {
		t.Fatalf("want the retry only, got %d runs", spawns(acts))
	}
	if _, ok := has[actScheduleRestart](acts); ok || m.final {
		t.Fatalf("retries past max, or final: %v", acts)
	}
	// Retries exhausted: the next change gets a fresh budget.
	_, acts = run(m, evTrigger{}, evSpawned{}, exit(1, time.Second))
	if _, ok := has[actScheduleRestart](acts); !ok {
		t.Fatal("a new trigger after giving up has no retry budget")
	}
}

func TestTriggerIgnoredAfterStop(t *testing.T) {
	m, _ := run(triggered(RestartNever, -1), evStart{}, evStop{Signal: syscall.SIGTERM})
	if !m.final {
		t.Fatal("an idle triggered job is not final after stop")
	}
	if _, acts := run(m, evTrigger{}); spawns(acts) != 0 {
		t.Fatal("ran after stop")
	}
	if _, acts := run(machine{policy: policy(RestartNever, -1)}, evStart{}, evSpawned{}, exit(0, 0), evTrigger{}); spawns(acts) != 1 {
		t.Fatal("a trigger ran a job that is not triggered")
	}
}

// published lists the states acts publish, a final one marked with "!".
func published(acts []action) string {
	var out []string
	for _, a := range acts {
		if p, ok := a.(actPublish); ok {
			s := p.State.String()
			if p.Final {
				s += "!"
			}
			out = append(out, s)
		}
	}
	return strings.Join(out, " ")
}

// Issue 10 item 2: failed and succeeded are said only when no automatic run
// follows; a job waiting out a backoff is restarting; a job that runs again
// by design is idle between runs, a good run passing through succeeded.
func TestStatesBetweenRuns(t *testing.T) {
	periodic := policy(RestartOnFailure, 3)
	periodic.Every = time.Minute
	unhealthy := policy(RestartNever, -1)
	unhealthy.RestartUnhealthy = true
	memory := policy(RestartNever, -1)
	memory.MaxMemory = 1
	spawned := []event{evStart{}, evSpawned{}}
	tests := []struct {
		name    string
		m       machine
		events  []event
		want    string
		runs    int
		restart int
	}{
		{"on-failure: each crash is restarting until the limit, then failed for good",
			machine{policy: policy(RestartOnFailure, 2)},
			append(spawned, exit(1, 0), evRestartDue{}, evSpawned{}, exit(1, 0), evRestartDue{}, evSpawned{}, exit(1, 0)),
			"starting running restarting starting running restarting starting running failed!", 3, 2},
		{"on-failure: a clean exit after a crash is succeeded for good",
			machine{policy: policy(RestartOnFailure, 2)},
			append(spawned, exit(1, 0), evRestartDue{}, evSpawned{}, exit(0, 0)),
			"starting running restarting starting running succeeded!", 2, 1},
		{"never: a crash is failed at once",
			machine{policy: policy(RestartNever, -1)}, append(spawned, exit(1, 0)),
			"starting running failed!", 1, 0},
		{"a stop during the backoff is stopped for good",
			machine{policy: policy(RestartAlways, -1)}, append(spawned, exit(0, 0), evStop{Signal: syscall.SIGTERM}),
			"starting running restarting stopped!", 1, 0},
		{"onUnhealthy: restart waits out the backoff as restarting",
			machine{policy: unhealthy},
			append(spawned, evHealth{Healthy: false}, evExited{Status: ExitStatus{Code: 143, Signal: 15}}, evRestartDue{}, evSpawned{}),
			"starting running unhealthy stopping restarting starting running", 2, 1},
		{"maxMemory: a graceful restart passes through restarting, counted as a restart",
			machine{policy: memory},
			append(spawned, evMemorySample{2}, evMemorySample{2}, evMemorySample{2}, evExited{Status: ExitStatus{Code: 143, Signal: 15}}, evSpawned{}),
			"starting running stopping restarting starting running", 2, 1},
		{"a transient spawn failure is restarting, and its retry is not a restart",
			machine{policy: policy(RestartNever, -1)},
			[]event{evStart{}, evSpawnFailed{Status: ExitStatus{Code: 1}, Transient: true}, evRestartDue{}, evSpawned{}, exit(0, 0)},
			"starting restarting starting running succeeded!", 1, 0},
		{"periodic: a good run is succeeded then idle; a failed one idle; neither is a restart",
			machine{policy: periodic},
			append(spawned, exit(0, 0), evTick{}, evSpawned{}, exit(1, 0), evTick{}, evSpawned{}),
			"starting running succeeded idle starting running idle starting running", 3, 0},
		{"periodic: stopped between runs is stopped for good",
			machine{policy: periodic}, append(spawned, exit(1, 0), evStop{Signal: syscall.SIGTERM}),
			"starting running idle stopped!", 1, 0},
		{"triggered: runs are not restarts, a retry is",
			triggered(RestartOnFailure, 1),
			[]event{evStart{}, evTrigger{}, evSpawned{}, exit(0, 0), evTrigger{}, evSpawned{}, exit(1, 0), evRestartDue{}, evSpawned{}, exit(1, 0)},
			"starting running succeeded idle starting running restarting starting running idle", 3, 1},
		{"a missing command counts as a run that failed",
			machine{policy: policy(RestartNever, -1)}, []event{evStart{}, evSpawnFailed{Status: ExitStatus{Code: 127}}},
			"starting failed!", 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, acts := run(tt.m, tt.events...)
			if got := published(acts); got != tt.want {
				t.Errorf("published %q\n          want %q", got, tt.want)
			}
			if m.runs != tt.runs || m.restarts != tt.restart {
				t.Errorf("runs %d restarts %d, want %d and %d", m.runs, m.restarts, tt.runs, tt.restart)
			}
		})
	}
}

// Every exit is published once, on the change that reports it, for
// LastExit and pilot_job_exits_total.
func TestExitPublishedOnce(t *testing.T) {
	p := policy(RestartNever, -1)
	p.Every = time.Minute
	for _, code := range []int{0, 1} {
		_, acts := run(machine{policy: p}, evStart{}, evSpawned{}, exit(code, 0))
		n := 0
		for _, a := range acts {
			if pub, ok := a.(actPublish); ok && pub.Exit != nil {
				n++
			}
		}
		if n != 1 {
			t.Errorf("code %d: the exit was published %d times", code, n)
		}
	}
}

// Issue 10 item 3: a spawn refused because shutdown began ends the job for
// good without counting a run, and nothing spawns after it.
func TestSpawnRefusedAtShutdown(t *testing.T) {
	m, acts := run(machine{policy: policy(RestartAlways, -1)}, evStart{}, evSpawnRefused{})
	if got := published(acts); got != "starting stopped!" || m.runs != 0 || !m.done() {
		t.Fatalf("published %q, runs %d, done %v", got, m.runs, m.done())
	}
	if _, acts := run(m, evRestartDue{}, evTick{}, evTrigger{}); spawns(acts) != 0 {
		t.Fatal("spawned after a refusal")
	}
}

// Issue 10 item 22: giving up decides the container's fate, so it is an error.
func TestGiveUpIsAnError(t *testing.T) {
	_, acts := run(machine{policy: policy(RestartOnFailure, 0)}, evStart{}, evSpawned{}, exit(1, 0))
	if l, ok := has[actLog](acts); !ok || l.Level != slog.LevelError || l.Msg != "giving up: restart limit reached" {
		t.Fatalf("got %+v", l)
	}
}
