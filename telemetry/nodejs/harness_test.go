package nodejs

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/nodepilot/pilot/test/toolbin"
)

// requireNode returns node's path; without it the test fails.
func requireNode(t *testing.T) string {
	t.Helper()
	return toolbin.RequireCommand(t, "node")
}

// harness is one Agents on a fresh directory and registry, running until
// the test ends, with the pids of the test's "jobs" and what happened.
type harness struct {
	t    *testing.T
	a    *Agents
	reg  *prometheus.Registry
	logs *toolbin.LockedBuffer
	dir  string

	mu     sync.Mutex
	pids   map[string][]int
	events []event
	pub    []Event // what OnEvent got
	cancel context.CancelFunc
	done   chan struct{}
}

// newHarness builds Agents; tune, when set, adjusts its knobs before Run.
func newHarness(t *testing.T, tune func(*Agents)) *harness {
	t.Helper()
	// A short path: a unix socket's path must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "njs-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return newHarnessIn(t, dir, tune)
}

func newHarnessIn(t *testing.T, dir string, tune func(*Agents)) *harness {
	t.Helper()
	h := &harness{t: t, reg: prometheus.NewRegistry(), logs: &toolbin.LockedBuffer{}, dir: dir, pids: map[string][]int{}, done: make(chan struct{})}
	log := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := New(dir, h.reg, log, Options{Pids: h.pidsOf, OnEvent: h.recordPub})
	if err != nil {
		t.Fatal(err)
	}
	a.events = h.record
	if tune != nil {
		tune(a)
	}
	h.a = a
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { a.Run(ctx); close(h.done) }()
	t.Cleanup(h.stop)
	return h
}

// stop ends Run and waits for it.
func (h *harness) stop() {
	h.cancel()
	select {
	case <-h.done:
	case <-time.After(10 * time.Second):
		h.t.Error("Agents.Run did not return within 10s of its context ending")
	}
}

func (h *harness) pidsOf(job string) []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.pids[job])
}

// setPid makes pid the job's only process.
func (h *harness) setPid(job string, pid int) {
	h.mu.Lock()
	h.pids[job] = []int{pid}
	h.mu.Unlock()
}

// addPid adds pid to the job's processes (cluster mode).
func (h *harness) addPid(job string, pid int) {
	h.mu.Lock()
	h.pids[job] = append(h.pids[job], pid)
	h.mu.Unlock()
}

func (h *harness) recordPub(ev Event) {
	h.mu.Lock()
	h.pub = append(h.pub, ev)
	h.mu.Unlock()
}

// pubOf returns the events OnEvent got of one kind from one pid.
func (h *harness) pubOf(kind EventKind, pid int) []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Event
	for _, e := range h.pub {
		if e.Kind == kind && e.Pid == pid {
			out = append(out, e)
		}
	}
	return out
}

func (h *harness) record(ev event) {
	h.mu.Lock()
	h.events = append(h.events, ev)
	h.mu.Unlock()
}

func (h *harness) eventsOf(kind, job string) []event {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []event
	for _, e := range h.events {
		if e.kind == kind && e.job == job {
			out = append(out, e)
		}
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// app is a node process started by a test.
type app struct {
	cmd    *exec.Cmd
	stdout *toolbin.LockedBuffer
	stderr *toolbin.LockedBuffer
	stdin  io.WriteCloser
	done   chan struct{}
	code   int
}

// startApp runs node with args (relative to testdata/) in env; job, when
// set, records its pid as that job's main pid.
func (h *harness) startApp(job string, env []string, args ...string) *app {
	h.t.Helper()
	return startNode(h.t, env, nil, func(pid int) {
		if job != "" {
			h.setPid(job, pid)
		}
	}, args...)
}

// startNode runs node; files become its fds 3, 4, ….
func startNode(t *testing.T, env []string, files []*os.File, started func(pid int), args ...string) *app {
	t.Helper()
	node := requireNode(t)
	a := &app{stdout: &toolbin.LockedBuffer{}, stderr: &toolbin.LockedBuffer{}, done: make(chan struct{})}
	a.cmd = exec.Command(node, args...)
	a.cmd.Dir = "testdata"
	a.cmd.Env = env
	a.cmd.ExtraFiles = files
	a.cmd.Stdout = a.stdout
	a.cmd.Stderr = a.stderr
	in, err := a.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	a.stdin = in
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if started != nil {
		started(a.cmd.Process.Pid)
	}
	go func() {
		_ = a.cmd.Wait()
		a.code = a.cmd.ProcessState.ExitCode()
		close(a.done)
	}()
	t.Cleanup(func() {
		select {
		case <-a.done:
		default:
			_ = a.cmd.Process.Kill()
			<-a.done
		}
	})
	return a
}

// wait waits for the app to exit on its own within d.
func (a *app) wait(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-a.done:
	case <-time.After(d):
		t.Fatalf("node %v did not exit on its own within %v\nstdout:\n%s\nstderr:\n%s", a.cmd.Args[1:], d, a.stdout, a.stderr)
	}
}

// baseEnv is the test's environment without any NODE_OPTIONS or agent
// variables, plus extra.
func baseEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == envNodeOp || strings.HasPrefix(k, "PILOT_NODE") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// series returns the gathered samples of one family, by their labels
// rendered as "k=v,k=v"; an empty label is left out, as Prometheus reads it.
func (h *harness) series(name string) map[string]*dto.Metric {
	h.t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[string]*dto.Metric{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, lp := range m.GetLabel() {
				if lp.GetValue() == "" {
					continue
				}
				ls = append(ls, lp.GetName()+"="+lp.GetValue())
			}
			out[strings.Join(ls, ",")] = m
		}
	}
	return out
}

func testdata(name string) string { return filepath.Join("testdata", name) }
