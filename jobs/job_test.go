package jobs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nodepilot/pilot/jobs/output"
)

// syncBuffer is a goroutine-safe bytes.Buffer for captured output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type harness struct {
	deps   Deps
	out    *syncBuffer
	cancel context.CancelFunc
	done   chan struct{}
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	out := &syncBuffer{}
	r := NewReaper(slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{
		deps: Deps{Log: slog.New(slog.DiscardHandler), Reaper: r, Bus: NewBus(),
			Stdout: output.NewSink(out), Stderr: output.NewSink(out)},
		out: out, cancel: cancel, done: make(chan struct{}),
	}
	go func() { r.Run(ctx); close(h.done) }()
	t.Cleanup(func() { cancel(); <-h.done })
	return h
}

func (h *harness) waitOutput(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(h.out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in output %q", want, h.out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func shellSpec(name, script string) Spec {
	return Spec{
		Name: name, Argv: []string{"/bin/sh", "-c", script}, Env: os.Environ(), Output: output.Prefixed,
		Policy: Policy{MaxRestarts: -1, Backoff: Backoff{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond},
			StopTimeout: 2 * time.Second},
	}
}

func runAll(js ...*Job) *sync.WaitGroup {
	var wg sync.WaitGroup
	for _, j := range js {
		wg.Go(func() { j.Run(context.Background()) })
	}
	return &wg
}

// A job waits for its dependency's state and publishes its own changes in
// order; output is prefixed and whole.
func TestJobDependencyAndStates(t *testing.T) {
	h := newHarness(t)
	sub := h.deps.Bus.Subscribe()
	first := New(shellSpec("first", "echo one"), h.deps)
	secondSpec := shellSpec("second", "echo two")
	secondSpec.After = []Dependency{{Job: "first", State: Succeeded}}
	second := New(secondSpec, h.deps)
	runAll(second, first).Wait()

	if got := h.out.String(); got != "first | one\nsecond | two\n" {
		t.Fatalf("output %q", got)
	}
	var seen []string
	for _, c := range sub.Drain() {
		if c.Job == "second" {
			seen = append(seen, c.State.String())
		}
	}
	if strings.Join(seen, ",") != "starting,running,succeeded" {
		t.Fatalf("second's states: %v", seen)
	}
	if st := second.Status(); !st.Final || st.LastExit == nil || st.LastExit.Code != 0 {
		t.Fatalf("status %+v", st)
	}
}

// Stop runs preStop, signals the group, and kills at stopTimeout a process
// that ignores the signal; the job ends Stopped with 137.
func TestJobStopKillsAtStopTimeout(t *testing.T) {
	h := newHarness(t)
	spec := shellSpec("app", "trap '' TERM; echo up; while :; do sleep 0.05; done")
	spec.Policy.StopTimeout = 200 * time.Millisecond
	spec.Policy.HasPreStop = true
	spec.PreStop = &Hook{Argv: []string{"/bin/sh", "-c", "echo prestop > " + t.TempDir() + "/x"}, Timeout: time.Second}
	j := New(spec, h.deps)
	wg := runAll(j)
	h.waitOutput(t, "app | up")
	start := time.Now()
	j.Stop(syscall.SIGTERM)
	wg.Wait()
	took := time.Since(start)
	st := j.Status()
	if st.State != Stopped || st.LastExit == nil || st.LastExit.Code != 137 {
		t.Fatalf("status %+v", st)
	}
	if took < 200*time.Millisecond || took > time.Second {
		t.Fatalf("stop took %v, want about the 200ms stopTimeout", took)
	}
}

// A hung preStop hook is killed with its group at its timeout and the stop
// goes on.
func TestHungPreStopIsKilled(t *testing.T) {
	h := newHarness(t)
	var log syncBuffer
	h.logTo(&log)
	spec := shellSpec("app", "echo up; exec sleep 30")
	spec.Policy.HasPreStop = true
	spec.PreStop = &Hook{Argv: []string{"/bin/sh", "-c", "sleep 30 & wait"}, Timeout: 200 * time.Millisecond}
	j := New(spec, h.deps)
	wg := runAll(j)
	h.waitOutput(t, "app | up")
	start := time.Now()
	j.Stop(syscall.SIGTERM)
	wg.Wait()
	if took := time.Since(start); took > time.Second {
		t.Fatalf("stop took %v with a hung preStop", took)
	}
	if st := j.Status(); st.LastExit == nil || st.LastExit.Code != 143 {
		t.Fatalf("status %+v", st)
	}
	if !strings.Contains(log.String(), `msg="hook killed at its timeout" job=app hook=preStop timeout=200ms`) {
		t.Errorf("no timeout line in the log:\n%s", log.String())
	}
}

// A hook's output goes where the job's does, in the job's output mode,
// never to pilot's own stdout.
func TestHookOutputFollowsTheJob(t *testing.T) {
	h := newHarness(t)
	var log syncBuffer
	h.logTo(&log)
	spec := shellSpec("app", "echo up; exec sleep 30")
	spec.Policy.HasPreStop = true
	spec.PreStop = &Hook{Argv: []string{"/bin/sh", "-c", "echo draining; echo slow >&2; exit 4"}, Timeout: 5 * time.Second}
	spec.PostStop = &Hook{Argv: []string{"/bin/sh", "-c", "echo cleaned"}, Timeout: 5 * time.Second}
	j := New(spec, h.deps)
	wg := runAll(j)
	h.waitOutput(t, "app | up")
	j.Stop(syscall.SIGTERM)
	wg.Wait()
	j.RunPostStop(t.Context())
	for _, want := range []string{"app | draining\n", "app | slow\n", "app | cleaned\n"} {
		if !strings.Contains(h.out.String(), want) {
			t.Errorf("no %q in the job's output %q", want, h.out.String())
		}
	}
	for _, want := range []string{`msg="hook failed" job=app hook=preStop code=4`, `msg="hook done" job=app hook=postStop`} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("no %q in the log:\n%s", want, log.String())
		}
	}
}

// A run's probe verdicts become the job's Healthy and Unhealthy states, and
// the probe ends with the run.
func TestJobProbeDrivesHealthStates(t *testing.T) {
	h := newHarness(t)
	sub := h.deps.Bus.Subscribe()
	spec := shellSpec("app", "echo up; exec sleep 30")
	probeEnded := make(chan struct{})
	spec.Probe = func(ctx context.Context, _ int, report func(bool)) {
		defer close(probeEnded)
		report(true)
		report(false)
		<-ctx.Done()
	}
	j := New(spec, h.deps)
	wg := runAll(j)
	h.waitOutput(t, "app | up")
	deadline := time.Now().Add(5 * time.Second)
	var states []string
	for !strings.Contains(strings.Join(states, ","), "unhealthy") {
		if time.Now().After(deadline) {
			t.Fatalf("states %v", states)
		}
		time.Sleep(5 * time.Millisecond)
		for _, c := range sub.Drain() {
			states = append(states, c.State.String())
		}
	}
	if got := strings.Join(states, ","); got != "starting,running,healthy,unhealthy" {
		t.Fatalf("states %s", got)
	}
	j.Stop(syscall.SIGTERM)
	wg.Wait()
	select {
	case <-probeEnded:
	default:
		t.Fatal("the probe outlived the run")
	}
}

// StartGate holds the first start until it is closed, on top of After.
func TestJobStartGate(t *testing.T) {
	h := newHarness(t)
	first := New(shellSpec("first", "echo one"), h.deps)
	gate := make(chan struct{})
	spec := shellSpec("gated", "echo gated")
	spec.After = []Dependency{{Job: "first", State: Succeeded}}
	spec.StartGate = gate
	gated := New(spec, h.deps)
	wg := runAll(gated, first)
	<-first.Done()
	select {
	case <-gated.Done():
		t.Fatal("the gated job ran before its gate opened")
	case <-time.After(100 * time.Millisecond): // a gated job does nothing: give it a chance to misbehave
	}
	if st := gated.Status(); st.Runs != 0 || st.State != Idle {
		t.Fatalf("gated job status %+v before its gate opened", st)
	}
	close(gate)
	wg.Wait()
	if got := h.out.String(); got != "first | one\ngated | gated\n" {
		t.Fatalf("output %q", got)
	}
}

// StdoutLines takes a job's stdout line by line; stderr still follows the
// output mode.
func TestJobStdoutLines(t *testing.T) {
	h := newHarness(t)
	var mu sync.Mutex
	var lines []string
	spec := shellSpec("sensor", `echo "a 1"; echo oops >&2; printf 'b{x="y"} 2\npartial'`)
	spec.StdoutLines = func(line []byte) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, string(line))
	}
	runAll(New(spec, h.deps)).Wait()
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(lines, "|"); got != `a 1|b{x="y"} 2|partial` {
		t.Errorf("lines %q", got)
	}
	if got := h.out.String(); got != "sensor | oops\n" {
		t.Errorf("pilot's output %q: want only the stderr line", got)
	}
}

// logTo makes the harness log, at debug level, to w.
func (h *harness) logTo(w io.Writer) {
	h.deps.Log = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Issue 10 item 4: a missing or non-directory dir is blamed, not the
// command, with 126: the command may well be there.
func TestJobMissingDirIsBlamed(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for dir, want := range map[string]string{
		"/no/such/dir": `dir "/no/such/dir": no such file or directory`,
		file:           fmt.Sprintf("dir %q: not a directory", file),
	} {
		h := newHarness(t)
		spec := shellSpec("app", "pwd")
		spec.Dir = dir
		j := New(spec, h.deps)
		runAll(j).Wait()
		st := j.Status()
		if st.LastExit == nil || st.LastExit.Code != 126 || st.LastExit.Err == nil || st.LastExit.Err.Error() != want {
			t.Errorf("dir %s: last exit %v, want 126 (%s)", dir, st.LastExit, want)
		}
	}
}

// Issue 10 item 9: the lookup error says it once, without the PATH.
func TestLookPathError(t *testing.T) {
	for path, want := range map[string]string{
		"/usr/bin:/bin": `exec "nosuchcmd": not found in PATH`,
		"":              `exec "nosuchcmd": not found (PATH is empty)`,
	} {
		_, err := LookPath("nosuchcmd", []string{"PATH=" + path})
		if err == nil || err.Error() != want || !errors.Is(err, exec.ErrNotFound) {
			t.Errorf("PATH %q: got %v, want %q wrapping exec.ErrNotFound", path, err, want)
		}
	}
}

// heldWriter holds the write carrying line "app | 1" until released, as a
// busy log collector would, with the Sink's lock held.
type heldWriter struct {
	w       io.Writer
	release chan struct{}
}

func (h heldWriter) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("app | 1\n")) {
		<-h.release
	}
	return h.w.Write(p)
}

// Issue 10 item 22: a prefixed job's "exited" line comes after its last
// output line, even when the sink is still busy with the job's output as
// the job exits. (The log bypasses the held sink here, so that an early
// exit line shows.)
func TestJobExitedLineFollowsItsOutput(t *testing.T) {
	h := newHarness(t)
	held := heldWriter{w: h.out, release: make(chan struct{})}
	sink := output.NewSink(held)
	h.deps.Stdout, h.deps.Stderr = sink, sink
	h.logTo(h.out)
	// The first line is held in the sink; the rest comes later, in another
	// write, and the job exits.
	j := New(shellSpec("app", "seq 1 100; sleep 0.05; seq 101 200"), h.deps)
	wg := runAll(j)
	var pid int
	deadline := time.Now().Add(5 * time.Second)
	for pid = j.Status().Pid; pid == 0; pid = j.Status().Pid {
		if time.Now().After(deadline) {
			t.Fatal("the job did not start")
		}
		time.Sleep(time.Millisecond)
	}
	// Release the sink once the job is gone (reaped), when its exit is
	// being reported.
	for processExists(pid) {
		if time.Now().After(deadline) {
			t.Fatal("the job did not end")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // time for an early exit line to show
	close(held.release)
	wg.Wait()
	got := h.out.String()
	last, exited := strings.Index(got, "app | 200\n"), strings.Index(got, "msg=exited")
	if last < 0 || exited < 0 || exited < last {
		t.Fatalf("the exited line (at %d) does not follow the last output line (at %d)", exited, last)
	}
}

func processExists(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err == nil
}

// Issue 10 item 21: a periodic job's runs are runs, not restarts; routine
// runs log at debug, a failed one at warn.
func TestPeriodicRunsAreNotRestarts(t *testing.T) {
	h := newHarness(t)
	var log syncBuffer
	h.logTo(&log)
	marker := filepath.Join(t.TempDir(), "ran")
	spec := shellSpec("cron", `if [ -e `+marker+` ]; then exit 3; fi; touch `+marker)
	spec.Policy.Every = 20 * time.Millisecond
	j := New(spec, h.deps)
	wg := runAll(j)
	deadline := time.Now().Add(5 * time.Second)
	for j.Status().Runs < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("status %+v", j.Status())
		}
		time.Sleep(5 * time.Millisecond)
	}
	j.Stop(syscall.SIGTERM)
	wg.Wait()
	if st := j.Status(); st.Restarts != 0 || st.State != Stopped {
		t.Errorf("status %+v: want no restarts", st)
	}
	lines := log.String()
	for _, want := range []string{"level=DEBUG msg=started", "level=DEBUG msg=exited job=cron pid=", "level=WARN msg=exited job=cron pid="} {
		if !strings.Contains(lines, want) {
			t.Errorf("no %q in the log:\n%s", want, lines)
		}
	}
	if strings.Contains(lines, "level=INFO msg=started") || strings.Contains(lines, "level=INFO msg=exited") {
		t.Errorf("a routine run logged at info:\n%s", lines)
	}
}

// Issue 10 items 2 and 22: a job whose dependency failed for good says why
// it will never start, for the supervisor's reason.
func TestJobBlockedByAFailedDependency(t *testing.T) {
	h := newHarness(t)
	first := New(shellSpec("migrate", "exit 5"), h.deps)
	spec := shellSpec("app", "echo never")
	spec.After = []Dependency{{Job: "migrate", State: Succeeded}}
	app := New(spec, h.deps)
	runAll(app, first).Wait()
	if st := app.Status(); st.Blocked != "dependency migrate failed" || st.Runs != 0 || !st.Final {
		t.Fatalf("status %+v", st)
	}
}

// Issue 10 item 20: states read as their names in JSON logs.
func TestStateInJSON(t *testing.T) {
	var b bytes.Buffer
	slog.New(slog.NewJSONHandler(&b, nil)).Info("x", "state", Restarting)
	if !strings.Contains(b.String(), `"state":"restarting"`) {
		t.Fatalf("got %s", b.String())
	}
	if States()[len(States())-1] != Failed || len(States()) != len(stateNames) {
		t.Fatalf("States() = %v", States())
	}
}

// waitFor polls cond until it holds, failing the test after 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitDone waits for a job's Run to return.
func waitDone(t *testing.T, j *Job) {
	t.Helper()
	select {
	case <-j.Done():
	case <-time.After(5 * time.Second):
		t.Fatalf("job %s still runs: status %+v", j.Name(), j.Status())
	}
}

// A job created after its dependency reached the awaited state (a job added
// by a reload) starts at once: it learns the state from the bus's memory.
// "started" is met by a run that is already healthy.
func TestJobCreatedAfterItsDependencyIsUp(t *testing.T) {
	h := newHarness(t)
	dbSpec := shellSpec("db", "exec sleep 30")
	dbSpec.Probe = func(ctx context.Context, _ int, report func(bool)) {
		report(true)
		<-ctx.Done()
	}
	db := New(dbSpec, h.deps)
	dbRun := runAll(db)
	defer dbRun.Wait()
	defer db.Stop(syscall.SIGTERM)
	waitFor(t, "db to be healthy", func() bool { return db.Status().State == Healthy })

	var late []*Job
	for _, state := range []State{Healthy, Running} {
		spec := shellSpec("after-"+state.String(), "echo ran")
		spec.After = []Dependency{{Job: "db", State: state}}
		late = append(late, New(spec, h.deps))
	}
	runAll(late...)
	for _, j := range late {
		waitDone(t, j)
		if st := j.Status(); st.State != Succeeded || st.Runs != 1 {
			t.Errorf("%s: status %+v, want one run that succeeded", j.Name(), st)
		}
	}
}

// A job created after its dependency ended for good in another state never
// starts, and says why.
func TestJobCreatedAfterItsDependencyEnded(t *testing.T) {
	h := newHarness(t)
	db := New(shellSpec("db", "exit 3"), h.deps)
	runAll(db)
	waitDone(t, db)

	spec := shellSpec("app", "echo never")
	spec.After = []Dependency{{Job: "db", State: Succeeded}}
	app := New(spec, h.deps)
	runAll(app)
	waitDone(t, app)
	if st := app.Status(); st.Blocked != "dependency db failed" || st.Runs != 0 || st.State != Stopped || !st.Final {
		t.Fatalf("status %+v, want blocked by db failed", st)
	}
}

// The gate reads a replayed change — the only one a late job gets of each
// job — as the state the dependency has reached.
func TestDependencyGateOnReplayedChanges(t *testing.T) {
	ok := &ExitStatus{}
	failed := &ExitStatus{Code: 1}
	for _, c := range []struct {
		awaited State
		latest  StateChange
		want    string // "start", "never" or "wait"
	}{
		{Healthy, StateChange{State: Healthy}, "start"},
		{Healthy, StateChange{State: Running}, "wait"},
		{Healthy, StateChange{State: Stopped, Final: true, Exit: failed}, "never"},
		{Running, StateChange{State: Running}, "start"},
		{Running, StateChange{State: Healthy}, "start"},
		{Running, StateChange{State: Unhealthy}, "start"},
		{Running, StateChange{State: Starting}, "wait"},
		{Running, StateChange{State: Stopping}, "wait"},
		{Running, StateChange{State: Restarting, Exit: failed}, "wait"},
		{Succeeded, StateChange{State: Succeeded, Final: true, Exit: ok}, "start"},
		{Succeeded, StateChange{State: Failed, Final: true, Exit: failed}, "never"},
		// A periodic or triggered job idle after a good run, or a failed one.
		{Succeeded, StateChange{State: Idle}, "start"},
		{Succeeded, StateChange{State: Idle, Exit: failed}, "wait"},
		{Failed, StateChange{State: Idle}, "wait"},
		{Stopped, StateChange{State: Stopped, Final: true}, "start"},
	} {
		c.latest.Job, c.latest.Replayed = "db", true
		got := "wait"
		switch newDependencyGate([]Dependency{{Job: "db", State: c.awaited}}).observe([]StateChange{c.latest}).(type) {
		case evStart:
			got = "start"
		case evNeverStart:
			got = "never"
		}
		if got != c.want {
			t.Errorf("awaiting %s, db %s (exit %v, final %v): %s, want %s",
				c.awaited, c.latest.State, c.latest.Exit, c.latest.Final, got, c.want)
		}
	}
}
