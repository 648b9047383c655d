package jobs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func waitStatus(t *testing.T, j *Job, what string, cond func(Status) bool) Status {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := j.Status()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached; status %+v", what, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func runningInstances(st Status) []int {
	var pids []int
	for _, in := range st.Instances {
		if in.State == Running || in.State == Healthy {
			pids = append(pids, in.Pid)
		}
	}
	return pids
}

func startPool(t *testing.T, h *harness, spec Spec) *Job {
	t.Helper()
	j := New(spec, h.deps)
	go j.Run(context.Background())
	t.Cleanup(func() {
		j.Stop(syscall.SIGTERM)
		<-j.Done()
	})
	return j
}

// A pool runs N instances, each with its index, restarted on its own; a
// roll replaces every one of them and never has fewer running.
func TestPoolRunsAndRolls(t *testing.T) {
	h := newHarness(t)
	spec := shellSpec("web", `echo "up $PILOT_INSTANCE"; exec sleep 60`)
	spec.Instances, spec.ReadyTimeout, spec.Policy.Restart = 3, 5*time.Second, RestartAlways
	j := startPool(t, h, spec)
	// The aggregate follows the instances' events, so it may trail them
	// by a moment: wait for both.
	st := waitStatus(t, j, "3 running, the aggregate too", func(st Status) bool {
		return len(runningInstances(st)) == 3 && st.State == Running
	})
	if st.Final {
		t.Fatalf("aggregate %s final=%v, want running", st.State, st.Final)
	}
	for i := range 3 {
		h.waitOutput(t, fmt.Sprintf("up %d", i))
	}
	before := runningInstances(st)

	// One instance killed is restarted alone.
	syscall.Kill(before[1], syscall.SIGKILL)
	st = waitStatus(t, j, "instance 1 restarted", func(st Status) bool {
		return len(st.Instances) == 3 && st.Instances[1].Pid != 0 && st.Instances[1].Pid != before[1]
	})
	if st.Instances[0].Pid != before[0] || st.Instances[2].Pid != before[2] {
		t.Errorf("restarting instance 1 touched the others: %v → %+v", before, st.Instances)
	}

	before = runningInstances(j.Status())
	minRunning := 3
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() { // the invariant while rolling: never fewer than 3 running
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			default:
			}
			minRunning = min(minRunning, len(runningInstances(j.Status())))
			time.Sleep(time.Millisecond)
		}
	}()
	if err := j.Roll(t.Context(), nil, "test"); err != nil {
		t.Fatal(err)
	}
	close(stop)
	<-watched
	after := runningInstances(j.Status())
	if len(after) != 3 || slices.ContainsFunc(after, func(p int) bool { return slices.Contains(before, p) }) {
		t.Fatalf("after the roll: %v, before %v: want 3 new pids", after, before)
	}
	if minRunning < 3 {
		t.Errorf("the roll dropped to %d running instances", minRunning)
	}
	if r := j.LastRoll(); r == nil || r.Err != "" || r.Replaced != 3 {
		t.Errorf("last roll %+v", r)
	}
	if got := len(j.Status().Instances); got != 3 {
		t.Errorf("%d instances listed after the roll, want 3", got)
	}
}

// A new instance that never gets ready aborts the roll and is stopped; the
// old ones keep running, and the failure is reported.
func TestPoolRollAbortsWhenNotReady(t *testing.T) {
	h := newHarness(t)
	spec := shellSpec("web", `exec sleep 60`)
	spec.Instances, spec.ReadyTimeout = 2, 300*time.Millisecond
	ready := true
	spec.Probe = func(ctx context.Context, _ int, report func(bool)) {
		if ready {
			report(true)
		}
		<-ctx.Done()
	}
	j := startPool(t, h, spec)
	st := waitStatus(t, j, "2 healthy", func(st Status) bool {
		return len(st.Instances) == 2 && st.Instances[0].State == Healthy && st.Instances[1].State == Healthy
	})
	if st.State != Healthy {
		t.Fatalf("aggregate %s, want healthy", st.State)
	}
	before := []int{st.Instances[0].Pid, st.Instances[1].Pid}
	next := spec
	next.Probe = func(ctx context.Context, _ int, report func(bool)) { <-ctx.Done() } // never ready
	err := j.Roll(t.Context(), &next, "test")
	if !errors.Is(err, errInstanceTimeout) || !strings.Contains(err.Error(), "new instance 0") {
		t.Fatalf("roll: %v, want a timeout of new instance 0", err)
	}
	st = j.Status()
	if len(st.Instances) != 2 || st.Instances[0].Pid != before[0] || st.Instances[1].Pid != before[1] || st.State != Healthy {
		t.Fatalf("after the failed roll: %+v, want the old %v serving", st, before)
	}
	if r := j.LastRoll(); r == nil || r.Err == "" || r.Replaced != 0 {
		t.Errorf("last roll %+v", r)
	}
}

// A roll onto a spec with fewer or more instances ends with that many.
func TestPoolRollResizes(t *testing.T) {
	h := newHarness(t)
	spec := shellSpec("web", `exec sleep 60`)
	spec.Instances = 3
	j := startPool(t, h, spec)
	waitStatus(t, j, "3 running", func(st Status) bool { return len(runningInstances(st)) == 3 })
	for _, n := range []int{1, 4} {
		next := spec
		next.Instances = n
		if err := j.Roll(t.Context(), &next, "test"); err != nil {
			t.Fatal(err)
		}
		st := waitStatus(t, j, fmt.Sprint(n, " running"), func(st Status) bool { return len(runningInstances(st)) == n })
		if len(st.Instances) != n {
			t.Fatalf("%d instances listed, want %d", len(st.Instances), n)
		}
	}
}

// A pool is final once it is stopped, and its stop reaches every instance.
func TestPoolStop(t *testing.T) {
	h := newHarness(t)
	sub := h.deps.Bus.Subscribe()
	spec := shellSpec("web", `exec sleep 60`)
	spec.Instances = 2
	j := New(spec, h.deps)
	go j.Run(context.Background())
	waitStatus(t, j, "2 running", func(st Status) bool { return len(runningInstances(st)) == 2 })
	pids := j.Pids()
	j.Stop(syscall.SIGTERM)
	<-j.Done()
	if st := j.Status(); st.State != Stopped || !st.Final {
		t.Fatalf("after stop: %s final=%v", st.State, st.Final)
	}
	for _, pid := range pids {
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("instance pid %d still alive", pid)
		}
	}
	var states []string
	for _, c := range sub.Drain() {
		states = append(states, c.State.String())
	}
	if got := strings.Join(states, " "); !strings.HasSuffix(got, "stopped") || strings.Count(got, "stopped") != 1 {
		t.Errorf("the shared bus heard %q: want one job whose last state is stopped", got)
	}
}

// A run with sockets inherits them as fds 3… with LISTEN_FDS, LISTEN_FDNAMES
// and LISTEN_PID equal to its own pid (through the trampoline).
func TestListenersInherited(t *testing.T) {
	h := newHarness(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	t.Cleanup(func() { f.Close() })
	spec := shellSpec("web", `echo "pid=$$ listen_pid=$LISTEN_PID fds=$LISTEN_FDS names=$LISTEN_FDNAMES"; readlink /proc/$$/fd/3`)
	spec.Env = append(spec.Env, "LISTEN_FDS=9", "LISTEN_PID=1")
	spec.Policy.MaxRestarts = 0
	spec.Listeners = []Listener{{Name: "listen0", File: f}}
	j := New(spec, h.deps)
	go j.Run(context.Background())
	<-j.Done()
	out := h.out.String()
	var pid, lpid int
	var fds, names string
	line := out[strings.Index(out, "pid="):]
	if _, err := fmt.Sscanf(line, "pid=%d listen_pid=%d fds=%s names=%s", &pid, &lpid, &fds, &names); err != nil {
		t.Fatalf("%v in %q", err, out)
	}
	if pid != lpid || fds != "1" || names != "listen0" {
		t.Errorf("got pid=%d LISTEN_PID=%d LISTEN_FDS=%s LISTEN_FDNAMES=%s", pid, lpid, fds, names)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("socket:[%d]", st.Ino); !strings.Contains(out, want) {
		t.Errorf("fd 3 is not the socket %s:\n%s", want, out)
	}
	_ = os.Getpid
}
