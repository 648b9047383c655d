package jobs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nodepilot/pilot/jobs/output"
)

// process is one run of a job: the leader of its own process group.
type process struct {
	cmd     *exec.Cmd
	pid     int
	pgid    int
	started time.Time
	// finishOutput waits (bounded) for the output pipes to drain; nil
	// when both streams are raw, with no pipe.
	finishOutput func()
}

// outputDrainTimeout bounds how long pilot keeps reading a finished run's
// output: a grandchild holding the pipe open must not hold up pilot.
const outputDrainTimeout = 2 * time.Second

// env is the environment of a run starting now: the spec's, putenv's
// overlay over it as it stands now, and the latest trigger's.
func (j *Job) env() []string {
	env := j.hookEnv()
	if len(j.triggerEnv) == 0 {
		return env
	}
	return append(slices.Clip(env), j.triggerEnv...)
}

// hookEnv is the environment of a hook starting now: the spec's with
// putenv's overlay over it.
func (j *Job) hookEnv() []string { return j.overlay.apply(j.spec.Env, j.spec.OwnEnv) }

// start starts a run through the reaper's shutdown gate, calling started
// (with the pid) under the gate's lock; it fails with ErrShuttingDown once
// the gate is closed.
func (j *Job) start(started func(pid int)) (*process, error) {
	env := j.env()
	path, err := LookPath(j.spec.Argv[0], env)
	if err != nil {
		return nil, err
	}
	args := j.spec.Argv
	var extra []*os.File
	if len(j.spec.Listeners) > 0 {
		if path, args, err = trampoline(path, args); err != nil {
			return nil, err
		}
		env = listenEnv(env, j.spec.Listeners)
		for _, l := range j.spec.Listeners {
			extra = append(extra, l.File)
		}
	}
	cmd := &exec.Cmd{
		Path:       path,
		Args:       args,
		Dir:        j.spec.Dir,
		Env:        env,
		Stdin:      j.spec.Stdin,
		ExtraFiles: extra,
		SysProcAttr: &syscall.SysProcAttr{
			Setpgid:    true,
			Credential: j.spec.Credential,
		},
	}
	if j.spec.Foreground && j.spec.Stdin != nil {
		cmd.SysProcAttr.Foreground = true
		cmd.SysProcAttr.Ctty = int(j.spec.Stdin.Fd())
	}
	stdout, err := j.attachStdout()
	if err != nil {
		return nil, err
	}
	stderr, err := j.stderr.Attach(j.spec.Output, j.spec.Name, "stderr")
	if err != nil {
		stdout.Abort()
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = stdout.Child, stderr.Child
	startedAt := time.Now()
	if err := j.reaper.StartJob(cmd, func() { started(cmd.Process.Pid) }); err != nil {
		stdout.Abort()
		stderr.Abort()
		if !errors.Is(err, ErrShuttingDown) {
			err = blameDir(err, j.spec.Dir)
		}
		return nil, err
	}
	stdout.Started()
	stderr.Started()
	pid := cmd.Process.Pid
	p := &process{cmd: cmd, pid: pid, pgid: pid, started: startedAt}
	if stdout.Copied() || stderr.Copied() {
		p.finishOutput = func() {
			var wg sync.WaitGroup
			for _, a := range []*output.Attachment{stdout, stderr} {
				wg.Go(func() {
					if err := a.Finish(outputDrainTimeout); err != nil {
						j.log.Warn("stopped reading the job's output: a descendant still holds it open", "err", err)
					}
				})
			}
			wg.Wait()
			if n := stdout.Dropped(); n > 0 && j.spec.StdoutLines != nil {
				j.log.Warn("lines of the job's stdout were dropped: pilot could not keep up", "dropped", n)
			}
		}
	}
	return p, nil
}

// attachStdout gives the run's stdout to Spec.StdoutLines when set, else to
// pilot's stdout in the job's output mode.
func (j *Job) attachStdout() (*output.Attachment, error) {
	if j.spec.StdoutLines != nil {
		return output.AttachLines(j.spec.Name, "stdout", j.spec.StdoutLines, output.WithMaxLineBytes(stdoutLineCap))
	}
	return j.stdout.Attach(j.spec.Output, j.spec.Name, "stdout")
}

// stdoutLineCap bounds a line handed to Spec.StdoutLines: the hook reads
// short records (a metric sample), so a longer line is garbage, cut into
// pieces rather than gathered without end.
const stdoutLineCap = 64 << 10

// signal sends sig to the whole process group, so that a shell wrapper's
// children (RELIABILITY 7) get it too.
func (p *process) signal(sig syscall.Signal) {
	if err := unix.Kill(-p.pgid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		_ = unix.Kill(p.pid, sig)
	}
}

func (p *process) wait(r *Reaper) ExitStatus {
	return exitStatus(r.Wait(p.cmd))
}

// exitStatus turns cmd.Wait's result into a shell-style code.
func exitStatus(err error) ExitStatus {
	if err == nil {
		return ExitStatus{}
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return ExitStatus{Code: 128 + int(ws.Signal()), Signal: int(ws.Signal())}
		}
		return ExitStatus{Code: ee.ExitCode()}
	}
	return ExitStatus{Code: 1, Err: err}
}

// dirError is a start that failed because the working directory is not
// there: the kernel reports the chdir's ENOENT as the command's.
type dirError struct {
	dir string
	err error
}

func (e *dirError) Error() string { return fmt.Sprintf("dir %q: %v", e.dir, e.err) }
func (e *dirError) Unwrap() error { return e.err }

// blameDir turns a failed start into a dirError when dir is missing or not
// a directory. It looks only after a failure, so a good start costs nothing.
func blameDir(err error, dir string) error {
	if dir == "" {
		return err
	}
	fi, statErr := os.Stat(dir)
	var pe *fs.PathError
	switch {
	case errors.As(statErr, &pe):
		return &dirError{dir: dir, err: pe.Err}
	case statErr == nil && !fi.IsDir():
		return &dirError{dir: dir, err: unix.ENOTDIR}
	}
	return err
}

// classifyStartError maps a failed start to the shell's codes — 127 for a
// command that is not there, 126 for one that cannot run (a missing working
// directory included: the command may well be there) — or reports it as
// transient (out of processes, memory or descriptors), to be retried.
func classifyStartError(err error) (ExitStatus, bool) {
	for _, e := range []error{unix.EAGAIN, unix.ENOMEM, unix.EMFILE, unix.ENFILE} {
		if errors.Is(err, e) {
			return ExitStatus{Code: 1, Err: err}, true
		}
	}
	var de *dirError
	if errors.As(err, &de) {
		return ExitStatus{Code: 126, Err: err}, false
	}
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		return ExitStatus{Code: 127, Err: err}, false
	}
	return ExitStatus{Code: 126, Err: err}, false
}

// LookPath resolves a bare command name in the PATH of the command's own
// environment, which may differ from pilot's; a nil env means pilot's own,
// as in os/exec. Jobs, hooks and exec health checks all resolve this way.
func LookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	if env == nil {
		env = os.Environ()
	}
	path := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		candidate := filepath.Join(dir, name)
		if fi, err := os.Stat(candidate); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return candidate, nil
		}
	}
	return "", &notFoundError{name: name, path: path}
}

// notFoundError is LookPath's error: name is in no directory of PATH. Its
// message leaves the PATH out (it can be long); log PATH at debug level.
type notFoundError struct {
	name, path string // path is the PATH searched
}

func (e *notFoundError) Error() string {
	if e.path == "" {
		return fmt.Sprintf("exec %q: not found (PATH is empty)", e.name)
	}
	return fmt.Sprintf("exec %q: not found in PATH", e.name)
}

// Unwrap makes errors.Is(err, exec.ErrNotFound) hold, as for os/exec.
func (e *notFoundError) Unwrap() error { return exec.ErrNotFound }

// runHook runs a preStop or postStop hook to completion, killing its
// process group at the hook's timeout. Its output goes where the job's
// does, in the job's output mode.
func (j *Job) runHook(ctx context.Context, which string, h *Hook) {
	if h == nil {
		return
	}
	log := j.log.With("hook", which)
	stdout, err := j.stdout.Attach(j.spec.Output, j.spec.Name, "stdout")
	if err != nil {
		log.Error("hook cannot start", "err", err)
		return
	}
	stderr, err := j.stderr.Attach(j.spec.Output, j.spec.Name, "stderr")
	if err != nil {
		stdout.Abort()
		log.Error("hook cannot start", "err", err)
		return
	}
	log.Info("running hook")
	res, err := j.reaper.RunCommand(ctx, Command{Argv: h.Argv, Dir: j.spec.Dir, Env: j.hookEnv(),
		Credential: j.spec.Credential, Stdout: stdout.Child, Stderr: stderr.Child, Timeout: h.Timeout})
	for _, a := range []*output.Attachment{stdout, stderr} {
		if err := a.Finish(outputDrainTimeout); err != nil {
			log.Warn("stopped reading the hook's output: a descendant still holds it open", "err", err)
		}
	}
	switch {
	case err != nil:
		log.Error("hook cannot start", "err", err)
	case res.TimedOut:
		log.Warn("hook killed at its timeout", "timeout", h.Timeout)
	case !res.Status.Success():
		log.Warn("hook failed", "code", res.Status.Code, "took", res.Took)
	default:
		log.Info("hook done", "took", res.Took)
	}
}

// RunPostStop runs the postStop hook if the job ever ran; pilot calls it
// after the job has stopped and the final sweep is done.
func (j *Job) RunPostStop(ctx context.Context) {
	if j.spec.PostStop != nil && j.Status().Runs > 0 {
		j.runHook(ctx, "postStop", j.spec.PostStop)
	}
}
