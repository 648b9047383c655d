package control

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"

	"github.com/nodepilot/pilot/telemetry"
)

// API is what the control socket serves; the core (package pilot)
// implements it. Its methods are called concurrently, one call per request,
// each with the request's context where it takes one: the context ends when
// the client goes away or the server shuts down.
//
// The errors below are the ones the server tells apart; any other error is
// pilot's own failure (500), its text passed on to the client.
type API interface {
	// Status is the one status document: /v1/status here and /status on
	// telemetry's port serve the same value.
	Status() telemetry.Status
	// Health is pilot's verdict for /v1/health (Docker's HEALTHCHECK,
	// through pilot health). It must be cheap: a health check calls it
	// every few seconds, and its answer is wanted in milliseconds.
	Health() HealthReport
	// Reload reads the config file again and applies it. Errors:
	// ErrReloadInProgress (409), *ConfigError (422: the running config
	// stays).
	Reload(ctx context.Context) (ReloadResult, error)
	// SetMaintenance takes every service out of rotation (on) or puts them
	// back (off).
	SetMaintenance(ctx context.Context, on bool) error
	// RestartJob stops the job's process and starts it again. Errors:
	// ErrUnknownJob (404).
	RestartJob(ctx context.Context, name string) error
	// ReloadJob makes a rolling reload of a cluster job: each instance is
	// replaced by a new one once that one is ready, never leaving fewer
	// ready. It answers when the roll has ended. Errors: ErrUnknownJob
	// (404), ErrNotCluster (400), ErrReloadInProgress (409), and a
	// *RollError (500) when a new instance was not ready: the old ones
	// keep serving.
	ReloadJob(ctx context.Context, name string) (RollResult, error)
	// SignalJob sends sig to the job's process group. Errors: ErrUnknownJob
	// (404), ErrJobNotRunning (409).
	SignalJob(name string, sig syscall.Signal) error
	// PutEnv sets variables in the environment of the runs that start from
	// now on. The server has checked every name (not empty, no '=' or NUL)
	// and value (no NUL).
	PutEnv(vars map[string]string) error
	// SetMetrics applies values to the custom metrics, as a sensor job's
	// lines do: a gauge is set, a counter has the value added, a histogram
	// observes it. A key is a metric name, or a name with its labels as a
	// sensor line writes them (queue_depth{queue="a"}): the core parses it
	// (custom.ParseLine reads "KEY VALUE"). Errors: *UnknownMetricError
	// (404); a value or label the metric refuses is an *InvalidError (400).
	SetMetrics(values map[string]float64) error
}

// ReloadResult is what a reload changed, by job name. The client takes an
// answer without one, as "reloaded" with no summary.
type ReloadResult struct {
	// Rolled are the cluster jobs a rolling reload replaced instance by
	// instance.
	Rolled    []string `json:"rolled,omitempty"`
	Restarted []string `json:"restarted"`
	Started   []string `json:"started"`
	Stopped   []string `json:"stopped"`
	Unchanged int      `json:"unchanged"`
}

// RollResult is how a rolling reload went.
type RollResult struct {
	Job      string  `json:"job"`
	Replaced int     `json:"replaced"`
	Seconds  float64 `json:"seconds"`
}

// HealthReport is the answer of /v1/health: 200 when Healthy, else 503.
// pilot is healthy when its main job runs and every job with a health
// check is healthy (vacuously so when there is none); periodic and
// triggered jobs do not count, and a shutting-down pilot is never healthy.
type HealthReport struct {
	Healthy bool `json:"healthy"`
	// Reason says in one line why pilot is not healthy ("unhealthy: app
	// (health check failing: …)", "main job app exited (code 1);
	// restarting", "stopping: signal SIGTERM"); absent when healthy.
	Reason string `json:"reason,omitempty"`
	// Checked counts the jobs with a health check that count.
	Checked int `json:"checked"`
	// Unhealthy are the jobs at fault, main job first; never null on the
	// wire: [] when there are none.
	Unhealthy []JobHealth `json:"unhealthy"`
	// Error repeats Reason, so that the 503 has the "error" every failed
	// answer of the socket has.
	Error string `json:"error,omitempty"`
}

// JobHealth is one job at fault: its state, its health ("" for a main job
// without a health check) and why, in a phrase ("app is starting").
type JobHealth struct {
	Job    string `json:"job"`
	Health string `json:"health,omitempty"`
	State  string `json:"state"`
	Reason string `json:"reason"`
}

// Errors an API method returns for the server to map to a status code.
// Wrap them to add detail (fmt.Errorf("job %q: %w", name, ErrUnknownJob)):
// the server matches with errors.Is and sends the error's whole text.
var (
	ErrUnknownJob       = errors.New("no such job")
	ErrJobNotRunning    = errors.New("job is not running")
	ErrReloadInProgress = errors.New("a reload is in progress")
	// ErrNotCluster refuses a rolling reload of a job that is not a
	// cluster job (instances or listen).
	ErrNotCluster = errors.New("not a cluster job (instances or listen): pilot restart JOB restarts it")
	// ErrShuttingDown refuses a change once pilot's shutdown has begun
	// (503): nothing new starts then.
	ErrShuttingDown = errors.New("pilot is shutting down")
)

// ConfigError is a config that a reload refused; the running config stays.
// Problems are the config's problems one each, as validation prints them:
// "FILE:LINE: PATH: message".
type ConfigError struct {
	Problems []string `json:"problems"`
}

func (e *ConfigError) Error() string {
	head := "the config has a problem; pilot runs on with the config it had"
	if len(e.Problems) != 1 {
		head = fmt.Sprintf("the config has %d problems; pilot runs on with the config it had", len(e.Problems))
	}
	return head + ":\n" + strings.Join(e.Problems, "\n")
}

// UnknownMetricError is a metric that the config does not declare.
type UnknownMetricError struct {
	Name     string
	Declared []string
}

func (e *UnknownMetricError) Error() string {
	if len(e.Declared) == 0 {
		return fmt.Sprintf("metric %q: not declared (the config declares no metrics)", e.Name)
	}
	return fmt.Sprintf("metric %q: not declared (declared: %s)", e.Name, strings.Join(e.Declared, ", "))
}

// InvalidError is a request the API refuses for its content (a counter
// asked to go down, a label the metric does not have): 400, with Err's
// text. The server checks the shape of every request itself; this is for
// what only the core can judge.
type InvalidError struct{ Err error }

func (e *InvalidError) Error() string { return e.Err.Error() }
func (e *InvalidError) Unwrap() error { return e.Err }
