// Package watches is pilot's watch engine: a Watch follows one service
// through a discovery.Watcher and, after each debounced change, writes the
// files that depend on the set of instances and reloads what reads them.
//
// What it owns:
//   - The hand-off from the watcher: a one-slot "latest" channel, so that
//     the watcher's publish never blocks and the debounce sees no backlog;
//     the newest snapshot wins.
//   - The debounce: the first snapshot is applied at once (the state at
//     start, not a change); a later one once no newer one came for
//     debounce.min, and at the latest debounce.max after the first of its
//     burst.
//   - Applying a set: render.Routable's split (each skipped instance
//     logged once per change of the skipped set); onChange.run (the
//     instances file, then a trigger with PILOT_WATCH_* in the job's
//     environment); onChange.render and templates, each put in place by
//     render.Apply (a failed render keeps the file that is there); then,
//     when a file changed or the watch renders none, onChange.reload: a
//     signal to reload.job only while a process of it runs (otherwise it
//     reads the files when it starts), or reload.exec through a Runner, up
//     to 3 attempts 200 ms then 400 ms apart, each killed with its process
//     group at reload.timeout. A failed or hung reload is logged and never
//     touches the app.
//   - First-render start gates (NewStartGates, StartGate): a job that
//     watches reload starts once each of them has rendered its first set,
//     or waited 5 s without one (Consul down at boot), so that it is never
//     signalled while it starts.
//   - Names: each watch's name, for its log lines and series.
//
// What it does not own: the jobs (reached by name through Jobs, since the
// set of jobs changes when pilot reloads), processes (Runner: the reaper's
// process-group helper), the watcher (discovery/consul), rendering
// (discovery/render), metrics (the Applied hook) and where pilot keeps its
// files (Options.InstancesFile, from InstancesFile).
//
// Time: every reading of the time and every wait goes through
// Options.Clock (RealClock by default), so tests steer the debounce, the
// reload backoff and the first-render wait with a fake clock, in no real
// time. Output: reload commands write to Options.Stdout and Stderr, never
// to the process's own.
//
// Concurrency contract: New starts nothing. Run is called once per Watch
// and does all the work on its own goroutine, one set at a time, so a
// watch's files are written and its reloads run in order. Beside it run
// only the watcher's goroutine, which hands snapshots off and never
// blocks, and, with a gate, the first-render timer's function, which only
// opens the gate (claimed once, by it or by the first render, never both).
// Run returns when ctx ends, once the watcher's goroutine has returned (a
// first-render timer that fired just then may still be opening its gate);
// a reload command in flight ends with ctx. Jobs, Runner and Applied are
// called from Run's goroutine, and from other watches' at the same time,
// so they must be safe for concurrent use; so is a StartGate, shared by the
// watches that reload one job. Names, InstancesFile and NewStartGates are
// pure.
package watches
