package control

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Every client call, against the fake through a real socket.
func TestClient(t *testing.T) {
	t.Parallel()
	fake := newFake()
	c := NewClient(serve(t, fake, nil), 5*time.Second)
	ctx := context.Background()

	st, err := c.Status(ctx)
	if err != nil || !reflect.DeepEqual(st.Jobs, fake.Status().Jobs) {
		t.Errorf("Status: %+v, %v", st, err)
	}
	raw, err := c.StatusJSON(ctx)
	if err != nil || !strings.Contains(string(raw), `"version": "1.2.3"`) {
		t.Errorf("StatusJSON: %s, %v", raw, err)
	}
	if h, err := c.Health(ctx); err != nil || !h.Healthy || h.Checked != 1 {
		t.Errorf("Health: %+v, %v", h, err)
	}
	res, err := c.Reload(ctx)
	if want := (&ReloadResult{Restarted: []string{"web"}, Started: []string{}, Stopped: []string{}, Unchanged: 1}); err != nil || !reflect.DeepEqual(res, want) {
		t.Errorf("Reload: %+v, %v; want %+v", res, err, want)
	}
	if err := c.SetMaintenance(ctx, true); err != nil {
		t.Errorf("SetMaintenance: %v", err)
	}
	if err := c.RestartJob(ctx, "web"); err != nil {
		t.Errorf("RestartJob: %v", err)
	}
	if err := c.SignalJob(ctx, "web", "usr2"); err != nil {
		t.Errorf("SignalJob: %v", err)
	}
	if err := c.PutEnv(ctx, map[string]string{"A": "1"}); err != nil {
		t.Errorf("PutEnv: %v", err)
	}
	if err := c.SetMetrics(ctx, map[string]float64{"queue_depth": 2}); err != nil {
		t.Errorf("SetMetrics: %v", err)
	}
	fake.mu.Lock()
	if !reflect.DeepEqual(fake.maintenance, []bool{true}) || !reflect.DeepEqual(fake.restarted, []string{"web"}) ||
		!reflect.DeepEqual(fake.signals, []string{"web SIGUSR2"}) || fake.env["A"] != "1" || fake.metrics["queue_depth"] != 2 {
		t.Errorf("the API saw maintenance %v, restarts %v, signals %v, env %v, metrics %v", fake.maintenance, fake.restarted, fake.signals, fake.env, fake.metrics)
	}
	fake.mu.Unlock()

	// Errors: pilot's message, and the API error it stands for.
	err = c.RestartJob(ctx, "wbe")
	if !errors.Is(err, ErrUnknownJob) || !strings.Contains(err.Error(), `job "wbe": no such job (jobs: web, worker)`) {
		t.Errorf("RestartJob(wbe): %v", err)
	}
	if err := c.SignalJob(ctx, "worker", "HUP"); !errors.Is(err, ErrJobNotRunning) {
		t.Errorf("SignalJob(worker): %v, want ErrJobNotRunning", err)
	}
	var re *ResponseError
	if err := c.SetMetrics(ctx, map[string]float64{"nope": 1}); !errors.As(err, &re) || re.Status != 404 || !strings.Contains(re.Message, "declared: hits, queue_depth") {
		t.Errorf("SetMetrics(nope): %v", err)
	}
	fake.mu.Lock()
	fake.reloadErr = ErrReloadInProgress
	fake.mu.Unlock()
	if _, err := c.Reload(ctx); !errors.Is(err, ErrReloadInProgress) {
		t.Errorf("Reload in progress: %v", err)
	}
	fake.mu.Lock()
	fake.reloadErr = &ConfigError{Problems: []string{"p.yaml:3: jobs[0].exec: missing"}}
	fake.mu.Unlock()
	var ce *ConfigError
	if _, err := c.Reload(ctx); !errors.As(err, &ce) || !reflect.DeepEqual(ce.Problems, []string{"p.yaml:3: jobs[0].exec: missing"}) ||
		err.Error() != "the config has a problem; pilot runs on with the config it had:\np.yaml:3: jobs[0].exec: missing" {
		t.Errorf("Reload, bad config: %v", err)
	}

	// Checked before sending.
	if err := c.RestartJob(ctx, ""); err == nil || !strings.Contains(err.Error(), "job name is empty") {
		t.Errorf("RestartJob(\"\"): %v", err)
	}
	if err := c.SignalJob(ctx, "web", "SIGFOO"); err == nil || !strings.Contains(err.Error(), `unknown signal "SIGFOO"`) {
		t.Errorf("SignalJob(SIGFOO): %v", err)
	}
}

// Health reports an unhealthy pilot as an answer, not an error.
func TestClientHealthUnhealthy(t *testing.T) {
	t.Parallel()
	fake := newFake()
	fake.health = HealthReport{Checked: 1, Reason: "unhealthy: web is starting",
		Unhealthy: []JobHealth{{Job: "web", State: "starting", Health: "unknown", Reason: "web is starting"}}}
	h, err := NewClient(serve(t, fake, nil), 5*time.Second).Health(context.Background())
	if err != nil || h.Healthy || h.Reason != "unhealthy: web is starting" || len(h.Unhealthy) != 1 || h.Unhealthy[0].Job != "web" {
		t.Errorf("Health: %+v, %v", h, err)
	}
}

// When no pilot answers, the error says why in terms of what to do.
func TestClientCannotReach(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	missing := socketPath(t)
	_, err := NewClient(missing, time.Second).Status(ctx)
	if want := "pilot is not running, or listens elsewhere: no control socket at " + missing + " (pass --socket PATH or set PILOT_SOCKET"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("no socket: %v, want %q…", err, want)
	}

	stale := socketPath(t)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := NewClient(stale, time.Second).Status(ctx); err == nil || !strings.Contains(err.Error(), "pilot is not running: nothing listens on "+stale) {
		t.Errorf("stale socket: %v", err)
	}

	// Not a socket at all: said so, not mistaken for a dead pilot.
	file := socketPath(t)
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := NewClient(file, time.Second).Status(ctx); err == nil || !strings.HasPrefix(err.Error(), file+" is not a socket (a regular file)") {
		t.Errorf("a regular file: %v", err)
	}

	// A listener that accepts and never answers.
	silent := socketPath(t)
	sl, err := net.Listen("unix", silent)
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan net.Conn, 1)
	go func() {
		conn, err := sl.Accept()
		if err == nil {
			held <- conn
		}
		close(held)
	}()
	_, err = NewClient(silent, 100*time.Millisecond).Status(ctx)
	if want := "pilot did not answer within 100ms on " + silent; err == nil || err.Error() != want {
		t.Errorf("silent socket: %v, want %q", err, want)
	}
	sl.Close()
	for conn := range held {
		conn.Close()
	}

	// The caller's own cancellation is the caller's error, not a timeout.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := NewClient(missing, time.Second).Status(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// Permission denied names the socket, its mode and whom to run as. The
// wording is checked on the error itself (tests may run as root, whom no
// mode stops); the real socket case runs when they do not.
func TestClientPermissionDenied(t *testing.T) {
	t.Parallel()
	path := socketPath(t)
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c := NewClient(path, time.Second)
	denied := &net.OpError{Op: "dial", Net: "unix", Err: os.NewSyscallError("connect", syscall.EACCES)}
	err = c.transportError(context.Background(), context.Background(), denied)
	owner := "root"
	if os.Geteuid() != 0 {
		owner = ""
	}
	for _, want := range []string{"permission denied on the control socket " + path, "mode 0600, for the user pilot runs as", "docker exec -u " + owner} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v lacks %q", err, want)
		}
	}
	if os.Geteuid() == 0 {
		return
	}
	// Not root: a socket of mode 0600 that another user owns is not
	// reachable; one of ours with mode 0 stands in for it.
	if err := os.Chmod(path, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Status(context.Background()); err == nil || !strings.Contains(err.Error(), "permission denied on the control socket "+path) {
		t.Errorf("mode 0: %v", err)
	}
}

// Something other than pilot on the socket: its answer is quoted, not
// mistaken for pilot's; an answer without a reload summary is a reload.
func TestClientForeignServer(t *testing.T) {
	t.Parallel()
	path := socketPath(t)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/reload":
			w.WriteHeader(200) // an older pilot: no summary
		case "/v1/maintenance":
			w.Write([]byte(`{"ok":true}`))
		default:
			http.Error(w, "upstream exploded", http.StatusBadGateway)
		}
	})}
	go srv.Serve(ln)
	defer srv.Close()
	c := NewClient(path, 5*time.Second)
	ctx := context.Background()
	if res, err := c.Reload(ctx); res != nil || err != nil {
		t.Errorf("Reload without a summary: %+v, %v; want nil, nil", res, err)
	}
	if err := c.SetMaintenance(ctx, true); err != nil {
		t.Errorf("SetMaintenance: %v", err)
	}
	_, err = c.Status(ctx)
	var re *ResponseError
	if !errors.As(err, &re) || re.Status != 502 || !strings.Contains(err.Error(), path+` answered 502 Bad Gateway without pilot's JSON error (is it pilot's control socket?): "upstream exploded"`) {
		t.Errorf("Status: %v", err)
	}
}

func TestSocketPath(t *testing.T) {
	t.Parallel()
	env := func(vars map[string]string) func(string) string {
		return func(k string) string { return vars[k] }
	}
	set := map[string]string{"PILOT_SOCKET": "/run/env.sock"}
	for _, c := range []struct {
		flag string
		env  map[string]string
		want string
	}{
		{"/run/flag.sock", set, "/run/flag.sock"},
		{"", set, "/run/env.sock"},
		{"", nil, DefaultSocket},
		{"", map[string]string{"PILOT_SOCKET": ""}, DefaultSocket},
	} {
		if got := SocketPath(c.flag, env(c.env)); got != c.want {
			t.Errorf("SocketPath(%q, %v) = %q, want %q", c.flag, c.env, got, c.want)
		}
	}
	configured, off := "/run/config.sock", ""
	for _, c := range []struct {
		configured *string
		env        map[string]string
		want       string
	}{
		{&configured, set, "/run/config.sock"},
		{&off, set, ""},
		{nil, set, "/run/env.sock"},
		{nil, nil, DefaultSocket},
	} {
		if got := ServerSocketPath(c.configured, env(c.env)); got != c.want {
			t.Errorf("ServerSocketPath(%v, %v) = %q, want %q", c.configured, c.env, got, c.want)
		}
	}
}

func TestParseSignal(t *testing.T) {
	t.Parallel()
	for text, want := range map[string]syscall.Signal{"SIGUSR2": syscall.SIGUSR2, "usr2": syscall.SIGUSR2, "Hup": syscall.SIGHUP, "9": syscall.SIGKILL, "64": 64, "+1": 1} {
		if got, err := ParseSignal(text); err != nil || got != want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v", text, got, err, want)
		}
	}
	for _, text := range []string{"", "0", "65", "-1", "1-2", "SIGFOO", "15 ", "SIGRTMIN+1", "99999999999999999999"} {
		if sig, err := ParseSignal(text); err == nil {
			t.Errorf("ParseSignal(%q) = %v, want an error", text, sig)
		}
	}
}
