package main

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"
)

// poller emulates one ContainerPilot watch: its design polls
// GET /v1/health/service/NAME?passing (non-blocking, default consistency:
// discovery/consul.go's CheckForUpstreamChanges calls
// Health().Service(name, tag, true, &QueryOptions{Datacenter: dc})) on a
// ticker every `interval` seconds, through the agent of its own host. Each
// poller has its own connection, as each ContainerPilot is a process of
// its own. It keeps, for each answer, which instances were missing, so
// that the change → seen latency a polling design gives can be read off.
//
// It does not decode the JSON into structs as ContainerPilot does (that
// CPU is spent on the watchers' hosts, not Consul's, and here it would
// load the machine Consul runs on): it only finds the service IDs.
type poller struct {
	base     string
	interval time.Duration
	client   *http.Client
	ids      map[string]int // service ID → instance index

	polls, errors int
	answers       []pollAnswer
}

type pollAnswer struct {
	at     time.Time
	absent []int // sorted instance indices not in the answer
}

func newPoller(base string, interval time.Duration, ids map[string]int) *poller {
	// The default transport's settings (keep-alive, gzip) as consul/api's
	// client has them, but one connection per poller.
	t := http.DefaultTransport.(*http.Transport).Clone()
	return &poller{base: base, interval: interval, ids: ids, client: &http.Client{Transport: t, Timeout: 30 * time.Second}}
}

// run polls until ctx ends, starting at a random phase of the interval.
func (p *poller) run(ctx context.Context) {
	defer p.client.CloseIdleConnections()
	select {
	case <-ctx.Done():
		return
	case <-time.After(rand.N(p.interval)):
	}
	tick := time.NewTicker(p.interval)
	defer tick.Stop()
	for {
		p.poll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

var idKey = []byte(`"ID":"` + service + `-`)

func (p *poller) poll(ctx context.Context) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+"/v1/health/service/"+service+"?passing=1", nil)
	if err != nil {
		return
	}
	p.polls++
	resp, err := p.client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			p.errors++
		}
		return
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	at := time.Now()
	if err != nil || resp.StatusCode != http.StatusOK {
		if ctx.Err() == nil {
			p.errors++
		}
		return
	}
	present := make([]bool, len(p.ids))
	for rest := body; ; {
		i := bytes.Index(rest, idKey)
		if i < 0 {
			break
		}
		rest = rest[i+len(`"ID":"`):]
		end := bytes.IndexByte(rest, '"')
		if end < 0 {
			break
		}
		if k, ok := p.ids[string(rest[:end])]; ok {
			present[k] = true
		}
		rest = rest[end:]
	}
	var absent []int
	for k, ok := range present {
		if !ok {
			absent = append(absent, k)
		}
	}
	p.answers = append(p.answers, pollAnswer{at, absent})
}

// seenBy returns, for every (poller, change) pair, how long after the
// change the poller's first answer reflecting it came (within hold), and
// how many pairs never saw it within hold (a change shorter than the
// interval can be missed entirely).
func seenBy(pollers []*poller, changes []*change, hold time.Duration) (lat []float64, missed int) {
	for _, p := range pollers {
		for _, ch := range changes {
			if ch.Err != "" {
				continue
			}
			k, _ := slices.BinarySearchFunc(p.answers, ch.t0, func(a pollAnswer, t time.Time) int { return a.at.Compare(t) })
			found := false
			for ; k < len(p.answers) && p.answers[k].at.Sub(ch.t0) < hold; k++ {
				_, absent := slices.BinarySearch(p.answers[k].absent, ch.Instance)
				if absent == ch.Enter {
					lat = append(lat, ms(p.answers[k].at.Sub(ch.t0)))
					found = true
					break
				}
			}
			if !found {
				missed++
			}
		}
	}
	return lat, missed
}

// pollerSet is pollers running until stop.
type pollerSet struct {
	pollers []*poller
	cancel  context.CancelFunc
	done    chan struct{}
	once    sync.Once
}

// startPollers runs every poller until ctx ends or stop.
func startPollers(ctx context.Context, pollers []*poller) *pollerSet {
	ctx, cancel := context.WithCancel(ctx)
	ps := &pollerSet{pollers: pollers, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(ps.done)
		var wg sync.WaitGroup
		for _, p := range pollers {
			wg.Go(func() { p.run(ctx) })
		}
		wg.Wait()
	}()
	return ps
}

// stop ends the pollers and waits for them; it may be called again.
func (ps *pollerSet) stop() {
	ps.once.Do(func() {
		ps.cancel()
		<-ps.done
	})
}

// interval is the pollers' interval.
func (ps *pollerSet) interval() time.Duration { return ps.pollers[0].interval }
