// Package pilot is the core that wires a validated config into a running
// supervisor: it builds job specs (users, signals, environment), starts the
// actors of one run group — reaper, signal handler, supervisor — and owns
// the shutdown sequence: dependants stop before what they depend on, every
// job within the top-level stopTimeout, then a sweep of leftover processes,
// then postStop hooks, and pilot exits with the main job's code.
//
// Run's one result says how pilot should end, so that no caller can keep a
// code and drop its reason: nil (exit 0), an *ExitError carrying the code
// the jobs decided, a *ConfigError (a config fault found at run time), or
// any other error for pilot's own failure; cmd/pilot maps it to the exit
// code, in one place.
//
// Run builds the run's one Prometheus registry and passes it down: pilot's
// collectors (package telemetry) register into it, fed by hooks in the
// health probers, the Consul client, the watches and the jobs' bus; with
// telemetry.listen, a telemetry actor added right after the reaper (so it
// stops second to last, and /metrics answers throughout the shutdown)
// serves /metrics and /status, and with telemetry.register keeps a "pilot"
// service in Consul through the same registrar machinery as job services.
//
// The signal actor logs every signal pilot receives and what it made of it
// (shutdown, forwarded or not, ignored), and warns once at start of those it
// would act on but inherited as ignored, which it leaves ignored.
//
// Run is called once per process. It never exits the process and never
// logs to anything but the injected logger.
package pilot
