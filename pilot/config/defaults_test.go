package config

import (
	"reflect"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nodepilot/pilot/jobs"
	"github.com/nodepilot/pilot/jobs/output"
)

func TestWithDefaults(t *testing.T) {
	raw := Config{Jobs: []Job{
		{Name: "app", Exec: []string{"node"}, PreStop: &Hook{Shell: "x"}},
		{Name: "tick", Shell: "x", Every: time.Minute},
		{
			Name: "explicit", Shell: "x", Every: time.Minute, Timeout: 5 * time.Second,
			Restart:     Restart{Policy: jobs.RestartAlways, Max: intp(2), Backoff: Backoff{Initial: time.Second, Max: 2 * time.Second, ResetAfter: time.Hour}},
			StopSignal:  Signal(unix.SIGINT),
			StopTimeout: 3 * time.Second,
			PostStop:    &Hook{Shell: "y", Timeout: time.Second},
			Output:      output.JSON,
		},
		{Name: "short-backoff", Shell: "x", Restart: Restart{Backoff: Backoff{Max: 50 * time.Millisecond}}},
	}}
	want := Config{
		Log:         Log{Level: "info", Format: "text"},
		StopTimeout: 9 * time.Second,
		Jobs: []Job{
			{
				Name: "app", Exec: []string{"node"},
				Restart:     Restart{Policy: jobs.RestartNever, Backoff: Backoff{Initial: 200 * time.Millisecond, Max: 30 * time.Second, ResetAfter: 30 * time.Second}},
				StopTimeout: 8 * time.Second,
				PreStop:     &Hook{Shell: "x", Timeout: 5 * time.Second},
				Output:      output.Raw,
			},
			{
				Name: "tick", Shell: "x", Every: time.Minute, Timeout: time.Minute,
				Restart:     Restart{Policy: jobs.RestartNever, Backoff: Backoff{Initial: 200 * time.Millisecond, Max: 30 * time.Second, ResetAfter: 30 * time.Second}},
				StopTimeout: 8 * time.Second,
				Output:      output.Raw,
			},
			raw.Jobs[2],
			{
				Name: "short-backoff", Shell: "x",
				Restart:     Restart{Policy: jobs.RestartNever, Backoff: Backoff{Initial: 50 * time.Millisecond, Max: 50 * time.Millisecond, ResetAfter: 30 * time.Second}},
				StopTimeout: 8 * time.Second,
				Output:      output.Raw,
			},
		},
	}
	if got := raw.WithDefaults(); !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestHealthDefaults(t *testing.T) {
	raw := Config{Jobs: []Job{
		{Name: "a", Shell: "x", Health: &Health{Shell: "true"}},
		{Name: "b", Shell: "x", Health: &Health{Shell: "true", Interval: time.Second, StartInterval: 50 * time.Millisecond}},
	}}
	got := raw.WithDefaults()
	want := Health{Shell: "true", Interval: 5 * time.Second, Timeout: 2 * time.Second, StartInterval: 50 * time.Millisecond,
		HealthyThreshold: 1, UnhealthyThreshold: 3, OnUnhealthy: OnUnhealthyNone}
	if !reflect.DeepEqual(*got.Jobs[0].Health, want) {
		t.Errorf("got  %+v\nwant %+v", *got.Jobs[0].Health, want)
	}
	if h := got.Jobs[1].Health; h.StartInterval != 50*time.Millisecond || h.Timeout != time.Second {
		t.Errorf("explicit start interval: %+v", h)
	}
}

func TestWithDefaultsCapsJobStopTimeout(t *testing.T) {
	raw := Config{StopTimeout: 5 * time.Second, Jobs: []Job{{Name: "a", Shell: "x"}, {Name: "b", Shell: "x", StopTimeout: 2 * time.Second}}}
	got := raw.WithDefaults()
	if got.Jobs[0].StopTimeout != 5*time.Second || got.Jobs[1].StopTimeout != 2*time.Second {
		t.Errorf("job stop timeouts %v, %v", got.Jobs[0].StopTimeout, got.Jobs[1].StopTimeout)
	}
}

func TestWithDefaultsKeepsUnlimitedAndInheritedSignal(t *testing.T) {
	got := Config{Jobs: []Job{{Name: "a", Shell: "x"}}}.WithDefaults()
	if got.Jobs[0].Restart.Max != nil || got.Jobs[0].StopSignal != 0 {
		t.Errorf("max %v, stop signal %q", got.Jobs[0].Restart.Max, got.Jobs[0].StopSignal)
	}
	if (Config{}).WithDefaults().Jobs != nil {
		t.Error("no jobs became an empty list")
	}
}

// WithDefaults shares nothing mutable with its receiver.
func TestWithDefaultsDoesNotShare(t *testing.T) {
	fresh := func() Config {
		return Config{Jobs: []Job{{
			Name: "a", Exec: []string{"node", "x"},
			Env:            map[string]string{"K": "v"},
			After:          []Dependency{{Job: "b", State: DependencyStarted}},
			Restart:        Restart{Max: intp(3)},
			PreStop:        &Hook{Exec: []string{"pre"}},
			PostStop:       &Hook{Shell: "post"},
			ForwardSignals: []Signal{Signal(unix.SIGHUP)},
		}, {Name: "b", Shell: "y"}}}
	}
	raw := fresh()
	got := raw.WithDefaults()
	if !reflect.DeepEqual(raw, fresh()) {
		t.Fatalf("the receiver changed: %+v", raw)
	}

	job := &got.Jobs[0]
	job.Exec[0] = "changed"
	job.Env["K"] = "changed"
	job.After[0].Job = "changed"
	*job.Restart.Max = 99
	job.PreStop.Exec[0] = "changed"
	job.PreStop.Timeout = time.Hour
	job.PostStop.Shell = "changed"
	job.ForwardSignals[0] = Signal(unix.SIGUSR1)
	got.Jobs[1].Name = "changed"
	if !reflect.DeepEqual(raw, fresh()) {
		t.Errorf("changing the copy changed the receiver: %+v", raw)
	}
}

func TestRunTargetTimeoutDefault(t *testing.T) {
	c := Config{Jobs: []Job{{Name: "sync"}, {Name: "other"}, {Name: "bounded", Timeout: 5 * time.Second}},
		Watches: []Watch{{Service: "a", OnChange: OnChange{Run: "sync"}}, {Service: "b", OnChange: OnChange{Run: "bounded"}}}}
	d := c.WithDefaults()
	if got := d.Jobs[0].Timeout; got != DefaultRunTimeout {
		t.Errorf("run target timeout %v, want %v", got, DefaultRunTimeout)
	}
	if got := d.Jobs[1].Timeout; got != 0 {
		t.Errorf("a job no watch runs got timeout %v", got)
	}
	if got := d.Jobs[2].Timeout; got != 5*time.Second {
		t.Errorf("an explicit timeout was overridden: %v", got)
	}
	if c.Jobs[0].Timeout != 0 {
		t.Error("WithDefaults modified its input")
	}
}

// A Consul watch reads stale unless it says otherwise; a Docker watch has
// no read mode.
func TestWatchConsistencyDefault(t *testing.T) {
	c := Config{Watches: []Watch{{Service: "a"}, {Service: "b", Consistency: ConsistencyConsistent}, {Service: "c", Discovery: DiscoveryDocker}}}
	d := c.WithDefaults()
	for i, want := range []Consistency{ConsistencyStale, ConsistencyConsistent, ""} {
		if got := d.Watches[i].Consistency; got != want {
			t.Errorf("watches[%d].consistency = %q, want %q", i, got, want)
		}
	}
}
