// Package nodejs gives pilot Node.js runtime metrics without touching the
// app: an agent script, embedded in pilot and preloaded into a job's Node
// process with NODE_OPTIONS=--require, reports event-loop delay, heap, GC and
// active handles to pilot over a unix socket, and pilot exposes them as
// pilot_nodejs_* series on the injected Prometheus registry.
//
// It owns the agent script (agent.js), the files it writes into the
// directory it is given (agent.js, agent.sock), the socket protocol and one
// Prometheus collector. It never reaches into jobs: it learns a job's
// current main pid through the PidOf function passed to New.
//
// Concurrency: New, Env and the metrics collector are safe for concurrent
// use. Run accepts connections until its context ends, one goroutine per
// connection, and returns only after every goroutine it started has ended
// and the socket is closed (and unlinked). A job's series live exactly as
// long as the verified connection of its main process: they are removed when
// that connection closes (the process ended).
//
// Protocol: newline-delimited JSON. The agent sends
//
//	{"type":"hello","v":1,"token":T,"pid":P,"node":"v20.x","le":[…]}
//	{"type":"report","lag":{"p50":s,"p99":s,"max":s,"count":n,"sum":s},
//	 "heap":{"used":b,"total":b},"handles":n,
//	 "gc":{"major":{"count":n,"sum":s,"buckets":[cumulative…]},…}}
//
// about once a second. lag's quantiles are the event-loop delay since the
// previous report (monitorEventLoopDelay, reset after each one, its 10 ms
// timer interval taken off), count and sum are cumulative; it is exposed as
// a summary, pilot_nodejs_eventloop_lag_seconds{job,quantile} with _sum and
// _count. A block shows up in the first report after it ends (the report
// timer cannot run during it). gc is cumulative since the process started,
// bucketed on the bounds in "le" (gcBuckets). pilot answers only to
// refuse: {"type":"reject","reason":…}, then closes; the agent then stops for
// good. A connection is accepted when its token names a job and the peer's
// pid, read with SO_PEERCRED (never the pid the agent claims), is the job's
// main pid: a descendant of the job's process is refused at once, any other
// pid after a short grace in which pilot may not yet have recorded a fresh
// start.
//
// Failure is never the app's problem: when the agent cannot be written,
// verified or made readable by every user, or the socket cannot be opened,
// New still returns a usable *Agents whose Env leaves the environment alone,
// and logs one warning. (Node refuses to start when a --require'd file is
// missing, so NODE_OPTIONS only ever names a file just verified.)
//
// ESM: a CommonJS module preloaded with --require runs before an ES-module
// entry point as well (verified on Node 20: `NODE_OPTIONS=--require x.js
// node app.mjs` runs x.js first, in the main thread), so one --require
// serves CJS and ESM apps alike; --import would initialise the ESM loader
// ahead of every CJS app and change its start-up, for nothing.
package nodejs
