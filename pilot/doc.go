// Package pilot is the core that wires a validated config into a running
// supervisor: it builds job specs (users, signals, environment), starts the
// actors of one run group — reaper, signal handler, supervisor — and owns
// the shutdown sequence: dependants stop before what they depend on, every
// job within the top-level stopTimeout, then a sweep of leftover processes,
// then postStop hooks, and pilot exits with the main job's code.
//
// Run is called once per process. It never exits the process and never
// logs to anything but the injected logger.
package pilot
