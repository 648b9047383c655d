package control

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/nodepilot/pilot/telemetry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeAPI is an API with two jobs, web (running) and worker (stopped),
// and two custom metrics, queue_depth (a gauge) and hits (a counter). It
// records what it is asked.
type fakeAPI struct {
	mu          sync.Mutex
	status      telemetry.Status
	health      HealthReport
	reload      ReloadResult
	reloadErr   error
	maintenance []bool
	restarted   []string
	signals     []string // "job SIGNAME"
	env         map[string]string
	metrics     map[string]float64
	// block, when set, makes RestartJob wait for its context to end and
	// send the context's error on it.
	block chan error
}

func newFake() *fakeAPI {
	started := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return &fakeAPI{
		status: telemetry.Status{
			Pilot: telemetry.PilotStatus{Version: "1.2.3", Commit: "abc", Pid: 1, Started: started},
			Jobs: []telemetry.JobStatus{
				{Name: "web", State: "healthy", Main: true, Pid: 42, Runs: 1, Health: "healthy", Started: &started},
				{Name: "worker", State: "stopped", Runs: 2, Restarts: 1, LastExit: &telemetry.ExitStatus{Code: 143, Signal: 15}},
			},
			Services: []telemetry.ServiceStatus{},
			Watches:  []telemetry.WatchStatus{},
		},
		health:  HealthReport{Healthy: true, Checked: 1},
		reload:  ReloadResult{Restarted: []string{"web"}, Unchanged: 1},
		env:     map[string]string{},
		metrics: map[string]float64{},
	}
}

func (f *fakeAPI) Status() telemetry.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

func (f *fakeAPI) Health() HealthReport {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.health
}

func (f *fakeAPI) Reload(ctx context.Context) (ReloadResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reload, f.reloadErr
}

func (f *fakeAPI) SetMaintenance(ctx context.Context, on bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.maintenance = append(f.maintenance, on)
	f.status.Pilot.Maintenance = on
	return nil
}

func (f *fakeAPI) job(name string) (telemetry.JobStatus, bool) {
	for _, j := range f.status.Jobs {
		if j.Name == name {
			return j, true
		}
	}
	return telemetry.JobStatus{}, false
}

func (f *fakeAPI) RestartJob(ctx context.Context, name string) error {
	f.mu.Lock()
	block := f.block
	_, ok := f.job(name)
	f.mu.Unlock()
	if block != nil {
		<-ctx.Done()
		block <- ctx.Err()
		return ctx.Err()
	}
	if !ok {
		return ErrUnknownJob
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.restarted = append(f.restarted, name)
	return nil
}

func (f *fakeAPI) SignalJob(name string, sig syscall.Signal) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, ok := f.job(name)
	switch {
	case !ok:
		return ErrUnknownJob
	case j.Pid == 0:
		return fmt.Errorf("job %q is %s: %w", name, j.State, ErrJobNotRunning)
	}
	f.signals = append(f.signals, name+" "+signalName(sig))
	return nil
}

func (f *fakeAPI) PutEnv(vars map[string]string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, v := range vars {
		f.env[k] = v
	}
	return nil
}

func (f *fakeAPI) SetMetrics(values map[string]float64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	declared := []string{"hits", "queue_depth"}
	for _, name := range sortedKeys(values) {
		base, _, _ := strings.Cut(name, "{")
		if !slices.Contains(declared, base) {
			return &UnknownMetricError{Name: name, Declared: declared}
		}
		if base == "hits" && values[name] < 0 {
			return &InvalidError{Err: fmt.Errorf("metric %q: a counter only goes up: cannot add %v", name, values[name])}
		}
	}
	for k, v := range values {
		f.metrics[k] = v
	}
	return nil
}

// socketPath is a socket path in a fresh temporary directory.
func socketPath(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pilot.sock")
	if len(path) > maxSocketPath {
		t.Fatalf("the test's socket path %s is too long for a unix socket: shorten the test's name or TMPDIR", path)
	}
	return path
}

// serve starts a Server for api on a fresh socket and stops it when the
// test ends; it returns the socket's path.
func serve(t *testing.T, api API, reg prometheus.Registerer) string {
	t.Helper()
	path := socketPath(t)
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(api, reg, nil)
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

// rawClient is a plain HTTP client of a unix socket, for what the Client
// never sends.
func rawClient(path string) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", path)
			},
		},
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 5s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var errBoom = errors.New("boom: the registrar is gone")

// ReloadJob rolls a job whose status lists instances; others are not
// cluster jobs.
func (f *fakeAPI) ReloadJob(ctx context.Context, name string) (RollResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, ok := f.job(name)
	switch {
	case !ok:
		return RollResult{}, ErrUnknownJob
	case len(j.Instances) == 0:
		return RollResult{}, ErrNotCluster
	}
	return RollResult{Job: name, Replaced: len(j.Instances), Seconds: 0.5}, nil
}
