package config

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nodepilot/pilot/jobs"
)

// One pass finds everything: a type error no longer hides the problems
// behind it, and every problem comes in the order of the file, on its line.
func TestOnePassInFileOrder(t *testing.T) {
	doc := `jobs:
  - name: app
    exec: [node]
    main: true
    stopTimeout: soon
    forwardSignals: [SIGHUP, SIGNOPE]
  - name: worker
    shell: x
    after: [{job: nope, state: started}]
    user: "a b"
watches:
  - service: web
    onChange: {reload: {job: nginx}}
`
	_, err := checkYAML(doc)
	assertLines(t, err,
		`line 5: jobs[0].stopTimeout: "soon" is not a duration (use 5s, 500ms)`,
		`line 6: jobs[0].forwardSignals[1]: unknown signal "SIGNOPE"`,
		`line 9: jobs[1].after[0].job: unknown job "nope"`,
		`line 10: jobs[1].user: "a b" is not a user name, uid, "user:group" or "uid:gid"`,
		`line 12: watches[0]: needs the top-level consul block (or discovery: docker)`,
		`line 13: watches[0].onChange.reload.job: unknown job "nginx"`,
	)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Line != 5 || fe.Path != "jobs[0].stopTimeout" {
		t.Errorf("errors.As: %+v", fe)
	}
}

// A value that could not be decoded is reported once: not again as
// missing, nor through what depends on it.
func TestNoFollowOnNoise(t *testing.T) {
	tests := []struct {
		name, doc string
		want      []string
	}{
		{
			name: "a name of the wrong type is not also missing, nor unknown where it is used",
			doc:  "jobs:\n  - {name: [app], shell: x}\n  - {name: b, shell: x, after: [{job: app, state: started}]}\n",
			want: []string{`line 2: jobs[0].name: expected a string, got a list`},
		},
		{
			name: "an exec of the wrong type does not make the command missing",
			doc:  "jobs:\n  - {name: a, exec: node}\n",
			want: []string{`line 2: jobs[0].exec: expected a list, got string "node"`},
		},
		{
			name: "a check with a bad field is still a check",
			doc: `consul: {}
jobs:
  - name: a
    shell: x
    health: {http: {port: "3000"}}
    service: {name: web, port: 3000}
`,
			want: []string{`line 5: jobs[0].health.http.port: expected an integer, got string "3000"`},
		},
		{
			name: "a block of the wrong type is not also missing",
			doc:  "consul: true\njobs: [{name: a, shell: x}]\nwatches: [{service: s, onChange: {run: a}}]\n",
			want: []string{`line 1: consul: expected a map, got boolean true`},
		},
		{
			name: "a misspelled key is not also missing",
			doc:  "jobs:\n  - name: a\n    comand: x\n    after: [{job: a2, sate: started}]\n  - {name: a2, shell: x}\n",
			want: []string{
				`line 3: jobs[0]: unknown key "comand"`,
				`line 4: jobs[0].after[0]: unknown key "sate" (did you mean "state"?)`,
			},
		},
		{
			name: "jobs misspelled",
			doc:  "Jobs: [{name: a, shell: x}]\n",
			want: []string{`line 1: unknown key "Jobs" (did you mean "jobs"?)`},
		},
		{
			name: "an unset variable is reported once",
			doc:  "jobs:\n  - name: ${NAME}\n    shell: x\n    restart: {max: ${MAX}}\n",
			want: []string{
				`line 2: jobs[0].name: environment variable NAME is not set (use ${NAME:-default} to give a default)`,
				`line 4: jobs[0].restart.max: environment variable MAX is not set (use ${MAX:-default} to give a default)`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := checkYAML(tt.doc)
			assertLines(t, err, tt.want...)
		})
	}
}

// Check's problems join the others, in file order; one at a path already
// reported, or inside a value that could not be decoded, is left out.
func TestCheckJoinsTheOnePass(t *testing.T) {
	doc := "jobs:\n  - {name: a, shell: x, user: root, dir: /x}\n  - {name: b, shell: x, user: [x]}\n  - {name: c, shell: x, user: 'x y'}\n"
	check := func(*Config) []*FieldError {
		return []*FieldError{
			{Path: "jobs[2].user", Message: "unknown user"},
			{Path: "jobs[1].user", Message: "unknown user"},
			{Path: "jobs[0].dir", Message: "no such directory"},
		}
	}
	_, err := Parse([]byte(doc), "yaml", Options{Env: noEnv, Check: check})
	assertLines(t, err,
		`line 2: jobs[0].dir: no such directory`,
		`line 3: jobs[1].user: expected a string, got a list`,
		`line 4: jobs[2].user: "x y" is not a user name, uid, "user:group" or "uid:gid"`,
	)
}

func TestMultipleDocuments(t *testing.T) {
	doc := "jobs: [{name: a, shell: x}]\n---\n# more\njobs: [{name: b, shell: x}]\n"
	_, err := checkYAML(doc)
	assertLines(t, err, "line 2: a second YAML document starts here (after ---); a config file holds one document")
	// A lone --- at either end holds nothing and is fine.
	if _, err := checkYAML("---\njobs: [{name: a, shell: x}]\n---\n"); err != nil {
		t.Error(err)
	}
}

func TestExpansionInYAMLValuesOnly(t *testing.T) {
	vars := env(map[string]string{"PORT": "8080", "NAME": "app", "ARGS": "a: b # c", "SECRET": "s"})
	doc := `# set ${MY_TOKEN} before running; $${ and ${ too
jobs:
  - name: ${NAME}                  # ${IN_A_COMMENT}
    exec: [node, "${ARGS}", '${PORT}', ${ARGS}]
    env: {PORT: ${PORT}, DEFAULT: ${UNSET:-3000}, QUOTED: "${UNSET:-3000}", COST: $$5, LIT: "$${PORT}"}
    health:
      http: {port: ${PORT:-3000}}
    service: {name: web, port: ${UNSET:-3000}}
    stopTimeout: ${UNSET:-2s}
    shell_not: |
      ${SECRET}
`
	cfg, err := decodeOnly([]byte(strings.Replace(doc, "    shell_not: |\n      ${SECRET}\n", "", 1)), "yaml", vars)
	if err != nil {
		t.Fatal(err)
	}
	j := cfg.Jobs[0]
	if j.Name != "app" || strings.Join(j.Exec, "|") != "node|a: b # c|8080|a: b # c" {
		t.Errorf("name %q, exec %q", j.Name, j.Exec)
	}
	wantEnv := map[string]string{"PORT": "8080", "DEFAULT": "3000", "QUOTED": "3000", "COST": "$5", "LIT": "${PORT}"}
	for k, v := range wantEnv {
		if j.Env[k] != v {
			t.Errorf("env %s = %q, want %q", k, j.Env[k], v)
		}
	}
	// An unquoted ${…} is typed by its value, as if the value were written.
	if j.Health.HTTP.Port != 8080 || j.Service.Port != 3000 || j.StopTimeout != 2*time.Second {
		t.Errorf("port %d, service port %d, stop timeout %v", j.Health.HTTP.Port, j.Service.Port, j.StopTimeout)
	}
	// A quoted one stays a string.
	_, err = decodeOnly([]byte("jobs: [{health: {http: {port: \"${PORT}\"}}}]"), "yaml", vars)
	assertLines(t, err, `jobs[0].health.http.port: expected an integer, got string "8080"`)
	// A block scalar is a value too; errors name their own line.
	_, err = decodeOnly([]byte("jobs:\n  - shell: |\n      echo ok\n      echo ${NOPE}\n"), "yaml", noEnv)
	assertLines(t, err, "line 4: jobs[0].shell: environment variable NOPE is not set (use ${NOPE:-default} to give a default)")
	// Keys are not expanded.
	cfg, err = decodeOnly([]byte("jobs: [{env: {${K}: v}}]"), "yaml", noEnv)
	if err != nil || cfg.Jobs[0].Env["${K}"] != "v" {
		t.Errorf("%v, %v", err, cfg)
	}
}

func TestTOMLExpansionSkipsComments(t *testing.T) {
	doc := "# ${MY_TOKEN}\n[[jobs]] # ${X}\nname = \"a#${NAME}\" # ${Y}\nshell = '# ${NAME}'\nenv = {PORT = ${PORT:-3000}}\n"
	cfg, err := decodeOnly([]byte(doc), "toml", env(map[string]string{"NAME": "n"}))
	if err != nil {
		t.Fatal(err)
	}
	if j := cfg.Jobs[0]; j.Name != "a#n" || j.Shell != "# n" || j.Env["PORT"] != "3000" {
		t.Errorf("got %+v", j)
	}
}

func TestLinesInJSONAndTOML(t *testing.T) {
	jsonDoc := `{
  "jobs": [
    {"name": "a", "shell": "x"},
    {
      "name": "b",
      "shell": "x",
      "stopTimeout":
        "soon"
    }
  ],
  "log": {"level": "loud"}
}`
	_, err := Parse([]byte(jsonDoc), "json", Options{Env: noEnv})
	assertLines(t, err,
		`line 7: jobs[1].stopTimeout: "soon" is not a duration (use 5s, 500ms)`,
		`line 11: log.level: "loud" is not a log level (debug, info, warn, error)`,
	)
	tomlDoc := `[log]
level = "loud"

[[jobs]]
name = "a"
shell = "x"

[[jobs]]
name = "b"
shell = "x"
after = [{job = "c", state = "started"}]

[jobs.restart]
policy = "sometimes"
`
	_, err = Parse([]byte(tomlDoc), "toml", Options{Env: noEnv})
	assertLines(t, err,
		`line 2: log.level: "loud" is not a log level (debug, info, warn, error)`,
		`line 11: jobs[1].after[0].job: unknown job "c"`,
		`line 14: jobs[1].restart.policy: "sometimes" must be one of never, on-failure, always`,
	)
}

// Compose-style x- keys at the top level hold anchors and are ignored.
func TestExtensionKeys(t *testing.T) {
	doc := `x-job: &job
  shell: run
  restart: {policy: on-failure}
jobs:
  - <<: *job
    name: a
  - <<: *job
    name: b
`
	cfg, err := checkYAML(doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Jobs) != 2 || cfg.Jobs[1].Shell != "run" || cfg.Jobs[1].Restart.Policy != jobs.RestartOnFailure {
		t.Errorf("got %+v", cfg.Jobs)
	}
	_, err = checkYAML("jobs: [{name: a, shell: x, x-note: y}]\n")
	assertLines(t, err, `line 1: jobs[0]: unknown key "x-note"`)
}

func TestDurationOutOfRange(t *testing.T) {
	_, err := decodeOnly([]byte("stopTimeout: 999999999h\njobs: [{timeout: 2562048h}]\n"), "yaml", noEnv)
	assertLines(t, err,
		`jobs[0].timeout: "2562048h" is out of range (at most 2562047h)`,
		`stopTimeout: "999999999h" is out of range (at most 2562047h)`,
	)
}

// Enums, signals and sizes are parsed as they are decoded, each against
// its one list, whatever the scalar's type.
func TestTypedValues(t *testing.T) {
	doc := `jobs:
  - restart: {policy: sometimes}
    output: pretty
    stopSignal: 15
    forwardSignals: [HUP, nope]
    maxMemory: lots
    after: [{job: a, state: done}, {job: a, state: true}]
    health: {onUnhealthy: reboot}
watches: [{discovery: swarm, consistency: strong, onChange: {render: {format: haproxy}}}]
metrics: [{type: summary}]
`
	_, err := decodeOnly([]byte(doc), "yaml", noEnv)
	assertLines(t, err,
		`jobs[0].after[0].state: "done" must be one of started, healthy, succeeded, failed, stopped`,
		`jobs[0].after[1].state: "true" must be one of started, healthy, succeeded, failed, stopped`,
		`jobs[0].forwardSignals[1]: unknown signal "nope"`,
		`jobs[0].health.onUnhealthy: "reboot" must be one of none, restart`,
		`jobs[0].maxMemory: "lots" is not a size (use e.g. 512MiB, 1GiB, 300MB)`,
		`jobs[0].output: unknown mode "pretty" (want raw, prefixed or json)`,
		`jobs[0].restart.policy: "sometimes" must be one of never, on-failure, always`,
		`jobs[0].stopSignal: unknown signal "15"`,
		`metrics[0].type: "summary" must be one of counter, gauge, histogram`,
		`watches[0].consistency: "strong" must be one of stale, default, consistent`,
		`watches[0].discovery: "swarm" must be one of consul, docker`,
		`watches[0].onChange.render.format: "haproxy" must be one of nginx, traefik`,
	)
	cfg := decodeYAML(t, `jobs:
  - {restart: {policy: always}, output: json, stopSignal: term, forwardSignals: [usr2], after: [{job: a, state: started}], health: {onUnhealthy: restart}}
`)
	j := cfg.Jobs[0]
	if j.Restart.Policy != jobs.RestartAlways || j.Output != "json" || j.StopSignal.String() != "SIGTERM" ||
		j.ForwardSignals[0].String() != "SIGUSR2" || j.After[0].State.JobState() != jobs.Running || j.Health.OnUnhealthy != OnUnhealthyRestart {
		t.Errorf("got %+v", j)
	}
}

// An explicit zero where a missing key means a default is refused (it asks
// for something the default is not); one that means what it says is kept.
func TestExplicitZeros(t *testing.T) {
	doc := `stopTimeout: 0s
jobs:
  - name: a
    shell: x
    every: 0s
    timeout: 0s
    stopTimeout: 0s
    restart: {max: 0, backoff: {initial: 0s, max: 0s, resetAfter: 0s}}
    preStop: {shell: x, timeout: 0s}
    health: {shell: x, interval: 0s, timeout: 0s, startInterval: 0s, startPeriod: 0s, healthyThreshold: 0, unhealthyThreshold: 0}
watches:
  - service: s
    debounce: {min: 0s, max: 0s}
    onChange: {reload: {exec: [x], timeout: 0s}}
consul: {}
`
	_, err := checkYAML(doc)
	assertLines(t, err,
		`line 1: stopTimeout: must be > 0 (leave it out for the default 9s)`,
		`line 5: jobs[0].every: must be ≥ 100ms (leave it out for a job that is not periodic)`,
		`line 6: jobs[0].timeout: must be > 0 (leave it out for no limit (a periodic job's limit is its period))`,
		`line 7: jobs[0].stopTimeout: must be > 0 (leave it out for the default 8s, or the top-level stopTimeout if shorter)`,
		`line 8: jobs[0].restart.backoff.initial: must be > 0 (leave it out for the default 200ms)`,
		`line 8: jobs[0].restart.backoff.max: must be > 0 (leave it out for the default 30s)`,
		`line 8: jobs[0].restart.backoff.resetAfter: must be > 0 (leave it out for the default 30s)`,
		`line 9: jobs[0].preStop.timeout: must be > 0 (leave it out for the default 5s)`,
		`line 10: jobs[0].health.healthyThreshold: must be between 1 and 100 (leave it out for the default 1)`,
		`line 10: jobs[0].health.interval: must be ≥ 100ms (leave it out for the default 5s)`,
		`line 10: jobs[0].health.startInterval: must be ≥ 10ms (leave it out for the default 50ms)`,
		`line 10: jobs[0].health.timeout: must be > 0 (leave it out for the default 2s, at most the interval)`,
		`line 10: jobs[0].health.unhealthyThreshold: must be between 1 and 100 (leave it out for the default 3)`,
		`line 14: watches[0].onChange.reload.timeout: must be > 0 (leave it out for the default 10s)`,
	)
}

func TestAbsurdValues(t *testing.T) {
	doc := `consul: {address: "127.0.0.1:99999"}
jobs:
  - name: a
    shell: x
    health: {shell: x, interval: 2562047h, healthyThreshold: 9223372036854775807, startPeriod: 48h}
    service: {name: web, port: 3000, ttl: 100h}
`
	_, err := checkYAML(doc)
	assertLines(t, err,
		`line 1: consul.address: "127.0.0.1:99999": port "99999" is not a port (1–65535)`,
		`line 5: jobs[0].health.healthyThreshold: must be between 1 and 100 (leave it out for the default 1)`,
		`line 5: jobs[0].health.interval: 2562047h exceeds 24h`,
		`line 5: jobs[0].health.startPeriod: 48h exceeds 24h`,
		`line 6: jobs[0].service.ttl: 100h exceeds 72h`,
	)
}

func TestConsulAddress(t *testing.T) {
	for address, want := range map[string]string{
		"127.0.0.1:8500":          "",
		"consul:8500":             "",
		"https://consul:8501":     "",
		"http://consul":           "",
		"unix:///run/consul.sock": "",
		"127.0.0.1":               "want host:port, http(s)://host[:port] or unix:///path",
		"http://consul:0":         `port "0" is not a port (1–65535)`,
		"ftp://consul:21":         `unknown scheme "ftp" (use http, https or unix)`,
		"https://":                "want SCHEME://host[:port]",
		"unix://run/sock":         "want unix:///absolute/path",
	} {
		err := checkConsulAddress(address)
		if got := ""; err != nil {
			got = err.Error()
			if got != want {
				t.Errorf("%s: got %q, want %q", address, got, want)
			}
		} else if want != "" {
			t.Errorf("%s: no error, want %q", address, want)
		}
	}
}

func TestStartInterval(t *testing.T) {
	for doc, want := range map[string]string{
		"{shell: x, startInterval: 50ms}":             "",
		"{shell: x, interval: 1s, startInterval: 1s}": "",
		"{shell: x, startInterval: 5ms}":              "jobs[0].health.startInterval: must be ≥ 10ms (leave it out for the default 50ms)",
		"{shell: x, interval: 1s, startInterval: 2s}": "jobs[0].health.startInterval: 2s exceeds the interval 1s",
		"{shell: x, startInterval: 6s}":               "jobs[0].health.startInterval: 6s exceeds the interval 5s",
	} {
		_, err := checkYAML("jobs: [{name: a, shell: x, health: " + doc + "}]\n")
		if got := strings.TrimPrefix(strings.Join(lines(err), "|"), "line 1: "); got != want {
			t.Errorf("%s: got %q, want %q", doc, got, want)
		}
	}
}

// A document nested thousands deep is refused at the shallow path where
// its type is wrong, with one problem (and in linear time: lines and paths
// are noted down to maxTrackedDepth only).
func TestDeepDocuments(t *testing.T) {
	for format, doc := range map[string]string{
		"yaml": "jobs: " + strings.Repeat("[", 9000) + strings.Repeat("]", 9000) + "\n",
		"json": `{"jobs": ` + strings.Repeat("[", 9000) + strings.Repeat("]", 9000) + "}",
		"toml": "jobs = " + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + "\n",
	} {
		_, err := Parse([]byte(doc), format, Options{Env: noEnv})
		assertLines(t, err, "line 1: jobs[0]: expected a map, got a list")
	}
}
