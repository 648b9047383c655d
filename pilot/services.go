package pilot

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
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
}

// addressRecheck paces the search for a changed address (a container moved
// to another network keeps running under the same pilot).
const addressRecheck = 10 * time.Second

// services are the registrations of one pilot, keyed by job name.
type services map[string]*service

// buildServices makes a registrar for every job with a service block. The
// client is returned for the caller to close; observe (may be nil) is told
// of each of its requests.
func buildServices(cfg config.Config, log *slog.Logger, observe func(consul.Request)) (services, *consul.Client, error) {
	if cfg.Consul == nil {
		return nil, nil, nil
	}
	client, err := consul.NewClient(consul.Config{
		Address:   cfg.Consul.Address,
		Token:     cfg.Consul.Token,
		TokenFile: cfg.Consul.TokenFile,
		TLS: consul.TLSConfig{
			CAFile: cfg.Consul.TLS.CAFile, CertFile: cfg.Consul.TLS.CertFile, KeyFile: cfg.Consul.TLS.KeyFile,
			ServerName: cfg.Consul.TLS.ServerName, InsecureSkipVerify: cfg.Consul.TLS.InsecureSkipVerify,
		},
		Observe: observe,
	})
	if err != nil {
		return nil, nil, &ConfigError{err} // "consul: …" already
	}
	hostname, _ := os.Hostname()
	out := services{}
	for i, jc := range cfg.Jobs {
		sc := jc.Service
		if sc == nil {
			continue
		}
		sel := discovery.AddressSelector{Interface: sc.Address.Interface, CIDR: sc.Address.CIDR, Static: sc.Address.Static}
		svc, err := discoveryService(*sc, sel, hostname)
		if err != nil {
			client.Close()
			return nil, nil, &ConfigError{fmt.Errorf("jobs[%d].service.%w", i, err)}
		}
		r, err := consul.NewRegistrar(client, svc, log.With("job", jc.Name))
		if err != nil {
			client.Close()
			return nil, nil, &ConfigError{fmt.Errorf("jobs[%d].service: %w", i, err)}
		}
		out[jc.Name] = &service{job: jc.Name, registrar: r, drain: sc.Drain, selector: sel, address: svc.Address}
	}
	return out, client, nil
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
func (ss services) recheckAddresses(log *slog.Logger) {
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

// run keeps every registration alive and feeds each the health of its job:
// passing while the job is healthy, critical in every other state. changes
// must be subscribed before any job starts. It returns when ctx ends.
func (ss services) run(ctx context.Context, changes *jobs.Subscription, log *slog.Logger) {
	recheck := time.NewTicker(addressRecheck)
	defer recheck.Stop()
	var wg sync.WaitGroup
	for _, s := range ss {
		wg.Go(func() { _ = s.registrar.Run(ctx) })
	}
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-recheck.C:
			ss.recheckAddresses(log)
		case <-changes.Ready():
			for _, c := range changes.Drain() {
				s, ok := ss[c.Job]
				if !ok {
					continue
				}
				if c.State == jobs.Healthy {
					s.registrar.SetStatus(discovery.Passing, "")
				} else {
					s.registrar.SetStatus(discovery.Critical, "job "+c.State.String())
				}
			}
		}
	}
}

// withdraw takes the services of the given jobs out of Consul before they
// stop: critical, deregistered (each within deregisterTimeout), then the
// longest drain among those that were ever registered, cut short by ctx.
func (ss services) withdraw(ctx context.Context, js []*jobs.Job, log *slog.Logger) {
	var (
		wg    sync.WaitGroup
		drain time.Duration
	)
	for _, j := range js {
		s, ok := ss[j.Name()]
		if !ok {
			continue
		}
		if s.registrar.EverRegistered() { // else no proxy ever routed to it
			drain = max(drain, s.drain)
		}
		wg.Go(func() {
			dctx, cancel := context.WithTimeout(ctx, deregisterTimeout)
			defer cancel()
			if err := s.registrar.Deregister(dctx); err != nil {
				log.Warn("shutdown: deregistration failed; going on", "job", s.job, "err", err)
				return
			}
			if s.registrar.EverRegistered() { // else there was nothing to deregister
				log.Info("shutdown: deregistered", "job", s.job)
			}
		})
	}
	wg.Wait()
	if drain > 0 {
		log.Info("shutdown: draining", "for", drain)
		select {
		case <-time.After(drain):
		case <-ctx.Done():
		}
	}
}
