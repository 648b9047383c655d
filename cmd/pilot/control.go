package main

// The control-plane commands: clients of a running pilot's control socket.
// They need the socket's path only (--socket, PILOT_SOCKET or the default),
// never a config file, so that they work in any shell of the container.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nodepilot/pilot/pilot/config"
	"github.com/nodepilot/pilot/pilot/control"
	"github.com/nodepilot/pilot/telemetry"
)

// Timeouts of the control commands: a quick answer for what pilot does at
// once; reload, restart and maintenance answer once jobs have stopped or
// Consul has heard, which stopTimeout and drain bound.
const (
	controlQuickTimeout = 5 * time.Second
	controlSlowTimeout  = time.Minute
)

// controlCommands are the control commands, with whether each waits on
// jobs or Consul (controlSlowTimeout).
var controlCommands = map[string]bool{
	"status": false, "health": false, "reload": true, "maintenance": true,
	"restart": true, "signal": false, "putenv": false, "metric": false,
	"reload-app": true,
}

// controlCall is a control command, read and checked: nothing here is
// left for the server to refuse as malformed.
type controlCall struct {
	name    string
	socket  string
	timeout time.Duration
	asJSON  bool               // status --json
	on      bool               // maintenance
	job     string             // restart, signal, reload-app
	signal  string             // signal: as typed, known to parse
	env     map[string]string  // putenv
	metrics map[string]float64 // metric
}

// parseControl reads a control command's flags and arguments. Flags may
// come before or after the arguments (pilot restart web --socket P);
// after "--" everything is an argument.
func parseControl(name string, args []string, env func(string) string) (invocation, error) {
	fs := flag.NewFlagSet("pilot "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are printed once, by run, as one line
	socket := fs.String("socket", "", "")
	timeout := fs.Duration("timeout", 0, "")
	call := controlCall{name: name}
	if name == "status" {
		fs.BoolVar(&call.asJSON, "json", false, "")
	}
	var pos []string
	for rest := args; ; {
		err := fs.Parse(rest)
		switch {
		case errors.Is(err, flag.ErrHelp):
			return invocation{do: doHelp, topic: name}, nil
		case err != nil:
			return invocation{}, usageErrorf("pilot %s: %v (pilot %s --help)", name, err, name)
		}
		consumed := rest[:len(rest)-fs.NArg()]
		if fs.NArg() == 0 || len(consumed) > 0 && consumed[len(consumed)-1] == "--" {
			pos = append(pos, fs.Args()...)
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	switch {
	case *timeout < 0:
		return invocation{}, usageErrorf("pilot %s: --timeout %v: must be positive", name, *timeout)
	case *timeout > 0:
		call.timeout = *timeout
	case controlCommands[name]:
		call.timeout = controlSlowTimeout
	default:
		call.timeout = controlQuickTimeout
	}
	call.socket = control.SocketPath(*socket, env)
	if err := call.readArgs(pos); err != nil {
		return invocation{}, err
	}
	return invocation{do: doControl, control: call}, nil
}

// readArgs reads the command's arguments into c.
func (c *controlCall) readArgs(args []string) error {
	want := map[string]string{"maintenance": "on|off", "restart": "JOB", "reload-app": "JOB", "signal": "JOB SIG", "putenv": "NAME=VALUE…", "metric": "NAME=VALUE…"}[c.name]
	n := map[string]int{"maintenance": 1, "restart": 1, "reload-app": 1, "signal": 2}[c.name]
	switch {
	case want == "" && len(args) > 0:
		return usageErrorf("pilot %s: unexpected argument %q (it takes none)", c.name, args[0])
	case want != "" && len(args) == 0:
		return usageErrorf("pilot %s: missing %s (pilot %s %s)", c.name, want, c.name, want)
	case n > 0 && len(args) != n:
		if len(args) > n {
			return usageErrorf("pilot %s: unexpected argument %q (pilot %s %s)", c.name, args[n], c.name, want)
		}
		return usageErrorf("pilot %s: missing SIG after the job (pilot %s %s)", c.name, c.name, want)
	}
	switch c.name {
	case "maintenance":
		switch strings.ToLower(args[0]) {
		case "on":
			c.on = true
		case "off":
		default:
			return usageErrorf("pilot maintenance: %q: want on or off", args[0])
		}
	case "restart", "reload-app":
		c.job = args[0]
	case "signal":
		c.job, c.signal = args[0], args[1]
		if _, err := control.ParseSignal(c.signal); err != nil {
			return usageErrorf("pilot signal: %v", err)
		}
	case "putenv":
		c.env = map[string]string{}
		for _, a := range args {
			name, value, ok := strings.Cut(a, "=")
			switch {
			case !ok:
				return usageErrorf("pilot putenv: %q: want NAME=VALUE (NAME= for an empty value)", a)
			case name == "":
				return usageErrorf("pilot putenv: %q: the name is empty", a)
			}
			c.env[name] = value // the last of a name wins, as in env(1)
		}
	case "metric":
		c.metrics = map[string]float64{}
		for _, a := range args {
			// The last '=': labels may hold some (queue_depth{q="a=b"}=3).
			i := strings.LastIndexByte(a, '=')
			if i < 0 {
				return usageErrorf("pilot metric: %q: want NAME=VALUE", a)
			}
			name, text := a[:i], a[i+1:]
			v, err := strconv.ParseFloat(text, 64)
			switch {
			case name == "":
				return usageErrorf("pilot metric: %q: the name is empty", a)
			case err != nil:
				return usageErrorf("pilot metric: %q: %q is not a number", a, text)
			case math.IsNaN(v) || math.IsInf(v, 0):
				return usageErrorf("pilot metric: %q: want a finite number", a)
			}
			c.metrics[name] = v
		}
	}
	return nil
}

// runControl performs a control command: 0 when done, 1 when pilot could
// not be reached or refused (and for health, when a job is not healthy).
func runControl(ctx context.Context, c controlCall, io stdio) int {
	client := control.NewClient(c.socket, c.timeout)
	fail := func(err error) int {
		fmt.Fprintf(io.err, "pilot %s: %v\n", c.name, err)
		return exitFailure
	}
	switch c.name {
	case "status":
		if c.asJSON {
			doc, err := client.StatusJSON(ctx)
			if err != nil {
				return fail(err)
			}
			// As pilot sent it (fields this client does not know kept),
			// ending in one newline.
			fmt.Fprintln(io.out, strings.TrimRight(string(doc), "\n"))
			return 0
		}
		st, err := client.Status(ctx)
		if err != nil {
			return fail(err)
		}
		writeStatus(io.out, st, time.Now())
	case "health":
		report, err := client.Health(ctx)
		if err != nil {
			return fail(err)
		}
		if !report.Healthy {
			writeUnhealthy(io.err, report)
			return exitFailure
		}
		switch report.Checked {
		case 0:
			fmt.Fprintln(io.out, "healthy (no job has a health check)")
		case 1:
			fmt.Fprintln(io.out, "healthy (1 job checked)")
		default:
			fmt.Fprintf(io.out, "healthy (%d jobs checked)\n", report.Checked)
		}
	case "reload":
		res, err := client.Reload(ctx)
		if err != nil {
			return fail(err)
		}
		fmt.Fprintln(io.out, reloadLine(res))
	case "maintenance":
		if err := client.SetMaintenance(ctx, c.on); err != nil {
			return fail(err)
		}
		if c.on {
			fmt.Fprintln(io.out, "maintenance on: services out of rotation")
		} else {
			fmt.Fprintln(io.out, "maintenance off: services back in rotation")
		}
	case "restart":
		if err := client.RestartJob(ctx, c.job); err != nil {
			return fail(err)
		}
		fmt.Fprintf(io.out, "restarted %s\n", c.job)
	case "reload-app":
		res, err := client.ReloadJob(ctx, c.job)
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(io.out, "reloaded %s: %d instances replaced in %.1fs\n", c.job, res.Replaced, res.Seconds)
	case "signal":
		if err := client.SignalJob(ctx, c.job, c.signal); err != nil {
			return fail(err)
		}
		sig, _ := control.ParseSignal(c.signal)
		fmt.Fprintf(io.out, "sent %s to %s\n", config.Signal(sig), c.job)
	case "putenv":
		if err := client.PutEnv(ctx, c.env); err != nil {
			return fail(err)
		}
		fmt.Fprintf(io.out, "set %s: runs started from now on get it\n", strings.Join(slices.Sorted(maps.Keys(c.env)), ", "))
	case "metric":
		if err := client.SetMetrics(ctx, c.metrics); err != nil {
			return fail(err)
		}
		fmt.Fprintf(io.out, "set %s\n", strings.Join(slices.Sorted(maps.Keys(c.metrics)), ", "))
	}
	return 0
}

func countRunning(ins []telemetry.InstanceStatus) int {
	n := 0
	for _, in := range ins {
		if in.Pid != 0 {
			n++
		}
	}
	return n
}

// reloadLine says what a reload changed: "reloaded: restarted web;
// started worker; stopped -; 3 unchanged", or "reloaded" when pilot did
// not say.
func reloadLine(res *control.ReloadResult) string {
	if res == nil {
		return "reloaded"
	}
	list := func(names []string) string {
		if len(names) == 0 {
			return "-"
		}
		return strings.Join(names, ", ")
	}
	rolled := ""
	if len(res.Rolled) > 0 {
		rolled = "rolled " + list(res.Rolled) + "; "
	}
	return fmt.Sprintf("reloaded: %srestarted %s; started %s; stopped %s; %d unchanged",
		rolled, list(res.Restarted), list(res.Started), list(res.Stopped), res.Unchanged)
}

// writeUnhealthy lists the jobs that keep pilot from being healthy.
func writeUnhealthy(w io.Writer, report control.HealthReport) {
	fmt.Fprintf(w, "pilot health: unhealthy: %d of %d checked jobs\n", len(report.Unhealthy), report.Checked)
	for _, j := range report.Unhealthy {
		switch {
		case j.Health == "unknown":
			fmt.Fprintf(w, "  %s: no verdict yet (%s)\n", j.Job, j.State)
		case j.Health == j.State:
			fmt.Fprintf(w, "  %s: %s\n", j.Job, j.Health)
		default:
			fmt.Fprintf(w, "  %s: %s (%s)\n", j.Job, j.Health, j.State)
		}
	}
}

// writeStatus prints the status document for a person: the jobs as an
// aligned table, notes on the jobs that need one, the watches, then pilot's
// own line. now is the time uptimes count to.
func writeStatus(w io.Writer, st telemetry.Status, now time.Time) {
	services := map[string][]string{}
	var own []string // pilot's own telemetry service
	for _, s := range st.Services {
		if s.Job == "" {
			own = append(own, serviceCell(s))
		} else {
			services[s.Job] = append(services[s.Job], serviceCell(s))
		}
	}
	if len(st.Jobs) == 0 {
		fmt.Fprintln(w, "no jobs")
	} else {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "JOB\tSTATE\tPID\tUPTIME\tRESTARTS\tLAST EXIT\tHEALTH\tSERVICE")
		for _, j := range st.Jobs {
			pid := dash(j.Pid)
			if len(j.Instances) > 0 { // the instances' rows say it
				pid = fmt.Sprintf("%d instances", countRunning(j.Instances))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", j.Name, j.State, pid, jobUptime(j, now), j.Restarts,
				exitCell(j.LastExit), or(j.Health, "-"), or(strings.Join(services[j.Name], ", "), "-"))
			for _, in := range j.Instances {
				up := "-"
				if in.Started != nil {
					up = formatUptime(now.Sub(*in.Started))
				}
				fmt.Fprintf(tw, "  %s[%d]\t%s\t%s\t%s\t%d\t%s\t%s\t\n", j.Name, in.Instance, in.State, dash(in.Pid), up, in.Restarts,
					exitCell(in.LastExit), or(in.Health, "-"))
			}
		}
		tw.Flush()
	}
	for _, j := range st.Jobs {
		if j.Blocked != "" {
			fmt.Fprintf(w, "  %s: blocked: %s\n", j.Name, j.Blocked)
		}
		if j.LastExit != nil && j.LastExit.Error != "" {
			fmt.Fprintf(w, "  %s: last run: %s\n", j.Name, j.LastExit.Error)
		}
		if r := j.LastReload; r != nil && r.Error != "" {
			fmt.Fprintf(w, "  %s: last rolling reload failed %s ago: %s\n", j.Name, formatUptime(now.Sub(r.At)), r.Error)
		}
	}
	if len(st.Watches) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "WATCH\tSERVICE\tINSTANCES\tCHANGES\tLAST CHANGE")
		for _, wa := range st.Watches {
			instances := "-"
			if wa.Instances != nil {
				instances = strconv.Itoa(*wa.Instances)
				if wa.Skipped > 0 {
					instances += fmt.Sprintf(" (%d skipped)", wa.Skipped)
				}
			}
			last := "-"
			if wa.LastChange != nil {
				last = formatUptime(now.Sub(*wa.LastChange)) + " ago"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", wa.Watch, wa.Service, instances, wa.Changes, last)
		}
		tw.Flush()
	}
	fmt.Fprintln(w)
	p := st.Pilot
	line := fmt.Sprintf("pilot %s (commit %s), pid %d", p.Version, p.Commit, p.Pid)
	if !p.Started.IsZero() {
		line += ", up " + formatUptime(now.Sub(p.Started))
	}
	if p.Maintenance {
		line += ", maintenance ON"
	} else {
		line += ", maintenance off"
	}
	if len(own) > 0 {
		line += "; service " + strings.Join(own, ", ")
	}
	if len(p.PutEnv) > 0 {
		line += "; putenv " + strings.Join(p.PutEnv, ", ")
	}
	fmt.Fprintln(w, line)
	if c := p.Container; c != nil {
		fmt.Fprintln(w, containerLine(*c))
	}
}

// containerLine says which container pilot runs in: its name (or short
// id), its compose project, service and replica, and its image.
func containerLine(c telemetry.ContainerStatus) string {
	id := c.ID
	if len(id) > 12 {
		id = id[:12]
	}
	line := "container " + id
	if c.Name != "" {
		line = "container " + c.Name + " (" + id + ")"
	}
	if c.Project != "" || c.Service != "" {
		line += fmt.Sprintf(", compose %s/%s", c.Project, c.Service)
		if c.Replica > 0 {
			line += fmt.Sprintf(" #%d", c.Replica)
		}
	}
	if c.Image != "" {
		line += ", image " + c.Image
	}
	return line
}

// serviceCell is a service's name and where it stands in Consul.
func serviceCell(s telemetry.ServiceStatus) string {
	switch {
	case s.HeldBy != "":
		return s.Name + " (held by " + s.HeldBy + ")"
	case s.Maintenance:
		return s.Name + " (maintenance)"
	case !s.Registered:
		return s.Name + " (not registered)"
	case s.Status != "":
		return s.Name + " (" + s.Status + ")"
	}
	return s.Name + " (registered)"
}

// exitCell is how the last run ended: its code, the signal that ended
// it, or "error" when it could not run (the note under the table says why).
func exitCell(e *telemetry.ExitStatus) string {
	switch {
	case e == nil:
		return "-"
	case e.Error != "":
		return "error"
	case e.Signal != 0:
		return config.Signal(e.Signal).String()
	}
	return strconv.Itoa(e.Code)
}

func jobUptime(j telemetry.JobStatus, now time.Time) string {
	if j.Pid == 0 || j.Started == nil {
		return "-"
	}
	return formatUptime(now.Sub(*j.Started))
}

// formatUptime writes a duration in its two largest units, as people read
// an uptime: 45s, 3m12s, 2h5m, 3d4h.
func formatUptime(d time.Duration) string {
	d = max(d, 0).Truncate(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

func dash(n int) string {
	if n == 0 {
		return "-"
	}
	return strconv.Itoa(n)
}

func or(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}

// The control commands' help.

const controlFlagsHelp = `
flags:
  --socket PATH       pilot's control socket (default $PILOT_SOCKET, else /tmp/pilot.sock)
  --timeout DURATION  how long to wait for pilot's answer (default %s)

environment:
  PILOT_SOCKET  the control socket when --socket is not given; the same
                variable tells pilot where to listen (its config's
                control.socket comes first)
  No config file is read: PILOT_CONFIG and --config play no part.

exit codes:
  0   done
  1   pilot could not be reached (not running, no permission on the socket,
      no answer in time), or it refused%s
  2   a usage error
`

// controlHelp is a control command's help: usage, what it does, and the
// flags, environment and exit codes they share; refusal ends the line of
// exit code 1.
func controlHelp(usage, text string, timeout time.Duration, refusal string) string {
	return usage + "\n\n" + text + "\n" + fmt.Sprintf(controlFlagsHelp, timeout, refusal)
}

var (
	statusHelp = controlHelp("usage: pilot status [--json] [--socket PATH]", `Shows the running pilot's jobs (state, pid, uptime, restarts, last exit,
health, Consul service), its watches, and pilot itself (version, pid,
maintenance). --json prints the status document as pilot serves it
(GET /v1/status), for scripts.`, controlQuickTimeout, "")

	healthHelp = controlHelp("usage: pilot health [--socket PATH]", `Exits 0 when every job with a health check is healthy, 1 otherwise, and
lists the jobs that are not: for Docker's HEALTHCHECK,
  HEALTHCHECK CMD ["pilot", "health"]
Maintenance does not make pilot unhealthy.`, controlQuickTimeout, ";\n      or a job is not healthy")

	reloadHelp = controlHelp("usage: pilot reload [--socket PATH]", `Has the running pilot read its config file again and apply it: jobs whose
config changed restart, new ones start, removed ones stop; prints what
changed. A config with a problem changes nothing: each problem is printed,
FILE:LINE: PATH: message, and pilot runs on with the config it had.`, controlSlowTimeout, "")

	maintenanceHelp = controlHelp("usage: pilot maintenance on|off [--socket PATH]", `Takes every service pilot registers out of rotation (on: Consul's
maintenance mode, kept across re-registrations) or puts them back (off).
The jobs keep running.`, controlSlowTimeout, "")

	restartHelp = controlHelp("usage: pilot restart JOB [--socket PATH]", `Stops the job (its stop signal, preStop, drain) and starts it again; waits
until it has been started again.`, controlSlowTimeout, ": an unknown job")

	reloadAppHelp = controlHelp("usage: pilot reload-app JOB [--socket PATH]", `Rolling reload of a cluster job (instances or listen): for each instance,
starts a new one, waits until it is ready (readiness: its health check, or
the app's process.send('ready')), then stops the old one through its stop
sequence, so the job never has fewer ready instances. A new instance that
is not ready within readyTimeout ends the reload: it is stopped and the old
ones keep serving. Returns when the reload has ended.`, controlSlowTimeout, ": an unknown job, one that is not a\n      cluster job, or a new instance that was not ready")

	signalHelp = controlHelp("usage: pilot signal JOB SIG [--socket PATH]", `Sends the signal SIG to the job's process group. SIG is a name (SIGUSR2,
USR2, usr2) or a number (12).`, controlQuickTimeout, ": an unknown job, or one not running")

	putenvHelp = controlHelp("usage: pilot putenv NAME=VALUE… [--socket PATH]", `Sets variables in the environment pilot gives its jobs: runs started from
now on get them (pilot restart JOB to apply one at once); running
processes keep theirs. NAME= sets an empty value. pilot status lists the
names set this way.`, controlQuickTimeout, "")

	metricHelp = controlHelp("usage: pilot metric NAME=VALUE… [--socket PATH]", `Applies values to the custom metrics the config declares (metrics:): a
gauge is set to VALUE, a counter has VALUE added, a histogram observes it.
A metric with labels takes them as a sensor line writes them:
  pilot metric 'queue_depth{queue="mail"}=12'`, controlQuickTimeout, ": a metric the config does not\n      declare, or a value it cannot take")
)

func isControlCommand(name string) bool {
	_, ok := controlCommands[name]
	return ok
}
