// Package discovery holds pilot's own service-discovery types and interfaces.
// It imports no vendor package: implementations live in subpackages
// (discovery/consul) and are guarded by
//
//	var _ discovery.Registrar = (*consul.Registrar)(nil)
//
// What it owns:
//   - Service: one registration as pilot sees it (ID, name, address, port,
//     tags, meta, TTL, deregisterCriticalAfter).
//   - Status: the health pilot reports for it (passing, warning, critical).
//   - Registrar: keeps one Service registered while its Run lives. It is a
//     level-triggered reconciler: it holds the desired state (latest status,
//     maintenance on/off, deregistered) and converges the agent to it,
//     re-registering whenever the agent has forgotten the service. A
//     service ID held by another live instance is never taken over.
//     Registration is its view for status pages: registered or not, the
//     check status the agent holds, the other instance holding the ID.
//   - Watcher, WatchSpec, Snapshot, Instance: following a service's
//     instances. A watch publishes whole snapshots, never deltas, through a
//     callback run on the watching goroutine (no channel to own or close;
//     the caller hands off as it likes). Snapshots are canonical (sorted,
//     tags sorted; NewSnapshot) so Equal is exact and Hash is stable.
//     Stale beats partial: a failure publishes nothing and keeps the last
//     snapshot; an empty snapshot only ever means "really none".
//   - SelectAddress: the pure choice of the address to advertise, from an
//     AddressSelector and a list of Interfaces (SystemInterfaces adapts
//     net.Interfaces).
//
// Concurrency contract for Registrar implementations: Run is called once and
// owns the only background goroutine; SetStatus and Connected never block and
// may be called from any goroutine, before or during Run; Deregister and
// SetMaintenance may be called from any goroutine and return when their ctx
// ends at the latest. Deregister is terminal: after it, the Registrar never
// registers the service again.
package discovery
