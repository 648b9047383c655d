package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/nodepilot/pilot/discovery"
)

var _ discovery.Watcher = (*Watcher)(nil)

// Defaults for WatcherOptions.
const (
	DefaultMinBackoff = 50 * time.Millisecond
	DefaultMaxBackoff = 5 * time.Second
)

// requestTimeout bounds every request but the event stream, and the wait
// for the stream's response headers: a hung daemon is noticed.
const requestTimeout = 10 * time.Second

// WatcherOptions tunes a Watcher; zero fields take the defaults.
type WatcherOptions struct {
	// MinBackoff and MaxBackoff bound the exponential delay before a new
	// attempt after the daemon failed or the event stream broke (up to
	// 20% jitter below). Default 50 ms and 5 s.
	MinBackoff, MaxBackoff time.Duration
}

func (o WatcherOptions) withDefaults() WatcherOptions {
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	o.MaxBackoff = max(o.MaxBackoff, o.MinBackoff)
	return o
}

// Watcher follows the containers of services through a Docker daemon's
// event stream. One Watcher serves any number of concurrent Watch calls;
// each call owns its own loop, event subscription and state. See the
// package documentation.
type Watcher struct {
	c    *client.Client
	log  *slog.Logger
	opts WatcherOptions
}

// NewWatcher returns a Watcher on c, which it never closes. logger may be
// nil (logs are discarded).
func NewWatcher(c *client.Client, opts WatcherOptions, logger *slog.Logger) (*Watcher, error) {
	if c == nil {
		return nil, errors.New("docker: nil client")
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
		return fmt.Errorf("docker: %w", err)
	}
	if publish == nil {
		return errors.New("docker: watch: nil publish func")
	}
	st := &watch{
		w:       w,
		spec:    spec,
		sel:     newSelector(spec),
		publish: publish,
		log: w.log.With("service", spec.Service, "project", spec.Docker.Project,
			"network", spec.Docker.Network, "passing_only", spec.PassingOnly),
		warned: make(map[string]string),
	}

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var backoff time.Duration
	for {
		err := st.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if st.synced {
			// The session got through a resync: the daemon was
			// reachable, so start the backoff over.
			backoff, st.synced = 0, false
		}
		backoff = min(max(backoff*2, w.opts.MinBackoff), w.opts.MaxBackoff)
		wait := backoff - time.Duration(rand.Int64N(int64(backoff)/5+1))
		if !st.failing {
			st.log.Warn("docker: watch failing; keeping the last snapshot", "err", err, "retry_in", wait)
		} else {
			st.log.Debug("docker: watch still failing", "err", err, "retry_in", wait)
		}
		st.failing = true
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
	}
}

// watch is the state of one Watch call, owned by its goroutine.
type watch struct {
	w       *Watcher
	spec    discovery.WatchSpec
	sel     selector
	publish func(discovery.Snapshot)
	log     *slog.Logger

	node string // the daemon's name, from the session's Info

	// containers holds the matching live containers as last inspected,
	// by full ID: the last list's set. An entry is inspected again only
	// when an event names it.
	containers map[string]*container.InspectResponse
	// warned holds, by container ID, the reason it was last skipped for,
	// so that each reason is logged once per container.
	warned map[string]string

	events client.EventsResult // the session's subscription
	stop   context.CancelFunc  // ends it

	last   discovery.Snapshot // last published
	have   bool               // something was published
	synced bool               // the current session has resynced
	// failing: the last session failed and no resync has succeeded since
	failing bool
}

// session subscribes to the daemon's events, resyncs (a full list and
// inspect), then applies events until the stream breaks or ctx ends. It
// returns why it ended.
func (st *watch) session(ctx context.Context) error {
	c := st.w.c
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()

	rctx, rcancel := context.WithTimeout(sctx, requestTimeout)
	_, err := c.Ping(rctx, client.PingOptions{NegotiateAPIVersion: true})
	if err == nil {
		var info client.SystemInfoResult
		if info, err = c.Info(rctx, client.InfoOptions{}); err == nil {
			st.node = info.Info.Name
			err = st.subscribe(sctx, since(info.Info.SystemTime))
		}
	}
	rcancel()
	if err != nil {
		return err
	}
	defer st.unsubscribe()

	// Subscribed first, then the full resync: nothing that happens from
	// here on is lost, and the events replayed from Info's time on (which
	// the list already reflects) only cost a re-read.
	if err := st.reread(sctx, nil); err != nil {
		return err
	}
	st.synced = true
	if st.failing {
		st.log.Info("docker: daemon reachable again; resynced", "instances", len(st.last.Instances))
		st.failing = false
	}

	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-st.events.Err:
			if err == nil || errors.Is(err, io.EOF) {
				return errors.New("docker: event stream ended")
			}
			return fmt.Errorf("docker: event stream: %w", err)
		case m := <-st.events.Messages:
			dirty := make(map[string]bool)
			st.note(m, dirty)
			// Take every event already there, so a burst costs one re-read.
		more:
			for {
				select {
				case m := <-st.events.Messages:
					st.note(m, dirty)
				default:
					break more
				}
			}
			if len(dirty) == 0 {
				continue
			}
			if err := st.reread(sctx, dirty); err != nil {
				return err
			}
		}
	}
}

// subscribe opens the session's event subscription: container and network
// events from since (the daemon's clock; "" for from now on).
func (st *watch) subscribe(ctx context.Context, since string) error {
	// Events returns once the daemon has answered with headers; bound
	// that wait the way every other request is bounded.
	sctx, cancel := context.WithCancel(ctx)
	t := time.AfterFunc(requestTimeout, cancel)
	res := st.w.c.Events(sctx, client.EventsListOptions{
		Since:   since,
		Filters: make(client.Filters).Add("type", string(events.ContainerEventType), string(events.NetworkEventType)),
	})
	if !t.Stop() {
		cancel()
		for range res.Err {
		}
		return errors.New("docker: event stream: no answer within " + requestTimeout.String())
	}
	st.events, st.stop = res, cancel
	return nil
}

// unsubscribe ends the session's subscription and waits for the client's
// reader goroutine to be gone.
func (st *watch) unsubscribe() {
	st.stop()
	// The reader sends one error (its ctx's, at the latest) and closes Err.
	for range st.events.Err {
	}
	st.events, st.stop = client.EventsResult{}, nil
}

// since is the daemon's clock (Info's SystemTime) as an events "since"
// parameter, or "" when it cannot be read.
func since(systemTime string) string {
	t, err := time.Parse(time.RFC3339Nano, systemTime)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond())
}

// note adds to dirty the container an event is about, if the event can
// change what the watch reports: a matching container started, died,
// was destroyed, paused, unpaused, renamed or changed health; or a
// container the watch follows was connected to or disconnected from a
// network.
func (st *watch) note(m events.Message, dirty map[string]bool) {
	action, _, _ := strings.Cut(string(m.Action), ":")
	switch m.Type {
	case events.ContainerEventType:
		switch events.Action(action) {
		case events.ActionStart, events.ActionDie, events.ActionDestroy, events.ActionPause,
			events.ActionUnPause, events.ActionRename, events.ActionHealthStatus:
		default:
			return
		}
		id := m.Actor.ID
		if _, known := st.containers[id]; known || st.sel.ambiguous || st.sel.matches(m.Actor.Attributes) {
			dirty[id] = true
		}
	case events.NetworkEventType:
		switch events.Action(action) {
		case events.ActionConnect, events.ActionDisconnect:
		default:
			return
		}
		if id := m.Actor.Attributes["container"]; id != "" {
			if _, known := st.containers[id]; known {
				dirty[id] = true
			}
		}
	}
}

// reread lists the matching containers and inspects those it has not seen
// or that dirty names (all of them when dirty is nil: a full resync), then
// publishes the snapshot if it changed. On error nothing changes.
func (st *watch) reread(ctx context.Context, dirty map[string]bool) error {
	c := st.w.c
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	list, err := c.ContainerList(rctx, client.ContainerListOptions{Filters: st.sel.filters()})
	if err != nil {
		return fmt.Errorf("docker: list containers: %w", err)
	}
	next := make(map[string]*container.InspectResponse, len(list.Items))
	for _, s := range list.Items {
		if old, ok := st.containers[s.ID]; ok && dirty != nil && !dirty[s.ID] && sameState(old, s.State) {
			next[s.ID] = old
			continue
		}
		res, err := c.ContainerInspect(rctx, s.ID, client.ContainerInspectOptions{})
		if cerrdefs.IsNotFound(err) {
			continue // removed since the list
		}
		if err != nil {
			return fmt.Errorf("docker: inspect container %s: %w", strings.TrimPrefix(firstName(s.Names), "/"), err)
		}
		if live(&res.Container) {
			next[s.ID] = &res.Container
		}
	}
	st.containers = next
	st.apply()
	return nil
}

// sameState reports whether a listed container's state is still what it
// was when inspected (a pause without its event, say, is not missed).
func sameState(c *container.InspectResponse, s container.ContainerState) bool {
	paused := c.State != nil && c.State.Paused
	return paused == (s == container.StatePaused)
}

func firstName(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return names[0]
}

// apply builds the snapshot of st.containers, logs the containers it
// skips (once per container and reason) and publishes it if it changed.
func (st *watch) apply() {
	ins := make([]discovery.Instance, 0, len(st.containers))
	for _, id := range slices.Sorted(maps.Keys(st.containers)) {
		c := st.containers[id]
		in, err := instanceOf(st.spec, st.node, c)
		if err != nil {
			if st.warned[id] != err.Error() {
				st.warned[id] = err.Error()
				st.log.Warn("docker: container skipped", "container", strings.TrimPrefix(c.Name, "/"), "reason", err)
			}
			continue
		}
		delete(st.warned, id)
		if st.spec.PassingOnly && in.Status != discovery.Passing {
			continue
		}
		ins = append(ins, in)
	}
	for id := range st.warned {
		if _, ok := st.containers[id]; !ok {
			delete(st.warned, id)
		}
	}
	snap := discovery.NewSnapshot(st.spec.Service, ins)
	if st.have && snap.Equal(st.last) {
		return
	}
	st.last, st.have = snap, true
	st.log.Debug("docker: watch changed", "instances", len(snap.Instances), "hash", fmt.Sprintf("%016x", snap.Hash()))
	st.publish(snap.Clone())
}
