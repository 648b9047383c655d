// Package nodejs gives pilot Node.js runtime metrics without touching the
// app: an agent script, embedded in pilot and preloaded into a job's Node
// process with NODE_OPTIONS=--require, reports event-loop delay, heap, GC and
// active handles to pilot over a unix socket, and pilot exposes them as
// pilot_nodejs_* series on the injected Prometheus registry.
//
// It owns the agent script (agent.js), the files it writes into the
// directory it is given (agent.js, agent.sock), the socket protocol and one
// Prometheus collector. It never reaches into jobs: it learns a job's
// current processes (every instance) through Options.Pids, and tells pilot
// what they report (listening, ready, gone) through Options.OnEvent.
//
// Concurrency: New, Env and the metrics collector are safe for concurrent
// use. Run accepts connections until its context ends, one goroutine per
// connection, and returns only after every goroutine it started has ended
// and the socket is closed (and unlinked). OnEvent is called from a
// connection's goroutine. Each process of a job has its own verified
// connection and its own series, labelled {job, instance} (instance "" for
// a process without PILOT_INSTANCE); they are removed when that connection
// closes (the process ended). When two live processes share a label set (a
// rolling reload's new instance N beside the old one) only the one
// connected last is exposed.
//
// Protocol: newline-delimited JSON. The agent sends
//
//	{"type":"hello","v":1,"token":T,"pid":P,"instance":I,"node":"v20.x","le":[…]}
//	{"type":"listening","fds":[3,…]}   every inherited fd it listens on so far
//	{"type":"ready"}                   the app called process.send('ready')
//	{"type":"report","lag":{"p50":s,"p99":s,"max":s,"count":n,"sum":s},
//	 "heap":{"used":b,"total":b},"handles":n,
//	 "gc":{"major":{"count":n,"sum":s,"buckets":[cumulative…]},…}}
//
// (I is PILOT_INSTANCE, -1 without it; listening and ready are state, sent
// again after each reconnect) and a report about once a second. lag's quantiles are the event-loop delay since the
// previous report (monitorEventLoopDelay, reset after each one, its 10 ms
// timer interval taken off), count and sum are cumulative; it is exposed as
// a summary, pilot_nodejs_eventloop_lag_seconds{job,quantile} with _sum and
// _count. A block shows up in the first report after it ends (the report
// timer cannot run during it). gc is cumulative since the process started,
// bucketed on the bounds in "le" (gcBuckets). pilot answers only to
// refuse: {"type":"reject","reason":…}, then closes; the agent then stops for
// good. A connection is accepted when its token names a job and the peer's
// pid, read with SO_PEERCRED (never the pid the agent claims), is one of
// the job's processes: a descendant of one is refused at once (only the
// processes pilot started report; a child handed the agent's environment
// would share its parent's instance label), any other pid after a short
// grace in which pilot may not yet have recorded a fresh start.
//
// Cluster mode. pilot binds a job's listen addresses itself and hands the
// sockets to every instance as fds 3, 4, … with LISTEN_FDS, LISTEN_FDNAMES
// and PILOT_LISTEN_ADDRS (jobs and pilot set them; LISTEN_PID, when set,
// must be the process's own pid), and PILOT_INSTANCE. The agent leaves
// them in process.env and, in a process given such sockets:
//
//   - patches net.Server.prototype.listen: listen(port[, host][, backlog][, cb])
//     and listen({port, host}) with a port pilot holds become
//     listen({fd}) on its socket (the callback kept). Hosts match when
//     equal, when pilot's is a wildcard, when the app names none or a
//     wildcard, or when it names localhost and pilot's is loopback. Each fd
//     goes to one server; a second listen on that port, any other port, a
//     path or port 0 is Node's own. An app's own listen({fd: 3}) counts too.
//     Verified with plain http, express 5.3.0 and fastify 5.12.8 on Node 20.
//   - defines process.send when there is no IPC channel (also when only
//     PILOT_INSTANCE is set), so that process.send('ready') never throws;
//     with a channel, every message still goes to it.
//   - drains on SIGTERM (its only process listener, added before the app's
//     code runs): (a) each server on an inherited fd stops accepting on its
//     own copy with net.Server.prototype.close, not http's close, which
//     since Node 19 also closes idle keep-alive connections, racing clients
//     that send their next request at once (the server's
//     closeIdleConnections is made a no-op for the app's own close, too);
//     pilot and the other instances still hold the socket, so the kernel
//     queues new connections for them. (b) every response not yet begun,
//     and every later request's, gets Connection: close, so each kept-alive
//     client reconnects, to another instance, after its response. (c) an
//     HTTP connection idle (no request in flight) for PILOT_DRAIN_GRACE_MS
//     (1000) since the drain began is closed: a client may send at that
//     very moment (the keep-alive race no server can close; Go's client
//     retries an idempotent request on it), but an idle client would
//     otherwise hold the process forever. Connections of a non-HTTP server
//     are left to the app. (d) once no connection is left, the agent ends
//     the process as Node's default would (its handler removed, SIGTERM to
//     itself: death by the signal, 143) unless the app has a SIGTERM
//     listener of its own, which then decides. pilot's stop timeout (KILL)
//     bounds a drain that never ends (a long poll; an upgraded connection,
//     a websocket, has no request in flight and goes after the grace).
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
