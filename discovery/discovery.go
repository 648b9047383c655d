package discovery

import (
	"context"
	"fmt"
	"time"
)

// Status is the health pilot reports for a registered service.
type Status string

// The statuses a Registrar reports, named as Consul names them.
const (
	Passing  Status = "passing"
	Warning  Status = "warning"
	Critical Status = "critical"
)

// Valid reports whether s is one of Passing, Warning or Critical.
func (s Status) Valid() bool {
	switch s {
	case Passing, Warning, Critical:
		return true
	}
	return false
}

// Service is one registration: what pilot advertises for a job.
type Service struct {
	ID                string // unique on the agent; defaults to Name
	Name              string
	Address           string // explicit; see SelectAddress
	Port              int
	Tags              []string
	Meta              map[string]string
	EnableTagOverride bool
	// TTL of the service's health check. The registrar heartbeats it every
	// TTL/3 and pushes every status change at once.
	TTL time.Duration
	// DeregisterCriticalAfter, if non-zero, lets the catalog drop the service
	// after it has been critical this long (Consul enforces at least 1m).
	DeregisterCriticalAfter time.Duration
}

// Validate reports the first problem with s, naming the field.
func (s Service) Validate() error {
	switch {
	case s.Name == "":
		return fmt.Errorf("service: name is empty")
	case s.Address == "":
		return fmt.Errorf("service %q: address is empty", s.Name)
	case s.Port <= 0 || s.Port > 65535:
		return fmt.Errorf("service %q: port %d out of range 1..65535", s.Name, s.Port)
	case s.TTL <= 0:
		return fmt.Errorf("service %q: ttl must be positive, got %s", s.Name, s.TTL)
	case s.DeregisterCriticalAfter < 0:
		return fmt.Errorf("service %q: deregisterCriticalAfter must not be negative, got %s", s.Name, s.DeregisterCriticalAfter)
	}
	return nil
}

// Registrar keeps one Service registered while Run lives.
type Registrar interface {
	// Run keeps the service registered while ctx lives: it registers it once
	// the first Passing status arrives (readiness gate), heartbeats the TTL
	// check with the latest status, and re-registers whenever the agent does
	// not know it (e.g. the agent restarted with empty state). While the
	// agent is unreachable it retries with capped exponential backoff and
	// never gives up. Returns when ctx ends.
	Run(ctx context.Context) error
	// SetStatus records the latest status and never blocks; a change is
	// pushed to the agent at once, not at the next heartbeat.
	SetStatus(s Status, note string)
	// SetAddress changes the advertised address; the service is registered
	// again with it at once (no-op when unchanged or empty).
	SetAddress(addr string)
	// Deregister marks the check critical, then deregisters the service.
	// It is terminal and returns when ctx ends at the latest; callers
	// time-box ctx (≤ 2 s). A service never registered (EverRegistered
	// false) is not deregistered: nil, with no request to the agent.
	Deregister(ctx context.Context) error
	// SetMaintenance puts the service into (or out of) maintenance. The
	// wish is remembered and re-applied after a re-registration.
	SetMaintenance(ctx context.Context, on bool, reason string) error
	// Connected reports whether the last request reached the agent.
	Connected() bool
	// EverRegistered reports whether the agent accepted the registration
	// at least once: only then may a proxy have routed to the instance,
	// and only then is a drain before the stop worth its wait.
	EverRegistered() bool
	// Registration reports what the Registrar believes of its service,
	// for status pages; it never blocks on the agent.
	Registration() Registration
}

// Registration is a Registrar's view of its service.
type Registration struct {
	ID, Name string
	Address  string
	Port     int
	// Registered is true while the agent holds the service as far as the
	// Registrar knows: the last write succeeded and nothing since said
	// otherwise.
	Registered bool
	// Status is the check status the agent holds: the one it accepted in
	// the last successful write; "" while not Registered.
	Status      Status
	Maintenance bool
	// HeldBy is ADDR:PORT of another live instance registered under this
	// service ID, which keeps this one out; "" when none is known.
	HeldBy string
}
