package main

// One supervised run: `unshare --pid --fork --mount-proc --kill-child
// SUPERVISOR... CHILD...`, a FIFO the child writes its timestamped lines to,
// and teardown by SIGKILL to the namespace's PID 1.

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Sup is one column: a supervisor (or none) and how to invoke it.
type Sup struct {
	Name    string `json:"name"`
	Path    string `json:"path,omitempty"`
	Version string `json:"version,omitempty"`
	Skip    string `json:"skip,omitempty"` // why the column is not measured
	SHA256  string `json:"sha256,omitempty"`
}

// Child is the supervised command: Argv as run directly, and the same for
// pm2 (script + interpreter + args).
type Child struct {
	Argv   []string
	Script string // pm2: script
	Interp string // pm2: interpreter ("none" to exec Script directly)
	Args   []string
}

// Line is one line the child wrote: "TAG CLOCK VALUE NSPID [EXTRA]".
type Line struct {
	Tag      string
	Clock    string // "mono" (CLOCK_MONOTONIC) or "real" (CLOCK_REALTIME)
	T        int64  // ns
	NSPid    int
	Extra    string
	RecvMono int64
}

type Run struct {
	Sup      *Sup
	Dir      string
	LineFifo string
	T0Mono   int64
	T0Real   int64
	cmd      *exec.Cmd
	log      *os.File
	fifo     *os.File
	lines    chan Line
	pending  []Line
	pid1     int
	waited   chan struct{}
	waitErr  error
	mu       sync.Mutex
	killed   bool
}

var (
	activeMu sync.Mutex
	active   = map[*Run]bool{}
	runSeq   int
)

// killAll tears down every live run (used on harness interrupt).
func killAll() {
	activeMu.Lock()
	rs := make([]*Run, 0, len(active))
	for r := range active {
		rs = append(rs, r)
	}
	activeMu.Unlock()
	for _, r := range rs {
		r.Kill()
	}
}

func (b *Bench) newRunDir(sup *Sup, what string) (string, error) {
	activeMu.Lock()
	runSeq++
	n := runSeq
	activeMu.Unlock()
	d := filepath.Join(b.tmp, fmt.Sprintf("%04d-%s-%s", n, what, sup.Name))
	return d, os.MkdirAll(d, 0o755)
}

// argv builds the command for sup supervising c, run in dir.
func (b *Bench) argv(sup *Sup, c Child, dir string) ([]string, []string, error) {
	// pilot's control socket is on by default, as for users; one path per
	// run, so that a pilot still ending never meets the next one's.
	env := append(os.Environ(), "PILOT_SOCKET="+filepath.Join(dir, "pilot.sock"))
	switch sup.Name {
	case "none":
		return c.Argv, env, nil
	case "tini", "dumb-init", "go-floor", "pilot-before", "pilot":
		return append([]string{sup.Path, "--"}, c.Argv...), env, nil
	case "pm2-runtime":
		app := map[string]any{
			"name":        "bench",
			"script":      c.Script,
			"interpreter": c.Interp,
			"args":        c.Args,
		}
		eco, _ := json.MarshalIndent(map[string]any{"apps": []any{app}}, "", "  ")
		p := filepath.Join(dir, "ecosystem.json")
		if err := os.WriteFile(p, eco, 0o644); err != nil {
			return nil, nil, err
		}
		home := filepath.Join(dir, "pm2home") // fresh per run, like a new container
		env = append(env, "PM2_HOME="+home)
		return []string{sup.Path, "start", p}, env, nil
	}
	return nil, nil, fmt.Errorf("unknown supervisor %q", sup.Name)
}

// startRun starts one supervised run. The clocks are read immediately before
// the fork+execve of unshare (see README: every column, including "none",
// pays the same unshare + mount-proc cost).
func (b *Bench) startRun(sup *Sup, what string, mk func(fifo string) Child) (*Run, error) {
	dir, err := b.newRunDir(sup, what)
	if err != nil {
		return nil, err
	}
	r := &Run{Sup: sup, Dir: dir, LineFifo: filepath.Join(dir, "lines.fifo"), lines: make(chan Line, 256), waited: make(chan struct{})}
	if err := syscall.Mkfifo(r.LineFifo, 0o666); err != nil {
		return nil, fmt.Errorf("mkfifo: %w", err)
	}
	// O_RDWR: never blocks, never sees EOF when a writer closes.
	r.fifo, err = os.OpenFile(r.LineFifo, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	go r.readLines()
	child := mk(r.LineFifo)
	av, env, err := b.argv(sup, child, dir)
	if err != nil {
		r.fifo.Close()
		return nil, err
	}
	r.log, err = os.Create(filepath.Join(dir, "supervisor.log"))
	if err != nil {
		r.fifo.Close()
		return nil, err
	}
	full := append([]string{"--pid", "--fork", "--mount-proc", "--kill-child"}, av...)
	r.cmd = exec.Command(b.unshare, full...)
	r.cmd.Env = env
	r.cmd.Dir = dir
	r.cmd.Stdout = r.log
	r.cmd.Stderr = r.log
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	activeMu.Lock()
	active[r] = true
	activeMu.Unlock()
	r.T0Real = realNow()
	r.T0Mono = monoNow()
	if err := r.cmd.Start(); err != nil {
		r.cleanup()
		return nil, err
	}
	go func() {
		r.waitErr = r.cmd.Wait()
		close(r.waited)
	}()
	return r, nil
}

func (r *Run) readLines() {
	sc := bufio.NewScanner(r.fifo)
	for sc.Scan() {
		now := monoNow()
		f := strings.Fields(sc.Text())
		if len(f) < 4 {
			continue
		}
		t, err1 := strconv.ParseInt(f[2], 10, 64)
		pid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			continue
		}
		ln := Line{Tag: f[0], Clock: f[1], T: t, NSPid: pid, RecvMono: now}
		if len(f) > 4 {
			ln.Extra = strings.Join(f[4:], " ")
		}
		select {
		case r.lines <- ln:
		default: // never block the reader; 256 lines is far more than any child writes
		}
	}
}

// Since converts a child's timestamp into ns after the run's t0 (same clock).
func (r *Run) Since(l Line) int64 {
	if l.Clock == "real" {
		return l.T - r.T0Real
	}
	return l.T - r.T0Mono
}

// WaitLine waits for the child's line with the given tag.
func (r *Run) WaitLine(tag string, timeout time.Duration) (Line, error) {
	for i, l := range r.pending {
		if l.Tag == tag {
			r.pending = append(r.pending[:i], r.pending[i+1:]...)
			return l, nil
		}
	}
	tm := time.NewTimer(timeout)
	defer tm.Stop()
	for {
		select {
		case l := <-r.lines:
			if l.Tag == tag {
				return l, nil
			}
			r.pending = append(r.pending, l)
		case <-r.waited:
			// drain what arrived before the exit
			select {
			case l := <-r.lines:
				if l.Tag == tag {
					return l, nil
				}
				r.pending = append(r.pending, l)
				continue
			case <-time.After(20 * time.Millisecond):
			}
			return Line{}, fmt.Errorf("%s: supervisor exited (%v) before the child wrote %q%s", r.Sup.Name, r.waitErr, tag, r.logTail())
		case <-tm.C:
			return Line{}, fmt.Errorf("%s: no %q line from the child within %v%s", r.Sup.Name, tag, timeout, r.logTail())
		}
	}
}

// TryLine returns a line with the tag if one already arrived.
func (r *Run) TryLine(tag string) (Line, bool) {
	for {
		select {
		case l := <-r.lines:
			r.pending = append(r.pending, l)
			continue
		default:
		}
		break
	}
	for _, l := range r.pending {
		if l.Tag == tag {
			return l, true
		}
	}
	return Line{}, false
}

// Pid1 returns the host pid of the namespace's PID 1 (unshare's child).
func (r *Run) Pid1(timeout time.Duration) (int, error) {
	if r.pid1 != 0 {
		return r.pid1, nil
	}
	deadline := time.Now().Add(timeout)
	for {
		if c := childrenOf(r.cmd.Process.Pid); len(c) > 0 {
			r.pid1 = c[0]
			return r.pid1, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%s: namespace PID 1 not found under unshare %d", r.Sup.Name, r.cmd.Process.Pid)
		}
		select {
		case <-r.waited:
			return 0, fmt.Errorf("%s: unshare exited (%v) early%s", r.Sup.Name, r.waitErr, r.logTail())
		case <-time.After(200 * time.Microsecond):
		}
	}
}

// Exited reports whether unshare (hence the namespace) is gone.
func (r *Run) Exited() bool {
	select {
	case <-r.waited:
		return true
	default:
		return false
	}
}

// Kill tears the namespace down (SIGKILL to its PID 1 kills every process
// in it) and waits for unshare.
func (r *Run) Kill() {
	r.mu.Lock()
	if r.killed {
		r.mu.Unlock()
		return
	}
	r.killed = true
	r.mu.Unlock()
	if !r.Exited() {
		if r.pid1 == 0 {
			if c := childrenOf(r.cmd.Process.Pid); len(c) > 0 {
				r.pid1 = c[0]
			}
		}
		if r.pid1 != 0 {
			syscall.Kill(r.pid1, syscall.SIGKILL)
		}
		select {
		case <-r.waited:
		case <-time.After(5 * time.Second):
			r.cmd.Process.Kill() // --kill-child takes PID 1 down with it
			select {
			case <-r.waited:
			case <-time.After(10 * time.Second):
				fmt.Fprintf(os.Stderr, "warning: %s run in %s did not exit after SIGKILL\n", r.Sup.Name, r.Dir)
			}
		}
	}
	r.cleanup()
}

func (r *Run) cleanup() {
	activeMu.Lock()
	delete(active, r)
	activeMu.Unlock()
	if r.fifo != nil {
		r.fifo.Close()
	}
	if r.log != nil {
		r.log.Close()
	}
}

func (r *Run) logTail() string {
	b, err := os.ReadFile(filepath.Join(r.Dir, "supervisor.log"))
	if err != nil || len(b) == 0 {
		return ""
	}
	if len(b) > 1500 {
		b = b[len(b)-1500:]
	}
	return "\n--- " + r.Sup.Name + " output (tail) ---\n" + string(b) + "\n---"
}

var errNever = errors.New("never")
