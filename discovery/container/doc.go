// Package container finds out who pilot's own container is, so that its
// Consul registration can say so (container id, name, image, Compose project,
// service and replica as service meta).
//
// What it owns:
//   - ID: the container id from the proc file system alone — the paths of
//     /proc/self/cgroup (cgroup v1; v2 with the host's cgroup namespace), else
//     the host-side sources of the /etc/hostname, /etc/hosts and
//     /etc/resolv.conf bind mounts in /proc/self/mountinfo (v2 with a private
//     cgroup namespace, Docker's default there; Podman; nerdctl). Only a full
//     64-hex id counts; ErrNotContainer otherwise, which callers take quietly.
//   - Identity and its Meta: the container as pilot's types see it, and as
//     Consul service meta within Consul's key pattern and 512-byte values.
//   - Inspect: an Identity from the Engine API, behind Inspector, the one
//     method of *client.Client (github.com/moby/moby/client) it needs.
//   - Detect / Detector: the whole, for pilot's start. It never fails and
//     never delays the start by more than its Timeout (2 s): without a docker
//     socket — the usual case — it is two small file reads and a stat, logged
//     at debug level only.
//
// Environment: Detect with an empty docker host reads $DOCKER_HOST (and the
// client's DOCKER_TLS_VERIFY, DOCKER_CERT_PATH, DOCKER_API_VERSION), as every
// Docker client does; cmd/ passes an explicit host to keep that out.
//
// This package talks to the engine once, to learn about itself. Following
// other containers through the Engine API is discovery/docker's.
//
// Concurrency: no state; every function may be called from any goroutine.
// Detect starts no goroutine that outlives it (the client is closed before
// it returns).
package container
