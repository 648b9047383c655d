package jobs

import (
	"bytes"
	"context"
	"log/slog"
	"os"
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
}

// A run's probe verdicts become the job's Healthy and Unhealthy states, and
// the probe ends with the run.
func TestJobProbeDrivesHealthStates(t *testing.T) {
	h := newHarness(t)
	sub := h.deps.Bus.Subscribe()
	spec := shellSpec("app", "echo up; exec sleep 30")
	probeEnded := make(chan struct{})
	spec.Probe = func(ctx context.Context, report func(bool)) {
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
