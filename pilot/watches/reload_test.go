package watches

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodepilot/pilot/jobs"
	"github.com/nodepilot/pilot/pilot/config"
)

// fakeRunner answers each reload command at once with the outcome of its
// attempt (the last outcome for any later one), and records the call.
type fakeRunner struct {
	clock    *fakeClock
	outcomes []outcome
	calls    chan runCall
	n        atomic.Int32 // calls so far
}

type outcome struct {
	res jobs.CommandResult
	err error
}

type runCall struct {
	at  time.Duration // since epoch
	cmd jobs.Command
}

var (
	failed   = outcome{res: jobs.CommandResult{Status: jobs.ExitStatus{Code: 1}}}
	timedOut = outcome{res: jobs.CommandResult{Status: jobs.ExitStatus{Code: 137, Signal: 9}, TimedOut: true}}
	notFound = outcome{err: errors.New(`exec "nginx": not found in PATH`)}
	success  = outcome{}
)

func (f *fakeRunner) RunCommand(_ context.Context, c jobs.Command) (jobs.CommandResult, error) {
	o := f.outcomes[min(int(f.n.Add(1))-1, len(f.outcomes)-1)]
	f.calls <- runCall{f.clock.Now().Sub(epoch), c}
	return o.res, o.err
}

func (f *fakeRunner) next(t *testing.T) runCall {
	t.Helper()
	select {
	case c := <-f.calls:
		return c
	case <-time.After(waitLimit):
		t.Fatal("no reload command run")
		return runCall{}
	}
}

var reloadExec = config.OnChange{Reload: &config.Reload{Exec: []string{"nginx", "-s", "reload"}, Timeout: 10 * time.Second}}

// execWatch is a watch whose reload is a command, answered by outcomes.
func execWatch(t *testing.T, oc config.OnChange, outcomes ...outcome) (*Watch, *testEnv, *fakeRunner) {
	var r *fakeRunner
	w, e := testWatch(t, oc, func(o *Options) {
		r = &fakeRunner{clock: o.Clock.(*fakeClock), outcomes: outcomes, calls: make(chan runCall, 10)}
		o.Runner = r
	})
	return w, e, r
}

// reloadInBackground runs w.reload; the channel closes when it returns.
func reloadInBackground(t *testing.T, w *Watch) (done chan struct{}, cancel func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done = make(chan struct{})
	go func() { defer close(done); w.reload(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return done, cancel
}

func waitDone(t *testing.T, done <-chan struct{}) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatal("reload did not return")
	}
}

// A reload command that keeps failing is tried 3 times, 200 ms then 400 ms
// apart, and then given up without a further wait; each failure says why;
// the app is never touched.
func TestReloadRetryBackoff(t *testing.T) {
	w, e, r := execWatch(t, reloadExec, timedOut, notFound, failed)
	done, _ := reloadInBackground(t, w)
	if c := r.next(t); c.at != 0 {
		t.Fatalf("first attempt at %v, want at once", c.at)
	}
	e.clock.waitArmed(t, epoch.Add(200*ms))
	e.clock.Advance(199 * ms)
	if len(r.calls) > 0 { // only the backoff's timer runs the next attempt
		t.Fatal("second attempt before the backoff ended")
	}
	e.clock.Advance(ms)
	if c := r.next(t); c.at != 200*ms {
		t.Fatalf("second attempt at %v, want 200ms", c.at)
	}
	e.clock.waitArmed(t, epoch.Add(600*ms))
	e.clock.Advance(399 * ms)
	if len(r.calls) > 0 {
		t.Fatal("third attempt before the doubled backoff ended")
	}
	e.clock.Advance(ms)
	if c := r.next(t); c.at != 600*ms {
		t.Fatalf("third attempt at %v, want 600ms", c.at)
	}
	waitDone(t, done)
	wantArmed(t, e.clock)
	if len(r.calls) > 0 {
		t.Fatal("a fourth attempt")
	}
	for _, want := range []string{
		`level=WARN msg="watch: reload failed" watch=backend attempt=1 of=3 err="killed at its timeout 10s"`,
		`level=WARN msg="watch: reload failed" watch=backend attempt=2 of=3 err="exec \"nginx\": not found in PATH"`,
		`level=WARN msg="watch: reload failed" watch=backend attempt=3 of=3 err="exited with code 1"`,
	} {
		if !strings.Contains(e.logs.String(), want) {
			t.Errorf("no line\n%s", want)
		}
	}
	if strings.Contains(e.logs.String(), "reloaded") {
		t.Error("claims a reload")
	}
	if signals, triggers := e.jobs.touched(); len(signals)+len(triggers) > 0 {
		t.Errorf("a failed reload touched jobs: %v %v", signals, triggers)
	}
}

// A reload that succeeds on its second attempt stops there, and says so.
func TestReloadSucceedsOnRetry(t *testing.T) {
	w, e, r := execWatch(t, reloadExec, failed, success)
	done, _ := reloadInBackground(t, w)
	r.next(t)
	e.clock.waitArmed(t, epoch.Add(200*ms))
	e.clock.Advance(200 * ms)
	r.next(t)
	waitDone(t, done)
	if len(r.calls) > 0 {
		t.Fatal("a third attempt after a success")
	}
	if !strings.Contains(e.logs.String(), `level=INFO msg="watch: reloaded" watch=backend attempt=2`) {
		t.Fatal("no line says it reloaded on the second attempt")
	}
}

// When the watch stops during the backoff, no further attempt is made.
func TestReloadStopsWithContext(t *testing.T) {
	w, e, r := execWatch(t, reloadExec, failed)
	done, cancel := reloadInBackground(t, w)
	r.next(t)
	e.clock.waitArmed(t, epoch.Add(200*ms))
	cancel()
	waitDone(t, done)
	wantArmed(t, e.clock)
	if len(r.calls) > 0 {
		t.Fatal("another attempt after the watch stopped")
	}
}

// The reload command is the config's, with the watch's environment and
// output, killed at its timeout; it runs when a file changed, or on every
// change when the watch renders nothing.
func TestReloadCommand(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "upstream.conf")
	oc := *reloadExec.Reload
	var stdout, stderr bytes.Buffer
	environ := []string{"PATH=/usr/sbin:/usr/bin", "A=1"}
	w, _, r := execWatch(t, config.OnChange{Render: &config.RenderFile{Format: "nginx", Dest: dest}, Reload: &oc}, success)
	w.environ, w.stdout, w.stderr = environ, &stdout, &stderr
	w.apply(context.Background(), snap(1))
	c := r.next(t).cmd
	if !slices.Equal(c.Argv, []string{"nginx", "-s", "reload"}) || !slices.Equal(c.Env, environ) || c.Timeout != 10*time.Second ||
		c.Stdout != &stdout || c.Stderr != &stderr || c.WaitDelay != reloadWaitDelay || c.Dir != "" || c.Credential != nil {
		t.Fatalf("command %+v", c)
	}
	w.apply(context.Background(), snap(1))
	if len(r.calls) > 0 {
		t.Fatal("reloaded although no file changed")
	}
	if _, err := os.Stat(dest); err != nil {
		t.Fatal(err)
	}

	w, _, r = execWatch(t, reloadExec, success)
	w.apply(context.Background(), snap(1))
	w.apply(context.Background(), snap(1))
	r.next(t)
	r.next(t)
}

// Built from Options, the output goes where they say, and a watch without
// a Runner fails its reloads instead of crashing.
func TestNewDefaults(t *testing.T) {
	var out bytes.Buffer
	w := New(Options{Name: "x", Config: config.Watch{OnChange: reloadExec}, Stdout: &out, Clock: newFakeClock()})
	if w.stdout != &out || w.stderr != nil {
		t.Fatal("output not as given")
	}
	if _, ok := w.clock.(*fakeClock); !ok {
		t.Fatal("clock not as given")
	}
	if err := w.runReload(context.Background(), reloadExec.Reload); err == nil {
		t.Fatal("a reload ran without a Runner")
	}
	if New(Options{}).clock != (RealClock{}) {
		t.Fatal("the default clock is not the real one")
	}
}
