// Package watchertest is the behavioural suite every discovery.Watcher
// backend passes. A backend's tests adapt it to Backend (start, stop and
// change instances; take the backend down and up) and call Run:
//
//	func TestWatcherSuite(t *testing.T) {
//		watchertest.Run(t, func(t *testing.T) watchertest.Backend { return newSuiteBackend(t) })
//	}
//
// suite_test.go runs it against a minimal in-memory Backend, the smallest
// example of one; discovery/consul/suite_test.go adapts a real agent.
//
// Run checks the discovery.Watcher contract from the outside: the first
// snapshot (empty or whole), each add, remove and health change published
// exactly once within ChangeTimeout, nothing published while the backend is
// down (stale beats partial) and nothing after it comes back unchanged,
// never two Equal snapshots in a row, every snapshot canonical and naming
// the watched service, a prompt nil return on cancel, an error at once for
// a bad spec.
//
// What it owns: Run and its subtests, the Backend interface and the timing
// constants a backend must fit (ChangeTimeout, DownHold). It imports only
// discovery and testing.
//
// Concurrency: Run's subtests run one after another, never in parallel:
// Down takes the whole backend away, which would disturb any other subtest.
// Each subtest has its own Backend (newBackend is called once per subtest,
// with the subtest's t) and its own service name, and runs one Watch on its
// own goroutine; publish only records (under a mutex) and signals, and every
// assertion runs on the test goroutine. Backend methods are called only
// from the test goroutine.
package watchertest
