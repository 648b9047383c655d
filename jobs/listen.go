package jobs

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// trampolineArg makes pilot's own binary the trampoline of a run that
// inherits sockets: LISTEN_PID must be the pid of the process that reads
// LISTEN_FDS (sd_listen_fds checks it), which is known only after the fork,
// and os/exec sets no environment after the fork. So pilot starts itself
// as `pilot __listen-exec PATH ARGV…`, which sets LISTEN_PID to its own pid
// and execs PATH in place: the app keeps the pid, the fds and the process
// group.
const trampolineArg = "__listen-exec"

// selfExe is pilot's own binary, resolved by pilot itself (a child that
// changed its user may not read /proc/self/exe) at the first start of a run
// with sockets, so that no other start of pilot pays for it.
var selfExe = sync.OnceValues(os.Executable)

// RunTrampoline is the first thing pilot's main does: when the process was
// started as the trampoline of a run with sockets, it execs the run's
// command and never returns; otherwise it returns at once.
func RunTrampoline() {
	if len(os.Args) < 4 || os.Args[1] != trampolineArg {
		return
	}
	path, argv := os.Args[2], os.Args[3:]
	env := append(withoutKeys(os.Environ(), "LISTEN_PID"), "LISTEN_PID="+strconv.Itoa(os.Getpid()))
	err := syscall.Exec(path, argv, env)
	fmt.Fprintf(os.Stderr, "pilot: cannot run %s: %v\n", path, err)
	code := 126
	if os.IsNotExist(err) {
		code = 127
	}
	os.Exit(code)
}

// listenEnv sets the systemd variables of a run with n sockets, replacing
// any the environment had (a parent's LISTEN_FDS must not leak through).
func listenEnv(env []string, ls []Listener) []string {
	env = withoutKeys(env, "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")
	if len(ls) == 0 {
		return env
	}
	names := make([]string, len(ls))
	for i, l := range ls {
		names[i] = l.Name
	}
	return append(env, "LISTEN_FDS="+strconv.Itoa(len(ls)), "LISTEN_FDNAMES="+strings.Join(names, ":"))
}

func withoutKeys(env []string, keys ...string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return slices.Contains(keys, k)
	})
}

// trampoline rewrites a run's command so that it starts through pilot's
// trampoline.
func trampoline(path string, argv []string) (string, []string, error) {
	self, err := selfExe()
	if err != nil {
		return "", nil, fmt.Errorf("handing sockets to the job needs pilot's own path: %w", err)
	}
	return self, append([]string{"pilot", trampolineArg, path}, argv...), nil
}
