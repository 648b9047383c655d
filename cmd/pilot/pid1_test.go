package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// RELIABILITY A5: exit codes pass through unchanged, and death by signal N
// gives 128+N, in tini mode and in config mode.
func TestExitCodesPassThrough(t *testing.T) {
	t.Parallel()
	type tc struct {
		name  string
		shell string
		want  int
	}
	var cases []tc
	for _, code := range []int{0, 1, 2, 32, 64, 127, 254, 255} {
		cases = append(cases, tc{fmt.Sprintf("exit %d", code), fmt.Sprintf("exit %d", code), code})
	}
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGSEGV, syscall.SIGTERM, syscall.SIGQUIT, syscall.SIGHUP} {
		cases = append(cases, tc{"killed by " + sig.String(), fmt.Sprintf("kill -%d $$", int(sig)), 128 + int(sig)})
	}
	for _, c := range cases {
		t.Run("tini/"+c.name, func(t *testing.T) {
			t.Parallel()
			p := startPilot(t, pilotOpts{pid1: true}, "--", "/bin/sh", "-c", c.shell)
			if got := p.wait(10 * time.Second); got != c.want {
				t.Fatalf("exit code %d, want %d", got, c.want)
			}
		})
		t.Run("config/"+c.name, func(t *testing.T) {
			t.Parallel()
			// $$ is the config's escape for a literal $, as in compose files.
			shell := strings.ReplaceAll(c.shell, "$", "$$")
			cfg := writeConfig(t, fmt.Sprintf("jobs:\n  - name: app\n    main: true\n    shell: %q\n", shell))
			p := startPilot(t, pilotOpts{pid1: true}, "run", "--config", cfg)
			if got := p.wait(10 * time.Second); got != c.want {
				t.Fatalf("exit code %d, want %d", got, c.want)
			}
		})
	}
}

// RELIABILITY A6: a missing binary gives 127 and a file that cannot be
// executed 126, each with a message naming the path; with restarts allowed
// the retries are paced by the backoff, never a hot loop.
func TestExecFailure(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notExec := filepath.Join(dir, "not-executable")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "no-such-binary")
	for _, c := range []struct {
		path string
		want int
	}{{missing, 127}, {notExec, 126}} {
		p := startPilot(t, pilotOpts{pid1: true}, "--", c.path)
		if got := p.wait(5 * time.Second); got != c.want {
			t.Fatalf("%s: exit %d, want %d", c.path, got, c.want)
		}
		if !strings.Contains(p.errLog.String(), c.path) {
			t.Fatalf("error does not name %s:\n%s", c.path, p.errLog.String())
		}
	}

	cfg := writeConfig(t, fmt.Sprintf(`jobs:
  - name: app
    main: true
    exec: [%q]
    restart: {policy: always, backoff: {initial: 100ms, max: 400ms}}
`, missing))
	p := startPilot(t, pilotOpts{pid1: true}, "run", "--config", cfg)
	attempt := `msg="cannot start" `
	waitFor(t, 10*time.Second, "four start attempts", func() (int, bool) {
		n := p.errLog.count(attempt)
		return n, n >= 4
	})
	p.signal(syscall.SIGTERM)
	p.wait(5 * time.Second)
	// The attempts are paced by the backoff, 100, 200, 400 ms (jitter
	// ±20%): a gap may grow under load, never shrink.
	var at []time.Time
	for _, l := range p.errLog.Lines() {
		if strings.Contains(l, attempt) {
			at = append(at, logTime(t, l))
		}
	}
	for i, backoff := range []time.Duration{100, 200, 400} {
		if gap := at[i+1].Sub(at[i]); gap < backoff*time.Millisecond*75/100 {
			t.Errorf("attempt %d came %v after the one before; want at least the backoff, %v (-20%%)", i+2, gap, backoff*time.Millisecond)
		}
	}
}

// RELIABILITY A4: SIGTERM to PID 1 reaches the app exactly once, and pilot
// exits with the app's code: 0 when it handles TERM and exits 0, 143 when it
// dies of it.
func TestStopSignalOnceAndExitCode(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		onTerm string
		want   int
	}{{"exit:0", 0}, {"exit:3", 3}, {"die", 143}} {
		t.Run(c.onTerm, func(t *testing.T) {
			t.Parallel()
			p := startPilot(t, pilotOpts{pid1: true}, append([]string{"--"}, helperArgv(t, "signals", c.onTerm)...)...)
			p.out.waitLine(t, 5*time.Second, `^ready`)
			p.signal(syscall.SIGTERM)
			if got := p.wait(5 * time.Second); got != c.want {
				t.Fatalf("exit %d, want %d", got, c.want)
			}
			if n := p.out.count(`^got SIGTERM`); n != 1 {
				t.Fatalf("app got SIGTERM %d times, want once", n)
			}
		})
	}
}

// RELIABILITY A1: 1,000 orphans die at once: none is left a zombie after
// 1 s, and pilot's descriptors do not grow.
func TestOrphanStorm(t *testing.T) {
	t.Parallel()
	fifo := filepath.Join(t.TempDir(), "release")
	script := fmt.Sprintf(`mkfifo %[1]s
( i=0; while [ $i -lt 1000 ]; do (read _ < %[1]s) & i=$((i+1)); done )
echo forked
read _ # wait for the test
exec 3>%[1]s; exec 3>&-
echo released
read _
`, fifo)
	stdin, feed, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer feed.Close()
	p := startPilot(t, pilotOpts{pid1: true, stdin: stdin}, "--", "/bin/sh", "-c", script)
	stdin.Close()
	p.out.waitLine(t, 20*time.Second, `^forked`)
	fdsBefore := countFDs(t, p.pid)
	waitFor(t, 10*time.Second, "1,000 orphans adopted by PID 1", func() (int, bool) {
		n := len(childPids(p.pid))
		return n, n >= 1001
	})
	feed.Write([]byte("go\n"))
	p.out.waitLine(t, 5*time.Second, `^released`)
	released := time.Now()
	// correctness only: how fast is test/bench/supervisor's to measure
	waitFor(t, 10*time.Second, "every orphan reaped", func() (int, bool) {
		n := len(descendantsOf(p.pid))
		return n, n <= 1 // only the shell itself remains
	})
	t.Logf("1,000 orphans reaped %v after release", time.Since(released).Round(time.Millisecond))
	// A scan of /proc may hold a descriptor for a moment: wait it out.
	waitFor(t, time.Second, fmt.Sprintf("pilot's fds back to %d", fdsBefore), func() (int, bool) {
		n := countFDs(t, p.pid)
		return n, n <= fdsBefore
	})
	feed.Write([]byte("done\n"))
	if code := p.wait(5 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

func countFDs(t *testing.T, pid int) int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(fds)
}

// RELIABILITY A2: while 1,000 orphans die, a job started every 100 ms keeps
// reporting its own exit status (never ECHILD, never another's), and the
// main job's status is not lost.
func TestReaperNeverStealsExitStatus(t *testing.T) {
	t.Parallel()
	fifo := filepath.Join(t.TempDir(), "release")
	cfg := writeConfig(t, fmt.Sprintf(`jobs:
  - name: app
    main: true
    shell: |
      mkfifo %[1]s
      ( i=0; while [ $i -lt 1000 ]; do (read _ < %[1]s) & i=$((i+1)); done )
      sleep 0.5
      exec 3>%[1]s; exec 3>&-
      sleep 1
      exit 42
  - name: probe
    every: 100ms
    timeout: 10s # not the period: under load a run may outlast 100 ms, and a timeout's TERM is no reaper fault
    shell: exit 3
`, fifo))
	p := startPilot(t, pilotOpts{pid1: true}, "run", "--config", cfg)
	if code := p.wait(30 * time.Second); code != 42 {
		t.Fatalf("exit %d, want the main job's 42", code)
	}
	exits := 0
	for _, line := range p.errLog.Lines() {
		if strings.Contains(line, `msg="shutdown: begin"`) {
			break // from here on, a probe run may be stopped by TERM
		}
		if strings.Contains(line, "job=probe") && strings.Contains(line, `msg=exited`) {
			exits++
			if !strings.Contains(line, "code=3 ") {
				t.Errorf("probe exit misreported: %s", line)
			}
		}
	}
	if exits < 5 {
		t.Fatalf("only %d probe runs observed", exits)
	}
}

// RELIABILITY A3: when not PID 1, pilot is a child subreaper: an orphan of
// its job is re-parented to pilot and reaped. The orphan blocks on a FIFO
// until the test has seen it adopted, so no timing decides the outcome.
func TestSubreaperWhenNotPID1(t *testing.T) {
	t.Parallel()
	fifo := filepath.Join(t.TempDir(), "release")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	p := startPilot(t, pilotOpts{}, "--", "/bin/sh", "-c", fmt.Sprintf(`(cat %s >/dev/null & echo orphan $!) ; exec sleep 30`, fifo))
	m := p.out.waitLine(t, 5*time.Second, `^orphan (\d+)`)
	orphan, _ := strconv.Atoi(m[1])
	waitFor(t, 5*time.Second, "orphan re-parented to pilot", func() (int, bool) {
		for _, e := range procTable() {
			if e.pid == orphan {
				return e.ppid, e.ppid == p.pid
			}
		}
		return 0, false
	})
	release, err := os.OpenFile(fifo, os.O_WRONLY, 0) // the orphan holds the read end: no wait
	if err != nil {
		t.Fatal(err)
	}
	release.Close() // EOF: the orphan exits
	waitFor(t, 5*time.Second, "orphan reaped", func() (bool, bool) {
		_, err := os.Stat(fmt.Sprintf("/proc/%d", orphan))
		return true, os.IsNotExist(err)
	})
	p.signal(syscall.SIGTERM)
	p.wait(5 * time.Second)
}

// RELIABILITY A10: the child starts with an empty blocked mask even when
// pilot was started with signals blocked, and with pilot's inherited ignored
// set (SIGHUP ignored under nohup stays ignored).
func TestChildSignalState(t *testing.T) {
	t.Parallel()
	t.Run("clean", func(t *testing.T) {
		p := startPilot(t, pilotOpts{pid1: true}, append([]string{"--"}, helperArgv(t, "sigstate")...)...)
		p.wait(5 * time.Second)
		p.out.waitLine(t, time.Second, `^SigBlk:\s+0+$`)
		// Go passes on an inherited SIG_IGN only for SIGHUP and SIGINT, and
		// so does pilot: the child's ignored set is the test binary's.
		p.out.waitLine(t, time.Second, `^`+regexp.QuoteMeta(ownSigIgn(t))+`$`)
	})
	t.Run("blocked by the parent", func(t *testing.T) {
		p := startPilot(t, pilotOpts{wrap: helperArgv(t, "exec-blocked")}, append([]string{"--"}, helperArgv(t, "sigstate")...)...)
		p.wait(5 * time.Second)
		p.out.waitLine(t, time.Second, `^SigBlk:\s+0+$`)
	})
	t.Run("ignored by the parent", func(t *testing.T) {
		p := startPilot(t, pilotOpts{wrap: []string{"nohup"}}, append([]string{"--"}, helperArgv(t, "sigstate")...)...)
		p.wait(5 * time.Second)
		// The test binary's inherited set (make, CI runners may ignore a
		// real-time signal) plus bit 0, SIGHUP, from nohup.
		own, err := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(ownSigIgn(t), "SigIgn:")), 16, 64)
		if err != nil {
			t.Fatal(err)
		}
		p.out.waitLine(t, time.Second, fmt.Sprintf(`^SigIgn:\s+%016x$`, own|1))
		// pilot forwards SIGHUP in this mode, and says it cannot
		p.errLog.waitLine(t, time.Second, `level=WARN msg="pilot was started with these signals ignored.* signals=\S*SIGHUP`)
	})
}

func ownSigIgn(t *testing.T) string {
	t.Helper()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "SigIgn:") {
			return line
		}
	}
	t.Fatal("no SigIgn in /proc/self/status")
	return ""
}

// tini's and dumb-init's flags, as ENTRYPOINT lines have them: -s and -g
// change nothing (pilot always does what they ask), -e maps a code to 0,
// -v makes pilot say more (and PILOT_LOG_LEVEL still wins).
func TestTiniFlags(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args     []string
		env      []string
		code     int
		log      string // a line that must be in pilot's log
		notInLog string // and one that must not
	}{
		{[]string{"-s", "-g", "--", "/bin/sh", "-c", "exit 5"}, nil, 5, "", ""},
		{[]string{"-e", "143", "--", "/bin/sh", "-c", "kill $$"}, nil, 0, `msg="exit code mapped to 0 \(-e\)" .*code=143`, ""},
		{[]string{"-e3", "--", "/bin/sh", "-c", "exit 4"}, nil, 4, "", ""},
		{[]string{"--", "true"}, []string{"PILOT_LOG_LEVEL="}, 0, "", `msg="pilot starting"`},
		{[]string{"-v", "--", "true"}, []string{"PILOT_LOG_LEVEL="}, 0, `level=INFO msg="pilot starting"`, `level=DEBUG`},
		{[]string{"-vv", "--", "true"}, []string{"PILOT_LOG_LEVEL="}, 0, `level=DEBUG`, ""},
		{[]string{"-vv", "--", "true"}, []string{"PILOT_LOG_LEVEL=warning"}, 0, "", `msg="pilot starting"`},
	} {
		p := startPilot(t, pilotOpts{env: c.env}, c.args...)
		if code := p.wait(5 * time.Second); code != c.code {
			t.Errorf("%q: exit %d, want %d", c.args, code, c.code)
		}
		if c.log != "" && p.errLog.count(c.log) == 0 {
			t.Errorf("%q: log lacks %q:\n%s", c.args, c.log, p.errLog.String())
		}
		if c.notInLog != "" && p.errLog.count(c.notInLog) > 0 {
			t.Errorf("%q: log has %q:\n%s", c.args, c.notInLog, p.errLog.String())
		}
	}
}

// Signals inherited as ignored: when pilot starts with SIGINT ignored (a
// shell's background job), SIGINT stays ignored for pilot and its jobs, and
// pilot says so once at start, since `kill -INT` will seem to do nothing.
func TestInheritedIgnoredSignalsAreWarned(t *testing.T) {
	t.Parallel()
	p := startPilot(t, pilotOpts{wrap: helperArgv(t, "exec-ignoring", "SIGINT")}, append([]string{"--"}, helperArgv(t, "sigstate")...)...)
	if code := p.wait(5 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	m := p.out.waitLine(t, time.Second, `^SigIgn:\s+([0-9a-f]+)$`)
	if ign, _ := strconv.ParseUint(m[1], 16, 64); ign&(1<<(syscall.SIGINT-1)) == 0 {
		t.Errorf("the job's SigIgn %s lacks SIGINT", m[1])
	}
	if n := p.errLog.count(`level=WARN msg="pilot was started with these signals ignored and leaves them so: it will not act on them, and its jobs inherit them ignored" .*signals=\S*SIGINT`); n != 1 {
		t.Fatalf("%d warnings naming SIGINT, want 1", n)
	}
}
