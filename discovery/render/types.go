package render

import "github.com/nodepilot/pilot/discovery"

// The renderers take discovery's snapshot as it is; these aliases only keep
// the signatures short. A Snapshot from discovery.NewSnapshot is canonical
// (instances sorted by ID, then address, port, node), and renderers keep
// that order and never modify it. Templates see the fields of
// discovery.Instance and its HostPort method.
type (
	Snapshot = discovery.Snapshot
	Instance = discovery.Instance
	Status   = discovery.Status
)
