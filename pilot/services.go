package pilot

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nodepilot/pilot/discovery"
	"github.com/nodepilot/pilot/discovery/consul"
	"github.com/nodepilot/pilot/discovery/traefik"
	"github.com/nodepilot/pilot/jobs"
	"github.com/nodepilot/pilot/pilot/config"
)

// deregisterTimeout bounds deregistration at shutdown, so that a dead Consul
// never holds the stop signal back by more than this.
const deregisterTimeout = 2 * time.Second

// service is one job's registration: the registrar, and how long proxies get
// to drop the instance before the job is stopped.
type service struct {
	job       string
	registrar discovery.Registrar
	drain     time.Duration
	// address is chosen by selector; it is chosen again every
	// addressRecheck, and a change re-registers the service.
	selector discovery.AddressSelector
	address  string
	// plan is what the service was built from; a reload that plans the
	// same keeps it.
	plan servicePlan
	// stop ends the registrar's Run; done is closed once it has returned.
	stop func()
	done chan struct{}
}

// addressRecheck paces the search for a changed address (a container moved
// to another network keeps running under the same pilot).
const addressRecheck = 10 * time.Second

// newConsulClient builds the client for cfg's consul block; observe (may
// be nil) is told of each of its requests.
func newConsulClient(c *config.Consul, observe func(consul.Request)) (*consul.Client, error) {
	client, err := consul.NewClient(consul.Config{
		Address:   c.Address,
		Token:     c.Token,
		TokenFile: c.TokenFile,
		TLS: consul.TLSConfig{
			CAFile: c.TLS.CAFile, CertFile: c.TLS.CertFile, KeyFile: c.TLS.KeyFile,
			ServerName: c.TLS.ServerName, InsecureSkipVerify: c.TLS.InsecureSkipVerify,
		},
		Observe: observe,
	})
	if err != nil {
		return nil, &ConfigError{err} // "consul: …" already
	}
	return client, nil
}

// serviceSet keeps the registrations of the current generation's services,
// one registrar each, fed by the health of its job: passing while the job
// is healthy, critical in every other state. A reload changes the set in
// place (apply); maintenance holds across reloads and agent restarts.
type serviceSet struct {
	log *slog.Logger
	// jobStatus reads a job of the current set; false when there is none.
	jobStatus func(job string) (jobs.Status, bool)

	mu          sync.Mutex
	byJob       map[string]*service
	maintenance bool
	ctx         context.Context // run's: registrars live as long as it
	pending     []*service      // built before run began
}

// maintenanceReason is the note Consul shows for a service pilot took out
// of rotation.
const maintenanceReason = "pilot maintenance"

func newServiceSet(log *slog.Logger, jobStatus func(string) (jobs.Status, bool)) *serviceSet {
	return &serviceSet{log: log, jobStatus: jobStatus, byJob: map[string]*service{}}
}

// apply makes the set that of plans, reaching Consul through client.
// Services of jobs in withdrawn were deregistered already (their jobs were
// stopped): they are replaced without another request. A service whose
// plan and client are unchanged keeps its registrar; one that changed is
// deregistered and registered anew; one no longer planned is deregistered.
func (ss *serviceSet) apply(ctx context.Context, plans []servicePlan, client *consul.Client, clientChanged bool, withdrawn []string) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	next := map[string]*service{}
	var errs []error
	for _, plan := range plans {
		old := ss.byJob[plan.job]
		if old != nil && !clientChanged && !slices.Contains(withdrawn, plan.job) && old.plan.same(plan) {
			next[plan.job] = old
			continue
		}
		r, err := consul.NewRegistrar(client, plan.svc, ss.log.With("job", plan.job))
		if err != nil {
			errs = append(errs, fmt.Errorf("service of job %s: %w", plan.job, err))
			continue
		}
		s := &service{job: plan.job, registrar: r, drain: plan.drain, selector: plan.selector, address: plan.svc.Address, plan: plan}
		if st, ok := ss.jobStatus(plan.job); ok && st.State == jobs.Healthy {
			r.SetStatus(discovery.Passing, "")
		}
		if ss.maintenance {
			_ = r.SetMaintenance(ctx, true, maintenanceReason) // not registered yet: recorded
		}
		next[plan.job] = s
	}
	for job, old := range ss.byJob {
		if next[job] == old {
			continue
		}
		if !slices.Contains(withdrawn, job) {
			dctx, cancel := context.WithTimeout(ctx, deregisterTimeout)
			if err := old.registrar.Deregister(dctx); err != nil {
				ss.log.Warn("reload: deregistration failed; going on", "job", job, "err", err)
			}
			cancel()
		}
		old.halt()
	}
	ss.byJob = next
	for _, s := range next {
		if s.stop == nil {
			ss.launch(s)
		}
	}
	return errors.Join(errs...)
}

// launch runs s's registrar, now if the set runs, else once it does.
// Called with mu held.
func (ss *serviceSet) launch(s *service) {
	s.done = make(chan struct{})
	if ss.ctx == nil {
		s.stop = func() {}
		ss.pending = append(ss.pending, s)
		return
	}
	ctx, cancel := context.WithCancel(ss.ctx)
	s.stop = cancel
	go func() {
		defer close(s.done)
		_ = s.registrar.Run(ctx)
	}()
}

// halt stops s's registrar and waits for its Run to return.
func (s *service) halt() {
	s.stop()
	if s.done != nil {
		<-s.done
	}
}

// setMaintenance takes every service out of rotation (on) or puts it back:
// Consul's maintenance mode for each, remembered for the services a
// reload adds and re-applied by each registrar after the agent lost it.
func (ss *serviceSet) setMaintenance(ctx context.Context, on bool) error {
	ss.mu.Lock()
	ss.maintenance = on
	all := slices.Collect(maps.Values(ss.byJob))
	ss.mu.Unlock()
	var errs []error
	for _, s := range all {
		if err := s.registrar.SetMaintenance(ctx, on, maintenanceReason); err != nil {
			errs = append(errs, fmt.Errorf("service of job %s: %w", s.job, err))
		}
	}
	return errors.Join(errs...)
}

func (ss *serviceSet) inMaintenance() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.maintenance
}

// list returns the current services.
func (ss *serviceSet) list() []*service {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return slices.Collect(maps.Values(ss.byJob))
}

func discoveryService(sc config.Service, sel discovery.AddressSelector, hostname string) (discovery.Service, error) {
	addr, err := selectAddress(sel)
	if err != nil {
		return discovery.Service{}, err // "address: …" already
	}
	id := cmp.Or(sc.ID, defaultServiceID(sc, hostname))
	tags := slices.Clone(sc.Tags)
	if t := sc.Traefik; t != nil {
		traefikTags, err := traefik.Tags(sc.Name, sc.Port, traefikSettings(*t))
		if err != nil {
			return discovery.Service{}, err
		}
		tags = append(tags, traefikTags...)
	}
	return discovery.Service{
		ID: id, Name: sc.Name, Address: addr, Port: sc.Port, Tags: tags, Meta: sc.Meta,
		EnableTagOverride: sc.EnableTagOverride, TTL: sc.TTL, DeregisterCriticalAfter: sc.DeregisterCriticalAfter,
	}, nil
}

// defaultServiceID is NAME-HOSTNAME-PORT: unique per instance (in
// Docker the hostname is the container's ID, and two processes on one
// host, network_mode: host or bare metal, cannot listen on one port) and
// stable across the instance's restarts (same container, same port), as
// registrator's host:container:port. NAME-HOSTNAME alone let two pilots on
// one host overwrite each other's registration.
func defaultServiceID(sc config.Service, hostname string) string {
	return sc.Name + "-" + hostname + "-" + strconv.Itoa(sc.Port)
}

func traefikSettings(t config.Traefik) traefik.Settings {
	s := traefik.Settings{Rule: t.Rule, EntryPoints: t.EntryPoints, Middlewares: t.Middlewares,
		Priority: t.Priority, ServerPort: t.Port, StickyCookie: t.StickyCookie}
	if h := t.HealthCheck; h != nil {
		s.HealthCheck = &traefik.HealthCheck{Path: h.Path}
		if h.Interval > 0 {
			s.HealthCheck.Interval = h.Interval.String()
		}
		if h.Timeout > 0 {
			s.HealthCheck.Timeout = h.Timeout.String()
		}
	}
	return s
}

func selectAddress(sel discovery.AddressSelector) (string, error) {
	ifaces, err := discovery.SystemInterfaces()
	if err != nil {
		return "", err
	}
	return discovery.SelectAddress(sel, ifaces)
}

// recheckAddresses registers again, with its new address, every service
// whose selected address changed.
func recheckAddresses(ss []*service, log *slog.Logger) {
	for _, s := range ss {
		if s.selector.Static != "" {
			continue
		}
		addr, err := selectAddress(s.selector)
		if err != nil || addr == s.address {
			continue // keep advertising the last good address
		}
		log.Info("service address changed; registering again", "job", s.job, "from", s.address, "to", addr)
		s.address = addr
		s.registrar.SetAddress(addr)
	}
}

// run keeps every registration alive and feeds each the health of its
// job. changes must be subscribed before any job starts. It returns when
// ctx ends, once every registrar has.
func (ss *serviceSet) run(ctx context.Context, changes *jobs.Subscription) {
	ss.mu.Lock()
	ss.ctx = ctx
	pending := ss.pending
	ss.pending = nil
	for _, s := range pending {
		ss.launch(s)
	}
	ss.mu.Unlock()
	defer func() {
		for _, s := range ss.list() {
			s.halt()
		}
	}()
	recheck := time.NewTicker(addressRecheck)
	defer recheck.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-recheck.C:
			ss.mu.Lock() // addresses are the set's to change
			recheckAddresses(slices.Collect(maps.Values(ss.byJob)), ss.log)
			ss.mu.Unlock()
		case <-changes.Ready():
			ss.mu.Lock()
			for _, c := range changes.Drain() {
				s, ok := ss.byJob[c.Job]
				if !ok {
					continue
				}
				if c.State == jobs.Healthy {
					s.registrar.SetStatus(discovery.Passing, "")
				} else {
					s.registrar.SetStatus(discovery.Critical, "job "+c.State.String())
				}
			}
			ss.mu.Unlock()
		}
	}
}

// withdraw takes the services of the given jobs out of Consul before they
// stop: critical, deregistered (each within deregisterTimeout), then the
// longest drain among those that were ever registered, cut short by ctx.
// phase ("shutdown", "reload") begins its log lines.
func (ss *serviceSet) withdraw(ctx context.Context, js []*jobs.Job, phase string) {
	var (
		wg    sync.WaitGroup
		drain time.Duration
	)
	ss.mu.Lock()
	var mine []*service
	for _, j := range js {
		if s, ok := ss.byJob[j.Name()]; ok {
			mine = append(mine, s)
		}
	}
	ss.mu.Unlock()
	for _, s := range mine {
		wg.Go(func() {
			dctx, cancel := context.WithTimeout(ctx, deregisterTimeout)
			defer cancel()
			if err := s.registrar.Deregister(dctx); err != nil {
				ss.log.Warn(phase+": deregistration failed; going on", "job", s.job, "err", err)
				return
			}
			if s.registrar.EverRegistered() { // else there was nothing to deregister
				ss.log.Info(phase+": deregistered", "job", s.job)
			}
		})
	}
	wg.Wait()
	// Read after the deregistrations: a registration that was still on its
	// way when the stop began has been routed to by now.
	for _, s := range mine {
		if s.registrar.EverRegistered() { // else no proxy ever routed to it
			drain = max(drain, s.drain)
		}
	}
	if drain > 0 {
		ss.log.Info(phase+": draining", "for", drain)
		t := time.NewTimer(drain)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
}
