package watchertest

import (
	"testing"

	"github.com/nodepilot/pilot/discovery"
)

// Backend is one discovery backend under test, with the means to change
// what it reports. Each method fails t on error. Instances the suite adds
// are passing unless it says otherwise.
type Backend interface {
	// Watcher is the discovery.Watcher under test.
	Watcher() discovery.Watcher
	// Spec is the WatchSpec that follows service (PassingOnly as given).
	Spec(service string, passingOnly bool) discovery.WatchSpec
	// Add starts a passing instance of service and returns the ID under
	// which the watcher reports it (discovery.Instance.ID).
	Add(t testing.TB, service string) (id string)
	// Remove takes the instance away.
	Remove(t testing.TB, service, id string)
	// SetHealthy turns the instance passing (true) or critical/unhealthy.
	SetHealthy(t testing.TB, service, id string, healthy bool)
	// Down makes the backend unreachable to the watcher (agent or daemon
	// stopped); Up brings it back with the same state.
	Down(t testing.TB)
	Up(t testing.TB)
}
