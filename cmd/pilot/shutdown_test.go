package main

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// RELIABILITY B14: the shutdown steps happen in order, visibly in the log:
// preStop → stop signal → wait → group KILL at stopTimeout → sweep →
// postStop → exit.
func TestShutdownOrderInLog(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, fmt.Sprintf(`stopTimeout: 5s
jobs:
  - name: app
    main: true
    exec: %s
    stopTimeout: 500ms
    preStop: {shell: "echo prestop-ran"}
    postStop: {shell: "echo poststop-ran"}
`, yamlArgv(helperArgv(t, "signals", "ignore")...)))
	p := startPilot(t, pilotOpts{pid1: true}, "run", "--config", cfg)
	p.out.waitLine(t, 5*time.Second, `^ready`)
	p.signal(syscall.SIGTERM)
	if code := p.wait(5 * time.Second); code != 137 {
		t.Fatalf("exit %d, want 137 (the app was killed)", code)
	}
	steps := [][]string{
		{`msg="shutdown: begin"`},
		{`msg="running hook"`, `hook=preStop`},
		{`msg="sending signal"`, `signal=SIGTERM`},
		{`msg="sending SIGKILL to the process group"`},
		{`msg=exited`, `job=app`},
		{`msg="running hook"`, `hook=postStop`},
		{`msg="shutdown: done"`},
		{`msg=exiting`},
	}
	lines := p.errLog.Lines()
	at := -1
	var times []time.Time
	for _, step := range steps {
		found := false
		for i := at + 1; i < len(lines); i++ {
			if logLine(lines[i], step...) {
				at, found = i, true
				times = append(times, logTime(t, lines[i]))
				break
			}
		}
		if !found {
			t.Fatalf("step %q missing or out of order in:\n%s", step, strings.Join(lines, "\n"))
		}
	}
	if d := times[3].Sub(times[2]); d < 450*time.Millisecond || d > 600*time.Millisecond {
		t.Fatalf("KILL came %v after the stop signal, want the job's stopTimeout 500ms", d)
	}
	p.out.waitLine(t, time.Second, `^prestop-ran`)
	p.out.waitLine(t, time.Second, `^poststop-ran`)
}

// RELIABILITY B15: an app that needs 8 s to stop, with stopTimeout 10 s, is
// not killed and pilot exits with its own code.
func TestSlowStopIsNotKilled(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, fmt.Sprintf(`stopTimeout: 10s
jobs:
  - name: app
    main: true
    exec: %s
    stopTimeout: 10s
`, yamlArgv(helperArgv(t, "signals", "exit:7", "8s")...)))
	p := startPilot(t, pilotOpts{pid1: true}, "run", "--config", cfg)
	p.out.waitLine(t, 5*time.Second, `^ready`)
	p.signal(syscall.SIGTERM)
	if code := p.wait(15 * time.Second); code != 7 {
		t.Fatalf("exit %d, want the app's 7", code)
	}
	if strings.Contains(p.errLog.String(), "SIGKILL") {
		t.Fatal("the slow app was killed")
	}
}

// RELIABILITY B16 and A13: an app that traps TERM is killed with its group
// at stopTimeout ±100 ms, and a second TERM neither restarts the sequence
// nor moves the deadline.
func TestHungStopKilledAtStopTimeout(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, fmt.Sprintf(`stopTimeout: 5s
jobs:
  - name: app
    main: true
    exec: %s
    stopTimeout: 1s
`, yamlArgv(helperArgv(t, "signals", "ignore")...)))
	p := startPilot(t, pilotOpts{pid1: true}, "run", "--config", cfg)
	p.out.waitLine(t, 5*time.Second, `^ready`)
	sent := time.Now()
	p.signal(syscall.SIGTERM)
	p.out.waitLine(t, time.Second, `^got SIGTERM`)
	time.Sleep(500 * time.Millisecond) // the second TERM lands mid-sequence, late enough that a restarted deadline would show
	p.signal(syscall.SIGTERM)
	// proof that the second TERM reached the running sequence, and what pilot made of it
	p.errLog.waitLine(t, 5*time.Second, `msg="shutdown already under way; signal ignored"`)
	if code := p.wait(5 * time.Second); code != 137 {
		t.Fatalf("exit %d, want 137", code)
	}
	if took := p.ended.Sub(sent); took < 900*time.Millisecond || took > 1300*time.Millisecond {
		t.Fatalf("pilot exited %v after TERM, want ~1s (the stopTimeout)", took)
	}
	if n := p.out.count(`^got SIGTERM`); n != 1 {
		t.Fatalf("app got SIGTERM %d times, want once", n)
	}
	lines := p.errLog.Lines()
	var signalled, killed time.Time
	for _, l := range lines {
		if strings.Contains(l, `msg="sending signal"`) && signalled.IsZero() {
			signalled = logTime(t, l)
		}
		if strings.Contains(l, "SIGKILL") {
			killed = logTime(t, l)
		}
	}
	if d := killed.Sub(signalled); d < 900*time.Millisecond || d > 1100*time.Millisecond {
		t.Fatalf("KILL %v after the stop signal, want 1s ±100ms", d)
	}
}

// RELIABILITY A7: with the shell form, the stop signal reaches the command
// the shell runs, through the process group.
func TestShellWrapperGetsStopSignal(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, fmt.Sprintf(`jobs:
  - name: app
    main: true
    shell: '%s; echo shell-after'
`, strings.Join(helperArgv(t, "signals", "exit:0"), " ")))
	p := startPilot(t, pilotOpts{pid1: true}, "run", "--config", cfg)
	p.out.waitLine(t, 5*time.Second, `^ready`)
	p.signal(syscall.SIGTERM)
	p.wait(5 * time.Second)
	p.out.waitLine(t, time.Second, `^got SIGTERM`)
}

// RELIABILITY A8: a grandchild that called setsid() and ignores TERM is
// still ended at shutdown by the sweep: TERM, then KILL.
func TestSetsidEscapeeIsSwept(t *testing.T) {
	t.Parallel()
	p := startPilot(t, pilotOpts{pid1: true}, append([]string{"--"}, helperArgv(t, "escapee")...)...)
	m := p.out.waitLine(t, 5*time.Second, `^escapee pid (\d+)`)
	p.out.waitLine(t, 5*time.Second, `^ready `+m[1]+`$`) // the escapee traps TERM now
	escapee := hostPid(t, p.pid, m[1])
	p.signal(syscall.SIGTERM)
	if code := p.wait(6 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if processAlive(escapee) {
		t.Fatal("the setsid escapee survived pilot")
	}
	log := p.errLog.String()
	for _, want := range []string{"sweep: sent SIGTERM", "sweep: sent SIGKILL"} {
		if !strings.Contains(log, want) {
			t.Fatalf("log lacks %q", want)
		}
	}
}

// hostPid maps a pid printed inside pilot's PID namespace to the host's, by
// looking for the process with that NSpid under pilot.
func hostPid(t *testing.T, pilot int, nsPid string) int {
	t.Helper()
	return waitFor(t, 2*time.Second, "namespace pid "+nsPid, func() (int, bool) {
		for _, e := range descendantsOf(pilot) {
			if nsPidOf(e.pid) == nsPid {
				return e.pid, true
			}
		}
		return 0, false
	})
}

func nsPidOf(pid int) string {
	status, _ := readFile(fmt.Sprintf("/proc/%d/status", pid))
	m := regexp.MustCompile(`(?m)^NSpid:.*\s(\d+)$`).FindStringSubmatch(status)
	if m == nil {
		return ""
	}
	return m[1]
}

// RELIABILITY A9: the main job exits while a helper runs: the helper gets
// its stop signal, then KILL at its stopTimeout, and pilot exits with the
// main job's code once all is gone — not earlier, not later.
func TestMainExitStopsHelpers(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, fmt.Sprintf(`jobs:
  - name: app
    main: true
    exec: %s
  - name: sidecar
    exec: %s
    stopTimeout: 1s
`, yamlArgv(helperArgv(t, "sleep", "300ms")...), yamlArgv(helperArgv(t, "signals", "ignore")...)))
	p := startPilot(t, pilotOpts{pid1: true}, "run", "--config", cfg)
	code := p.wait(5 * time.Second)
	if code != 0 {
		t.Fatalf("exit %d, want the main job's 0", code)
	}
	p.out.waitLine(t, time.Second, `^got SIGTERM`)
	log := p.errLog.String()
	if !strings.Contains(log, `msg="sending SIGKILL to the process group" logger=pilot job=sidecar`) {
		t.Fatalf("sidecar not killed at its stopTimeout:\n%s", log)
	}
}

// RELIABILITY A11: a job's stopSignal is used (SIGINT for apps written for
// PM2); in tini mode SIGUSR1 is not forwarded to the app while SIGHUP is.
func TestSignalPolicy(t *testing.T) {
	t.Parallel()
	t.Run("stopSignal", func(t *testing.T) {
		t.Parallel()
		cfg := writeConfig(t, fmt.Sprintf(`jobs:
  - name: app
    main: true
    exec: %s
    stopSignal: SIGINT
`, yamlArgv(helperArgv(t, "signals", "exit:0")...)))
		p := startPilot(t, pilotOpts{pid1: true}, "run", "--config", cfg)
		p.out.waitLine(t, 5*time.Second, `^ready`)
		p.signal(syscall.SIGTERM)
		p.wait(5 * time.Second)
		p.out.waitLine(t, time.Second, `^got SIGINT`)
	})
	t.Run("forwarding in tini mode", func(t *testing.T) {
		t.Parallel()
		p := startPilot(t, pilotOpts{pid1: true}, append([]string{"--"}, helperArgv(t, "signals", "exit:0")...)...)
		p.out.waitLine(t, 5*time.Second, `^ready`)
		p.signal(syscall.SIGUSR1)
		// pilot's decision, logged before it would forward anything
		p.errLog.waitLine(t, 5*time.Second, `msg="received signal" .*signal=SIGUSR1 forwarded=false`)
		p.signal(syscall.SIGHUP)
		p.errLog.waitLine(t, 5*time.Second, `msg="received signal" .*signal=SIGHUP forwarded=true`)
		p.out.waitLine(t, 5*time.Second, `^got SIGHUP`)
		p.signal(syscall.SIGTERM)
		p.wait(5 * time.Second)
		if p.out.count(`^got SIGUSR1`) != 0 {
			t.Fatal("SIGUSR1 reached the app")
		}
	})
	t.Run("INT starts the shutdown with INT", func(t *testing.T) {
		t.Parallel()
		p := startPilot(t, pilotOpts{pid1: true}, append([]string{"--"}, helperArgv(t, "signals", "die")...)...)
		p.out.waitLine(t, 5*time.Second, `^ready`)
		p.signal(syscall.SIGINT)
		if code := p.wait(5 * time.Second); code != 130 {
			t.Fatalf("exit %d, want 130", code)
		}
	})
}

// RELIABILITY A12: TTIN, TTOU and TSTP never stop pilot. Each is proved
// caught, not just not-yet-acted-on: pilot's handler logs it (had the
// default action stopped pilot, no line would come, nor the exit on TERM).
func TestJobControlSignalsNeverStopPilot(t *testing.T) {
	t.Parallel()
	p := startPilot(t, pilotOpts{}, append([]string{"--"}, helperArgv(t, "signals", "exit:0")...)...)
	p.out.waitLine(t, 5*time.Second, `^ready`)
	for _, sig := range []syscall.Signal{syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGTSTP} {
		p.signal(sig)
		p.errLog.waitLine(t, 5*time.Second, `msg="ignoring signal" .*signal=`+signalName(sig)+`$`)
	}
	if state := procState(p.pid); state == 'T' {
		t.Fatal("pilot was stopped")
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(5 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

func procState(pid int) byte {
	for _, e := range procTable() {
		if e.pid == pid {
			return e.state
		}
	}
	return 0
}

// RELIABILITY B17: TERM while a pre-start job runs, or while the main job
// waits out a restart backoff, spawns nothing new and exits promptly.
func TestTermDuringStartupAndBackoff(t *testing.T) {
	t.Parallel()
	t.Run("pre-start job", func(t *testing.T) {
		t.Parallel()
		cfg := writeConfig(t, fmt.Sprintf(`jobs:
  - name: migrate
    exec: %s
  - name: app
    main: true
    after: [{job: migrate, state: succeeded}]
    shell: echo app-started
`, yamlArgv(helperArgv(t, "signals", "exit:0")...)))
		p := startPilot(t, pilotOpts{pid1: true}, "run", "--config", cfg)
		p.out.waitLine(t, 5*time.Second, `^ready`)
		sent := time.Now()
		p.signal(syscall.SIGTERM)
		if code := p.wait(3 * time.Second); code != 143 {
			t.Fatalf("exit %d, want 143 (stopped before the main job ran)", code)
		}
		if took := p.ended.Sub(sent); took > 500*time.Millisecond {
			t.Fatalf("took %v to exit", took)
		}
		if p.out.count(`app-started`) != 0 {
			t.Fatal("the main job started after TERM")
		}
	})
	t.Run("restart backoff", func(t *testing.T) {
		t.Parallel()
		cfg := writeConfig(t, `jobs:
  - name: app
    main: true
    shell: echo run; exit 4
    restart: {policy: on-failure, backoff: {initial: 5s, max: 10s}}
`)
		p := startPilot(t, pilotOpts{pid1: true}, "run", "--config", cfg)
		p.errLog.waitLine(t, 5*time.Second, `msg=restarting`)
		sent := time.Now()
		p.signal(syscall.SIGTERM)
		if code := p.wait(3 * time.Second); code != 4 {
			t.Fatalf("exit %d, want the last code 4", code)
		}
		if took := p.ended.Sub(sent); took > 500*time.Millisecond {
			t.Fatalf("took %v to exit", took)
		}
		if n := p.out.count(`^run`); n != 1 {
			t.Fatalf("%d runs, want 1", n)
		}
	})
}

// RELIABILITY C18, C19: restart delays grow exponentially (with jitter) up
// to the cap, for fast and for slow crash loops alike.
func TestCrashLoopBacksOff(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		shell string
	}{{"fast", "exit 1"}, {"slow", "sleep 0.3; exit 1"}} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cfg := writeConfig(t, fmt.Sprintf(`jobs:
  - name: app
    main: true
    shell: %q
    restart: {policy: always, max: 5, backoff: {initial: 100ms, max: 800ms}}
`, c.shell))
			p := startPilot(t, pilotOpts{pid1: true}, "run", "--config", cfg)
			if code := p.wait(20 * time.Second); code != 1 {
				t.Fatalf("exit %d, want 1 after giving up", code)
			}
			var exits, starts []time.Time
			for _, l := range p.errLog.Lines() {
				switch {
				case strings.Contains(l, "msg=exited") && strings.Contains(l, "job=app"):
					exits = append(exits, logTime(t, l))
				case strings.Contains(l, "msg=started") && strings.Contains(l, "job=app"):
					starts = append(starts, logTime(t, l))
				}
			}
			if len(starts) != 6 {
				t.Fatalf("%d starts, want 6 (1 + max 5)", len(starts))
			}
			want := []time.Duration{100, 200, 400, 800, 800}
			for i, w := range want {
				gap := starts[i+1].Sub(exits[i])
				lo, hi := w*time.Millisecond*75/100, w*time.Millisecond*125/100+50*time.Millisecond
				if gap < lo || gap > hi {
					t.Errorf("restart %d after %v, want %v ±20%%", i+1, gap, w*time.Millisecond)
				}
			}
		})
	}
}

// RELIABILITY C20, C21: give up after max with the last code; a clean exit
// under on-failure is not restarted and pilot exits 0.
func TestRestartLimits(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		shell string
		runs  int
		code  int
	}{{"echo run; exit 3", 3, 3}, {"echo run; exit 0", 1, 0}} {
		t.Run(c.shell, func(t *testing.T) {
			t.Parallel()
			cfg := writeConfig(t, fmt.Sprintf(`jobs:
  - name: app
    main: true
    shell: %q
    restart: {policy: on-failure, max: 2, backoff: {initial: 50ms}}
`, c.shell))
			p := startPilot(t, pilotOpts{pid1: true}, "run", "--config", cfg)
			if code := p.wait(10 * time.Second); code != c.code {
				t.Fatalf("exit %d, want %d", code, c.code)
			}
			if n := p.out.count(`^run$`); n != c.runs {
				t.Fatalf("%d runs, want %d", n, c.runs)
			}
		})
	}
}

// Dependencies: a job waits for another to succeed, and a dependency that
// fails for good means the main job never starts and pilot exits non-zero.
func TestDependencies(t *testing.T) {
	t.Parallel()
	t.Run("ordered", func(t *testing.T) {
		t.Parallel()
		cfg := writeConfig(t, `jobs:
  - name: migrate
    shell: sleep 0.2; echo migrated
  - name: app
    main: true
    after: [{job: migrate, state: succeeded}]
    shell: echo app
`)
		p := startPilot(t, pilotOpts{pid1: true}, "run", "--config", cfg)
		if code := p.wait(5 * time.Second); code != 0 {
			t.Fatalf("exit %d", code)
		}
		lines := strings.Join(p.out.Lines(), ",")
		if lines != "migrated,app" {
			t.Fatalf("output %q, want migrated then app", lines)
		}
	})
	t.Run("dependency failed", func(t *testing.T) {
		t.Parallel()
		cfg := writeConfig(t, `jobs:
  - name: migrate
    shell: exit 5
  - name: app
    main: true
    after: [{job: migrate, state: succeeded}]
    shell: echo app
`)
		p := startPilot(t, pilotOpts{pid1: true}, "run", "--config", cfg)
		if code := p.wait(5 * time.Second); code != 1 {
			t.Fatalf("exit %d, want 1: the main job can never run", code)
		}
		if p.out.count("app") != 0 {
			t.Fatal("app ran")
		}
		p.errLog.waitLine(t, time.Second, `will never start.*dependency="migrate succeeded"`)
		// Issue 10 item 22: the shutdown's reason says why.
		p.errLog.waitLine(t, time.Second, `msg="shutdown: begin".* reason="main job app will never start: dependency migrate failed"`)
	})
}

// RELIABILITY 35: config errors name their path and exit 2, for run and
// validate alike.
func TestConfigErrorsExit2(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, `jobs:
  - name: app
    exec: [node]
  - name: app
    exec: [node]
    restart: {max: -1}
    comand: typo
`)
	for _, args := range [][]string{{"validate", "--config", cfg}, {"run", "--config", cfg}, {"--config", cfg}} {
		p := startPilot(t, pilotOpts{}, args...)
		if code := p.wait(5 * time.Second); code != 2 {
			t.Fatalf("%v: exit %d, want 2", args, code)
		}
		if !strings.Contains(p.errLog.String(), "jobs[1]") {
			t.Fatalf("%v: error does not name the path:\n%s", args, p.errLog.String())
		}
	}
}

// RELIABILITY C24: a job whose memory stays above maxMemory is restarted
// once, gracefully (stop signal, exit 0), and not again while it is lean.
func TestMaxMemoryRestartsOnce(t *testing.T) {
	t.Parallel()
	marker := filepath.Join(t.TempDir(), "hogged")
	cfg := writeConfig(t, fmt.Sprintf(`jobs:
  - name: app
    main: true
    exec: %s
    maxMemory: 200MiB
`, yamlArgv(helperArgv(t, "hog", "400", marker)...)))
	p := startPilot(t, pilotOpts{pid1: true}, "run", "--config", cfg)
	p.out.waitLine(t, 30*time.Second, `^hog ready`)
	p.errLog.waitLine(t, 30*time.Second, `memory above maxMemory: restarting gracefully`)
	p.out.waitLine(t, 30*time.Second, `^lean ready`)
	// Three samples of the lean run are what a wrong second restart would
	// follow (pilot restarts after three samples in a row above the limit,
	// logged right after the third).
	waitFor(t, 30*time.Second, "three memory samples of the lean run", func() (int, bool) {
		starts, samples := 0, 0
		for _, l := range p.errLog.Lines() {
			switch {
			case logLine(l, "msg=started", "job=app"):
				starts++
			case starts == 2 && logLine(l, `msg="memory sample"`, "job=app"):
				samples++
			}
		}
		return samples, samples >= 3
	})
	p.signal(syscall.SIGTERM)
	if code := p.wait(5 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if n := p.errLog.count(`memory above maxMemory`); n != 1 {
		t.Fatalf("%d memory restarts, want 1", n)
	}
	if n := p.out.count(`^got SIGTERM`); n != 2 {
		t.Fatalf("%d SIGTERMs, want 2 (the restart, then the shutdown)", n)
	}
}
