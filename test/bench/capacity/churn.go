package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nodepilot/pilot/test/bench/benchkit"
)

// change is one instance put into Consul's maintenance mode (Enter) or
// taken out of it, on the client agent that holds it: the instance leaves
// ?passing, or comes back. T0 is read just before the HTTP call.
type change struct {
	Instance int     `json:"instance"` // index into the registrations
	Enter    bool    `json:"enter"`
	APIMs    float64 `json:"api_ms"`
	FileMs   float64 `json:"file_ms"` // the watcher's rendered file reflects it; -1 when not seen
	Err      string  `json:"err,omitempty"`

	t0 time.Time
}

// churner drives changes at a steady rate. Each instance stays in
// maintenance for hold (about k = rate·hold/2 at once) and is left alone
// for hold after it comes back, so that whoever looks for one change's
// effect within hold of it cannot confuse it with the next change of the
// same instance.
type churner struct {
	regs   []registration
	client *http.Client
	rate   float64
	hold   time.Duration

	inMaint []int             // FIFO of instances in maintenance
	touched map[int]time.Time // last change of each instance
}

func newChurner(regs []registration, client *http.Client, rate float64, hold time.Duration) *churner {
	return &churner{regs: regs, client: client, rate: rate, hold: hold, touched: map[int]time.Time{}}
}

// k is how many instances are in maintenance at once.
func (c *churner) k() int {
	return max(1, min(int(c.rate*c.hold.Seconds()/2), len(c.regs)/4))
}

// run makes changes at c.rate until ctx ends and returns them, once each
// HTTP call has returned. The calls of one instance are made in order, by
// a goroutine of its own (two of its changes may be due closer together
// than a call takes on a busy machine); those of different instances
// overlap, so that the pace holds.
func (c *churner) run(ctx context.Context) []*change {
	tick := time.NewTicker(time.Duration(float64(time.Second) / c.rate))
	defer tick.Stop()
	var out []*change
	queues := map[int]chan *change{}
	var wg sync.WaitGroup
	for {
		select {
		case <-ctx.Done():
			for _, q := range queues {
				close(q)
			}
			wg.Wait()
			return out
		case <-tick.C:
		}
		ch := c.next()
		out = append(out, ch)
		q, ok := queues[ch.Instance]
		if !ok {
			q = make(chan *change, 16)
			queues[ch.Instance] = q
			wg.Go(func() {
				for ch := range q {
					c.apply(ch)
				}
			})
		}
		q <- ch
	}
}

// next picks the next change: an instance in when fewer than k are,
// else the oldest one out.
func (c *churner) next() *change {
	now := time.Now()
	if len(c.inMaint) >= c.k() {
		i := c.inMaint[0]
		c.inMaint = c.inMaint[1:]
		c.touched[i] = now
		return &change{Instance: i, Enter: false, FileMs: -1}
	}
	var rested, free []int
	for i := range c.regs {
		if slices.Contains(c.inMaint, i) {
			continue
		}
		free = append(free, i)
		if now.Sub(c.touched[i]) >= c.hold {
			rested = append(rested, i)
		}
	}
	pool := rested
	if len(pool) == 0 { // a small fleet (the smoke run): take any
		pool = free
	}
	i := pool[rand.N(len(pool))]
	c.inMaint = append(c.inMaint, i)
	c.touched[i] = now
	return &change{Instance: i, Enter: true, FileMs: -1}
}

func (c *churner) apply(ch *change) {
	r := c.regs[ch.Instance]
	ch.t0 = time.Now()
	ch.Err = errString(setMaintenance(c.client, r, ch.Enter))
	ch.APIMs = ms(time.Since(ch.t0))
}

// clear takes every instance the churner touched out of maintenance (not
// recorded).
func (c *churner) clear() error {
	var errs []string
	for i := range c.touched {
		if err := setMaintenance(c.client, c.regs[i], false); err != nil {
			errs = append(errs, err.Error())
		}
	}
	c.inMaint = nil
	if len(errs) > 0 {
		return fmt.Errorf("leaving maintenance: %s", strings.Join(errs, "; "))
	}
	return nil
}

// setMaintenance is PUT /v1/agent/service/maintenance/ID on the instance's
// own agent, as `consul maint -service` does.
func setMaintenance(client *http.Client, r registration, on bool) error {
	u := fmt.Sprintf("%s/v1/agent/service/maintenance/%s?enable=%t&reason=%s", r.agent, url.PathEscape(r.ID), on, url.QueryEscape("capacity bench"))
	req, err := http.NewRequest(http.MethodPut, u, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("PUT maintenance %s: %s", r.ID, resp.Status)
	}
	return nil
}

// fileVersions records every version of a rendered upstream: at each
// rename of pilot's temporary file over it (inotify), the servers it
// lists, with a 50 ms safety poll for a lost event.
type fileVersions struct {
	mu sync.Mutex
	v  []fileVersion
}

type fileVersion struct {
	at  time.Time
	set string // " " + benchkit.Canonical(servers) + " "
}

// follow records versions of path until ctx ends; events come from a
// benchkit.WatchDir on its directory.
func (f *fileVersions) follow(ctx context.Context, path string, events <-chan benchkit.FileEvent) {
	safety := time.NewTicker(50 * time.Millisecond)
	defer safety.Stop()
	last := ""
	record := func(at time.Time) {
		set := " " + benchkit.UpstreamServers(path) + " "
		if set == last {
			return
		}
		last = set
		f.mu.Lock()
		f.v = append(f.v, fileVersion{at, set})
		f.mu.Unlock()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-events:
			if ev.Moved {
				record(ev.At)
			}
		case <-safety.C:
			record(time.Now())
		}
	}
}

// seen sets FileMs of each change: the first version at or after its t0,
// and within hold, in which its instance is absent (Enter) or present.
func (f *fileVersions) seen(changes []*change, regs []registration, hold time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ch := range changes {
		if ch.Err != "" {
			continue
		}
		addr := " " + regs[ch.Instance].Addr + " "
		k, _ := slices.BinarySearchFunc(f.v, ch.t0, func(v fileVersion, t time.Time) int { return v.at.Compare(t) })
		for ; k < len(f.v) && f.v[k].at.Sub(ch.t0) < hold; k++ {
			if strings.Contains(f.v[k].set, addr) != ch.Enter {
				ch.FileMs = ms(f.v[k].at.Sub(ch.t0))
				break
			}
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
