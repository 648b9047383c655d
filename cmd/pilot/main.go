// Command pilot is a container-native supervisor: PID 1, jobs, restarts and
// an orderly shutdown. main stays thin: run parses the command line, loads
// the config and maps the outcome to an exit code.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"syscall"

	"github.com/nodepilot/pilot/jobs/output"
	"github.com/nodepilot/pilot/pilot"
	"github.com/nodepilot/pilot/pilot/config"
)

// Set at build time with -ldflags "-X main.version=… -X main.commit=…".
var (
	version = "dev"
	commit  = "unknown"
)

const (
	exitFailure = 1 // pilot's own failure
	exitUsage   = 2 // config or usage error
)

func main() {
	resetInheritedSignalMask()
	os.Exit(run(context.Background(), os.Args[1:], stdio{os.Stdin, os.Stdout, os.Stderr}, os.Environ()))
}

type stdio struct{ in, out, err *os.File }

const usage = `usage:
  pilot -- CMD [ARGS…]            supervise CMD as PID 1, tini-style (no config)
  pilot run [--config FILE]       run the jobs of a config file (or $PILOT_CONFIG)
  pilot --config FILE             same as run
  pilot validate [--config FILE]  check a config file; print every error
  pilot version                   print version, commit and Go version
`

func run(ctx context.Context, args []string, io stdio, environ []string) int {
	env := envLookup(environ)
	if len(args) == 0 {
		if path := env("PILOT_CONFIG"); path != "" {
			return runConfig(ctx, path, io, environ)
		}
		fmt.Fprint(io.err, usage)
		return exitUsage
	}
	switch cmd := args[0]; {
	case cmd == "--":
		return runCommand(ctx, args[1:], io, environ)
	case cmd == "run":
		path, code := configFlag("run", args[1:], io.err, env)
		if code != 0 {
			return code
		}
		return runConfig(ctx, path, io, environ)
	case cmd == "validate":
		path, code := configFlag("validate", args[1:], io.err, env)
		if code != 0 {
			return code
		}
		if _, err := loadConfig(path, environ, true); err != nil {
			printConfigError(io.err, err)
			return exitUsage
		}
		fmt.Fprintf(io.out, "%s: valid\n", path)
		return 0
	case cmd == "version":
		fmt.Fprintf(io.out, "pilot %s (commit %s, %s)\n", version, commit, runtime.Version())
		return 0
	case cmd == "-h" || cmd == "--help" || cmd == "help":
		fmt.Fprint(io.out, usage)
		return 0
	case strings.HasPrefix(cmd, "-"):
		path, code := configFlag("pilot", args, io.err, env)
		if code != 0 {
			return code
		}
		return runConfig(ctx, path, io, environ)
	default:
		fmt.Fprintf(io.err, "pilot: unknown command %q; to supervise a command, put it after --: pilot -- %s\n%s",
			cmd, strings.Join(args, " "), usage)
		return exitUsage
	}
}

// configFlag parses [--config FILE] and falls back to $PILOT_CONFIG.
func configFlag(name string, args []string, stderr io.Writer, env func(string) string) (string, int) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", env("PILOT_CONFIG"), "config file (YAML, JSON or TOML); default $PILOT_CONFIG")
	if err := fs.Parse(args); err != nil {
		return "", exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "pilot %s: unexpected argument %q\n", name, fs.Arg(0))
		return "", exitUsage
	}
	if *path == "" {
		fmt.Fprintf(stderr, "pilot %s: no config file: pass --config FILE or set PILOT_CONFIG\n", name)
		return "", exitUsage
	}
	return *path, 0
}

// loadConfig reads and checks a config file in one pass — decoding,
// validation and, with checkHost, what this machine must provide (users,
// directories, files, interfaces) — with ${VAR} expanded from environ.
// The error lists every problem, one per line, in the order of the file:
// FILE:LINE: PATH: MESSAGE, each a *config.FieldError.
func loadConfig(path string, environ []string, checkHost bool) (*config.Config, error) {
	opts := config.Options{Env: lookupIn(environ)}
	if checkHost {
		opts.Check = pilot.CheckHost
	}
	return config.Load(path, opts)
}

// lookupIn looks a variable up in environ; the last setting wins, as in
// the process environment.
func lookupIn(environ []string) config.LookupFunc {
	return func(name string) (string, bool) {
		value, found := "", false
		for _, kv := range environ {
			if k, v, ok := strings.Cut(kv, "="); ok && k == name {
				value, found = v, true
			}
		}
		return value, found
	}
}

func printConfigError(w io.Writer, err error) {
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintf(w, "pilot: %s\n", line)
	}
}

func runConfig(ctx context.Context, path string, io stdio, environ []string) int {
	cfg, err := loadConfig(path, environ, true)
	if err != nil {
		printConfigError(io.err, err)
		return exitUsage
	}
	return supervise(ctx, cfg, path, io, environ)
}

// tiniForwarded are the signals passed on to the command in `pilot --`
// mode; SIGUSR1 is left out because it opens Node's inspector.
var tiniForwarded = []config.Signal{
	config.Signal(syscall.SIGHUP), config.Signal(syscall.SIGQUIT), config.Signal(syscall.SIGUSR2),
	config.Signal(syscall.SIGWINCH), config.Signal(syscall.SIGALRM),
}

// runCommand is the tini-compatible mode: one main job, no restarts, raw
// output, every signal worth passing on passed on.
func runCommand(ctx context.Context, argv []string, io stdio, environ []string) int {
	if len(argv) == 0 {
		fmt.Fprintf(io.err, "pilot: no command after --\n%s", usage)
		return exitUsage
	}
	cfg := &config.Config{
		Log: config.Log{Level: "warn"},
		Jobs: []config.Job{{
			Name:           "main",
			Exec:           argv,
			Main:           true,
			ForwardSignals: tiniForwarded,
		}},
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(io.err, "pilot: %v\n", err)
		return exitUsage
	}
	return supervise(ctx, cfg, "command line", io, environ)
}

// supervise runs a valid config. source says where it came from, for the log.
func supervise(ctx context.Context, cfg *config.Config, source string, io stdio, environ []string) int {
	stdout, stderr := output.NewSink(io.out), output.NewSink(io.err)
	log, err := newLogger(stderr, cfg.Log, envLookup(environ))
	if err != nil {
		fmt.Fprintf(io.err, "pilot: %v\n", err)
		return exitUsage
	}
	log.Info("pilot starting", "version", version, "config", source, "pid", os.Getpid(), "jobs", len(cfg.Jobs))
	code, err := pilot.Run(ctx, cfg, pilot.Options{Log: log, Stdin: io.in, Stdout: stdout, Stderr: stderr, Environ: environ,
		Version: version, Commit: commit})
	var cfgErr *pilot.ConfigError
	switch {
	case errors.As(err, &cfgErr):
		fmt.Fprintf(stderr, "pilot: %v\n", err)
		return exitUsage
	case err != nil:
		log.Error("pilot failed", "err", err)
		return exitFailure
	}
	return code
}

// newLogger builds pilot's own logger. PILOT_LOG_LEVEL and PILOT_LOG_FORMAT
// override the config, which is how `pilot --` mode is made talkative.
func newLogger(w io.Writer, c config.Log, env func(string) string) (*slog.Logger, error) {
	level, format := c.Level, c.Format
	if v := env("PILOT_LOG_LEVEL"); v != "" {
		level = v
	}
	if v := env("PILOT_LOG_FORMAT"); v != "" {
		format = v
	}
	if level == "" {
		level = config.DefaultLogLevel
	}
	lv, err := config.ParseLogLevel(level) // the list log.level is validated against
	if err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)).With("logger", "pilot"), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)).With("logger", "pilot"), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}

func envLookup(environ []string) func(string) string {
	return func(key string) string {
		v := ""
		for _, kv := range environ {
			if k, val, ok := strings.Cut(kv, "="); ok && k == key {
				v = val
			}
		}
		return v
	}
}
