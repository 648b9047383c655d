package jobs

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// commandReaper is a running Reaper in a subreaper, as pilot is, so that a
// command's orphaned grandchildren are reaped here and a test can see its
// whole group gone, zombies included.
func commandReaper(t *testing.T) *Reaper {
	t.Helper()
	if err := BecomeSubreaper(); err != nil {
		t.Fatal(err)
	}
	return newHarness(t).deps.Reaper
}

// shCommand runs script with its leader's pid as the first line of stdout.
func shCommand(script string, stdout *syncBuffer) Command {
	return Command{Argv: []string{"/bin/sh", "-c", "echo $$; " + script}, Stdout: stdout}
}

// leaderPid reads the pid shCommand printed.
func leaderPid(t *testing.T, stdout *syncBuffer) int {
	t.Helper()
	line, _, _ := strings.Cut(stdout.String(), "\n")
	pid, err := strconv.Atoi(line)
	if err != nil {
		t.Fatalf("no pid in the command's output %q", stdout.String())
	}
	return pid
}

// waitGroupGone waits until no process of group pgid is left, zombie or not.
func waitGroupGone(t *testing.T, pgid int) {
	t.Helper()
	waitFor(t, "process group "+strconv.Itoa(pgid)+" to be gone", func() bool {
		for _, p := range processTable() {
			if p.pgrp == pgid {
				return false
			}
		}
		return true
	})
}

func TestRunCommandExitStatus(t *testing.T) {
	r := commandReaper(t)
	for _, c := range []struct {
		script       string
		code, signal int
	}{
		{"exit 0", 0, 0},
		{"exit 3", 3, 0},
		{"kill -TERM $$", 143, 15},
	} {
		res, err := r.RunCommand(t.Context(), Command{Argv: []string{"/bin/sh", "-c", c.script}})
		if err != nil || res.Status.Code != c.code || res.Status.Signal != c.signal || res.Status.Err != nil || res.TimedOut {
			t.Errorf("%s: %+v, %v; want code %d, signal %d", c.script, res, err, c.code, c.signal)
		}
	}
}

// The command runs in its Dir with exactly its Env, found in that Env's
// PATH, and its two streams reach their writers.
func TestRunCommandEnvDirAndOutput(t *testing.T) {
	r := commandReaper(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\necho \"$GREETING from $(pwd)\"\necho oops >&2\n"
	if err := os.WriteFile(filepath.Join(bin, "greet"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr syncBuffer
	res, err := r.RunCommand(t.Context(), Command{Argv: []string{"greet"}, Dir: dir,
		Env: []string{"PATH=" + bin + ":/usr/bin:/bin", "GREETING=hello"}, Stdout: &stdout, Stderr: &stderr})
	if err != nil || !res.Status.Success() {
		t.Fatalf("%+v, %v", res, err)
	}
	if got, want := stdout.String(), "hello from "+dir+"\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
	if got := stderr.String(); got != "oops\n" {
		t.Errorf("stderr %q", got)
	}
}

// A command that cannot start is an error, said as for a job.
func TestRunCommandCannotStart(t *testing.T) {
	r := commandReaper(t)
	_, err := r.RunCommand(t.Context(), Command{Argv: []string{"no-such-command"}, Env: []string{"PATH=/usr/bin:/bin"}})
	if !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("missing command: %v, want ErrNotFound", err)
	}
	_, err = r.RunCommand(t.Context(), Command{Argv: []string{"/bin/true"}, Dir: "/no/such/dir"})
	if want := `dir "/no/such/dir": no such file or directory`; err == nil || err.Error() != want {
		t.Errorf("missing dir: %v, want %q", err, want)
	}
	if _, err := r.RunCommand(t.Context(), Command{}); err == nil {
		t.Error("empty command: no error")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := r.RunCommand(ctx, Command{Argv: []string{"/bin/true"}}); !errors.Is(err, context.Canceled) {
		t.Errorf("ended context: %v, want context.Canceled", err)
	}
}

// At its Timeout the whole group dies, a grandchild too; at the end of ctx
// the same, without TimedOut.
func TestRunCommandKillsTheGroupAtTheEnd(t *testing.T) {
	r := commandReaper(t)
	const limit = 200 * time.Millisecond
	for _, atTimeout := range []bool{true, false} {
		var stdout syncBuffer
		c := shCommand("sleep 100 & sleep 100", &stdout)
		ctx := t.Context()
		if atTimeout {
			c.Timeout = limit
		} else {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, limit)
			defer cancel()
		}
		res, err := r.RunCommand(ctx, c)
		if err != nil || res.TimedOut != atTimeout || res.Status.Code != 137 {
			t.Fatalf("%+v, %v; want killed, TimedOut %v", res, err, atTimeout)
		}
		if res.Took < limit-20*time.Millisecond || res.Took > 2*time.Second { // ctx's clock starts before the call
			t.Errorf("took %s to kill at %s", res.Took, limit)
		}
		waitGroupGone(t, leaderPid(t, &stdout))
	}
}

// Whatever is left of the group when the leader exits is killed: a
// daemonised grandchild at once, one holding the output open after
// WaitDelay. The leader's clean exit stands.
func TestRunCommandKillsLeftovers(t *testing.T) {
	r := commandReaper(t)
	for _, script := range []string{"sleep 100 >/dev/null 2>&1 & exit 0", "sleep 100 & exit 0"} {
		var stdout syncBuffer
		c := shCommand(script, &stdout)
		c.WaitDelay = 100 * time.Millisecond
		res, err := r.RunCommand(t.Context(), c)
		if err != nil || !res.Status.Success() || res.TimedOut {
			t.Fatalf("%s: %+v, %v; want success", script, res, err)
		}
		if res.Took > 2*time.Second {
			t.Errorf("%s: took %s: the leftover held it up", script, res.Took)
		}
		waitGroupGone(t, leaderPid(t, &stdout))
	}
}
