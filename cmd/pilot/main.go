// Command pilot is a container-native supervisor: PID 1, jobs, restarts and
// an orderly shutdown. main stays thin: run parses the command line, loads
// the config and maps the outcome to an exit code.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/nodepilot/pilot/jobs"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/nodepilot/pilot/jobs/output"
	"github.com/nodepilot/pilot/pilot"
	"github.com/nodepilot/pilot/pilot/config"
	"github.com/nodepilot/pilot/pilot/control"
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
	jobs.RunTrampoline() // before anything: it execs a job's command in place
	resetInheritedSignalMask()
	os.Exit(run(context.Background(), os.Args[1:], stdio{os.Stdin, os.Stdout, os.Stderr}, os.Environ()))
}

// stdio is pilot's standard streams. in is a file: the main job inherits it
// and pilot checks it for a terminal. out and err may be any writer, so that
// tests run `run` against buffers; a job with raw output needs them to be
// files, whose descriptors it inherits.
type stdio struct {
	in       *os.File
	out, err io.Writer
}

const synopsis = `usage:
  pilot [-s] [-g] [-v] [-e CODE] -- CMD [ARG…]   supervise CMD as PID 1, tini-style (no config file)
  pilot run [--config FILE]                     run the jobs of a config file
  pilot --config FILE [run | validate …]        the same, config first
  pilot validate [--config FILE] [--skip-host-checks]
                                                check a config file; print every problem
  pilot version | --version | -V                print version, commit and Go version
  pilot status [--json]                         the running pilot's jobs, services and watches
  pilot health                                  exit 0 when every health-checked job is healthy
  pilot reload                                  have pilot read its config file again
  pilot maintenance on|off                      take the services out of rotation, or back in
  pilot restart JOB | pilot signal JOB SIG      restart a job; signal a job
  pilot reload-app JOB                          rolling reload of a cluster job's instances
  pilot putenv NAME=VALUE…                      set variables for the jobs' next runs
  pilot metric NAME=VALUE…                      set custom metrics
                                                (these talk to a running pilot: --socket PATH,
                                                else $PILOT_SOCKET, else /tmp/pilot.sock)
  pilot docker-proxy --listen ADDR [--upstream unix:///PATH]
                                                serve a read-only Docker Engine API
  pilot help [COMMAND] | COMMAND --help         this help, or a command's
`

const environmentHelp = `environment:
  PILOT_CONFIG      the config file when --config is not given (pilot alone runs it)
  PILOT_SOCKET      the control socket, when the config's control.socket does not
                    name one (default /tmp/pilot.sock); the control commands use it
  PILOT_LOG_LEVEL   debug, info, warn (or warning), error: overrides log.level and -v
  PILOT_LOG_FORMAT  text or json: overrides log.format; config errors follow it
                    (validate: only this variable, not the file's log.format)
  CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, CONSUL_HTTP_TOKEN_FILE, CONSUL_CACERT,
  CONSUL_CLIENT_CERT, CONSUL_CLIENT_KEY, CONSUL_TLS_SERVER_NAME, CONSUL_HTTP_SSL,
  CONSUL_HTTP_SSL_VERIFY
                    the Consul agent, for what the config's consul: section leaves out
  TMPDIR            where pilot keeps its private files (watches, Node metrics)
  ${VAR} and ${VAR:-default} in the config file expand from the environment;
  every job inherits pilot's environment.
`

const exitCodesHelp = `exit codes:
  the main job's   its own exit code; 128+N when signal N ended it (or stopped
                   it before it ever ran); with -e CODE, 0 for CODE
  0                no main job, and every job ended without failing
  1                pilot's own failure; the main job can never start (a job it
                   waits for failed); no main job, and a job failed
  2                a config or usage error
`

const topHelp = `pilot: a container-native supervisor for Node.js services: PID 1 (reaps
orphans, forwards signals, passes on the exit code), jobs run in order, health
checks, Consul registration, proxy backends kept in step, graceful shutdown
and Prometheus metrics.

` + synopsis + `
flags of the -- form, for ENTRYPOINT lines moving from tini or dumb-init:
  -s, -g       accepted; pilot always does this: it becomes a child subreaper
               when it is not PID 1, and signals CMD's whole process group
  -v           say more: -v info, -vv debug (default: warnings and errors)
  -e CODE      exit 0 when CMD exits with CODE (0-255; repeatable), as tini -e
  tini's -p, -w, -l, -R and dumb-init's -c (--single-child), -r (--rewrite) are
  refused, each with a line saying what to use instead.

` + environmentHelp + `
` + exitCodesHelp

const runHelp = `usage: pilot run [--config FILE]
       pilot --config FILE [run]
       pilot                       (with PILOT_CONFIG set)

Runs the jobs of a config file (YAML, JSON or TOML) until the main job ends,
or every job when there is none, or pilot receives SIGTERM or SIGINT. The
file is checked as pilot validate checks it first; nothing starts when it
has a problem.

flags:
  --config FILE   the config file (default $PILOT_CONFIG)

` + environmentHelp + `
` + exitCodesHelp

const validateHelp = `usage: pilot validate [--config FILE] [--skip-host-checks]
       pilot --config FILE validate [--skip-host-checks]

Checks a config file without running it and prints every problem in one
pass, in the order of the file, one a line: FILE:LINE: PATH: message.
Prints "FILE: valid" otherwise.

flags:
  --config FILE        the config file (default $PILOT_CONFIG)
  --skip-host-checks   skip the checks that depend on this machine (users
                       and groups, root to switch user, directories, files
                       and templates the config names, network interfaces),
                       e.g. to validate an image's config on a CI host

environment:
  PILOT_CONFIG      the config file when --config is not given
  PILOT_LOG_FORMAT  json prints each problem as a JSON record on stderr
  ${VAR} in the file expands from the environment, as under pilot run.

exit codes:
  0   the config is valid
  2   it is not (or a usage error)
`

const versionHelp = `usage: pilot version | pilot --version | pilot -V

Prints pilot's version, the commit it was built from and the Go version.
`

var commandHelp = map[string]string{"run": runHelp, "validate": validateHelp, "version": versionHelp,
	"status": statusHelp, "health": healthHelp, "reload": reloadHelp, "maintenance": maintenanceHelp,
	"restart": restartHelp, "reload-app": reloadAppHelp, "signal": signalHelp, "putenv": putenvHelp, "metric": metricHelp,
	"docker-proxy": dockerProxyHelp}

func versionLine() string {
	return fmt.Sprintf("pilot %s (commit %s, %s)\n", version, commit, runtime.Version())
}

func run(ctx context.Context, args []string, io stdio, environ []string) int {
	inv, err := parseArgs(args, envLookup(environ))
	if err != nil {
		fmt.Fprintln(io.err, err)
		var ue *usageError
		if errors.As(err, &ue) && ue.synopsis {
			fmt.Fprint(io.err, synopsis)
		}
		return exitUsage
	}
	switch inv.do {
	case doHelp:
		if inv.topic == "" {
			fmt.Fprint(io.out, topHelp)
		} else {
			fmt.Fprint(io.out, commandHelp[inv.topic])
		}
		return 0
	case doVersion:
		fmt.Fprint(io.out, versionLine())
		return 0
	case doValidate:
		return validate(inv, io, environ)
	case doExec:
		return runCommand(ctx, inv, io, environ)
	case doControl:
		return runControl(ctx, inv.control, io)
	case doDockerProxy:
		return runDockerProxy(ctx, inv.dockerProxy, io, environ)
	}
	return runConfig(ctx, inv.config, io, environ)
}

// action is what a command line asks pilot to do.
type action int

const (
	doRun action = iota
	doValidate
	doExec // pilot -- CMD
	doVersion
	doHelp
	doControl // a client of the control socket: pilot status, reload…
	// doDockerProxy is pilot docker-proxy: the proxy alone, no supervisor.
	doDockerProxy
)

type invocation struct {
	do             action
	config         string   // doRun, doValidate
	skipHostChecks bool     // doValidate
	argv           []string // doExec: the command
	verbosity      int      // doExec: one per -v
	successCodes   []int    // doExec: -e, exit codes of the command that mean 0
	topic          string   // doHelp: a command, or "" for pilot's own help
	// control is the command of doControl.
	control controlCall
	// dockerProxy is the command line of doDockerProxy.
	dockerProxy dockerProxyCall
}

// usageError is a command line pilot cannot take. Its text is the whole
// line to print; synopsis asks for the list of commands after it.
type usageError struct {
	msg      string
	synopsis bool
}

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

func isHelpFlag(a string) bool { return a == "-h" || a == "-help" || a == "--help" }

// parseArgs reads a command line; env reads pilot's environment.
func parseArgs(args []string, env func(string) string) (invocation, error) {
	if len(args) == 0 {
		if path := env("PILOT_CONFIG"); path != "" {
			return invocation{do: doRun, config: path}, nil
		}
		return invocation{}, &usageError{msg: "pilot: nothing to run: pass a command after --, or a config file (--config FILE or PILOT_CONFIG)", synopsis: true}
	}
	switch a := args[0]; {
	case a == "--":
		if len(args) == 1 {
			return invocation{}, usageErrorf("pilot: no command after --: pilot -- CMD [ARG…]")
		}
		return invocation{do: doExec, argv: args[1:]}, nil
	case isHelpFlag(a) || a == "help":
		return parseHelp(args[1:])
	case a == "version" || a == "--version" || a == "-version" || a == "-V":
		if len(args) == 2 && isHelpFlag(args[1]) {
			return invocation{do: doHelp, topic: "version"}, nil
		}
		if len(args) > 1 {
			return invocation{}, usageErrorf("pilot %s: unexpected argument %q (it takes none)", a, args[1])
		}
		return invocation{do: doVersion}, nil
	case a == "run" || a == "validate":
		return parseCommand(a, args[1:], env("PILOT_CONFIG"), false)
	case isControlCommand(a):
		return parseControl(a, args[1:], env)
	case a == "docker-proxy":
		return parseDockerProxy(args[1:], env)
	case a == "--config" || a == "-config" || strings.HasPrefix(a, "--config=") || strings.HasPrefix(a, "-config="):
		fs := flag.NewFlagSet("pilot", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		path := fs.String("config", "", "")
		if err := fs.Parse(args); err != nil {
			return invocation{}, usageErrorf("pilot: %v", err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return parseCommand("run", nil, *path, true)
		}
		if rest[0] != "run" && rest[0] != "validate" {
			return invocation{}, usageErrorf("pilot: unexpected %q after --config FILE: only run or validate may follow (pilot --config FILE validate)", rest[0])
		}
		return parseCommand(rest[0], rest[1:], *path, true)
	case strings.HasPrefix(a, "-") && a != "-":
		return parseCompatFlags(args)
	}
	return invocation{}, &usageError{
		msg:      fmt.Sprintf("pilot: unknown command %q; to supervise a command, put it after --: pilot -- %s", args[0], strings.Join(args, " ")),
		synopsis: true,
	}
}

func parseHelp(args []string) (invocation, error) {
	switch {
	case len(args) == 0:
		return invocation{do: doHelp}, nil
	case len(args) > 1:
		return invocation{}, usageErrorf("pilot help: unexpected argument %q (pilot help [COMMAND])", args[1])
	case commandHelp[args[0]] == "":
		return invocation{}, &usageError{msg: fmt.Sprintf("pilot help: unknown command %q", args[0]), synopsis: true}
	}
	return invocation{do: doHelp, topic: args[0]}, nil
}

// parseCommand reads the flags of run or validate. path is the config file
// so far: PILOT_CONFIG, or the FILE of `pilot --config FILE name` when
// given is set, in which case --config may not come again.
func parseCommand(name string, args []string, path string, given bool) (invocation, error) {
	fs := flag.NewFlagSet("pilot "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are printed once, by run, as one line
	fs.StringVar(&path, "config", path, "")
	inv := invocation{do: doRun}
	if name == "validate" {
		inv.do = doValidate
		fs.BoolVar(&inv.skipHostChecks, "skip-host-checks", false, "")
	}
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return invocation{do: doHelp, topic: name}, nil
	case err != nil:
		return invocation{}, usageErrorf("pilot %s: %v (pilot %s --help)", name, err, name)
	case fs.NArg() > 0:
		return invocation{}, usageErrorf("pilot %s: unexpected argument %q (pilot %s --help)", name, fs.Arg(0), name)
	}
	again := false
	fs.Visit(func(f *flag.Flag) { again = again || (given && f.Name == "config") })
	if again {
		return invocation{}, usageErrorf("pilot %s: --config given twice", name)
	}
	if path == "" {
		return invocation{}, usageErrorf("pilot %s: no config file: pass --config FILE or set PILOT_CONFIG", name)
	}
	inv.config = path
	return inv, nil
}

// refusedFlags are tini's and dumb-init's flags for behaviour pilot does not
// have: a flag silently ignored would be a behaviour silently lost, so each
// is refused with what to do instead. Those pilot's behaviour covers (tini's
// -s and -g: pilot always becomes a subreaper and signals the process group)
// or that it can honour (-v, -e) are accepted.
var refusedFlags = map[string]string{
	"c":            singleChildRefused("-c"),
	"single-child": singleChildRefused("--single-child"),
	"r":            rewriteRefused("-r"),
	"rewrite":      rewriteRefused("--rewrite"),
	"p":            "-p (tini: a signal for pilot when its parent dies) is not supported: run pilot as the container's PID 1, or have its parent stop it with SIGTERM",
	"w":            "-w (tini: a warning for each reaped zombie) is not supported: pilot counts the orphans it reaps (orphansReaped, in its exit line, shown with -v); drop -w",
	"l":            "-l (tini: print tini's license) has no pilot equivalent; drop it",
	"R":            "-R (tini: respawn) is not supported in pilot --: write a config file with restart: {policy: always} (or on-failure) and run pilot run --config FILE",
}

func singleChildRefused(flag string) string {
	return flag + " (dumb-init: signal only the command, not its group) is not supported: pilot signals the command's whole process group, as dumb-init does by default; drop " + flag
}

func rewriteRefused(flag string) string {
	return flag + " (dumb-init: rewrite a signal) is not supported: to stop the command with another signal, write a config file with stopSignal and run pilot run --config FILE"
}

// parseCompatFlags reads the flags of `pilot [FLAGS] -- CMD`: tini's and
// dumb-init's, as ENTRYPOINT lines have them (short flags may be grouped, as
// in -vv or -sg; -e takes its code attached or as the next argument).
func parseCompatFlags(args []string) (invocation, error) {
	inv := invocation{do: doExec}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			if i == len(args)-1 {
				return invocation{}, usageErrorf("pilot: no command after --: pilot %s CMD [ARG…]", strings.Join(args, " "))
			}
			inv.argv = args[i+1:]
			return inv, nil
		case isHelpFlag(a):
			return invocation{do: doHelp}, nil
		case a == "--version":
			return invocation{do: doVersion}, nil
		case a == "--verbose":
			inv.verbosity++
		case strings.HasPrefix(a, "--"):
			name, _, _ := strings.Cut(a[2:], "=")
			if msg, ok := refusedFlags[name]; ok {
				return invocation{}, usageErrorf("pilot: %s", msg)
			}
			if name == "config" {
				return invocation{}, usageErrorf("pilot: --config comes first and does not go with -- CMD: pilot --config FILE, or pilot [FLAGS] -- CMD")
			}
			return invocation{}, &usageError{msg: fmt.Sprintf("pilot: unknown flag %s", a), synopsis: true}
		case strings.HasPrefix(a, "-") && a != "-":
			for j := 1; j < len(a); j++ {
				switch c := a[j : j+1]; c {
				case "s", "g": // what pilot always does
				case "v":
					inv.verbosity++
				case "h":
					return invocation{do: doHelp}, nil
				case "V":
					return invocation{do: doVersion}, nil
				case "e":
					value := a[j+1:]
					if value == "" {
						if i++; i == len(args) {
							return invocation{}, usageErrorf("pilot: -e needs an exit code (0-255)")
						}
						value = args[i]
					}
					code, err := strconv.Atoi(value)
					if err != nil || code < 0 || code > 255 {
						return invocation{}, usageErrorf("pilot: -e %q: want an exit code from 0 to 255", value)
					}
					inv.successCodes = append(inv.successCodes, code)
					j = len(a) // the rest of a was the code
				default:
					if msg, ok := refusedFlags[c]; ok {
						return invocation{}, usageErrorf("pilot: %s", msg)
					}
					in := ""
					if len(a) > 2 {
						in = " (in " + a + ")"
					}
					return invocation{}, &usageError{msg: fmt.Sprintf("pilot: unknown flag -%s%s", c, in), synopsis: true}
				}
			}
		default:
			return invocation{}, usageErrorf("pilot: %q is not a flag: put the command after --, as in: pilot %s -- %s",
				a, strings.Join(args[:i], " "), strings.Join(args[i:], " "))
		}
	}
	return invocation{}, usageErrorf("pilot: no command: put it after --, as in: pilot %s -- CMD [ARG…]", strings.Join(args, " "))
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

// validate checks a config file. Its problems are a report for a person
// or a CI job: text, unless PILOT_LOG_FORMAT asks for JSON (the file's own
// log.format is for the running pilot).
func validate(inv invocation, io stdio, environ []string) int {
	if _, err := loadConfig(inv.config, environ, !inv.skipHostChecks); err != nil {
		reportConfigError(io.err, strings.EqualFold(envLookup(environ)("PILOT_LOG_FORMAT"), "json"), inv.config, err)
		return exitUsage
	}
	fmt.Fprintf(io.out, "%s: valid\n", inv.config)
	return 0
}

// runConfig runs the jobs of the config file at path. Its problems go out
// as JSON records when PILOT_LOG_FORMAT, or else the file's own
// log.format, says json: a log pipeline reads pilot's stderr.
func runConfig(ctx context.Context, path string, io stdio, environ []string) int {
	cfg, err := loadConfig(path, environ, true)
	if err != nil {
		format := envLookup(environ)("PILOT_LOG_FORMAT")
		if format == "" {
			format = config.LogFormat(path, config.Options{Env: lookupIn(environ)})
		}
		asJSON := strings.EqualFold(format, "json")
		reportConfigError(io.err, asJSON, path, err)
		return exitUsage
	}
	load := func() (*config.Config, error) { return loadConfig(path, environ, true) }
	return supervise(ctx, cfg, path, load, nil, io, environ)
}

// reportConfigError prints the problems of the config file at path on w:
// as text, one line each, compiler style (FILE:LINE: PATH: message, which
// editors and CI annotators jump to); as JSON, one log record each.
func reportConfigError(w io.Writer, asJSON bool, path string, err error) {
	if asJSON {
		logConfigError(slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{ReplaceAttr: readableAttr})).With("logger", "pilot"), path, err)
		return
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintln(w, line)
	}
}

// logConfigError logs each problem of a config error as one record, with
// the file, the path of the value at fault (when the problem has one) and
// the message as fields.
func logConfigError(log *slog.Logger, path string, err error) {
	for _, p := range problems(err) {
		attrs := []any{}
		if path != "" {
			attrs = append(attrs, "file", path)
		}
		var fe *config.FieldError
		if errors.As(p, &fe) {
			if fe.Line > 0 {
				attrs = append(attrs, "line", fe.Line)
			}
			attrs = append(attrs, "path", fe.Path, "err", fe.Message)
		} else {
			attrs = append(attrs, "err", p.Error())
		}
		log.Error("config error", attrs...)
	}
}

// problems splits a joined error (errors.Join, possibly wrapped once, as in
// a *pilot.ConfigError) into its single problems. An error already
// flattened to text still holds one problem a line.
func problems(err error) []error {
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range joined.Unwrap() {
			out = append(out, problems(e)...)
		}
		return out
	}
	if inner := errors.Unwrap(err); inner != nil {
		if ps := problems(inner); len(ps) > 1 {
			return ps
		}
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) == 1 {
		return []error{err}
	}
	out := make([]error, len(lines))
	for i, line := range lines {
		out[i] = errors.New(line)
	}
	return out
}

// tiniForwarded are the signals passed on to the command in `pilot --`
// mode; SIGUSR1 is left out because it opens Node's inspector.
var tiniForwarded = []config.Signal{
	config.Signal(syscall.SIGHUP), config.Signal(syscall.SIGQUIT), config.Signal(syscall.SIGUSR2),
	config.Signal(syscall.SIGWINCH), config.Signal(syscall.SIGALRM),
}

// runCommand is the tini-compatible mode: one main job, no restarts, raw
// output, every signal worth passing on passed on.
func runCommand(ctx context.Context, inv invocation, io stdio, environ []string) int {
	level := "warn"
	switch {
	case inv.verbosity == 1:
		level = "info"
	case inv.verbosity > 1:
		level = "debug"
	}
	cfg := &config.Config{
		Log: config.Log{Level: level},
		Jobs: []config.Job{{
			Name:           "main",
			Exec:           inv.argv,
			Main:           true,
			ForwardSignals: tiniForwarded,
		}},
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(io.err, "pilot: %v\n", err)
		return exitUsage
	}
	return supervise(ctx, cfg, "", nil, inv.successCodes, io, environ)
}

// supervise runs a valid config, read from the file path ("" for the
// command line), and maps pilot.Run's outcome to pilot's exit code: load
// reads the file again for a reload (nil for the command line);
// successCodes are exit codes of the main job to end with 0 instead (-e).
func supervise(ctx context.Context, cfg *config.Config, path string, load func() (*config.Config, error), successCodes []int, io stdio, environ []string) int {
	stdout, stderr := output.NewSink(io.out), output.NewSink(io.err)
	log, level, err := newLogger(stderr, cfg.Log, envLookup(environ))
	if err != nil {
		fmt.Fprintf(stderr, "pilot: %v\n", err)
		return exitUsage
	}
	source := path
	if source == "" {
		source = "command line"
	}
	log.Info("pilot starting", "version", version, "config", source, "pid", os.Getpid(), "jobs", len(cfg.Jobs))
	var socket *string
	if cfg.Control != nil {
		socket = cfg.Control.Socket
	}
	err = pilot.Run(ctx, cfg, pilot.Options{Log: log, LogLevel: level, Stdin: io.in, Stdout: stdout, Stderr: stderr, Environ: environ,
		Version: version, Commit: commit, Load: load,
		ControlSocket:        control.ServerSocketPath(socket, envLookup(environ)),
		ControlSocketDefault: socket == nil && envLookup(environ)(control.SocketEnv) == ""})
	code := exitCode(err, successCodes)
	var exit *pilot.ExitError
	var cfgErr *pilot.ConfigError
	switch {
	case errors.As(err, &exit):
		if code == 0 {
			log.Info("exit code mapped to 0 (-e)", "code", exit.Code)
		}
	case errors.As(err, &cfgErr):
		logConfigError(log, path, cfgErr)
	case err != nil:
		log.Error("pilot failed", "err", err)
	}
	return code
}

// exitCode maps pilot.Run's outcome to pilot's exit code; successCodes are
// exit codes of the jobs to end with 0 instead (-e).
func exitCode(err error, successCodes []int) int {
	var exit *pilot.ExitError
	var cfgErr *pilot.ConfigError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		if slices.Contains(successCodes, exit.Code) {
			return 0
		}
		return exit.Code
	case errors.As(err, &cfgErr):
		return exitUsage
	}
	return exitFailure
}

// newLogger builds pilot's own logger. PILOT_LOG_LEVEL and PILOT_LOG_FORMAT
// override the config, which is how `pilot --` mode is made talkative. The
// level is returned for a reload to set from log.level; nil when
// PILOT_LOG_LEVEL fixes it.
func newLogger(w io.Writer, c config.Log, env func(string) string) (*slog.Logger, *slog.LevelVar, error) {
	name, format := c.Level, c.Format
	if name == "" {
		name = config.DefaultLogLevel
	}
	lv, err := config.ParseLogLevel(name)
	if err != nil {
		return nil, nil, fmt.Errorf("log.level: %w", err)
	}
	if v := env("PILOT_LOG_LEVEL"); v != "" {
		if lv, err = config.ParseLogLevel(v); err != nil {
			return nil, nil, fmt.Errorf("PILOT_LOG_LEVEL: %w", err)
		}
	}
	if v := env("PILOT_LOG_FORMAT"); v != "" {
		if format, err = config.ParseLogFormat(strings.ToLower(v)); err != nil {
			return nil, nil, fmt.Errorf("PILOT_LOG_FORMAT: %w", err)
		}
	}
	level := new(slog.LevelVar)
	level.Set(lv)
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: readableAttr}
	if env("PILOT_LOG_LEVEL") != "" {
		level = nil // the variable fixes it
	}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)).With("logger", "pilot"), level, nil
	}
	return slog.New(slog.NewTextHandler(w, opts)).With("logger", "pilot"), level, nil
}

// readableAttr writes durations and signals as people read them, in both
// formats alike: "9s", not 9000000000 nanoseconds; "SIGTERM", not 15 (JSON)
// or "terminated" (text).
func readableAttr(_ []string, a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindDuration:
		a.Value = slog.StringValue(a.Value.Duration().String())
	case slog.KindAny:
		if sig, ok := a.Value.Any().(syscall.Signal); ok {
			a.Value = slog.StringValue(config.Signal(sig).String())
		}
	}
	return a
}

// envLookup is lookupIn for a caller to whom unset and empty are the same.
func envLookup(environ []string) func(string) string {
	lookup := lookupIn(environ)
	return func(key string) string {
		v, _ := lookup(key)
		return v
	}
}
