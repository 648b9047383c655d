package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodepilot/pilot/pilot"
	"github.com/nodepilot/pilot/pilot/config"
)

const badConfig = `jobs:
  - name: app
    exec: [node]
  - name: app
    exec: [node]
    restart: {max: -1}
`

// TestRun runs the command line against buffers: every case here ends
// before a job would start (help, version, usage errors, validate, config
// errors), so nothing runs in the test process.
func TestRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := func(name, text string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	good := file("good.yaml", "jobs:\n  - name: app\n    main: true\n    exec: [node]\n")
	bad := file("bad.yaml", badConfig)
	badJSON := file("bad-json.yaml", "log: {format: json}\n"+badConfig)
	version := versionLine()

	type want struct {
		code   int
		stdout []string // substrings of stdout, in any order
		stderr []string // substrings of stderr
		// stderrLines, when set, is how many lines stderr must have
		stderrLines int
		// jsonRecords: stderr is that many JSON log records, one a line
		jsonRecords int
	}
	cases := []struct {
		name string
		args []string
		env  []string
		want want
	}{
		{"nothing", nil, nil, want{code: 2, stderr: []string{"nothing to run", "usage:", "-- CMD", "pilot run"}}},
		{"PILOT_CONFIG alone, invalid", nil, []string{"PILOT_CONFIG=" + bad}, want{code: 2, stderr: []string{"jobs[1].restart.max"}}},

		{"--help", []string{"--help"}, nil, want{code: 0, stdout: []string{"usage:", "environment:", "PILOT_CONFIG", "PILOT_LOG_LEVEL", "PILOT_LOG_FORMAT", "CONSUL_HTTP_ADDR", "TMPDIR", "exit codes:", "-e CODE"}}},
		{"-h", []string{"-h"}, nil, want{code: 0, stdout: []string{"usage:", "exit codes:"}}},
		{"help", []string{"help"}, nil, want{code: 0, stdout: []string{"usage:", "exit codes:"}}},
		{"help run", []string{"help", "run"}, nil, want{code: 0, stdout: []string{"usage: pilot run"}}},
		{"help unknown", []string{"help", "nope"}, nil, want{code: 2, stderr: []string{`unknown command "nope"`}}},
		{"run --help", []string{"run", "--help"}, nil, want{code: 0, stdout: []string{"usage: pilot run", "--config FILE", "PILOT_CONFIG", "PILOT_LOG_FORMAT", "exit codes:"}}},
		{"run -h", []string{"run", "-h"}, nil, want{code: 0, stdout: []string{"usage: pilot run"}}},
		{"validate --help", []string{"validate", "--help"}, nil, want{code: 0, stdout: []string{"usage: pilot validate", "--skip-host-checks", "PILOT_CONFIG", "exit codes:"}}},
		{"--config F validate --help", []string{"--config", good, "validate", "--help"}, nil, want{code: 0, stdout: []string{"usage: pilot validate"}}},
		{"version --help", []string{"version", "--help"}, nil, want{code: 0, stdout: []string{"usage: pilot version"}}},

		{"version", []string{"version"}, nil, want{code: 0, stdout: []string{version}}},
		{"--version", []string{"--version"}, nil, want{code: 0, stdout: []string{version}}},
		{"-V", []string{"-V"}, nil, want{code: 0, stdout: []string{version}}},
		{"version extra", []string{"version", "extra"}, nil, want{code: 2, stderr: []string{`unexpected argument "extra"`}, stderrLines: 1}},
		{"--version extra", []string{"--version", "extra"}, nil, want{code: 2, stderr: []string{`unexpected argument "extra"`}}},

		{"a command without --", []string{"node", "app.js"}, nil, want{code: 2, stderr: []string{"pilot -- node app.js", "usage:"}}},
		{"-- alone", []string{"--"}, nil, want{code: 2, stderr: []string{"no command after --"}}},
		{"run without a config", []string{"run"}, nil, want{code: 2, stderr: []string{"PILOT_CONFIG"}}},
		{"run extra", []string{"run", "--config", good, "extra"}, nil, want{code: 2, stderr: []string{`pilot run: unexpected argument "extra"`}, stderrLines: 1}},
		{"run unknown flag", []string{"run", "--bogus"}, nil, want{code: 2, stderr: []string{"pilot run: flag provided but not defined: -bogus"}, stderrLines: 1}},
		{"validate missing file", []string{"validate", "--config", "/nonexistent.yaml"}, nil, want{code: 2, stderr: []string{"/nonexistent.yaml"}}},

		{"validate", []string{"validate", "--config", good}, nil, want{code: 0, stdout: []string{good + ": valid"}}},
		{"validate from PILOT_CONFIG", []string{"validate"}, []string{"PILOT_CONFIG=" + good}, want{code: 0, stdout: []string{good + ": valid"}}},
		{"validate --skip-host-checks", []string{"validate", "--config", good, "--skip-host-checks"}, nil, want{code: 0, stdout: []string{good + ": valid"}}},
		{"--config F validate", []string{"--config", good, "validate"}, nil, want{code: 0, stdout: []string{good + ": valid"}}},
		{"--config=F validate", []string{"--config=" + good, "validate", "--skip-host-checks"}, nil, want{code: 0, stdout: []string{good + ": valid"}}},
		{"--config F validate --config G", []string{"--config", good, "validate", "--config", good}, nil, want{code: 2, stderr: []string{"--config given twice"}, stderrLines: 1}},
		{"--config F other", []string{"--config", good, "status"}, nil, want{code: 2, stderr: []string{`unexpected "status" after --config FILE`}, stderrLines: 1}},
		{"--config F validate, invalid", []string{"--config", bad, "validate"}, nil, want{code: 2, stderr: []string{bad + ":6: jobs[1].restart.max"}, stderrLines: 2}},

		{"validate, invalid", []string{"validate", "--config", bad}, nil, want{code: 2, stderr: []string{"jobs[1].name", "jobs[1].restart.max"}, stderrLines: 2}},
		{"validate, invalid, file says json", []string{"validate", "--config", badJSON}, nil, want{code: 2, stderr: []string{badJSON + ":7: jobs[1].restart.max"}, stderrLines: 2}},
		{"validate, invalid, PILOT_LOG_FORMAT=json", []string{"validate", "--config", bad}, []string{"PILOT_LOG_FORMAT=json"}, want{code: 2, jsonRecords: 2}},
		{"run, invalid, PILOT_LOG_FORMAT=json", []string{"run", "--config", bad}, []string{"PILOT_LOG_FORMAT=json"}, want{code: 2, jsonRecords: 2}},
		{"run, invalid, file says json", []string{"--config", badJSON}, nil, want{code: 2, jsonRecords: 2}},
		{"run, invalid, file says json, env says text", []string{"--config", badJSON}, []string{"PILOT_LOG_FORMAT=text"}, want{code: 2, stderr: []string{badJSON + ":5: jobs[1].name"}, stderrLines: 2}},
		{"bad PILOT_LOG_LEVEL", []string{"--config", good}, []string{"PILOT_LOG_LEVEL=verbose"}, want{code: 2, stderr: []string{`PILOT_LOG_LEVEL: "verbose" is not a log level`}, stderrLines: 1}},
		{"bad PILOT_LOG_FORMAT", []string{"--config", good}, []string{"PILOT_LOG_FORMAT=xml"}, want{code: 2, stderr: []string{`PILOT_LOG_FORMAT: "xml" must be one of text, json`}, stderrLines: 1}},

		// tini's and dumb-init's flags
		{"tini -g without a command", []string{"-g"}, nil, want{code: 2, stderr: []string{"pilot -g -- CMD"}, stderrLines: 1}},
		{"tini -s CMD without --", []string{"-s", "node", "app.js"}, nil, want{code: 2, stderr: []string{"pilot -s -- node app.js"}, stderrLines: 1}},
		{"tini -sg --help", []string{"-sg", "--help"}, nil, want{code: 0, stdout: []string{"usage:"}}},
		{"tini -h", []string{"-s", "-h"}, nil, want{code: 0, stdout: []string{"usage:"}}},
		{"-s --version", []string{"-s", "--version"}, nil, want{code: 0, stdout: []string{version}}},
		{"tini -e out of range", []string{"-e", "256", "--", "true"}, nil, want{code: 2, stderr: []string{`-e "256"`}, stderrLines: 1}},
		{"tini -e without a code", []string{"-e"}, nil, want{code: 2, stderr: []string{"-e needs an exit code"}, stderrLines: 1}},
		{"tini -e not a number", []string{"-eX", "--", "true"}, nil, want{code: 2, stderr: []string{`-e "X"`}, stderrLines: 1}},
		{"tini -p", []string{"-p", "SIGKILL", "--", "true"}, nil, want{code: 2, stderr: []string{"-p (tini", "PID 1"}, stderrLines: 1}},
		{"tini -w", []string{"-w", "--", "true"}, nil, want{code: 2, stderr: []string{"-w (tini", "drop -w"}, stderrLines: 1}},
		{"tini -l", []string{"-l"}, nil, want{code: 2, stderr: []string{"-l (tini"}, stderrLines: 1}},
		{"tini -R", []string{"-R", "A", "--", "true"}, nil, want{code: 2, stderr: []string{"-R (tini", "restart:"}, stderrLines: 1}},
		{"tini grouped -sw", []string{"-sw", "--", "true"}, nil, want{code: 2, stderr: []string{"-w (tini"}, stderrLines: 1}},
		{"dumb-init -c", []string{"-c", "--", "true"}, nil, want{code: 2, stderr: []string{"-c (dumb-init", "process group"}, stderrLines: 1}},
		{"dumb-init --single-child", []string{"--single-child", "--", "true"}, nil, want{code: 2, stderr: []string{"--single-child (dumb-init"}, stderrLines: 1}},
		{"dumb-init -r", []string{"-r", "15:2", "--", "true"}, nil, want{code: 2, stderr: []string{"-r (dumb-init", "stopSignal"}, stderrLines: 1}},
		{"dumb-init --rewrite", []string{"--rewrite=15:2", "--", "true"}, nil, want{code: 2, stderr: []string{"--rewrite (dumb-init", "stopSignal"}, stderrLines: 1}},
		{"unknown short flag", []string{"-x", "--", "true"}, nil, want{code: 2, stderr: []string{"unknown flag -x", "usage:"}}},
		{"unknown long flag", []string{"--frobnicate", "--", "true"}, nil, want{code: 2, stderr: []string{"unknown flag --frobnicate", "usage:"}}},
		{"--config with --", []string{"-s", "--config", good, "--", "true"}, nil, want{code: 2, stderr: []string{"--config comes first"}, stderrLines: 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), c.args, stdio{nil, &stdout, &stderr}, c.env)
			w := c.want
			if code != w.code {
				t.Errorf("exit %d, want %d", code, w.code)
			}
			for _, s := range w.stdout {
				if !strings.Contains(stdout.String(), s) {
					t.Errorf("stdout lacks %q", s)
				}
			}
			for _, s := range w.stderr {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr lacks %q", s)
				}
			}
			if code == 0 && stderr.Len() > 0 {
				t.Errorf("stderr not empty on success")
			}
			if code != 0 && stdout.Len() > 0 {
				t.Errorf("stdout not empty on failure")
			}
			if strings.Contains(stderr.String(), "pilot pilot") {
				t.Errorf("doubled prefix")
			}
			lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
			if w.stderrLines > 0 && len(lines) != w.stderrLines {
				t.Errorf("stderr has %d lines, want %d", len(lines), w.stderrLines)
			}
			if w.jsonRecords > 0 {
				if len(lines) != w.jsonRecords {
					t.Errorf("stderr has %d lines, want %d JSON records", len(lines), w.jsonRecords)
				}
				for _, line := range lines {
					var rec map[string]any
					if err := json.Unmarshal([]byte(line), &rec); err != nil {
						t.Errorf("not a JSON record: %q", line)
						continue
					}
					if rec["level"] != "ERROR" || rec["msg"] != "config error" || rec["file"] != bad && rec["file"] != badJSON || rec["err"] == "" {
						t.Errorf("record %v: want level ERROR, msg config error, the file and the problem", rec)
					}
				}
			}
			if t.Failed() {
				t.Logf("args %q\nstdout:\n%s\nstderr:\n%s", c.args, stdout.String(), stderr.String())
			}
		})
	}
}

// The flags of the -- form that pilot accepts are read into what runCommand
// uses (the rest of their effect is in TestTiniFlags).
func TestParseTiniFlags(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args      []string
		verbosity int
		codes     []int
		argv      []string
	}{
		{[]string{"-s", "--", "node", "app.js"}, 0, nil, []string{"node", "app.js"}},
		{[]string{"-g", "-s", "--", "node", "--", "-v"}, 0, nil, []string{"node", "--", "-v"}},
		{[]string{"-sg", "-vv", "-e", "143", "-e2", "--", "java"}, 2, []int{143, 2}, []string{"java"}},
		{[]string{"-sgve143", "--", "java"}, 1, []int{143}, []string{"java"}},
		{[]string{"--verbose", "--", "sh"}, 1, nil, []string{"sh"}},
	} {
		inv, err := parseArgs(c.args, func(string) string { return "" })
		if err != nil {
			t.Errorf("%q: %v", c.args, err)
			continue
		}
		if inv.do != doExec || inv.verbosity != c.verbosity || !slices.Equal(inv.successCodes, c.codes) || !slices.Equal(inv.argv, c.argv) {
			t.Errorf("%q: got %+v, want verbosity %d, -e %v, command %q", c.args, inv, c.verbosity, c.codes, c.argv)
		}
	}
}

// Config errors as JSON: one record per problem, with the file, the path of
// the value at fault and the message as fields, whether the problems come
// straight from validation or wrapped in a *pilot.ConfigError found at run
// time.
func TestConfigErrorRecords(t *testing.T) {
	t.Parallel()
	_, invalid := config.Parse([]byte(badConfig), "yaml", config.Options{})
	if invalid == nil {
		t.Fatal("the bad config validates")
	}
	want := []map[string]any{
		{"file": "pilot.yaml", "line": 4.0, "path": "jobs[1].name", "err": `duplicate "app" (also jobs[0])`},
		{"file": "pilot.yaml", "line": 6.0, "path": "jobs[1].restart.max", "err": "must be ≥ 0"},
	}
	for name, err := range map[string]error{"validation": invalid, "run time": &pilot.ConfigError{Err: invalid}} {
		var buf bytes.Buffer
		reportConfigError(&buf, true, "pilot.yaml", err)
		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		if len(lines) != len(want) {
			t.Fatalf("%s: %d records, want %d:\n%s", name, len(lines), len(want), buf.String())
		}
		for i, line := range lines {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("%s: %q: %v", name, line, err)
			}
			for k, v := range want[i] {
				if rec[k] != v {
					t.Errorf("%s: record %d: %s = %v, want %v", name, i, k, rec[k], v)
				}
			}
		}
	}
}

// Both log formats say durations and signals the way people read them, and
// PILOT_LOG_LEVEL takes the level spellings log.level takes.
func TestLoggerReadableValues(t *testing.T) {
	t.Parallel()
	for _, format := range []string{"text", "json"} {
		var buf bytes.Buffer
		log, _, err := newLogger(&buf, config.Log{Format: format}, func(string) string { return "" })
		if err != nil {
			t.Fatal(err)
		}
		log.Info("x", "stopTimeout", 9*time.Second, "signal", syscall.SIGTERM, "sig", syscall.Signal(99))
		out := buf.String()
		wants := map[string][]string{
			"text": {"stopTimeout=9s", "signal=SIGTERM", "sig=99"},
			"json": {`"stopTimeout":"9s"`, `"signal":"SIGTERM"`, `"sig":"99"`},
		}[format]
		for _, w := range wants {
			if !strings.Contains(out, w) {
				t.Errorf("%s: %q lacks %s", format, out, w)
			}
		}
	}
	for _, c := range []struct {
		env  string
		want slog.Level
	}{{"warning", slog.LevelWarn}, {"WARN", slog.LevelWarn}, {"err", slog.LevelError}, {"Debug", slog.LevelDebug}} {
		log, _, err := newLogger(&bytes.Buffer{}, config.Log{Level: "info"}, func(k string) string {
			return map[string]string{"PILOT_LOG_LEVEL": c.env}[k]
		})
		if err != nil {
			t.Errorf("PILOT_LOG_LEVEL=%s: %v", c.env, err)
			continue
		}
		if !log.Enabled(context.Background(), c.want) || log.Enabled(context.Background(), c.want-1) {
			t.Errorf("PILOT_LOG_LEVEL=%s: not level %v", c.env, c.want)
		}
	}
}

// pilot.Run's one result maps to one exit code.
func TestExitCode(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		err          error
		successCodes []int
		want         int
	}{
		{nil, nil, 0},
		{&pilot.ExitError{Code: 3}, nil, 3},
		{&pilot.ExitError{Code: 143}, []int{143}, 0},
		{&pilot.ExitError{Code: 143}, []int{2}, 143},
		{&pilot.ConfigError{Err: errors.New("jobs[0].user: unknown user")}, []int{2}, 2},
		{fmt.Errorf("telemetry.listen: %w", syscall.EADDRINUSE), nil, 1},
	} {
		if got := exitCode(c.err, c.successCodes); got != c.want {
			t.Errorf("exitCode(%v, %v) = %d, want %d", c.err, c.successCodes, got, c.want)
		}
	}
}
