// Package docker implements discovery.Watcher against a Docker daemon's
// Engine API (github.com/moby/moby/client, API 1.40 and later, negotiated).
// No moby type crosses its exported API but the *client.Client that
// NewClient builds and NewWatcher takes: callers speak discovery.WatchSpec
// and discovery.Snapshot. pilot only reads from the daemon: ping, info,
// container list and inspect, and the event stream.
//
// What it owns:
//   - NewClient: one API client for a host ("" = DOCKER_HOST, else the
//     local socket). The caller closes it.
//   - Watcher: follows the running containers a discovery.DockerQuery
//     selects (compose project and service labels, or any labels, or the
//     compose service label alone) and turns each into a discovery.Instance:
//     ID the container's name, Node the daemon's name, Address its IP on the
//     chosen network, Port the chosen or only exposed TCP port, Meta its
//     full ID, image and compose labels, Status from Docker's health
//     (healthy or no health check: passing; starting: warning; unhealthy or
//     paused: critical). A container without an address on the network or
//     without a single port to reach is skipped, with one warning per
//     container and reason.
//
// How a watch follows changes: it subscribes to the daemon's container and
// network events first (from the daemon's own clock, read by Info, so that
// nothing between the two is lost), then lists and inspects every matching
// container (the resync) and publishes the first snapshot, then applies
// events: an event that may concern a matching container (start, die,
// destroy, pause, unpause, rename, health_status; network connect and
// disconnect of a followed container) triggers a re-read — one list, and an
// inspect of only the containers that are new or that the events name; a
// burst of queued events costs one re-read. There is no polling. A snapshot
// is published only when it is not Equal to the last one. The daemon is
// asked for container and network events only; the actions are picked
// here, not by the daemon's "event" filter, whose matching of
// "health_status: …" has varied across versions (the exec events of
// every health probe are dropped here, unread by anything else).
//
// When anything fails (the stream breaks on a daemon restart, the socket is
// gone, a request errs or times out after 10 s) the watch publishes
// nothing, keeps its last snapshot, backs off 50 ms → 5 s with up to 20%
// jitter, then subscribes and resyncs again, forever; the backoff starts
// over once a resync has succeeded. The first failure is logged at warn,
// repeats at debug, the recovery at info. An empty snapshot therefore only
// ever means the daemon answered that no matching container runs.
//
// Concurrency contract: one Watcher serves any number of concurrent Watch
// calls; each runs on its caller's goroutine, which also calls publish, and
// owns its own subscription and state. The only other goroutine is the
// client's event-stream reader, which a Watch call starts per session and
// waits for before it returns. Watch returns nil promptly when its ctx
// ends. The *client.Client may be shared with other users.
package docker
