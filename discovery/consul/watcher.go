package consul

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/nodepilot/pilot/discovery"
)

var _ discovery.Watcher = (*Watcher)(nil)

// Defaults for WatcherOptions.
const (
	DefaultWaitTime        = 60 * time.Second
	DefaultQuietInterval   = 250 * time.Millisecond
	DefaultWatchMinBackoff = 50 * time.Millisecond
	DefaultWatchMaxBackoff = 5 * time.Second
	DefaultMaxStale        = 2 * time.Second
)

// WatcherOptions tunes a Watcher; zero fields take the defaults.
type WatcherOptions struct {
	// WaitTime is the blocking query's wait: how long the agent holds a
	// request when nothing changes (Consul caps it at 10m and adds up to
	// 1/16 of jitter). Default 60 s: one idle request a minute per watch,
	// and a half-open connection is noticed within about a minute.
	WaitTime time.Duration
	// QuietInterval is the least time between the starts of two requests
	// when the first brought no visible change (index not advanced, or
	// advanced with an Equal snapshot) yet returned early. It is the guard
	// against a hot loop; a real change is fetched at once. Default 250 ms.
	QuietInterval time.Duration
	// MinBackoff and MaxBackoff bound the exponential retry delay after a
	// failed request (up to 20% jitter below). Default 50 ms and 5 s.
	MinBackoff, MaxBackoff time.Duration
	// MaxStale bounds a stale read: when the server that answered had
	// last heard from the leader longer ago than this (a follower cut off
	// from it, or a cluster without a leader), the answer is dropped and
	// the query asked again in default mode, where the leader answers.
	// Default 2 s, consul-template's max_stale.
	MaxStale time.Duration
}

func (o WatcherOptions) withDefaults() WatcherOptions {
	if o.WaitTime <= 0 {
		o.WaitTime = DefaultWaitTime
	}
	o.WaitTime = min(o.WaitTime, 10*time.Minute)
	if o.QuietInterval <= 0 {
		o.QuietInterval = DefaultQuietInterval
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultWatchMinBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultWatchMaxBackoff
	}
	o.MaxBackoff = max(o.MaxBackoff, o.MinBackoff)
	if o.MaxStale <= 0 {
		o.MaxStale = DefaultMaxStale
	}
	return o
}

// Watcher follows services in the catalog with blocking health queries.
// One Watcher serves any number of concurrent Watch calls; each call owns
// its own loop and state. See the package documentation.
type Watcher struct {
	c    *Client
	log  *slog.Logger
	opts WatcherOptions
}

// NewWatcher returns a Watcher on c. logger may be nil (logs are discarded).
func NewWatcher(c *Client, opts WatcherOptions, logger *slog.Logger) (*Watcher, error) {
	if c == nil {
		return nil, errors.New("consul: nil client")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Watcher{c: c, log: logger, opts: opts.withDefaults()}, nil
}

// Watch follows spec until ctx ends and returns nil then; see
// discovery.Watcher for the contract. publish runs on the calling
// goroutine and must not block long.
func (w *Watcher) Watch(ctx context.Context, spec discovery.WatchSpec, publish func(discovery.Snapshot)) error {
	if err := spec.Validate(); err != nil {
		return fmt.Errorf("consul: %w", err)
	}
	if publish == nil {
		return errors.New("consul: watch: nil publish func")
	}
	mode := cmp.Or(spec.Consul.Consistency, discovery.ConsistencyStale)
	log := w.log.With("service", spec.Service, "tag", spec.Consul.Tag, "dc", spec.Consul.Datacenter, "passing_only", spec.PassingOnly, "consistency", mode)

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	sleep := func(d time.Duration) bool {
		if d <= 0 {
			return ctx.Err() == nil
		}
		timer.Reset(d)
		select {
		case <-ctx.Done():
			return false
		case <-timer.C:
			return true
		}
	}

	var (
		index   uint64             // WaitIndex of the next request; 0 = answer at once
		last    discovery.Snapshot // last published
		have    bool               // something was published
		backoff time.Duration
		failing bool
	)
	for ctx.Err() == nil {
		start := time.Now()
		snap, newIndex, lastContact, err := w.fetch(ctx, spec, mode, index)
		if err == nil && mode == discovery.ConsistencyStale && lastContact > w.opts.MaxStale {
			// Too far behind the leader to trust: ask the leader instead,
			// on the same index, so a change already made is seen at once.
			log.Debug("consul: stale answer too old; asking the leader", "last_contact", lastContact, "max_stale", w.opts.MaxStale)
			snap, newIndex, _, err = w.fetch(ctx, spec, discovery.ConsistencyDefault, index)
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			// Stale beats partial: keep the last snapshot, publish nothing.
			// Forget the index: the agent may have restarted with a lower
			// one, and waiting on ours would hide its state for a whole
			// WaitTime. The first request after an error answers at once.
			index = 0
			backoff = min(max(backoff*2, w.opts.MinBackoff), w.opts.MaxBackoff)
			wait := backoff - time.Duration(rand.Int64N(int64(backoff)/5+1))
			if !failing {
				log.Warn("consul: watch failing; keeping the last snapshot", "err", err, "retry_in", wait)
			} else {
				log.Debug("consul: watch still failing", "err", err, "retry_in", wait)
			}
			failing = true
			if !sleep(wait) {
				return nil
			}
			continue
		}
		if failing {
			log.Info("consul: watch recovered")
		}
		failing, backoff = false, 0

		// Index handling as Consul's blocking-query docs prescribe. An
		// unchanged index means no change, whatever the body says. A
		// lower one is still a valid answer (compare it), but the next
		// query starts over.
		moved := index == 0 || newIndex != index
		switch {
		case newIndex == 0:
			// A bug in some Consul versions: waiting on 0 would not block.
			newIndex = 1
		case newIndex < index:
			// The index went backwards (agent or raft state reset): start
			// over with a non-blocking query.
			log.Debug("consul: watch index went backwards; resetting", "from", index, "to", newIndex)
			newIndex = 0
		}
		index = newIndex

		changed := moved && (!have || !snap.Equal(last))
		if changed {
			last, have = snap, true
			log.Debug("consul: watch changed", "instances", len(snap.Instances), "index", index, "hash", fmt.Sprintf("%016x", snap.Hash()))
			publish(snap.Clone())
			continue
		}
		// No visible change: never ask again sooner than QuietInterval
		// after the last request started (a request that waited out
		// WaitTime goes again at once).
		if !sleep(w.opts.QuietInterval - time.Since(start)) {
			return nil
		}
	}
	return nil
}

// fetch runs one (blocking, unless index is 0) health query in mode and
// returns the instances, the index, and how long before answering the
// server had last heard from the leader (0 when the leader answered).
func (w *Watcher) fetch(ctx context.Context, spec discovery.WatchSpec, mode discovery.Consistency, index uint64) (discovery.Snapshot, uint64, time.Duration, error) {
	// The agent holds the request up to WaitTime + WaitTime/16; allow for
	// that and a slow answer, so a hung agent is noticed.
	rctx, cancel := context.WithTimeout(ctx, w.opts.WaitTime+w.opts.WaitTime/16+10*time.Second)
	defer cancel()
	q := (&api.QueryOptions{
		Datacenter:        spec.Consul.Datacenter,
		AllowStale:        mode == discovery.ConsistencyStale,
		RequireConsistent: mode == discovery.ConsistencyConsistent,
		WaitIndex:         index,
		WaitTime:          w.opts.WaitTime,
	}).WithContext(rctx)
	entries, meta, err := w.c.api.Health().Service(spec.Service, spec.Consul.Tag, spec.PassingOnly, q)
	if err := w.c.done(OpHealth, "watch "+spec.Service, err); err != nil {
		return discovery.Snapshot{}, 0, 0, err
	}
	if meta == nil {
		return discovery.Snapshot{}, 0, 0, errors.New("consul watch " + spec.Service + ": no query metadata")
	}
	ins := make([]discovery.Instance, 0, len(entries))
	for _, e := range entries {
		if e == nil || e.Service == nil {
			continue
		}
		in := discovery.Instance{
			ID:      e.Service.ID,
			Address: e.Service.Address,
			Port:    e.Service.Port,
			Tags:    e.Service.Tags,
			Meta:    e.Service.Meta,
			Status:  status(e.Checks),
		}
		if e.Node != nil {
			in.Node = e.Node.Node
			if in.Address == "" {
				in.Address = e.Node.Address
			}
		}
		ins = append(ins, in)
	}
	return discovery.NewSnapshot(spec.Service, ins), meta.LastIndex, meta.LastContact, nil
}

// status aggregates an instance's checks (node and service) to the worst;
// maintenance counts as critical.
func status(checks api.HealthChecks) discovery.Status {
	switch checks.AggregatedStatus() {
	case api.HealthPassing:
		return discovery.Passing
	case api.HealthWarning:
		return discovery.Warning
	default:
		return discovery.Critical
	}
}
