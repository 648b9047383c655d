package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nodepilot/pilot/pilot/config"
)

// The test binary plays two more roles besides running tests: pilot itself
// (so the PID 1 tests run the real main, race detector included), and the
// children pilot supervises ("helper MODE …"), which exit, hang, ignore
// SIGTERM, report their signal state or leave escapees behind on demand.

const roleEnv = "PILOT_TEST_ROLE"

// ballast is the hog helper's memory, kept reachable so it stays resident.
var ballast []byte

func helperMain(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "helper: no mode")
		return 100
	}
	mode, args := args[0], args[1:]
	switch mode {
	case "exit": // exit CODE
		code, _ := strconv.Atoi(args[0])
		return code
	case "sigstate": // print the blocked and ignored masks
		status, _ := os.ReadFile("/proc/self/status")
		for _, line := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(line, "SigBlk:") || strings.HasPrefix(line, "SigIgn:") {
				fmt.Println(line)
			}
		}
		return 0
	case "signals": // signals ON-TERM [DELAY]: log every signal; on TERM/INT: exit:N | ignore | die
		return signalsHelper(args)
	case "escapee": // start a setsid'd grandchild that ignores TERM, print its pid, then wait for TERM
		cmd := exec.Command(os.Args[0], "helper", "signals", "ignore")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		cmd.Stdout = os.Stdout
		if err := cmd.Start(); err != nil {
			fmt.Println("escapee:", err)
			return 98
		}
		fmt.Printf("escapee pid %d\n", cmd.Process.Pid)
		return signalsHelper([]string{"exit:0"})
	case "exec-blocked": // exec ARGV… with SIGUSR1 and SIGTERM blocked, as a careless parent would
		runtime.LockOSThread()
		var set unix.Sigset_t
		set.Val[0] = 1<<(uint(syscall.SIGUSR1)-1) | 1<<(uint(syscall.SIGTERM)-1)
		if err := unix.PthreadSigmask(unix.SIG_BLOCK, &set, nil); err != nil {
			fmt.Fprintln(os.Stderr, "exec-blocked:", err)
			return 98
		}
		err := syscall.Exec(args[0], args, os.Environ())
		fmt.Fprintln(os.Stderr, "exec-blocked:", err)
		return 98
	case "exec-ignoring": // exec-ignoring SIGNAL ARGV…: exec ARGV with SIGNAL ignored, as a shell does for a background job's SIGINT
		signal.Ignore(unix.SignalNum(args[0]))
		err := syscall.Exec(args[1], args[1:], os.Environ())
		fmt.Fprintln(os.Stderr, "exec-ignoring:", err)
		return 98
	case "hog": // hog MiB MARKER: on the first run (no MARKER yet) hold MiB of memory; then behave as "signals exit:0"
		// Catch signals before allocating: pilot may see the RSS and send
		// its restart SIGTERM while the pages are still being touched.
		sigs := notifySignals()
		if _, err := os.Stat(args[1]); err != nil {
			_ = os.WriteFile(args[1], nil, 0o644)
			mib, _ := strconv.Atoi(args[0])
			ballast = make([]byte, mib<<20)
			// Touch every page; stop early once signalled: under load the
			// restart can come before the last page (the signal stays
			// queued for signalsLoop).
			for i := 0; i < len(ballast) && len(sigs) == 0; i += 4096 {
				ballast[i] = 1
			}
			fmt.Println("hog ready")
		} else {
			fmt.Println("lean ready")
		}
		return signalsLoop(sigs, []string{"exit:0"})
	case "http": // http PORT MARKER: serve /health, failing while MARKER exists (helper_http_test.go)
		return httpHelper(args)
	case "sleep": // sleep DURATION then exit 0
		d, _ := time.ParseDuration(args[0])
		time.Sleep(d)
		return 0
	}
	fmt.Fprintln(os.Stderr, "helper: unknown mode", mode)
	return 100
}

// signalsHelper prints "ready", then "got SIGX" for each signal it receives.
// On TERM or INT it follows onTerm: "exit:N" (after an optional delay),
// "ignore", or "die" (be killed by the signal).
func signalsHelper(args []string) int {
	return signalsLoop(notifySignals(), args)
}

func notifySignals() chan os.Signal {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGQUIT)
	return sigs
}

func signalsLoop(sigs chan os.Signal, args []string) int {
	onTerm := args[0]
	var delay time.Duration
	if len(args) > 1 {
		delay, _ = time.ParseDuration(args[1])
	}
	fmt.Printf("ready %d\n", os.Getpid())
	for s := range sigs {
		sig := s.(syscall.Signal)
		fmt.Printf("got %s %d\n", signalName(sig), time.Now().UnixMicro())
		if sig != syscall.SIGTERM && sig != syscall.SIGINT {
			continue
		}
		switch {
		case onTerm == "ignore":
		case onTerm == "die":
			signal.Reset(sig)
			_ = syscall.Kill(os.Getpid(), sig)
			time.Sleep(time.Second)
			return 97
		case strings.HasPrefix(onTerm, "exit:"):
			time.Sleep(delay)
			code, _ := strconv.Atoi(strings.TrimPrefix(onTerm, "exit:"))
			fmt.Printf("exiting %d\n", code)
			return code
		}
	}
	return 0
}

// signalName is sig as pilot's log names it (SIGTERM).
func signalName(sig syscall.Signal) string { return config.Signal(sig).String() }
