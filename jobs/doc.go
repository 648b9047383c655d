// Package jobs supervises processes: one Job is one goroutine (Run) owning
// one pure state machine (next, in machine.go) and at most one live process
// group. Everything outside talks to a job through events (Stop, Kill,
// Forward) and learns about it through StateChanges on the Bus, whose
// Publish never blocks.
//
// The package also owns process control: starting each run as the leader of
// its own process group, signalling the group, mapping exits to shell-style
// codes, and the Reaper. The reaper lives here rather than in pilot because
// it must know every pid a job or hook starts: it waits only on children it
// did not start, so it never steals an exit status from os/exec.
//
// Concurrency: a Job's methods are safe for concurrent use; Run must be
// called once. Time is read only in the loop, with the monotonic clock; the
// machine itself sees durations only.
package jobs
