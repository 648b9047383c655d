// Package pilot is the core that runs a validated config and keeps it
// running through reloads.
//
// A config becomes a generation (generation.go) by a pure build: job
// specs, service registrations, watches and metric definitions, with no
// process, file, socket or registration made — so a config that cannot be
// built changes nothing. The long-lived parts that every generation shares
// are built once per run, when a generation first needs them: the reaper,
// the jobs' bus and sinks, the Prometheus registry and pilot's collectors,
// the Consul client (a new one when the consul block changes), the Node
// agents and pilot's private directory. Applying a generation hands each
// part its share, as Prometheus's reloader hands each component its config:
// the supervisor replaces the jobs whose effective spec changed (stopped
// through their stop sequence, dependants first) and starts the added ones;
// the service set, the watch set and the telemetry server keep what did
// not change and swap the rest. A reload (the control socket, SIGHUP in
// config mode) is one such apply, serialised: a second one is refused.
//
// Run adds the actors of one run group — reaper, telemetry, services, Node
// agents, watches, control socket, supervisor — in start order; teardown
// runs in reverse, so the supervisor's shutdown comes first (dependants
// before what they depend on, each job out of Consul before its stop
// signal, all within stopTimeout, then a sweep of leftover processes and
// the postStop hooks), /status answers on the control socket through it,
// /metrics a little longer, and the reaper outlives everything that may
// leave orphans behind.
//
// Cluster jobs (cluster.go): the core binds each `listen` address once and
// holds the socket for as long as a generation uses it (a failed bind names
// the job's entry and changes nothing), hands it to the job's instances,
// feeds the Node agent's readiness messages to `readiness: message`
// probes, and runs rolling reloads: on request (reload-app, the control
// socket), on a job's reloadSignal, and for a config reload that changes a
// cluster job on the same sockets, instead of a stop and a start.
//
// Run's one result says how pilot should end, so that no caller can keep a
// code and drop its reason: nil (exit 0), an *ExitError carrying the code
// the jobs decided, a *ConfigError (a config fault found at run time), or
// any other error for pilot's own failure (a control socket another pilot
// holds, say); cmd/pilot maps it to the exit code, in one place.
//
// The signal handling logs every signal pilot receives and what it made of
// it (shutdown, reload, forwarded or not, ignored), and warns once at start
// of those it would act on but inherited as ignored, which it leaves
// ignored.
//
// Run is called once per process. It never exits the process and never
// logs to anything but the injected logger.
package pilot
