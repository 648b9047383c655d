package consul

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/nodepilot/pilot/discovery"
)

var _ discovery.Registrar = (*Registrar)(nil)

const (
	minBackoff            = 100 * time.Millisecond
	maxBackoff            = 5 * time.Second
	defaultRequestTimeout = 5 * time.Second
)

// Registrar keeps one service registered in the Consul agent. See the
// package documentation for its behaviour and concurrency contract.
type Registrar struct {
	c       *Client
	log     *slog.Logger
	svc     discovery.Service
	checkID string

	heartbeat  time.Duration // TTL/3
	maxBackoff time.Duration // min(maxBackoff, heartbeat)
	reqTimeout time.Duration

	kick    chan struct{} // cap 1: wakes Run after SetStatus/SetMaintenance
	sem     chan struct{} // cap 1: serialises agent writes
	running atomic.Bool
	up      atomic.Bool

	mu           sync.Mutex
	status       discovery.Status
	note         string
	gateOpen     bool // a Passing status has been seen
	maintOn      bool
	maintReason  string
	deregistered bool
	registered   bool // the last agent write succeeded and nothing says the agent forgot it
	// everRegistered: a registration reached the agent at least once (it
	// may have been applied).
	everRegistered bool
	cancelOp       context.CancelFunc
}

// NewRegistrar returns a Registrar for svc; svc.ID defaults to svc.Name.
// logger may be nil (logs are discarded).
func NewRegistrar(c *Client, svc discovery.Service, logger *slog.Logger) (*Registrar, error) {
	if c == nil {
		return nil, errors.New("consul: nil client")
	}
	if svc.ID == "" {
		svc.ID = svc.Name
	}
	if err := svc.Validate(); err != nil {
		return nil, fmt.Errorf("consul: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	hb := svc.TTL / 3
	return &Registrar{
		c:          c,
		log:        logger.With("service", svc.Name, "service_id", svc.ID),
		svc:        svc,
		checkID:    "service:" + svc.ID,
		heartbeat:  hb,
		maxBackoff: min(maxBackoff, hb),
		reqTimeout: min(defaultRequestTimeout, max(hb, time.Second)),
		kick:       make(chan struct{}, 1),
		sem:        make(chan struct{}, 1),
		status:     discovery.Critical,
	}, nil
}

// HeartbeatInterval is TTL/3: the period of TTL updates when nothing changes.
func (r *Registrar) HeartbeatInterval() time.Duration { return r.heartbeat }

// Connected reports whether the last request reached the agent.
func (r *Registrar) Connected() bool { return r.up.Load() }

// EverRegistered reports whether the agent may have accepted the
// registration at least once (discovery.Registrar).
func (r *Registrar) EverRegistered() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.everRegistered
}

// Registration is what a Registrar believes of its service, for status
// pages.
type Registration struct {
	ID, Name string
	Address  string
	Port     int
	// Registered is true while the agent holds the service as far as pilot
	// knows: the last write succeeded and nothing since said otherwise.
	Registered bool
	// Status is the check status pilot pushes (passing, warning, critical).
	Status      discovery.Status
	Maintenance bool
}

// Registration reports the registrar's current view; it never blocks on
// the agent.
func (r *Registrar) Registration() Registration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Registration{ID: r.svc.ID, Name: r.svc.Name, Address: r.svc.Address, Port: r.svc.Port,
		Registered: r.registered, Status: r.status, Maintenance: r.maintOn}
}

// SetStatus records the latest status and wakes Run; it never blocks. An
// invalid status is treated as critical.
func (r *Registrar) SetStatus(s discovery.Status, note string) {
	if !s.Valid() {
		s = discovery.Critical
	}
	r.mu.Lock()
	r.status, r.note = s, note
	if s == discovery.Passing {
		r.gateOpen = true
	}
	r.mu.Unlock()
	r.wake()
}

// SetAddress changes the address advertised (the container's address
// changed); the service is registered again at once with the new one.
func (r *Registrar) SetAddress(addr string) {
	r.mu.Lock()
	changed := addr != "" && addr != r.svc.Address
	if changed {
		r.svc.Address = addr
		r.registered = false
	}
	r.mu.Unlock()
	if changed {
		r.wake()
	}
}

func (r *Registrar) wake() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *Registrar) acquire(ctx context.Context) error {
	select {
	case r.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *Registrar) release() { <-r.sem }

// Run keeps the service registered until ctx ends; it returns nil then.
func (r *Registrar) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("consul: registrar already running")
	}
	defer r.running.Store(false)

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()

	var backoff time.Duration
	wasDown := false
	for {
		r.mu.Lock()
		active := r.gateOpen && !r.deregistered
		r.mu.Unlock()

		if !active {
			// Readiness gate closed or deregistered: wait for a change.
			select {
			case <-ctx.Done():
				return nil
			case <-r.kick:
				continue
			}
		}

		err := r.reconcile(ctx)
		if ctx.Err() != nil {
			return nil
		}
		r.mu.Lock()
		deregistered := r.deregistered
		r.mu.Unlock()
		if deregistered {
			continue // Deregister cancelled the attempt: nothing to retry or say
		}
		var wait time.Duration
		if err != nil {
			if backoff == 0 {
				backoff = minBackoff
			} else {
				backoff = min(backoff*2, r.maxBackoff)
			}
			// Up to 20% jitter below the nominal delay.
			wait = backoff - time.Duration(rand.Int64N(int64(backoff)/5+1))
			if !wasDown {
				r.log.Warn("consul: registration not current; retrying", "err", err, "retry_in", wait)
			} else {
				r.log.Debug("consul: still failing", "err", err, "retry_in", wait)
			}
			wasDown = true
		} else {
			if wasDown {
				r.log.Info("consul: agent reachable again")
			}
			wasDown, backoff = false, 0
			wait = r.heartbeat
		}

		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-r.kick:
			// A status change is pushed at once, unless we are backing
			// off from a failure: then the retry carries the latest status.
			if err != nil {
				select {
				case <-ctx.Done():
					return nil
				case <-timer.C:
				}
			} else {
				timer.Stop() // Go ≥ 1.23: no stale tick after Stop
			}
		}
	}
}

// reconcile makes one attempt to bring the agent to the desired state.
func (r *Registrar) reconcile(ctx context.Context) error {
	if err := r.acquire(ctx); err != nil {
		return err
	}
	defer r.release()

	opCtx, cancel := context.WithTimeout(ctx, r.reqTimeout)
	defer cancel()

	r.mu.Lock()
	if r.deregistered {
		r.mu.Unlock()
		return nil
	}
	r.cancelOp = cancel
	status, note, registered, svc := r.status, r.note, r.registered, r.svc
	maintOn, maintReason := r.maintOn, r.maintReason
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.cancelOp = nil
		r.mu.Unlock()
	}()

	if registered {
		err := r.updateTTL(opCtx, status, note)
		if err == nil {
			return nil
		}
		if !notFound(err) {
			r.setRegistered(false)
			return err
		}
		r.log.Warn("consul: agent does not know the service (agent restarted?); re-registering")
	}

	if err := r.register(opCtx, svc, status, note); err != nil {
		r.setRegistered(false)
		return err
	}
	if maintOn {
		if err := r.maintenance(opCtx, true, maintReason); err != nil {
			r.setRegistered(false)
			return err
		}
	}
	// An address change that landed during this write needs another one.
	r.mu.Lock()
	r.registered = r.svc.Address == svc.Address
	r.mu.Unlock()
	if !registered {
		r.log.Info("consul: service registered", "address", svc.Address, "port", svc.Port, "status", string(status), "maintenance", maintOn)
	}
	return nil
}

func (r *Registrar) setRegistered(v bool) {
	r.mu.Lock()
	r.registered = v
	r.mu.Unlock()
}

func (r *Registrar) observe(err error) error {
	r.up.Store(reached(err))
	return err
}

func (r *Registrar) register(ctx context.Context, svc discovery.Service, status discovery.Status, note string) error {
	check := &api.AgentServiceCheck{
		CheckID: r.checkID,
		Name:    "pilot TTL for " + svc.Name,
		TTL:     svc.TTL.String(),
		Status:  string(status),
		Notes:   "updated by pilot every " + r.heartbeat.String(),
	}
	if svc.DeregisterCriticalAfter > 0 {
		check.DeregisterCriticalServiceAfter = svc.DeregisterCriticalAfter.String()
	}
	reg := &api.AgentServiceRegistration{
		ID:                svc.ID,
		Name:              svc.Name,
		Address:           svc.Address,
		Port:              svc.Port,
		Tags:              append([]string(nil), svc.Tags...),
		Meta:              svc.Meta,
		EnableTagOverride: svc.EnableTagOverride,
		Check:             check,
	}
	traced, sent := traceSent(ctx)
	err := r.observe(r.c.done(OpRegister, "register", r.c.api.Agent().ServiceRegisterOpts(reg, api.ServiceRegisterOpts{}.WithContext(traced))))
	if err == nil || sent() {
		// Applied, or perhaps applied with its answer lost: a proxy may see
		// the instance from now on.
		r.mu.Lock()
		r.everRegistered = true
		r.mu.Unlock()
	}
	if err != nil {
		return err
	}
	// The check's initial status carries no output: push the note too.
	return r.updateTTL(ctx, status, note)
}

func (r *Registrar) updateTTL(ctx context.Context, status discovery.Status, note string) error {
	q := (&api.QueryOptions{}).WithContext(ctx)
	return r.observe(r.c.done(OpTTL, "update TTL", r.c.api.Agent().UpdateTTLOpts(r.checkID, note, string(status), q)))
}

func (r *Registrar) maintenance(ctx context.Context, on bool, reason string) error {
	q := (&api.QueryOptions{}).WithContext(ctx)
	if on {
		return r.observe(r.c.done(OpMaintenance, "enable maintenance", r.c.api.Agent().EnableServiceMaintenanceOpts(r.svc.ID, reason, q)))
	}
	return r.observe(r.c.done(OpMaintenance, "disable maintenance", r.c.api.Agent().DisableServiceMaintenanceOpts(r.svc.ID, q)))
}

// SetMaintenance records the wish and, when the service is registered,
// applies it now. Before registration (or while the agent is unreachable)
// the wish is applied by Run at the next registration and the error is nil
// (or the failed attempt's error). It returns when ctx ends at the latest.
func (r *Registrar) SetMaintenance(ctx context.Context, on bool, reason string) error {
	r.mu.Lock()
	if r.deregistered {
		r.mu.Unlock()
		return errors.New("consul: service already deregistered")
	}
	r.maintOn, r.maintReason = on, reason
	r.mu.Unlock()

	if err := r.acquire(ctx); err != nil {
		return fmt.Errorf("consul maintenance: %w", err)
	}
	defer r.release()

	r.mu.Lock()
	registered := r.registered && !r.deregistered
	r.mu.Unlock()
	if !registered {
		r.log.Info("consul: maintenance recorded; applied at registration", "maintenance", on)
		return nil
	}
	err := r.maintenance(ctx, on, reason)
	if err != nil {
		// Let Run re-register and re-apply the wish.
		r.setRegistered(false)
		r.wake()
		return err
	}
	r.log.Info("consul: maintenance set", "maintenance", on, "reason", reason)
	return nil
}

// Deregister marks the check critical, then removes the service. It is
// terminal: Run never registers the service again. It returns when ctx ends
// at the latest; an unknown service is not an error. A service the agent
// never accepted (EverRegistered false: no attempt ever reached the wire)
// needs no request at all: it returns nil at once.
func (r *Registrar) Deregister(ctx context.Context) error {
	r.mu.Lock()
	r.deregistered = true
	r.registered = false
	if r.cancelOp != nil {
		r.cancelOp() // Run's in-flight request must not hold us up
	}
	r.mu.Unlock()
	r.wake()

	if err := r.acquire(ctx); err != nil {
		return fmt.Errorf("consul deregister: %w", err)
	}
	defer r.release()

	// Run writes only under the semaphore and never after r.deregistered:
	// from here on everRegistered is final.
	r.mu.Lock()
	ever := r.everRegistered
	r.mu.Unlock()
	if !ever {
		r.log.Debug("consul: never registered; nothing to deregister")
		return nil
	}
	start := time.Now()
	// Marking critical gets at most half of the remaining budget, so a hung
	// agent still leaves time for the deregistration attempt itself.
	critCtx, critCancel := ctx, context.CancelFunc(func() {})
	if dl, ok := ctx.Deadline(); ok {
		critCtx, critCancel = context.WithTimeout(ctx, time.Until(dl)/2)
	}
	crit := r.updateTTL(critCtx, discovery.Critical, "pilot: shutting down")
	critCancel()
	if crit != nil && !notFound(crit) {
		r.log.Warn("consul: marking critical before deregistration failed", "err", crit)
	}
	q := (&api.QueryOptions{}).WithContext(ctx)
	err := r.observe(r.c.done(OpDeregister, "deregister", r.c.api.Agent().ServiceDeregisterOpts(r.svc.ID, q)))
	if err != nil && !notFound(err) {
		r.log.Warn("consul: deregistration failed", "err", err, "took", time.Since(start))
		return err
	}
	r.log.Info("consul: service deregistered", "took", time.Since(start))
	return nil
}
