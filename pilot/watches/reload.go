package watches

import (
	"context"
	"fmt"
	"syscall"
	"time"

	"github.com/nodepilot/pilot/jobs"
	"github.com/nodepilot/pilot/pilot/config"
)

// reloadAttempts and reloadBackoff pace the retries of a failed reload
// command: reloadBackoff after the first failure, doubling after each
// next; a failed or hung reload is logged and never touches the app.
const (
	reloadAttempts = 3
	reloadBackoff  = 200 * time.Millisecond
	// reloadWaitDelay bounds the wait for a reload command's output once
	// it has exited or been killed (a descendant holding it open).
	reloadWaitDelay = time.Second
)

// reload tells what reads the watch's files that they changed: a signal to
// reload.job when it runs, or reload.exec.
func (w *Watch) reload(ctx context.Context) {
	r := w.cfg.OnChange.Reload
	if r == nil {
		return
	}
	if r.Job != "" {
		sig := syscall.Signal(r.Signal)
		if !w.jobs.Signal(r.Job, sig) {
			// Not started yet (the start gate holds it until the first
			// render), restarting or ended: it reads the files when it
			// starts.
			w.log.Debug("watch: not reloading: the job is not running; it reads the files when it starts", "job", r.Job)
			return
		}
		w.log.Info("watch: reload signal sent", "job", r.Job, "signal", sig)
		return
	}
	delay := reloadBackoff
	for attempt := 1; ; attempt++ {
		err := w.runReload(ctx, r)
		if err == nil {
			w.log.Info("watch: reloaded", "attempt", attempt)
			return
		}
		w.log.Warn("watch: reload failed", "attempt", attempt, "of", reloadAttempts, "err", err)
		if attempt == reloadAttempts || !w.sleep(ctx, delay) {
			return
		}
		delay *= 2
	}
}

// sleep waits d on the watch's clock; false when ctx ended first.
func (w *Watch) sleep(ctx context.Context, d time.Duration) bool {
	t := w.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
		return true
	}
}

// runReload runs the reload command once, in its own process group,
// killed with the group at the timeout.
func (w *Watch) runReload(ctx context.Context, r *config.Reload) error {
	res, err := w.runner.RunCommand(ctx, jobs.Command{
		Argv: r.Exec, Env: w.environ, Stdout: w.stdout, Stderr: w.stderr,
		Timeout: r.Timeout, WaitDelay: reloadWaitDelay,
	})
	switch {
	case res.TimedOut:
		return fmt.Errorf("killed at its timeout %s", r.Timeout)
	case err != nil:
		return err
	case !res.Status.Success():
		return fmt.Errorf("exited with %s", res.Status)
	}
	return nil
}
