// Package dockerproxy is a read-only filter in front of the Docker Engine
// API: the handler behind `pilot docker-proxy`.
//
// Why it exists: pilot reads the Engine API (containers, inspect, events,
// networks) to find compose services and its own identity, and the obvious
// way — mounting /var/run/docker.sock into each app container — hands every
// such container root on the host: whoever can POST /containers/create can
// start a privileged container with / mounted. A `:ro` bind mount does not
// help; it stops writes to the socket file's inode, not the requests sent
// through it. So the socket goes to one small container that runs this
// proxy, and the app containers get only the proxy's address.
//
// What it owns:
//   - Allowed: the pure allow-list. GET and HEAD only, on /_ping, /version,
//     /info, /containers/json, /containers/{id}/json, /events, /networks and
//     /networks/{id}, each optionally under a /v1.NN version prefix. The
//     path is matched after path.Clean, and the cleaned path is what goes
//     upstream: what was checked is what is sent. A path with any
//     %-escape is refused outright (no container or network name needs
//     one, and an encoded slash or dot is only ever a trick). Names are
//     [A-Za-z0-9][A-Za-z0-9_.-]*, as Docker's own.
//   - Proxy: an http.Handler (net/http/httputil.ReverseProxy over a unix
//     socket). Everything Allowed refuses gets 403 and a JSON body
//     {"message": "..."}, which Docker clients print; nothing refused ever
//     reaches the upstream. Allowed requests are forwarded with no body
//     and no Upgrade (no call on the list takes one, and an upgraded
//     connection would be a raw pipe to the daemon); responses come back
//     unchanged — status, headers, body (no transparent gzip) — and are
//     flushed as they arrive, so /events streams. An unreachable upstream
//     is a 502 with a JSON message, never a crash.
//   - Proxy.CheckUpstream: one dial of the socket, for a warning at start
//     (an engine that is not up yet is not fatal).
//   - Proxy.Serve: the HTTP server around it, with read, write and idle
//     timeouts that /events (a stream that lasts as long as the client
//     wants) lifts for itself, and a graceful shutdown that ends open
//     /events streams first, so that it is bounded by its grace period
//     and not by the slowest watcher.
//
// Logging: each refusal at warn (method, path, remote) and each upstream
// failure at warn, both rate-limited (a burst of 10, then one every 6 s,
// the next line counting what was dropped), so a misbehaving client
// cannot flood the log; allowed requests at debug. The caller scopes the
// logger (pilot's command adds cmd=docker-proxy).
//
// Concurrency: a Proxy is immutable after New; ServeHTTP may be called
// from any number of goroutines. Serve may run on several listeners at
// once; each owns its server and ends its own streams at shutdown.
package dockerproxy
