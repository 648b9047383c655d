// Package consulcluster runs a real multi-agent Consul datacenter on one
// machine, for tests and benchmarks: by default 3 servers and 2 client
// agents of the pinned consul binary (test/consulagent.Consul finds it), in
// normal (non-dev) mode — real Raft on disk, real Serf gossip — each bound
// to, advertising and serving HTTP on its own loopback alias (127.0.0.2,
// .3, …: the whole 127/8 answers on Linux, nothing to configure). pilots
// register through a client agent, as in production. It owns the agents'
// processes, ports, data dirs and configuration; what a test does to them
// (kill -9, restart with or without state, SIGSTOP/SIGCONT) is its Agent
// methods.
//
//	c := consulcluster.StartT(t, consulcluster.Options{}) // whole, or the test fails
//	a := c.Clients[0]                                     // CONSUL_HTTP_ADDR=a.HTTPAddr()
//	old, _ := c.Leader(ctx)
//	old.Kill()
//	l, _ := c.WaitLeader(ctx, old)                        // a new leader, agreed by every live server
//
// Timing. The servers run performance { raft_multiplier = 1 }: Raft's
// heartbeat and election timeouts of 1 s and a leader lease of 500 ms,
// what HashiCorp recommends for production servers. Consul's own default
// is 5 (5 s, 5 s, 2.5 s), meant for under-provisioned servers. The tests
// use 1 because it is what a production cluster runs, so the election
// times they measure are the ones users see: a killed leader is replaced
// in 2.0–2.5 s here with 1, in 7–15 s with 5 (three kills each, on this
// 2-core machine). It also matters to what they prove: servers hold RPCs
// through an election for rpc_hold_timeout (7 s) before failing them, so
// with 1 a client agent's sync of a registration made mid-election is
// held, not failed; with 5 it can fail, and a client agent retries a
// failed partial sync only at its next change or full sync (ae_interval
// 1 min plus up to 1 min of stagger). Options.RaftMultiplier = 5 gives
// Consul's default.
//
// Gossip (Serf LAN) keeps Consul's defaults — probe_interval 1 s,
// probe_timeout 500 ms, suspicion_mult 4, gossip_interval 200 ms, and
// memberlist's suspicion_max_timeout_mult 6 — as do reconnect_timeout
// (72 h: a failed node stays in the catalog that long) and the
// anti-entropy interval. Failure-detection bounds in tests are derived
// from these. Changed from Consul's defaults, for a test harness only:
//
//   - -retry-interval 1s (default 30 s): an agent whose first join came
//     before the servers listened would otherwise wait half a minute;
//   - -node-id fixed per agent, kept by Restart(wipe=true): a wiped agent
//     that came back under its old name with a new ID would be refused by
//     the catalog for as long as the old node looks alive (see Restart);
//   - a fresh gossip encryption key (-encrypt) per cluster, so that no agent
//     of another cluster — another test binary on the same aliases, or an
//     earlier attempt — can ever join this one;
//   - gRPC, gRPC-TLS and DNS off (-1), and no update check.
//
// Ports are chosen free on each agent's own IP (consulagent.FreePortsOn,
// TCP and UDP); two clusters may run at once, in different test binaries,
// on the same IPs. A port taken by someone else between the choice and the
// agent's bind makes Start try again on fresh ports (3 attempts). Data
// dirs live under one os.MkdirTemp folder, removed by Stop. Every agent
// runs in its own process group with Pdeathsig SIGKILL: it dies with the
// test process, however that ends. Agents log at level info into memory;
// StartT logs every agent's tail when the test failed.
//
// Concurrency: a Cluster's and an Agent's methods are safe for concurrent
// use; Stop must come last.
package consulcluster
