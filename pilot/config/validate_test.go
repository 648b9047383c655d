package config

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nodepilot/pilot/jobs"
	"github.com/nodepilot/pilot/jobs/output"
)

// validConfig is a small valid config that each case breaks in one way.
func validConfig() *Config {
	return &Config{Jobs: []Job{
		{Name: "app", Exec: []string{"node", "server.js"}, Main: true},
		{Name: "worker", Shell: "node worker.js"},
	}}
}

func intp(n int) *int { return &n }

func signals(sigs ...unix.Signal) []Signal {
	out := make([]Signal, len(sigs))
	for i, s := range sigs {
		out[i] = Signal(s)
	}
	return out
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(c *Config)
		want   []string
	}{
		{name: "valid", modify: func(*Config) {}},

		// log
		{name: "log level and format", modify: func(c *Config) { c.Log = Log{Level: "debug", Format: "json"} }},
		{
			name:   "unknown log level and format",
			modify: func(c *Config) { c.Log = Log{Level: "verbose", Format: "xml"} },
			want: []string{
				`log.format: "xml" must be one of text, json`,
				`log.level: "verbose" is not a log level (debug, info, warn, error)`,
			},
		},
		{name: "levels in any case, warning too", modify: func(c *Config) { c.Log.Level = "WARNING" }},
		{name: "formats are lowercase", modify: func(c *Config) { c.Log.Format = "JSON" }, want: []string{`log.format: "JSON" must be one of text, json`}},

		// jobs and names
		{name: "no jobs", modify: func(c *Config) { c.Jobs = nil }, want: []string{"jobs: at least one job is required"}},
		{name: "name required", modify: func(c *Config) { c.Jobs[1].Name = "" }, want: []string{"jobs[1].name: required"}},
		{name: "name characters", modify: func(c *Config) { c.Jobs[1].Name = "my worker" }, want: []string{`jobs[1].name: "my worker" must start with a letter or digit and hold only letters, digits, '_', '.' and '-'`}},
		{name: "name start", modify: func(c *Config) { c.Jobs[1].Name = "-worker" }, want: []string{`jobs[1].name: "-worker" must start with a letter or digit and hold only letters, digits, '_', '.' and '-'`}},
		{name: "name punctuation", modify: func(c *Config) { c.Jobs[1].Name = "0worker_2.v-1" }},
		{
			name: "duplicate names",
			modify: func(c *Config) {
				c.Jobs = append(c.Jobs, Job{Name: "app", Shell: "x"}, Job{Name: "app", Shell: "y"})
			},
			want: []string{`jobs[2].name: duplicate "app" (also jobs[0])`, `jobs[3].name: duplicate "app" (also jobs[0])`},
		},

		// command
		{name: "exec and shell", modify: func(c *Config) { c.Jobs[0].Shell = "node server.js" }, want: []string{"jobs[0]: exec and shell are mutually exclusive; set one"}},
		{name: "no command", modify: func(c *Config) { c.Jobs[1].Shell = "" }, want: []string{"jobs[1]: one of exec or shell is required"}},
		{name: "empty exec", modify: func(c *Config) { c.Jobs[0].Exec = []string{} }, want: []string{"jobs[0].exec: must not be empty"}},
		{name: "empty program", modify: func(c *Config) { c.Jobs[0].Exec = []string{"", "x"} }, want: []string{"jobs[0].exec[0]: the program must not be empty"}},
		{name: "empty argument is fine", modify: func(c *Config) { c.Jobs[0].Exec = []string{"node", ""} }},
		{
			name: "NUL bytes",
			modify: func(c *Config) {
				c.Jobs[0].Exec[1] = "a\x00"
				c.Jobs[1].Shell = "b\x00"
				c.Jobs[1].Dir = "/c\x00"
			},
			want: []string{
				"jobs[0].exec[1]: must not contain a NUL byte",
				"jobs[1].dir: must not contain a NUL byte",
				"jobs[1].shell: must not contain a NUL byte",
			},
		},

		// main
		{name: "two main jobs", modify: func(c *Config) { c.Jobs[1].Main = true }, want: []string{"jobs[1].main: only one job can be main (jobs[0] already is)"}},
		{name: "no main job is fine", modify: func(c *Config) { c.Jobs[0].Main = false }},
		{
			name:   "main job cannot be periodic",
			modify: func(c *Config) { c.Jobs[0].Every = time.Minute },
			want:   []string{"jobs[0].every: a main job cannot be periodic"},
		},

		// env
		{
			name: "env keys",
			modify: func(c *Config) {
				c.Jobs[0].Env = map[string]string{"": "x", "A=B": "x", "C\x00": "x", "ok": "x", "lower_Case1": "y", "V": "a\x00b"}
			},
			want: []string{
				"jobs[0].env: a variable name must not be empty",
				`jobs[0].env: variable name "A=B" must not contain '=' or NUL`,
				`jobs[0].env: variable name "C\x00" must not contain '=' or NUL`,
				"jobs[0].env.V: must not contain a NUL byte",
			},
		},

		// after
		{name: "after", modify: func(c *Config) { c.Jobs[1].After = []Dependency{{Job: "app", State: DependencyStarted}} }},
		{
			name: "after problems",
			modify: func(c *Config) {
				c.Jobs[1].After = []Dependency{
					{Job: "migrate", State: DependencySucceeded},
					{Job: "worker", State: DependencyStarted},
					{State: DependencyStopped},
					{Job: "app"},
					{Job: "app", State: DependencyHealthy},
				}
			},
			want: []string{
				`jobs[1].after[0].job: unknown job "migrate"`,
				"jobs[1].after[1].job: a job cannot wait for itself",
				"jobs[1].after[2].job: required",
				"jobs[1].after[3].state: required (one of started, healthy, succeeded, failed, stopped)",
				`jobs[1].after[4].state: job "app" has no health check`,
			},
		},
		{
			name: "after failed on a job that runs again by design",
			modify: func(c *Config) {
				c.Jobs[1].Every = time.Minute
				c.Jobs = append(c.Jobs, Job{Name: "sync", Shell: "sync.sh"})
				c.Consul = &Consul{}
				c.Watches = []Watch{{Service: "db", OnChange: OnChange{Run: "sync"}}}
				c.Jobs[0].After = []Dependency{
					{Job: "worker", State: DependencyFailed},
					{Job: "sync", State: DependencyFailed},
					{Job: "worker", State: DependencySucceeded},
				}
			},
			want: []string{
				`jobs[0].after[0].state: job "worker" is periodic: it runs again after a failed run and is never failed for good, so this would wait forever`,
				`jobs[0].after[1].state: job "sync" runs on each change of a watch and is never failed for good, so this would wait forever`,
			},
		},
		{
			name: "two-job cycle",
			modify: func(c *Config) {
				c.Jobs[0].After = []Dependency{{Job: "worker", State: DependencyStarted}}
				c.Jobs[1].After = []Dependency{{Job: "app", State: DependencyStarted}, {Job: "app", State: DependencyStopped}}
			},
			want: []string{"jobs: dependency cycle: app → worker → app"},
		},
		{
			name: "three-job cycle found from its middle",
			modify: func(c *Config) {
				c.Jobs = []Job{
					{Name: "a", Shell: "x", After: []Dependency{{Job: "b", State: DependencyStarted}}},
					{Name: "b", Shell: "x", After: []Dependency{{Job: "c", State: DependencyStarted}}},
					{Name: "c", Shell: "x", After: []Dependency{{Job: "a", State: DependencySucceeded}}},
					{Name: "d", Shell: "x", After: []Dependency{{Job: "b", State: DependencyStarted}}},
				}
			},
			want: []string{"jobs: dependency cycle: a → b → c → a"},
		},
		{
			name: "two cycles",
			modify: func(c *Config) {
				c.Jobs = []Job{
					{Name: "d", Shell: "x", After: []Dependency{{Job: "a", State: DependencyStarted}}},
					{Name: "a", Shell: "x", After: []Dependency{{Job: "b", State: DependencyStarted}}},
					{Name: "b", Shell: "x", After: []Dependency{{Job: "a", State: DependencyStarted}, {Job: "c", State: DependencyStarted}}},
					{Name: "c", Shell: "x", After: []Dependency{{Job: "d", State: DependencyStarted}}},
				}
			},
			want: []string{"jobs: dependency cycle: a → b → a", "jobs: dependency cycle: d → a → b → c → d"},
		},
		{
			name: "diamond is not a cycle",
			modify: func(c *Config) {
				c.Jobs = []Job{
					{Name: "a", Shell: "x", After: []Dependency{{Job: "b", State: DependencyStarted}, {Job: "c", State: DependencyStarted}}},
					{Name: "b", Shell: "x", After: []Dependency{{Job: "d", State: DependencyStarted}}},
					{Name: "c", Shell: "x", After: []Dependency{{Job: "d", State: DependencyStarted}}},
					{Name: "d", Shell: "x"},
				}
			},
		},

		// user
		{
			name: "user forms",
			modify: func(c *Config) {
				users := []string{"node", "1000", "1000:1000", "node:staff", "_apt", "www-data:0", "svc$", "A.b"}
				for i, u := range users {
					c.Jobs = append(c.Jobs, Job{Name: "user" + string(rune('a'+i)), Shell: "x", User: u})
				}
			},
		},
		{
			name: "bad users",
			modify: func(c *Config) {
				for i, u := range []string{"a:b:c", ":1", "1:", "x y", "-x", "99999999999", ":"} {
					c.Jobs = append(c.Jobs, Job{Name: "user" + string(rune('a'+i)), Shell: "x", User: u})
				}
			},
			want: []string{
				`jobs[2].user: "a:b:c" is not a user name, uid, "user:group" or "uid:gid"`,
				`jobs[3].user: ":1" is not a user name, uid, "user:group" or "uid:gid"`,
				`jobs[4].user: "1:" is not a user name, uid, "user:group" or "uid:gid"`,
				`jobs[5].user: "x y" is not a user name, uid, "user:group" or "uid:gid"`,
				`jobs[6].user: "-x" is not a user name, uid, "user:group" or "uid:gid"`,
				`jobs[7].user: "99999999999" is not a user name, uid, "user:group" or "uid:gid"`,
				`jobs[8].user: ":" is not a user name, uid, "user:group" or "uid:gid"`,
			},
		},

		// every and timeout
		{name: "periodic", modify: func(c *Config) { c.Jobs[1].Every = MinEvery; c.Jobs[1].Timeout = time.Hour }},
		{name: "every too short", modify: func(c *Config) { c.Jobs[1].Every = 10 * time.Millisecond }, want: []string{"jobs[1].every: must be ≥ 100ms"}},
		{name: "negative every", modify: func(c *Config) { c.Jobs[1].Every = -time.Second }, want: []string{"jobs[1].every: must be ≥ 100ms"}},
		{name: "negative timeout", modify: func(c *Config) { c.Jobs[1].Timeout = -time.Second }, want: []string{"jobs[1].timeout: must be ≥ 0"}},
		{
			name: "periodic jobs do not restart",
			modify: func(c *Config) {
				c.Jobs[1].Every = time.Minute
				c.Jobs[1].Restart.Policy = jobs.RestartOnFailure
			},
			want: []string{"jobs[1].restart.policy: a periodic job cannot restart (its next run is the retry); use never or leave it out"},
		},
		{name: "periodic job with never", modify: func(c *Config) { c.Jobs[1].Every = time.Minute; c.Jobs[1].Restart.Policy = jobs.RestartNever }},

		// restart
		{
			name: "restart",
			modify: func(c *Config) {
				c.Jobs[0].Restart = Restart{Policy: jobs.RestartAlways, Max: intp(0), Backoff: Backoff{Initial: time.Second, Max: time.Second, ResetAfter: time.Minute}}
			},
		},
		{name: "negative max", modify: func(c *Config) { c.Jobs[1].Restart.Max = intp(-1) }, want: []string{"jobs[1].restart.max: must be ≥ 0"}},
		{
			name:   "negative backoff",
			modify: func(c *Config) { c.Jobs[0].Restart.Backoff = Backoff{Initial: -1, Max: -1, ResetAfter: -1} },
			want: []string{
				"jobs[0].restart.backoff.initial: must be ≥ 0",
				"jobs[0].restart.backoff.max: must be ≥ 0",
				"jobs[0].restart.backoff.resetAfter: must be ≥ 0",
			},
		},
		{
			name:   "initial over max",
			modify: func(c *Config) { c.Jobs[0].Restart.Backoff = Backoff{Initial: 2 * time.Minute, Max: time.Minute} },
			want:   []string{"jobs[0].restart.backoff.initial: 2m exceeds backoff.max 1m"},
		},
		{
			name:   "initial over the default max",
			modify: func(c *Config) { c.Jobs[0].Restart.Backoff.Initial = time.Minute },
			want:   []string{"jobs[0].restart.backoff.initial: 1m exceeds the default backoff.max 30s"},
		},
		{name: "max under the default initial", modify: func(c *Config) { c.Jobs[0].Restart.Backoff.Max = 50 * time.Millisecond }},
		{name: "backoff max of a day", modify: func(c *Config) { c.Jobs[0].Restart.Backoff.Max = MaxBackoff }},
		{
			name:   "backoff max beyond a day",
			modify: func(c *Config) { c.Jobs[0].Restart.Backoff.Max = 2562047 * time.Hour },
			want:   []string{"jobs[0].restart.backoff.max: 2562047h exceeds 24h"},
		},

		// stop
		{
			name: "stop signal spellings",
			modify: func(c *Config) {
				c.Jobs[0].StopSignal = Signal(unix.SIGTERM)
				c.Jobs[1].StopSignal = Signal(unix.SIGINT)
			},
		},
		{
			name: "bad stop signals",
			modify: func(c *Config) {
				c.Jobs[0].StopSignal = Signal(unix.SIGKILL)
				c.Jobs[1].StopSignal = Signal(unix.SIGSTOP)
			},
			want: []string{
				"jobs[0].stopSignal: SIGKILL cannot be a stop signal: a job cannot catch it to stop cleanly (pilot sends SIGKILL itself once stopTimeout passes)",
				"jobs[1].stopSignal: SIGSTOP cannot be a stop signal: a job cannot catch it to stop cleanly (pilot sends SIGKILL itself once stopTimeout passes)",
			},
		},
		{name: "negative stop timeouts", modify: func(c *Config) { c.StopTimeout = -1; c.Jobs[0].StopTimeout = -1 }, want: []string{"jobs[0].stopTimeout: must be ≥ 0", "stopTimeout: must be ≥ 0"}},
		{
			name:   "job stop timeout over the default top-level one",
			modify: func(c *Config) { c.Jobs[0].StopTimeout = 30 * time.Second },
			want:   []string{"jobs[0].stopTimeout: 30s exceeds the top-level stopTimeout 9s"},
		},
		{
			name: "job stop timeout over the top-level one",
			modify: func(c *Config) {
				c.StopTimeout = 20 * time.Second
				c.Jobs[0].StopTimeout = 90 * time.Second
			},
			want: []string{"jobs[0].stopTimeout: 1m30s exceeds the top-level stopTimeout 20s"},
		},
		{name: "job stop timeout equal to the top-level one", modify: func(c *Config) { c.Jobs[0].StopTimeout = DefaultStopTimeout }},
		{name: "short top-level stop timeout caps the job default", modify: func(c *Config) { c.StopTimeout = time.Second }},

		// hooks
		{
			name: "hooks",
			modify: func(c *Config) {
				c.Jobs[0].PreStop = &Hook{Exec: []string{"curl", "-X", "POST", "localhost/drain"}, Timeout: time.Second}
				c.Jobs[0].PostStop = &Hook{Shell: "rm -f /tmp/sock"}
			},
		},
		{
			name: "bad hooks",
			modify: func(c *Config) {
				c.Jobs[0].PreStop = &Hook{}
				c.Jobs[0].PostStop = &Hook{Exec: []string{"x"}, Shell: "y", Timeout: -time.Second}
				c.Jobs[1].PreStop = &Hook{Exec: []string{}}
			},
			want: []string{
				"jobs[0].postStop: exec and shell are mutually exclusive; set one",
				"jobs[0].postStop.timeout: must be ≥ 0",
				"jobs[0].preStop: one of exec or shell is required",
				"jobs[1].preStop.exec: must not be empty",
			},
		},

		// output
		{name: "outputs", modify: func(c *Config) { c.Jobs[0].Output = output.Prefixed; c.Jobs[1].Output = output.JSON }},

		// forwarded signals
		{name: "forward signals", modify: func(c *Config) {
			c.Jobs[0].ForwardSignals = signals(unix.SIGHUP, unix.SIGUSR1, unix.SIGUSR2, unix.SIGQUIT, unix.SIGWINCH, unix.SIGALRM)
		}},
		{
			name: "bad forward signals",
			modify: func(c *Config) {
				c.Jobs[0].ForwardSignals = signals(unix.SIGHUP, unix.SIGTERM, unix.SIGHUP, unix.SIGKILL)
			},
			want: []string{
				"jobs[0].forwardSignals[1]: SIGTERM cannot be forwarded (forwardable: SIGHUP, SIGUSR1, SIGUSR2, SIGQUIT, SIGWINCH, SIGALRM)",
				"jobs[0].forwardSignals[2]: duplicate SIGHUP (also forwardSignals[0])",
				"jobs[0].forwardSignals[3]: SIGKILL cannot be forwarded (forwardable: SIGHUP, SIGUSR1, SIGUSR2, SIGQUIT, SIGWINCH, SIGALRM)",
			},
		},

		// reporting
		{
			name: "every problem, ordered by path",
			modify: func(c *Config) {
				c.StopTimeout = -1
				for i := range 11 {
					c.Jobs = append(c.Jobs, Job{Name: "j" + string(rune('a'+i)), Shell: "x"})
				}
				c.Jobs[10].Timeout = -1
				c.Jobs[2].Timeout = -1
				c.Log.Level = "x"
			},
			want: []string{
				"jobs[2].timeout: must be ≥ 0",
				"jobs[10].timeout: must be ≥ 0",
				`log.level: "x" is not a log level (debug, info, warn, error)`,
				"stopTimeout: must be ≥ 0",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.modify(c)
			before := validConfig()
			tt.modify(before)

			assertLines(t, c.Validate(), tt.want...)
			if !reflect.DeepEqual(c, before) {
				t.Errorf("Validate changed the config:\n  got  %+v\n  want %+v", c, before)
			}
		})
	}
}

func TestValidateErrorsAreFieldErrors(t *testing.T) {
	c := validConfig()
	c.Jobs[1].Restart.Max = intp(-1)
	var fe *FieldError
	if err := c.Validate(); !errors.As(err, &fe) || fe.Path != "jobs[1].restart.max" || fe.Message != "must be ≥ 0" {
		t.Errorf("got %#v from %v", fe, err)
	}
}

func TestValidateNil(t *testing.T) {
	var c *Config
	if err := c.Validate(); err == nil {
		t.Error("a nil config validated")
	}
}

// The example configs in testdata are valid, and stay valid with defaults.
func TestValidExamples(t *testing.T) {
	for _, name := range []string{"valid.yaml", "valid.json", "valid.toml"} {
		t.Run(name, func(t *testing.T) {
			cfg, err := Load("testdata/"+name, Options{Env: noEnv})
			if err != nil {
				t.Fatal(err)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			withDefaults := cfg.WithDefaults()
			if err := withDefaults.Validate(); err != nil {
				t.Errorf("with defaults: %v", err)
			}
		})
	}
}
