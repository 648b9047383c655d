package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nodepilot/pilot/pilot/control"
	"github.com/nodepilot/pilot/telemetry"
)

// controlFake is a control.API with jobs web (running, healthy) and
// worker (stopped), one declared metric, queue_depth; it records what the
// commands asked.
type controlFake struct {
	mu        sync.Mutex
	status    telemetry.Status
	reload    control.ReloadResult
	reloadErr error
	calls     []string
}

func (f *controlFake) record(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

func (f *controlFake) Status() telemetry.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

func (f *controlFake) Reload(context.Context) (control.ReloadResult, error) {
	f.record("reload")
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reload, f.reloadErr
}

func (f *controlFake) SetMaintenance(_ context.Context, on bool) error {
	f.record("maintenance %v", on)
	return nil
}

func (f *controlFake) known(name string) (telemetry.JobStatus, bool) {
	for _, j := range f.Status().Jobs {
		if j.Name == name {
			return j, true
		}
	}
	return telemetry.JobStatus{}, false
}

func (f *controlFake) RestartJob(_ context.Context, name string) error {
	if _, ok := f.known(name); !ok {
		return control.ErrUnknownJob
	}
	f.record("restart %s", name)
	return nil
}

func (f *controlFake) SignalJob(name string, sig syscall.Signal) error {
	j, ok := f.known(name)
	switch {
	case !ok:
		return control.ErrUnknownJob
	case j.Pid == 0:
		return fmt.Errorf("job %q is %s: %w", name, j.State, control.ErrJobNotRunning)
	}
	f.record("signal %s %d", name, sig)
	return nil
}

func (f *controlFake) PutEnv(vars map[string]string) error {
	f.record("putenv %v", vars)
	return nil
}

func (f *controlFake) SetMetrics(values map[string]float64) error {
	for name := range values {
		if name != "queue_depth" && !strings.HasPrefix(name, "queue_depth{") {
			return &control.UnknownMetricError{Name: name, Declared: []string{"queue_depth"}}
		}
	}
	f.record("metric %v", values)
	return nil
}

func newControlFake() *controlFake {
	started := time.Now().Add(-3*time.Minute - 12*time.Second)
	return &controlFake{
		status: telemetry.Status{
			Pilot: telemetry.PilotStatus{Version: "1.2.3", Commit: "abc", Pid: 1, Started: started},
			Jobs: []telemetry.JobStatus{
				{Name: "web", State: "healthy", Pid: 42, Runs: 1, Health: "healthy", Started: &started},
				{Name: "worker", State: "stopped", Runs: 1},
			},
			Services: []telemetry.ServiceStatus{},
			Watches:  []telemetry.WatchStatus{},
		},
		reload: control.ReloadResult{Restarted: []string{"web"}, Started: []string{"worker"}, Unchanged: 3},
	}
}

// serveControl runs a control server for api on a socket in a fresh
// temporary directory until the test ends, and returns its path.
func serveControl(t *testing.T, api control.API) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pilot.sock")
	ln, err := control.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := control.NewServer(api, nil, nil)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return path
}

// TestControlCommands runs each control command through run, against a
// control server on a temporary socket. PILOT_CONFIG names a file that is
// not a config, and --config is never given: a command that read a config
// would fail.
func TestControlCommands(t *testing.T) {
	t.Parallel()
	fake := newControlFake()
	sock := serveControl(t, fake)
	notConfig := filepath.Join(t.TempDir(), "pilot.yaml")
	if err := os.WriteFile(notConfig, []byte("jobs: [this is not a config\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"PILOT_CONFIG=" + notConfig, "PILOT_SOCKET=" + sock}

	type want struct {
		code   int
		stdout []string
		stderr []string
		call   string // what the API was asked last, "" for nothing
	}
	cases := []struct {
		args []string
		env  []string
		want want
	}{
		{[]string{"status"}, env, want{0, []string{"JOB", "web", "healthy", "42", "3m12s", "worker", "pilot 1.2.3 (commit abc), pid 1, up 3m12s, maintenance off"}, nil, ""}},
		{[]string{"status", "--socket", sock}, []string{"PILOT_CONFIG=" + notConfig}, want{0, []string{"web"}, nil, ""}},
		{[]string{"status", "--socket=" + sock, "--json"}, nil, want{0, []string{`"version": "1.2.3"`, `"jobs": [`}, nil, ""}},
		{[]string{"health"}, env, want{0, []string{"healthy (1 job checked)"}, nil, ""}},
		{[]string{"reload"}, env, want{0, []string{"reloaded: restarted web; started worker; stopped -; 3 unchanged"}, nil, "reload"}},
		{[]string{"maintenance", "on"}, env, want{0, []string{"maintenance on"}, nil, "maintenance true"}},
		{[]string{"maintenance", "OFF"}, env, want{0, []string{"maintenance off"}, nil, "maintenance false"}},
		{[]string{"restart", "web"}, env, want{0, []string{"restarted web"}, nil, "restart web"}},
		{[]string{"restart", "--timeout", "10s", "web", "--socket", sock}, nil, want{0, []string{"restarted web"}, nil, "restart web"}},
		{[]string{"restart", "wbe"}, env, want{1, nil, []string{`pilot restart: job "wbe": no such job (jobs: web, worker)`}, ""}},
		{[]string{"signal", "web", "usr2"}, env, want{0, []string{"sent SIGUSR2 to web"}, nil, "signal web 12"}},
		{[]string{"signal", "web", "10"}, env, want{0, []string{"sent SIGUSR1 to web"}, nil, "signal web 10"}},
		{[]string{"signal", "worker", "HUP"}, env, want{1, nil, []string{`pilot signal: job "worker" is stopped: job is not running`}, ""}},
		{[]string{"putenv", "B=2", "A=x=y", "C="}, env, want{0, []string{"set A, B, C: runs started from now on get it"}, nil, "putenv map[A:x=y B:2 C:]"}},
		{[]string{"metric", "queue_depth=3", `queue_depth{queue="a=b"}=-1.5`}, env, want{0, []string{`set queue_depth, queue_depth{queue="a=b"}`}, nil, `metric map[queue_depth:3 queue_depth{queue="a=b"}:-1.5]`}},
		{[]string{"metric", "queue_dpth=3"}, env, want{1, nil, []string{`pilot metric: metric "queue_dpth": not declared (declared: queue_depth)`}, ""}},
	}
	for _, c := range cases {
		fake.mu.Lock()
		fake.calls = nil
		fake.mu.Unlock()
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), c.args, stdio{nil, &stdout, &stderr}, c.env)
		w := c.want
		if code != w.code {
			t.Errorf("%q: exit %d, want %d", c.args, code, w.code)
		}
		for _, s := range w.stdout {
			if !strings.Contains(stdout.String(), s) {
				t.Errorf("%q: stdout lacks %q", c.args, s)
			}
		}
		for _, s := range w.stderr {
			if !strings.Contains(stderr.String(), s) {
				t.Errorf("%q: stderr lacks %q", c.args, s)
			}
		}
		if code == 0 && stderr.Len() > 0 || code != 0 && stdout.Len() > 0 {
			t.Errorf("%q: exit %d with stdout %q, stderr %q", c.args, code, stdout.String(), stderr.String())
		}
		fake.mu.Lock()
		last := ""
		if len(fake.calls) > 0 {
			last = fake.calls[len(fake.calls)-1]
		}
		fake.mu.Unlock()
		if last != w.call {
			t.Errorf("%q: the API was asked %q, want %q", c.args, last, w.call)
		}
		if t.Failed() {
			t.Logf("%q:\nstdout:\n%s\nstderr:\n%s", c.args, stdout.String(), stderr.String())
			break
		}
	}

	// --json is the document as served: it decodes as the status.
	var stdout bytes.Buffer
	run(context.Background(), []string{"status", "--json"}, stdio{nil, &stdout, &bytes.Buffer{}}, env)
	var st telemetry.Status
	if err := json.Unmarshal(stdout.Bytes(), &st); err != nil || !reflect.DeepEqual(st.Jobs[1], fake.Status().Jobs[1]) {
		t.Errorf("status --json: %v\n%s", err, stdout.String())
	}
}

// Reload with a config that has problems: exit 1, every problem on its
// own line.
func TestControlReloadConfigError(t *testing.T) {
	t.Parallel()
	fake := newControlFake()
	fake.reloadErr = &control.ConfigError{Problems: []string{"p.yaml:3: jobs[0].exec: missing", "p.yaml:9: jobs[1].user: unknown user \"x\""}}
	sock := serveControl(t, fake)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"reload", "--socket", sock}, stdio{nil, &stdout, &stderr}, nil)
	want := "pilot reload: the config has 2 problems; pilot runs on with the config it had:\np.yaml:3: jobs[0].exec: missing\np.yaml:9: jobs[1].user: unknown user \"x\"\n"
	if code != 1 || stderr.String() != want || stdout.Len() > 0 {
		t.Errorf("exit %d, stderr:\n%s\nwant exit 1 and:\n%s", code, stderr.String(), want)
	}
	fake.mu.Lock()
	fake.reloadErr = control.ErrReloadInProgress
	fake.mu.Unlock()
	stderr.Reset()
	if code := run(context.Background(), []string{"reload", "--socket", sock}, stdio{nil, &stdout, &stderr}, nil); code != 1 || !strings.Contains(stderr.String(), "a reload is in progress") {
		t.Errorf("in progress: exit %d, %s", code, stderr.String())
	}
}

// pilot health: 1 and the jobs at fault when one is not healthy.
func TestControlHealthUnhealthy(t *testing.T) {
	t.Parallel()
	fake := newControlFake()
	fake.status.Jobs = append(fake.status.Jobs,
		telemetry.JobStatus{Name: "api", State: "unhealthy", Pid: 7, Health: "unhealthy"},
		telemetry.JobStatus{Name: "cache", State: "starting", Pid: 8, Health: "unknown"})
	sock := serveControl(t, fake)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"health", "--socket", sock}, stdio{nil, &stdout, &stderr}, nil)
	want := "pilot health: unhealthy: 2 of 3 checked jobs\n  api: unhealthy\n  cache: no verdict yet (starting)\n"
	if code != 1 || stderr.String() != want || stdout.Len() > 0 {
		t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant exit 1 and:\n%s", code, stdout.String(), stderr.String(), want)
	}
}

// With no pilot to answer, every command exits 1 saying why.
func TestControlNotRunning(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "pilot.sock")
	silent := filepath.Join(t.TempDir(), "pilot.sock")
	ln, err := net.Listen("unix", silent)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close() // accepts nothing: connections wait in the backlog
	for _, args := range [][]string{{"status"}, {"health"}, {"reload"}, {"maintenance", "on"}, {"restart", "web"}, {"signal", "web", "HUP"}, {"putenv", "A=1"}, {"metric", "m=1"}} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), args, stdio{nil, &stdout, &stderr}, []string{"PILOT_SOCKET=" + missing})
		want := "pilot " + args[0] + ": pilot is not running, or listens elsewhere: no control socket at " + missing
		if code != 1 || !strings.HasPrefix(stderr.String(), want) || stdout.Len() > 0 {
			t.Errorf("%q: exit %d, stderr %q; want 1 and %q…", args, code, stderr.String(), want)
		}
	}
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"status", "--timeout", "100ms", "--socket", silent}, stdio{nil, &bytes.Buffer{}, &stderr}, nil)
	if want := "pilot status: pilot did not answer within 100ms on " + silent + "\n"; code != 1 || stderr.String() != want {
		t.Errorf("silent socket: exit %d, stderr %q; want 1 and %q", code, stderr.String(), want)
	}
}

// TestParseControl: the command lines the control commands take, and the
// usage errors (exit 2) they refuse before connecting.
func TestParseControl(t *testing.T) {
	t.Parallel()
	noEnv := func(string) string { return "" }
	good := []struct {
		args []string
		env  func(string) string
		want controlCall
	}{
		{[]string{"status"}, noEnv, controlCall{name: "status", socket: control.DefaultSocket, timeout: controlQuickTimeout}},
		{[]string{"status", "--json"}, func(k string) string { return map[string]string{"PILOT_SOCKET": "/run/p.sock"}[k] }, controlCall{name: "status", socket: "/run/p.sock", timeout: controlQuickTimeout, asJSON: true}},
		{[]string{"reload", "--socket", "/s"}, noEnv, controlCall{name: "reload", socket: "/s", timeout: controlSlowTimeout}},
		{[]string{"maintenance", "--timeout=2s", "on"}, noEnv, controlCall{name: "maintenance", socket: control.DefaultSocket, timeout: 2 * time.Second, on: true}},
		{[]string{"signal", "web", "SIGTERM", "--socket", "/s"}, noEnv, controlCall{name: "signal", socket: "/s", timeout: controlQuickTimeout, job: "web", signal: "SIGTERM"}},
		{[]string{"putenv", "--", "-X=1"}, noEnv, controlCall{name: "putenv", socket: control.DefaultSocket, timeout: controlQuickTimeout, env: map[string]string{"-X": "1"}}},
		{[]string{"metric", "m=1e3", "m=-2"}, noEnv, controlCall{name: "metric", socket: control.DefaultSocket, timeout: controlQuickTimeout, metrics: map[string]float64{"m": -2}}},
	}
	for _, c := range good {
		inv, err := parseArgs(c.args, c.env)
		if err != nil || inv.do != doControl || !reflect.DeepEqual(inv.control, c.want) {
			t.Errorf("%q: %+v, %v; want %+v", c.args, inv.control, err, c.want)
		}
	}
	bad := []struct {
		args []string
		want string
	}{
		{[]string{"status", "extra"}, `pilot status: unexpected argument "extra" (it takes none)`},
		{[]string{"health", "--json"}, "pilot health: flag provided but not defined: -json (pilot health --help)"},
		{[]string{"reload", "--socket"}, "pilot reload: flag needs an argument: -socket (pilot reload --help)"},
		{[]string{"maintenance"}, "pilot maintenance: missing on|off (pilot maintenance on|off)"},
		{[]string{"maintenance", "maybe"}, `pilot maintenance: "maybe": want on or off`},
		{[]string{"maintenance", "on", "off"}, `pilot maintenance: unexpected argument "off" (pilot maintenance on|off)`},
		{[]string{"restart"}, "pilot restart: missing JOB (pilot restart JOB)"},
		{[]string{"restart", "a", "b"}, `pilot restart: unexpected argument "b" (pilot restart JOB)`},
		{[]string{"signal", "web"}, "pilot signal: missing SIG after the job (pilot signal JOB SIG)"},
		{[]string{"signal", "web", "SIGFOO"}, `pilot signal: unknown signal "SIGFOO": want a name such as SIGUSR2 or USR2, or a number from 1 to 64`},
		{[]string{"signal", "web", "0"}, `pilot signal: signal "0": a number must be from 1 to 64`},
		{[]string{"putenv"}, "pilot putenv: missing NAME=VALUE… (pilot putenv NAME=VALUE…)"},
		{[]string{"putenv", "FOO"}, `pilot putenv: "FOO": want NAME=VALUE (NAME= for an empty value)`},
		{[]string{"putenv", "=x"}, `pilot putenv: "=x": the name is empty`},
		{[]string{"metric", "x=abc"}, `pilot metric: "x=abc": "abc" is not a number`},
		{[]string{"metric", "x"}, `pilot metric: "x": want NAME=VALUE`},
		{[]string{"metric", "=1"}, `pilot metric: "=1": the name is empty`},
		{[]string{"metric", "x=NaN"}, `pilot metric: "x=NaN": want a finite number`},
		{[]string{"metric", "x=-Inf"}, `pilot metric: "x=-Inf": want a finite number`},
		{[]string{"status", "--timeout", "-1s"}, "pilot status: --timeout -1s: must be positive"},
	}
	for _, c := range bad {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), c.args, stdio{nil, &stdout, &stderr}, nil)
		if code != 2 || stderr.String() != c.want+"\n" || stdout.Len() > 0 {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", c.args, code, stderr.String(), c.want)
		}
	}
	// Help, for each command and through pilot help.
	for name := range controlCommands {
		for _, args := range [][]string{{name, "--help"}, {"help", name}} {
			var stdout bytes.Buffer
			if code := run(context.Background(), args, stdio{nil, &stdout, &bytes.Buffer{}}, nil); code != 0 ||
				!strings.HasPrefix(stdout.String(), "usage: pilot "+name) || !strings.Contains(stdout.String(), "--socket PATH") {
				t.Errorf("%q: exit %d:\n%s", args, code, stdout.String())
			}
		}
	}
}

// TestStatusTable: the table pilot status prints, against a fixed status
// and a fixed now.
func TestStatusTable(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) *time.Time { at := now.Add(-d); return &at }
	three, nine := 3, 9
	st := telemetry.Status{
		Pilot: telemetry.PilotStatus{Version: "1.4.2", Commit: "0abc123", Pid: 1, Started: *ago(3*24*time.Hour + 4*time.Hour + 5*time.Minute),
			Maintenance: true, PutEnv: []string{"FEATURE_X", "LOG_LEVEL"}},
		Jobs: []telemetry.JobStatus{
			{Name: "web", State: "healthy", Main: true, Pid: 4242, Started: ago(2*time.Hour + 5*time.Minute + 30*time.Second), Runs: 3, Restarts: 2,
				LastExit: &telemetry.ExitStatus{Code: 137, Signal: 9}, Health: "healthy"},
			{Name: "worker", State: "running", Pid: 77, Started: ago(3*time.Minute + 12*time.Second), Runs: 1},
			{Name: "api", State: "unhealthy", Pid: 78, Started: ago(45 * time.Second), Runs: 1, Health: "unhealthy"},
			{Name: "migrate", State: "failed", Runs: 1, LastExit: &telemetry.ExitStatus{Code: 127, Error: "exec: \"migrate\": executable file not found in $PATH"}},
			{Name: "cron", State: "idle", Runs: 4, LastExit: &telemetry.ExitStatus{Code: 0}},
			{Name: "report", State: "idle", Blocked: "dependency migrate failed"},
			{Name: "legacy", State: "running", Pid: 90, Runs: 1}, // no start time known: no uptime
		},
		Services: []telemetry.ServiceStatus{
			{Job: "web", Name: "web", Registered: true, Status: "passing", Maintenance: true},
			{Job: "api", Name: "api", Registered: true, Status: "critical"},
			{Job: "worker", Name: "worker", HeldBy: "10.0.0.7:3000"},
			{Job: "legacy", Name: "legacy"},
			{Name: "pilot", Registered: true, Status: "passing"},
		},
		Watches: []telemetry.WatchStatus{
			{Watch: "backend", Service: "backend", Instances: &three, Skipped: 1, Changes: 12, LastChange: ago(90 * time.Second)},
			{Watch: "backend#2", Service: "backend", Instances: &nine, Changes: 1, LastChange: ago(26 * time.Hour)},
			{Watch: "db", Service: "db"},
		},
	}
	want := `JOB      STATE      PID   UPTIME  RESTARTS  LAST EXIT  HEALTH     SERVICE
web      healthy    4242  2h5m    2         SIGKILL    healthy    web (maintenance)
worker   running    77    3m12s   0         -          -          worker (held by 10.0.0.7:3000)
api      unhealthy  78    45s     0         -          unhealthy  api (critical)
migrate  failed     -     -       0         error      -          -
cron     idle       -     -       0         0          -          -
report   idle       -     -       0         -          -          -
legacy   running    90    -       0         -          -          legacy (not registered)
  migrate: last run: exec: "migrate": executable file not found in $PATH
  report: blocked: dependency migrate failed

WATCH      SERVICE  INSTANCES      CHANGES  LAST CHANGE
backend    backend  3 (1 skipped)  12       1m30s ago
backend#2  backend  9              1        1d2h ago
db         db       -              0        -

pilot 1.4.2 (commit 0abc123), pid 1, up 3d4h, maintenance ON; service pilot (passing); putenv FEATURE_X, LOG_LEVEL
`
	var buf bytes.Buffer
	writeStatus(&buf, st, now)
	if got := buf.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}

	// No jobs, no watches, no start time.
	buf.Reset()
	writeStatus(&buf, telemetry.Status{Pilot: telemetry.PilotStatus{Version: "dev", Commit: "unknown", Pid: 9}}, now)
	if want := "no jobs\n\npilot dev (commit unknown), pid 9, maintenance off\n"; buf.String() != want {
		t.Errorf("empty status:\n%s\nwant:\n%s", buf.String(), want)
	}
}

func TestStatusContainerLine(t *testing.T) {
	t.Parallel()
	id := "3f2a9c1e5b7d4a6f8e0c2b4d6f8a0c2e4b6d8f0a2c4e6b8d0f2a4c6e8b0d2f4a"
	for _, tc := range []struct {
		c    telemetry.ContainerStatus
		want string
	}{
		{telemetry.ContainerStatus{ID: id}, "container 3f2a9c1e5b7d"},
		{telemetry.ContainerStatus{ID: id, Name: "shop-api-2", Image: "shop/api:1.4", Project: "shop", Service: "api", Replica: 2},
			"container shop-api-2 (3f2a9c1e5b7d), compose shop/api #2, image shop/api:1.4"},
	} {
		if got := containerLine(tc.c); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

func TestStatusTableUptime(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		-time.Second:                        "0s",
		0:                                   "0s",
		999 * time.Millisecond:              "0s",
		45 * time.Second:                    "45s",
		time.Minute:                         "1m0s",
		3*time.Minute + 12*time.Second:      "3m12s",
		time.Hour - time.Nanosecond:         "59m59s",
		2*time.Hour + 5*time.Minute + 59e9:  "2h5m",
		24 * time.Hour:                      "1d0h",
		3*24*time.Hour + 4*time.Hour + 1e12: "3d4h",
		400 * 24 * time.Hour:                "400d0h",
	} {
		if got := formatUptime(d); got != want {
			t.Errorf("formatUptime(%v) = %q, want %q", d, got, want)
		}
	}
	for res, want := range map[*control.ReloadResult]string{
		nil: "reloaded",
		{}:  "reloaded: restarted -; started -; stopped -; 0 unchanged",
		{Stopped: []string{"a", "b"}, Unchanged: 1}: "reloaded: restarted -; started -; stopped a, b; 1 unchanged",
	} {
		if got := reloadLine(res); got != want {
			t.Errorf("reloadLine(%+v) = %q, want %q", res, got, want)
		}
	}
}

func (f *controlFake) ReloadJob(_ context.Context, name string) (control.RollResult, error) {
	j, ok := f.known(name)
	switch {
	case !ok:
		return control.RollResult{}, control.ErrUnknownJob
	case len(j.Instances) == 0:
		return control.RollResult{}, fmt.Errorf("job %q: %w", name, control.ErrNotCluster)
	case j.LastReload != nil && j.LastReload.Error != "":
		return control.RollResult{}, errors.New(j.LastReload.Error)
	}
	f.record("reload-app %s", name)
	return control.RollResult{Job: name, Replaced: len(j.Instances), Seconds: 1.25}, nil
}
