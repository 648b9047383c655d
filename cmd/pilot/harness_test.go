package main

import (
	"bytes"
	"context"
	"fmt"
	"github.com/nodepilot/pilot/jobs"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	jobs.RunTrampoline() // the test binary is pilot, so its jobs' trampoline too
	switch {
	case len(os.Args) > 1 && os.Args[1] == "helper":
		os.Exit(helperMain(os.Args[2:]))
	case os.Getenv(roleEnv) == "pilot":
		resetInheritedSignalMask()
		os.Unsetenv(roleEnv) // the jobs are not pilots
		os.Exit(run(context.Background(), os.Args[1:], stdio{os.Stdin, os.Stdout, os.Stderr}, os.Environ()))
	}
	os.Exit(m.Run())
}

// raceOptions keeps the race detector (when on) from sleeping a second at
// every exit of pilot and of the helpers, which would skew every timing.
const raceOptions = "GORACE=atexit_sleep_ms=0"

// self is the test binary; "self helper MODE" runs a helper child.
func self(t *testing.T) string {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

func helperArgv(t *testing.T, args ...string) []string {
	return append([]string{self(t), "helper"}, args...)
}

// requireUnshare fails the test in CI and skips it loudly elsewhere when the
// machine cannot make PID namespaces.
func requireUnshare(t *testing.T) {
	t.Helper()
	err := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "true").Run()
	if err == nil {
		return
	}
	msg := fmt.Sprintf("PID 1 tests need `unshare --pid --fork --mount-proc` as root (util-linux): %v", err)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip("SKIPPED — " + msg)
}

// pilotProc is a pilot under test, as PID 1 of a fresh PID namespace (pid1)
// or as a plain child of the test.
type pilotProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	pid    int // pilot's pid as seen from the test
	out    *lineLog
	errLog *lineLog
	done   chan struct{}
	code   int
	ended  time.Time
	// socket is its control socket (PILOT_SOCKET).
	socket string
}

type pilotOpts struct {
	pid1  bool
	env   []string
	stdin io.Reader
	// wrap prefixes the command (e.g. nohup).
	wrap []string
}

func startPilot(t *testing.T, o pilotOpts, args ...string) *pilotProc {
	t.Helper()
	argv := append([]string{self(t)}, args...)
	if o.pid1 {
		requireUnshare(t)
		argv = append([]string{"unshare", "--pid", "--fork", "--mount-proc", "--kill-child"}, argv...)
	}
	argv = append(o.wrap, argv...)
	cmd := exec.Command(argv[0], argv[1:]...)
	// Each pilot its own control socket, as each container has its own
	// /tmp: tests run pilots side by side.
	socket := filepath.Join(t.TempDir(), "pilot.sock")
	for _, kv := range o.env {
		if v, ok := strings.CutPrefix(kv, "PILOT_SOCKET="); ok {
			socket = v
		}
	}
	cmd.Env = append(append(os.Environ(), roleEnv+"=pilot", "PILOT_LOG_LEVEL=debug", raceOptions, "PILOT_SOCKET="+socket), o.env...)
	cmd.Stdin = o.stdin
	p := &pilotProc{t: t, cmd: cmd, out: newLineLog(), errLog: newLineLog(), done: make(chan struct{}), socket: socket}
	cmd.Stdout, cmd.Stderr = p.out, p.errLog
	cmd.WaitDelay = 5 * time.Second // a backstop: never hang on a pipe an escapee holds
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.pid = cmd.Process.Pid
	go func() {
		err := cmd.Wait()
		p.ended = time.Now()
		p.code = cmd.ProcessState.ExitCode()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			p.code = 128 + int(ws.Signal())
		}
		_ = err
		close(p.done)
	}()
	if o.pid1 {
		p.pid = waitFor(t, 5*time.Second, "pilot as PID 1", func() (int, bool) {
			kids := childPids(cmd.Process.Pid)
			select {
			case <-p.done: // already over: no pid to signal
				return 0, true
			default:
			}
			return firstOr(kids), len(kids) > 0
		})
	}
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			// Outside a PID namespace pilot's children outlive it and
			// would hold its output pipes open (and Wait with them).
			for _, d := range descendantsOf(cmd.Process.Pid) {
				_ = syscall.Kill(d.pid, syscall.SIGKILL)
			}
			_ = syscall.Kill(p.pid, syscall.SIGKILL)
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("pilot stdout:\n%s\npilot stderr:\n%s", p.out.String(), p.errLog.String())
		}
	})
	return p
}

func firstOr(s []int) int {
	if len(s) == 0 {
		return 0
	}
	return s[0]
}

func (p *pilotProc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := syscall.Kill(p.pid, sig); err != nil {
		p.t.Fatalf("signal %v: %v", sig, err)
	}
}

// wait returns pilot's exit code, failing the test after timeout.
func (p *pilotProc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(timeout):
		p.t.Fatalf("pilot still running after %v", timeout)
		return -1
	}
}

// lineLog collects a stream's lines and lets tests wait for one.
type lineLog struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	lines   []string
	changed chan struct{}
}

func newLineLog() *lineLog { return &lineLog{changed: make(chan struct{})} }

func (l *lineLog) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(b)
	for {
		line, err := l.buf.ReadString('\n')
		if err != nil {
			l.buf.Reset()
			l.buf.WriteString(line)
			break
		}
		l.lines = append(l.lines, strings.TrimRight(line, "\n"))
	}
	close(l.changed)
	l.changed = make(chan struct{})
	return len(b), nil
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n") + l.buf.String()
}

func (l *lineLog) Lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// waitLine waits for a line matching re and returns its submatches.
func (l *lineLog) waitLine(t *testing.T, timeout time.Duration, re string) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.After(timeout)
	for {
		l.mu.Lock()
		for _, line := range l.lines {
			if m := rx.FindStringSubmatch(line); m != nil {
				l.mu.Unlock()
				return m
			}
		}
		changed := l.changed
		l.mu.Unlock()
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("no line matching %q within %v", re, timeout)
		}
	}
}

func (l *lineLog) count(re string) int {
	rx := regexp.MustCompile(re)
	n := 0
	for _, line := range l.Lines() {
		if rx.MatchString(line) {
			n++
		}
	}
	return n
}

// waitFor polls cond every 5 ms until it holds or timeout passes.
func waitFor[T any](t *testing.T, timeout time.Duration, what string, cond func() (T, bool)) T {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		v, ok := cond()
		if ok {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// childPids lists the children of pid from /proc.
func childPids(pid int) []int {
	var out []int
	for _, p := range procTable() {
		if p.ppid == pid {
			out = append(out, p.pid)
		}
	}
	return out
}

type procEntry struct {
	pid, ppid int
	state     byte
}

func procTable() []procEntry {
	dirs, _ := os.ReadDir("/proc")
	var table []procEntry
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(data, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(data[i+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		table = append(table, procEntry{pid, ppid, f[0][0]})
	}
	return table
}

// descendantsOf lists every process below pid, zombies included.
func descendantsOf(pid int) []procEntry {
	table := procTable()
	var out []procEntry
	frontier := map[int]bool{pid: true}
	for len(frontier) > 0 {
		next := map[int]bool{}
		for _, p := range table {
			if frontier[p.ppid] {
				out = append(out, p)
				next[p.pid] = true
			}
		}
		frontier = next
	}
	return out
}

func processAlive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(data, ')')
	return i > 0 && len(data) > i+2 && data[i+2] != 'Z'
}

// writeConfig writes a YAML config into a temp dir and returns its path.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pilot.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// yamlArgv renders an argv as a YAML flow sequence.
func yamlArgv(argv ...string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = strconv.Quote(a)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// logLine reports whether line holds every part, in any order, as slog may
// place attributes around the message.
func logLine(line string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(line, p) {
			return false
		}
	}
	return true
}

// logTime extracts slog's time= field from a log line.
func logTime(t *testing.T, line string) time.Time {
	t.Helper()
	m := regexp.MustCompile(`time=(\S+)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no time in %q", line)
	}
	ts, err := time.Parse(time.RFC3339Nano, m[1])
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func readFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	return string(b), err
}
