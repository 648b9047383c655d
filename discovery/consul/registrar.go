package consul

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"strconv"
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
	// registerTimeout bounds one (re-)registration: the look-up, the
	// write and re-applied maintenance. An agent persists each service
	// and check it is given (fsync) and handles registrations one at a
	// time, so a burst of pilots starting together queues there; an
	// abandoned request is still carried out, so giving up soon and
	// sending another only lengthens the queue until nobody gets
	// through. Waiting costs nothing: the instance is not in Consul
	// until the write lands anyway, and Deregister cancels the wait.
	registerTimeout = 30 * time.Second
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
	// registered: a registration was accepted and nothing since says the
	// agent forgot it (only a heartbeat answered "unknown check" does; a
	// heartbeat that failed to get through says nothing either way).
	registered bool
	// accepted is the check status the agent took in the last successful
	// write: what Consul holds while registered.
	accepted discovery.Status
	// everRegistered: a registration reached the agent at least once (it
	// may have been applied).
	everRegistered bool
	// heldBy is ADDR:PORT of another live instance the agent holds under
	// this service ID, "" when none is known: this one stays out of the
	// agent until it is gone, and never deregisters it.
	heldBy string
	// written is ADDR:PORT of the last registration sent, so that ours
	// under an address since changed is not taken for another instance.
	written string
	// verifyAt, when set, is when the first heartbeat after a registration
	// is due: it first checks that the agent still holds this instance
	// under the ID (two that registered at once: the last write won, and
	// the other must learn it). Not sooner, or it could look before the
	// other's write.
	verifyAt time.Time
	cancelOp context.CancelFunc
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

// Registration reports the registrar's current view (discovery.Registrar);
// it never blocks on the agent.
func (r *Registrar) Registration() discovery.Registration {
	r.mu.Lock()
	defer r.mu.Unlock()
	reg := discovery.Registration{ID: r.svc.ID, Name: r.svc.Name, Address: r.svc.Address, Port: r.svc.Port,
		Registered: r.registered, Maintenance: r.maintOn, HeldBy: r.heldBy}
	if r.registered {
		reg.Status = r.accepted
	}
	return reg
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
	heldBy := "" // the other instance last logged as holding the ID
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
		var taken *idTakenError
		if errors.As(err, &taken) {
			// Not a failure to back off from: look again every heartbeat,
			// and say it once per holder.
			if taken.heldBy != heldBy {
				r.log.Error("consul: " + taken.Error())
			} else {
				r.log.Debug("consul: service ID still held by another instance", "held_by", taken.heldBy)
			}
			heldBy, wasDown, backoff = taken.heldBy, false, 0
			wait = r.heartbeat
		} else if err != nil {
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
			wasDown, backoff, heldBy = false, 0, ""
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

	opCtx, cancel := context.WithTimeout(ctx, registerTimeout)
	defer cancel()
	// Heartbeats and their look-up are bounded tighter, so that a hung
	// agent is noticed within a heartbeat or two.
	hbCtx, hbCancel := context.WithTimeout(opCtx, r.reqTimeout)
	defer hbCancel()

	r.mu.Lock()
	if r.deregistered {
		r.mu.Unlock()
		return nil
	}
	r.cancelOp = cancel
	status, note, registered, svc := r.status, r.note, r.registered, r.svc
	maintOn, maintReason := r.maintOn, r.maintReason
	verifyAt, written := r.verifyAt, r.written
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.cancelOp = nil
		r.mu.Unlock()
	}()
	this := hostPort(svc.Address, svc.Port)

	if registered && !verifyAt.IsZero() && !time.Now().Before(verifyAt) {
		h, err := r.lookup(hbCtx)
		if err != nil {
			return err
		}
		r.mu.Lock()
		r.verifyAt = time.Time{}
		r.mu.Unlock()
		if h != nil && h.addr != this {
			// Registered at the same moment as another instance, whose
			// write came last: it holds the ID and its check now.
			return r.taken(svc, h)
		}
	}
	if registered {
		err := r.updateTTL(hbCtx, status, note)
		if err == nil {
			r.mu.Lock()
			r.accepted = status
			r.mu.Unlock()
			return nil
		}
		if !notFound(err) {
			// Unreachable or slow: the agent still holds the registration
			// (a restarted one either reloaded it from its data dir or
			// answers the next heartbeat "unknown check"). Re-registering
			// here would only add writes to a struggling agent's queue.
			return err
		}
		r.log.Warn("consul: agent does not know the service (agent restarted?); re-registering")
	}

	// Say so when the agent is slow, but keep waiting (registerTimeout).
	slow := time.AfterFunc(r.reqTimeout, func() {
		r.log.Warn("consul: the agent has not answered the registration yet; waiting", "after", r.reqTimeout, "up_to", registerTimeout)
	})
	defer slow.Stop()
	h, err := r.lookup(opCtx)
	if err != nil {
		r.setRegistered(false)
		return err
	}
	if h != nil && h.addr != this && h.addr != written {
		if h.status != discovery.Critical {
			return r.taken(svc, h)
		}
		r.log.Info("consul: replacing a stale registration of this service ID", "held_by", h.addr, "status", string(h.status))
	}
	r.mu.Lock()
	r.heldBy = ""
	r.mu.Unlock()

	applied := false
	if h != nil && h.addr == this && this == written {
		// Our last registration, whose answer we did not get (it timed
		// out in the agent's queue), was carried out: push the status
		// rather than write the same registration again. A check the
		// agent does not know after all gets the full registration.
		switch err := r.updateTTL(opCtx, status, note); {
		case err == nil:
			applied = true
		case !notFound(err):
			r.setRegistered(false)
			return err
		}
	}
	if !applied {
		if err := r.register(opCtx, svc, status, note); err != nil {
			r.setRegistered(false)
			return err
		}
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
	r.accepted = status
	r.verifyAt = time.Now().Add(r.heartbeat)
	r.mu.Unlock()
	if !registered {
		r.log.Info("consul: service registered", "address", svc.Address, "port", svc.Port, "status", string(status), "maintenance", maintOn)
	}
	return nil
}

// idTakenError says that another live instance holds this service ID.
type idTakenError struct {
	id, heldBy, heldName, this string
}

func (e *idTakenError) Error() string {
	by := e.heldBy
	if e.heldName != "" {
		by += " (as service " + e.heldName + ")"
	}
	return fmt.Sprintf("service ID %s is already registered by %s; this instance is %s and stays out of Consul while that one is alive: "+
		"two instances with one ID replace each other — set a unique id or leave it out", e.id, by, e.this)
}

// taken records that h, another live instance, holds the service ID, and
// returns the error that says so. This instance is not registered.
func (r *Registrar) taken(svc discovery.Service, h *heldRegistration) error {
	r.mu.Lock()
	r.registered, r.heldBy = false, h.addr
	r.mu.Unlock()
	e := &idTakenError{id: svc.ID, heldBy: h.addr, this: hostPort(svc.Address, svc.Port)}
	if h.name != svc.Name {
		e.heldName = h.name
	}
	return e
}

// heldRegistration is what the agent holds under a service ID.
type heldRegistration struct {
	name, addr string           // addr is ADDR:PORT
	status     discovery.Status // of all its checks: the worst
}

// lookup returns what the agent holds under this service ID, nil when
// nothing. Only a failure to reach the agent is an error: an answer that
// cannot be read (an old agent) counts as nothing held, so that the
// check never keeps a service out of Consul on its own.
func (r *Registrar) lookup(ctx context.Context) (*heldRegistration, error) {
	q := (&api.QueryOptions{}).WithContext(ctx)
	status, info, err := r.c.api.Agent().AgentHealthServiceByIDOpts(r.svc.ID, q)
	wrapped := r.c.done(OpLookup, "look up service ID", err)
	var ue *url.Error
	if err != nil && !errors.As(err, &ue) { // it answered, with nothing usable
		r.up.Store(true)
		r.log.Debug("consul: cannot read what the agent holds under the service ID; registering anyway", "err", wrapped)
		return nil, nil
	}
	if err := r.observe(wrapped); err != nil {
		return nil, err
	}
	if info == nil || info.Service == nil {
		return nil, nil
	}
	st := discovery.Status(status)
	if !st.Valid() {
		st = discovery.Critical
	}
	return &heldRegistration{name: info.Service.Service, addr: hostPort(info.Service.Address, info.Service.Port), status: st}, nil
}

func hostPort(addr string, port int) string {
	if addr == "" {
		addr = "(no address)"
	}
	return net.JoinHostPort(addr, strconv.Itoa(port))
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
		r.written = hostPort(svc.Address, svc.Port)
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
	ever, heldBy := r.everRegistered, r.heldBy
	r.mu.Unlock()
	if !ever {
		r.log.Debug("consul: never registered; nothing to deregister")
		return nil
	}
	if heldBy != "" {
		r.log.Debug("consul: the service ID belongs to another instance; not deregistering it", "held_by", heldBy)
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
