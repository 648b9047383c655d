package jobs

import (
	"context"
	"errors"
	"io"
	"os/exec"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Command is a command run to completion: the leader of its own process
// group, started and waited for through the Reaper, its whole group killed
// (SIGKILL) at Timeout or when ctx ends, and whatever is left of the group
// killed once the leader exits (a daemonised grandchild never outlives the
// command). Hooks, exec health checks and watch reload commands run this
// way.
type Command struct {
	Argv []string // Argv[0] is looked up in Env's PATH (LookPath)
	Dir  string
	Env  []string // the whole environment; nil means pilot's own
	// Credential is the user to run as; nil: pilot's user.
	Credential *syscall.Credential
	// Stdout and Stderr take the output; nil discards it. An *os.File is
	// handed to the command as is, anything else is fed through a pipe.
	Stdout, Stderr io.Writer
	Timeout        time.Duration // 0: only ctx bounds it
	// WaitDelay bounds how long, after the leader ends, descendants may keep
	// a piped Stdout or Stderr open before pilot stops reading it; default
	// 500ms.
	WaitDelay time.Duration
}

// CommandResult is how a Command ended.
type CommandResult struct {
	Status   ExitStatus
	TimedOut bool // killed at Timeout
	Took     time.Duration
}

const defaultWaitDelay = 500 * time.Millisecond

// errCommandTimeout is the cause of a Command's context ending at its
// Timeout, which tells it from the caller's context ending.
var errCommandTimeout = errors.New("command timeout")

// RunCommand runs c to completion. The error is for a command that could
// not start (not found, bad dir — blamed on the dir as for jobs, or ctx
// already done); a command that ran and failed is a nil error with a
// non-success Status. It starts with Start, not StartJob: commands still
// run while pilot shuts down.
func (r *Reaper) RunCommand(ctx context.Context, c Command) (CommandResult, error) {
	if len(c.Argv) == 0 {
		return CommandResult{}, errors.New("empty command")
	}
	path, err := LookPath(c.Argv[0], c.Env)
	if err != nil {
		return CommandResult{}, err
	}
	start := time.Now() // the Timeout's clock: Took is never less
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, c.Timeout, errCommandTimeout)
		defer cancel()
	}
	if err := ctx.Err(); err != nil {
		return CommandResult{}, err // as exec.CommandContext: no fork only to kill it
	}
	waitDelay := c.WaitDelay
	if waitDelay <= 0 {
		waitDelay = defaultWaitDelay
	}
	cmd := &exec.Cmd{
		Path:        path,
		Args:        c.Argv,
		Dir:         c.Dir,
		Env:         c.Env,
		Stdout:      c.Stdout,
		Stderr:      c.Stderr,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true, Credential: c.Credential},
		WaitDelay:   waitDelay,
	}
	if err := r.Start(cmd); err != nil {
		return CommandResult{}, blameDir(err, c.Dir)
	}
	// Not exec.CommandContext: its Wait reports the context's error in
	// place of the leader's clean exit. The kill here goes to the group and
	// leaves the leader's status its own.
	pgid := cmd.Process.Pid
	stopKill := context.AfterFunc(ctx, func() { killGroup(pgid) })
	err = r.Wait(cmd)
	killed := !stopKill()
	// Descendants that outlived the leader die with their group. The group
	// id stays reserved while any member lives, so this reaches only them.
	killGroup(pgid)
	res := CommandResult{Status: exitStatus(err), Took: time.Since(start)}
	if errors.Is(err, exec.ErrWaitDelay) {
		// The leader exited 0; a descendant kept the output open past
		// WaitDelay and was killed above.
		res.Status = ExitStatus{}
	}
	res.TimedOut = killed && context.Cause(ctx) == errCommandTimeout
	return res, nil
}

// killGroup sends SIGKILL to every process of the group pgid; a group
// already gone is no error worth a word.
func killGroup(pgid int) { _ = unix.Kill(-pgid, unix.SIGKILL) }
