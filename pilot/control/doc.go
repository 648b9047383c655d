// Package control owns pilot's control socket: pilot's day-2 interface, an
// HTTP/1.1 JSON API on a unix socket (never TCP), and its client, which the
// CLI commands (pilot status, reload, maintenance, restart, signal, putenv,
// metric, health) use.
//
// What it owns:
//   - API: what the socket serves, in pilot's own types. The core (package
//     pilot) implements it; this package never reaches into jobs or
//     discovery. The error values (ErrUnknownJob, *ConfigError, …) are how
//     an implementation says which status code fits.
//   - Listen: the socket file — mode 0600 from the start, a stale one
//     replaced, a live one or a non-socket file never touched, removed on
//     Close only while it is still this socket.
//   - Server: routing, strict decoding and checking of every request
//     before the API sees it (1 MiB bodies, unknown fields and trailing
//     data refused, names and signals checked), errors as JSON
//     {"error": …} with the status that fits, and
//     pilot_control_requests_total{endpoint,code} on an injected
//     Registerer. The endpoint label is the route pattern, so job names
//     never become label values.
//   - Client: one call per request, its errors worded for the person at
//     the terminal (pilot not running, the socket's permissions, no answer
//     in time), and SocketPath/ServerSocketPath, which resolve the socket
//     path for clients and for pilot the same way.
//
// Concurrency: the server calls the API from one goroutine per request,
// concurrently, each with the request's context (cancelled when the client
// hangs up or Shutdown gives up waiting); the API must be safe for that.
// Serve runs until Shutdown; Shutdown lets requests in flight finish until
// its context ends. A Client is safe for concurrent use. The package keeps
// no global state.
package control
