// Command gofloor is the smallest correct PID 1 that Go can make: it starts
// its command in its own process group, forwards TERM, INT, HUP, QUIT, USR2
// and WINCH to that group, reaps every child, and exits with the command's
// code (128+N when signal N killed it). It imports the standard library only
// and does nothing else: the supervisor benchmark runs it as the "go-floor"
// column, so that what any Go supervisor pays on this machine (the runtime's
// start, its page faults) is measured beside pilot in the same run.
//
//	gofloor -- CMD [ARGS…]
package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
)

func main() {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: gofloor -- CMD [ARGS…]")
		os.Exit(2)
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGCHLD, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP,
		syscall.SIGQUIT, syscall.SIGUSR2, syscall.SIGWINCH)
	path, err := exec.LookPath(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, "gofloor:", err)
		os.Exit(127)
	}
	// syscall.ForkExec, not exec.Cmd: this process reaps with wait4(-1),
	// which would race exec.Cmd's own wait.
	pid, err := syscall.ForkExec(path, args, &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: []uintptr{0, 1, 2},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "gofloor:", err)
		os.Exit(127)
	}
	for s := range sigs {
		if s != syscall.SIGCHLD {
			_ = syscall.Kill(-pid, s.(syscall.Signal))
			continue
		}
		for {
			var ws syscall.WaitStatus
			got, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if err != nil || got <= 0 {
				break
			}
			if got == pid {
				if ws.Signaled() {
					os.Exit(128 + int(ws.Signal()))
				}
				os.Exit(ws.ExitStatus())
			}
		}
	}
}
