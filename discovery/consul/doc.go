// Package consul implements discovery.Registrar and discovery.Watcher
// against a Consul agent's HTTP API (github.com/hashicorp/consul/api). No
// consul type crosses its exported API: callers speak discovery.Service,
// discovery.Status, discovery.WatchSpec and discovery.Snapshot.
//
// Client holds one configured API client (address, ACL token, TLS), built on
// api.DefaultConfig so CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN(_FILE),
// CONSUL_CACERT, CONSUL_CLIENT_CERT/KEY, CONSUL_TLS_SERVER_NAME and
// CONSUL_HTTP_SSL(_VERIFY) are honoured; every field set in Config wins over
// the environment. The token never appears in a log line or an error: every
// error leaving this package is rebuilt from the operation name, the HTTP
// status or the transport cause, and is scrubbed of the token.
//
// Registrar keeps one service registered with one TTL check
// (CheckID "service:<id>"). Its Run goroutine is the only background
// goroutine; it is a level-triggered reconciler:
//
//   - readiness gate: nothing is registered before the first Passing status;
//   - registration carries an explicit address and the current status as the
//     check's initial status, so a fresh registration is never critical first;
//   - one service ID, one instance: before registering, the registrar looks
//     up what the agent holds under the ID (/v1/agent/health/service/id).
//     Another address or port with a check that is not critical is another
//     live instance: it keeps the ID, this one logs one error naming both,
//     stays out (looking again every heartbeat, registering once the other
//     is gone) and never deregisters it. A critical leftover (this
//     instance's previous life, say) is replaced with an info line; this
//     instance's own registration (same address and port, or the address it
//     last wrote) is taken over silently. The first heartbeat after a
//     registration looks once more, for two instances that registered at
//     the same moment: the one whose write came first learns it lost;
//   - heartbeat every TTL/3 with the latest status (so two missed heartbeats
//     still leave the check inside its TTL);
//   - a status change is pushed at once (SetStatus wakes Run);
//   - a TTL update answered "unknown check" (the agent restarted and lost its
//     state) re-registers at once and re-applies maintenance; a heartbeat
//     that fails to get through changes nothing (the agent still holds the
//     registration, or says otherwise at the next one); a registration whose
//     answer was lost is looked up before it is sent again, and not sent
//     when the agent holds it;
//   - while the agent is unreachable, retries back off exponentially from
//     100 ms, capped at min(5 s, TTL/3), forever. Status changes during an
//     outage only update the desired state; the retry uses the latest.
//
// Agent writes are serialised by a one-slot semaphore that Deregister and
// SetMaintenance acquire under their ctx, so they never wait longer than the
// caller allows; Deregister also cancels Run's in-flight request, gives the
// critical mark at most half of its remaining budget (so a hung agent still
// gets a deregistration attempt) and is terminal; it sends nothing for a
// service no registration of which ever reached the wire (EverRegistered,
// from an httptrace of each registration: a request cancelled while it
// waited for a connection was never sent, whatever its error says). A
// heartbeat is bounded by min(5 s, max(TTL/3, 1 s)), so a hung agent is
// noticed; a registration by 30 s: an agent persists each registration and
// takes them one at a time, and a burst of pilots starting together (300
// in test/bench/capacity) only gets through if each waits its turn instead
// of abandoning its request (which the agent still carries out) and
// queueing another. Connected is false until the first request has been
// answered.
//
// Watcher implements discovery.Watcher with blocking queries on
// /v1/health/service/NAME (tag, passing-only, datacenter, and the spec's
// consistency: stale unless it says default or consistent). A stale answer
// from a server that had not heard from the leader for MaxStale (2 s) is
// dropped and asked again of the leader (default mode), as consul-template
// does with max_stale: stale reads spread the load over the followers, but
// never serve a partitioned follower's old view. Each Watch call is one loop on the caller's goroutine, which
// also runs the publish callback; one Watcher serves any number of them.
// Index handling follows Consul's blocking-query rules: an index that did
// not move is "no change" whatever the body; one that went backwards resets
// to 0 (its answer is still compared); a returned 0 becomes 1 so the next
// query blocks. A response without a visible change (index unchanged, or
// churned with an Equal snapshot) that came back early delays the next
// request to QuietInterval (250 ms) after the previous one started: no hot
// loop, while a real change is fetched at once. After any error the index is
// reset too — a restarted agent's index starts low, and waiting on ours
// would hide its state for a whole WaitTime (60 s) — and retries back off
// 50 ms → 5 s with up to 20% jitter, forever; nothing is published until a
// query succeeds, and then only if the snapshot changed. Each request is
// bounded by WaitTime + WaitTime/16 + 10 s, so a hung agent is noticed.
package consul
