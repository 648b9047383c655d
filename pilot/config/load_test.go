package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nodepilot/pilot/jobs"
)

// The same config in each format decodes to the same Config.
func TestParseFormats(t *testing.T) {
	max := 3
	want := &Config{
		Log:         Log{Level: "debug", Format: "json"},
		StopTimeout: 9 * time.Second,
		Jobs: []Job{{
			Name:           "app",
			Exec:           []string{"node", "server.js"},
			Main:           true,
			Env:            map[string]string{"NODE_ENV": "production", "lower": "y", "MixedCase": "z"},
			After:          []Dependency{{Job: "migrate", State: DependencySucceeded}},
			Restart:        Restart{Policy: jobs.RestartOnFailure, Max: &max, Backoff: Backoff{Initial: 500 * time.Millisecond}},
			StopTimeout:    1500 * time.Millisecond,
			PreStop:        &Hook{Shell: "sleep 1", Timeout: time.Second},
			ForwardSignals: []Signal{Signal(unix.SIGHUP)},
		}},
	}
	docs := map[string]string{
		"yaml": `
log: {level: debug, format: json}
stopTimeout: 9s
jobs:
  - name: app
    exec: [node, server.js]
    main: true
    env: {NODE_ENV: production, lower: y, MixedCase: z}
    after: [{job: migrate, state: succeeded}]
    restart: {policy: on-failure, max: 3, backoff: {initial: 500ms}}
    stopTimeout: 1.5s
    preStop: {shell: sleep 1, timeout: 1s}
    forwardSignals: [SIGHUP]
`,
		"json": `{
  "log": {"level": "debug", "format": "json"},
  "stopTimeout": "9s",
  "jobs": [{
    "name": "app", "exec": ["node", "server.js"], "main": true,
    "env": {"NODE_ENV": "production", "lower": "y", "MixedCase": "z"},
    "after": [{"job": "migrate", "state": "succeeded"}],
    "restart": {"policy": "on-failure", "max": 3, "backoff": {"initial": "500ms"}},
    "stopTimeout": "1.5s",
    "preStop": {"shell": "sleep 1", "timeout": "1s"},
    "forwardSignals": ["SIGHUP"]
  }]
}`,
		"toml": `
stopTimeout = "9s"
log = {level = "debug", format = "json"}

[[jobs]]
name = "app"
exec = ["node", "server.js"]
main = true
env = {NODE_ENV = "production", lower = "y", MixedCase = "z"}
after = [{job = "migrate", state = "succeeded"}]
stopTimeout = "1.5s"
forwardSignals = ["SIGHUP"]
preStop = {shell = "sleep 1", timeout = "1s"}

[jobs.restart]
policy = "on-failure"
max = 3
backoff = {initial = "500ms"}
`,
	}
	for format, doc := range docs {
		t.Run(format, func(t *testing.T) {
			got, err := decodeOnly([]byte(doc), format, noEnv)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got.Jobs[0], want.Jobs[0])
			}
		})
	}
}

// viper would lowercase these keys; pilot must not (see doc.go).
func TestEnvKeysKeepTheirCase(t *testing.T) {
	want := map[string]string{"NODE_ENV": "x", "lower": "y", "MixedCase": "z"}
	docs := map[string]string{
		"yaml": "jobs:\n  - env: {NODE_ENV: x, lower: y, MixedCase: z}\n",
		"yml":  "jobs:\n  - env:\n      NODE_ENV: x\n      lower: y\n      MixedCase: z\n",
		"json": `{"jobs": [{"env": {"NODE_ENV": "x", "lower": "y", "MixedCase": "z"}}]}`,
		"toml": "[[jobs]]\n[jobs.env]\nNODE_ENV = \"x\"\nlower = \"y\"\nMixedCase = \"z\"\n",
	}
	for format, doc := range docs {
		t.Run(format, func(t *testing.T) {
			cfg, err := decodeOnly([]byte(doc), format, noEnv)
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Jobs[0].Env; !reflect.DeepEqual(got, want) {
				t.Errorf("env = %v, want %v", got, want)
			}
		})
	}
}

func TestParseFormatNames(t *testing.T) {
	for _, format := range []string{"yaml", "YML", "Json", "toml"} {
		if _, err := Parse(nil, format, Options{Env: noEnv}); err != nil && strings.Contains(err.Error(), "unknown config format") {
			t.Errorf("%s: %v", format, err)
		}
	}
	_, err := Parse([]byte("a=1"), "ini", Options{Env: noEnv})
	assertLines(t, err, `unknown config format "ini" (use yaml, yml, json or toml)`)
	_, err = Parse([]byte("A=1"), "env", Options{Env: noEnv})
	assertLines(t, err, `unknown config format "env" (use yaml, yml, json or toml)`)
}

func TestEmptyYAMLIsAnEmptyConfig(t *testing.T) {
	for _, doc := range []string{"", "# nothing\n", "---\n", "null\n"} {
		cfg := decodeYAML(t, doc)
		if !reflect.DeepEqual(cfg, &Config{}) {
			t.Errorf("%q: got %+v", doc, cfg)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name, doc string
		want      []string
	}{
		{
			name: "unknown top-level key",
			doc:  "telemetri: {address: x}\njobs: []\n",
			want: []string{`unknown key "telemetri" (did you mean "telemetry"?)`},
		},
		{
			name: "keys match in case only",
			doc:  "Jobs: []\nstoptimeout: 1s\n",
			want: []string{
				`unknown key "Jobs" (did you mean "jobs"?)`,
				`unknown key "stoptimeout" (did you mean "stopTimeout"?)`,
			},
		},
		{
			name: "unknown keys in a job, sorted, with suggestions for typos",
			doc:  "jobs:\n  - {name: a, comand: x, exce: [y], stopSingal: TERM}\n",
			want: []string{
				`jobs[0]: unknown key "comand"`,
				`jobs[0]: unknown key "exce" (did you mean "exec"?)`,
				`jobs[0]: unknown key "stopSingal" (did you mean "stopSignal"?)`,
			},
		},
		{
			name: "unknown keys in nested maps",
			doc: `
log: {level: info, colour: true}
jobs:
  - name: a
    restart: {policy: always, limit: 3, backoff: {intial: 1s}}
    after: [{job: b, sate: started}]
    preStop: {exec: [x], timout: 1s}
`,
			want: []string{
				`jobs[0].after[0]: unknown key "sate" (did you mean "state"?)`,
				`jobs[0].preStop: unknown key "timout" (did you mean "timeout"?)`,
				`jobs[0].restart: unknown key "limit"`,
				`jobs[0].restart.backoff: unknown key "intial" (did you mean "initial"?)`,
				`log: unknown key "colour"`,
			},
		},
		{
			name: "wrong scalar types",
			doc: `
jobs:
  - name: 42
    main: "yes"
    exec: node server.js
    env: {VERSION: 1.10, LIST: [a], DAY: 2024-01-02}
    restart: {max: "10"}
`,
			want: []string{
				`jobs[0].env.DAY: expected a string, got date/time 2024-01-02 00:00:00 +0000 UTC (quote it to keep it as written)`,
				`jobs[0].env.LIST: expected a string, got a list`,
				`jobs[0].env.VERSION: expected a string, got number 1.1 (quote it to keep it as written)`,
				`jobs[0].exec: expected a list, got string "node server.js"`,
				`jobs[0].main: expected a boolean, got string "yes"`,
				`jobs[0].name: expected a string, got number 42 (quote it: "42")`,
				`jobs[0].restart.max: expected an integer, got string "10"`,
			},
		},
		{
			name: "wrong structure",
			doc:  "log: debug\njobs: {name: a}\n",
			want: []string{
				`jobs: expected a list, got a map`,
				`log: expected a map, got string "debug"`,
			},
		},
		{
			name: "wrong entry types",
			doc:  "jobs:\n  - app\n  - name: b\n    after: [b]\n    exec: [node, 1]\n    preStop: [x]\n",
			want: []string{
				`jobs[0]: expected a map, got string "app"`,
				`jobs[1].after[0]: expected a map, got string "b"`,
				`jobs[1].exec[1]: expected a string, got number 1 (quote it: "1")`,
				`jobs[1].preStop: expected a map, got a list`,
			},
		},
		{
			name: "integers must be whole and fit",
			doc:  "jobs:\n  - restart: {max: 1.5}\n  - restart: {max: 1e30}\n  - restart: {max: 18446744073709551615}\n",
			want: []string{
				`jobs[0].restart.max: expected an integer, got number 1.5`,
				`jobs[1].restart.max: expected an integer, got number 1e+30`,
				`jobs[2].restart.max: expected an integer, got number 18446744073709551615`,
			},
		},
		{
			name: "durations are strings with a unit",
			doc: `
stopTimeout: 5
jobs:
  - timeout: "5"
    every: 1.5
    stopTimeout: soon
    restart: {backoff: {initial: [1s]}}
    preStop: {timeout: true}
`,
			want: []string{
				`jobs[0].every: 1.5 is not a duration (use 5s, 500ms)`,
				`jobs[0].preStop.timeout: expected a duration (use 5s, 500ms), got boolean true`,
				`jobs[0].restart.backoff.initial: expected a duration (use 5s, 500ms), got a list`,
				`jobs[0].stopTimeout: "soon" is not a duration (use 5s, 500ms)`,
				`jobs[0].timeout: "5" is not a duration (use 5s, 500ms)`,
				`stopTimeout: 5 is not a duration (use 5s, 500ms)`,
			},
		},
		{
			name: "long values are cut short in messages",
			doc:  "jobs:\n  - main: " + strings.Repeat("x", 100) + "\n",
			want: []string{`jobs[0].main: expected a boolean, got string "` + strings.Repeat("x", 40) + `"…`},
		},
		{
			name: "env keys that are not plain names",
			doc:  "jobs:\n  - env: {\"a.b[c]\": 1.5}\n",
			want: []string{`jobs[0].env["a.b[c]"]: expected a string, got number 1.5 (quote it to keep it as written)`},
		},
		{
			name: "a list as a key",
			doc:  "jobs:\n  - env: {? [a] : b}\n",
			want: []string{`yaml: invalid map key: []interface {}{"a"}`},
		},
		{
			name: "errors sort by job number",
			doc:  strings.Repeat("  - {main: 1}\n", 11),
			want: func() []string {
				var want []string
				for _, i := range []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10"} {
					want = append(want, "jobs["+i+"].main: expected a boolean, got number 1")
				}
				return want
			}(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := tt.doc
			if tt.name == "errors sort by job number" {
				doc = "jobs:\n" + doc
			}
			cfg, err := decodeOnly([]byte(doc), "yaml", noEnv)
			if cfg != nil {
				t.Errorf("got a config with the errors: %+v", cfg)
			}
			assertLines(t, err, tt.want...)
		})
	}
}

// Integers and booleans in env are their text; the expansion of an unquoted
// ${PORT:-3000} is the common case.
func TestEnvTakesIntegersAndBooleansAsText(t *testing.T) {
	want := map[string]string{"PORT": "3000", "DEBUG": "true", "BIG": "18446744073709551615", "NEG": "-1"}
	docs := map[string]string{
		"yaml": "jobs:\n  - env: {PORT: ${PORT:-3000}, DEBUG: true, BIG: 18446744073709551615, NEG: -1}\n",
		"toml": "[[jobs]]\nenv = {PORT = 3000, DEBUG = true, BIG = \"18446744073709551615\", NEG = -1}\n",
	}
	for format, doc := range docs {
		cfg, err := decodeOnly([]byte(doc), format, noEnv)
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		if got := cfg.Jobs[0].Env; !reflect.DeepEqual(got, want) {
			t.Errorf("%s: env = %v, want %v", format, got, want)
		}
	}
	// JSON has only floats, which are not taken.
	_, err := decodeOnly([]byte(`{"jobs": [{"env": {"PORT": 3000}}]}`), "json", noEnv)
	assertLines(t, err, "jobs[0].env.PORT: expected a string, got number 3000 (quote it to keep it as written)")
}

func TestDecodeErrorsAreFieldErrors(t *testing.T) {
	_, err := decodeOnly([]byte("jobs:\n  - {main: x}\n"), "yaml", noEnv)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Path != "jobs[0].main" {
		t.Fatalf("errors.As(%v) = %+v", err, fe)
	}
}

func TestKeyTypesAndDuplicates(t *testing.T) {
	tests := []struct {
		format, doc string
		want        []string
	}{
		{"yaml", "jobs:\n  - env: {1: a, true: b}\n    name: x\n", nil},
		{"yaml", "jobs:\n  - env: {1: a, \"1\": b}\n", []string{`line 2: yaml: mapping key "1" already defined at line 2`}},
		{"yaml", "jobs:\n  - env: {1: a, 1.0: b}\n", []string{`jobs[0].env: duplicate key "1"`}},
		{"yaml", "log: {}\nlog: {}\n", []string{`line 2: yaml: mapping key "log" already defined at line 1`}},
		{"json", `{"jobs": [{"env": {"A": "1", "A": "2"}}]}`, []string{`line 1: jobs[0].env: duplicate key "A"`}},
		{"json", "{\"log\": {},\n \"log\": {}, \"log\": {}}", []string{`line 2: duplicate key "log"`, `line 2: duplicate key "log"`}},
		{"toml", "[log]\nlevel = \"info\"\nlevel = \"debug\"\n", []string{`toml: key level is already defined`}},
	}
	for _, tt := range tests {
		_, err := decodeOnly([]byte(tt.doc), tt.format, noEnv)
		assertLines(t, err, tt.want...)
	}
}

// A parser's complaint comes back as an error with a line, never a panic.
func TestSyntaxErrors(t *testing.T) {
	tests := []struct{ format, doc, want string }{
		{"yaml", "jobs:\n  - name: a\n    exec: [a\n", "line 3: yaml: did not find expected ',' or ']'"},
		// A parser error is on the line where what it could not finish
		// began, or where it gave up when that is line 1.
		{"yaml", "jobs:\n  - name: a\n   exec: x\n", "line 2: yaml: did not find expected '-' indicator"},
		{"yaml", "jobs: [a\n", "line 2: yaml: did not find expected ',' or ']'"},
		{"yaml", "jobs:\n\tname: a\n", "line 2: yaml: found character that cannot start any token"},
		{"yaml", "a: b: c\n", "line 1: yaml: mapping values are not allowed in this context"},
		{"yaml", "- a\n- b\n", "line 1: the top level must be a mapping"},
		{"yaml", "just a string", "line 1: the top level must be a mapping"},
		{"json", "{\n  \"jobs\": [,]\n}", "line 2: json: column 12: invalid character ','"},
		{"json", "[]", "line 1: json: the top level must be an object, not array"},
		{"json", "", "line 1: json: column 1: unexpected end of JSON input"},
		{"json", "{} {}", "line 1: json: column 4: invalid character '{' after top-level value"},
		{"toml", "[jobs\nname = 1\n", "line 1: toml: column 6: "},
		{"toml", "a = \n", "line 1: toml: column 5: "},
	}
	for _, tt := range tests {
		_, err := decodeOnly([]byte(tt.doc), tt.format, noEnv)
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%s %q: got %v, want prefix %q", tt.format, tt.doc, err, tt.want)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	opts := Options{Env: noEnv}

	t.Run("format from the extension", func(t *testing.T) {
		for _, name := range []string{"p.yaml", "p.yml", "p.YAML"} {
			cfg, err := Load(write(name, "jobs: [{name: ${N}, shell: x}]\n"), Options{Env: env(map[string]string{"N": "app"})})
			if err != nil || cfg.Jobs[0].Name != "app" {
				t.Errorf("%s: %+v, %v", name, cfg, err)
			}
		}
		if _, err := Load(write("p.json", `{"jobs": [{"name": "a", "shell": "x"}]}`), opts); err != nil {
			t.Error(err)
		}
		if _, err := Load(write("p.toml", "[[jobs]]\nname = \"a\"\nshell = \"x\"\n"), opts); err != nil {
			t.Error(err)
		}
	})
	t.Run("unknown extension", func(t *testing.T) {
		path := write("pilot.ini", "")
		_, err := Load(path, opts)
		assertLines(t, err, path+`: unknown config format "ini" (use yaml, yml, json or toml)`)
	})
	t.Run("no extension", func(t *testing.T) {
		path := write("pilot", "")
		_, err := Load(path, opts)
		assertLines(t, err, path+": cannot tell the config format without an extension (use yaml, yml, json or toml)")
	})
	t.Run("missing file", func(t *testing.T) {
		_, err := Load(filepath.Join(dir, "nope.yaml"), opts)
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("every error line names the file and line", func(t *testing.T) {
		path := write("bad.yaml", "jobs:\n  - {main: 1, exec: x}\n")
		_, err := Load(path, opts)
		assertLines(t, err,
			path+`:2: jobs[0].exec: expected a list, got string "x"`,
			path+`:2: jobs[0].main: expected a boolean, got number 1`,
			path+`:2: jobs[0].name: required`,
		)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.File != path || fe.Line != 2 {
			t.Errorf("the FieldErrors are lost: %+v", fe)
		}
	})
	t.Run("syntax and expansion errors name the file and line", func(t *testing.T) {
		for content, want := range map[string]string{
			"jobs: [\n":       ":2: yaml: did not find expected node content",
			"jobs: ${NOPE}\n": ":1: jobs: environment variable NOPE is not set",
		} {
			path := write("bad.yaml", content)
			_, err := Load(path, opts)
			if err == nil || !strings.HasPrefix(err.Error(), path+want) {
				t.Errorf("%q: got %v, want %s%s…", content, err, path, want)
			}
		}
	})
	t.Run("size cap", func(t *testing.T) {
		path := write("big.yaml", "jobs: []\n"+strings.Repeat("# padding\n", MaxFileSize/10))
		_, err := Load(path, opts)
		assertLines(t, err, path+": larger than 1 MiB, the most a config file may hold: is it the right file?")
		_, err = Parse(make([]byte, MaxFileSize+1), "yaml", opts)
		assertLines(t, err, "larger than 1 MiB, the most a config file may hold: is it the right file?")
	})
}
