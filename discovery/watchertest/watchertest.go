package watchertest

import (
	"testing"

	"github.com/nodepilot/pilot/discovery"
)

// Backend is one discovery backend under test, with the means to change
// what it reports. Each method fails t on error. Instances the suite adds
// are passing unless it says otherwise.
//
// Each change method (Add, Remove, SetHealthy) returns once the change is
// complete in the backend's own state, as one step: a Watch started after
// it returns sees it, and a running Watch sees no intermediate state (Add
// returns an instance that is already passing, not one still starting).
// The suite never changes anything between Down and Up.
//
// The Watcher must be configured so that the suite's waits are meaningful:
// its retry backoff at most DownHold/3 (so the hold while down spans
// several failed attempts) and a change seen well within ChangeTimeout.
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
	// SetHealthy turns the instance passing (true) or critical/unhealthy
	// (false): with PassingOnly false the watcher reports it with Status
	// discovery.Critical.
	SetHealthy(t testing.TB, service, id string, healthy bool)
	// Down makes the backend unreachable to the watcher (agent or daemon
	// stopped); Up brings it back with the same state, and returns once
	// the watcher can reach it and would read exactly the state it had
	// before Down (never an emptier one on the way back).
	Down(t testing.TB)
	Up(t testing.TB)
}
