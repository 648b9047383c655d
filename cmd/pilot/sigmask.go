package main

import (
	"os"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// resetInheritedSignalMask re-executes pilot with no signal blocked when it
// was started with some blocked. Go hands each child the mask pilot started
// with, and a child that inherits blocked signals (from a careless parent)
// cannot be stopped by them; tini clears the mask for the same reason.
func resetInheritedSignalMask() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var current unix.Sigset_t
	if err := unix.PthreadSigmask(unix.SIG_SETMASK, nil, &current); err != nil || current == (unix.Sigset_t{}) {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	empty := unix.Sigset_t{}
	if err := unix.PthreadSigmask(unix.SIG_SETMASK, &empty, nil); err != nil {
		return
	}
	_ = syscall.Exec(exe, os.Args, os.Environ()) // returns only on failure
}
