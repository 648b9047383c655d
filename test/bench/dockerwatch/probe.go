package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// setLog is a timeline of a set of servers (host:port) as a watcher
// shows it: each entry is a new set, with the time of the look that first
// saw it (a look that sees the same set again adds nothing).
type setLog struct {
	mu   sync.Mutex
	seen []setSeen
}

type setSeen struct {
	at      time.Time
	servers []string
}

// saw records the set seen by a look at at.
func (l *setLog) saw(at time.Time, servers []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := len(l.seen); n > 0 && slices.Equal(l.seen[n-1].servers, servers) {
		return
	}
	l.seen = append(l.seen, setSeen{at, servers})
}

// watchFile reads the rendered file every period into l until ctx ends.
func watchFile(ctx context.Context, l *setLog, path string, period time.Duration) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		b, _ := os.ReadFile(path)
		l.saw(time.Now(), servers(b))
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// watchAPI asks a Traefik's API for the service's servers every period
// (one request at a time) into l until ctx ends. A look that fails adds
// nothing.
func watchAPI(ctx context.Context, l *setLog, t *traefikProc, service string, period time.Duration) {
	client := &http.Client{Timeout: 2 * time.Second}
	url := fmt.Sprintf("http://127.0.0.1:%d/api/http/services/%s", t.api, service)
	for ctx.Err() == nil {
		at := time.Now()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := client.Do(req); err == nil {
			var svc struct {
				LoadBalancer struct {
					Servers []struct{ URL string }
				}
			}
			if resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&svc) == nil {
				var s []string
				for _, srv := range svc.LoadBalancer.Servers {
					s = append(s, strings.TrimPrefix(srv.URL, "http://"))
				}
				slices.Sort(s)
				l.saw(at, s)
			}
			resp.Body.Close()
		}
		select {
		case <-ctx.Done():
		case <-time.After(period):
		}
	}
}

// servers parses an nginx upstream's server lines.
func servers(b []byte) []string {
	var s []string
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(strings.TrimSuffix(strings.TrimSpace(line), ";"))
		if len(f) >= 2 && f[0] == "server" && !slices.Contains(f[2:], "down") {
			s = append(s, strings.TrimSuffix(f[1], ";"))
		}
	}
	slices.Sort(s)
	return s
}

// added is the first look at or after since that lists addr.
func (r *setLog) added(addr string, since time.Time) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.seen {
		if !s.at.Before(since) && slices.Contains(s.servers, addr) {
			return s.at, true
		}
	}
	return time.Time{}, false
}

// removed is the first look in [since, until) that no longer lists
// addr and after which, up to until, no look lists it again; found is
// false while the last look still lists it. A new entry is only made when
// the set changes, so the state at since is the last look before it.
func (r *setLog) removed(addr string, since, until time.Time) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var at time.Time
	for _, s := range r.seen {
		if !s.at.Before(until) {
			break
		}
		has := slices.Contains(s.servers, addr)
		switch {
		case has:
			at = time.Time{}
		case at.IsZero() && !s.at.Before(since):
			at = s.at
		}
	}
	return at, !at.IsZero()
}

// current is the servers of the last look.
func (r *setLog) current() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.seen) == 0 {
		return nil
	}
	return r.seen[len(r.seen)-1].servers
}

// prober sends GET / with the service's Host header through a Traefik's
// web entrypoint, one request at a time with a pause between, and keeps
// every answer: who gave it (the body is the container's hostname) or that
// it failed. One at a time keeps it light: on this 2-CPU machine a round
// trip through Traefik to busybox httpd (a fork per request) takes tens of
// ms under load, and requests sent faster than that only queue. A request
// that Traefik still routes to a stopped container hangs (the address no
// longer answers; Traefik's dial timeout is 30 s) or fails with 502: it is
// given up after timeout and counts as failed.
type prober struct {
	t    *traefikProc
	mu   sync.Mutex
	seen []answer
}

type answer struct {
	sent time.Time
	from string // the container's name for a 200; else "" (502, timeout)
	code int
	err  string
}

func (p *prober) run(ctx context.Context, host string, pause, timeout time.Duration) {
	client := &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true},
		Timeout:   timeout,
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", p.t.web)
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		req.Host = host
		a := answer{sent: time.Now()}
		if resp, err := client.Do(req); err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
			resp.Body.Close()
			a.code = resp.StatusCode
			if resp.StatusCode == http.StatusOK {
				a.from = strings.TrimSpace(string(b))
			}
		} else {
			a.err = err.Error()
		}
		p.mu.Lock()
		p.seen = append(p.seen, a)
		p.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
	}
}

// added is the send time of the first request at or after since that the
// container name answered.
func (p *prober) added(name string, since time.Time) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range p.seen {
		if !a.sent.Before(since) && a.from == name {
			return a.sent, true
		}
	}
	return time.Time{}, false
}

// counts is how many requests in [since, until) were sent and how many
// failed (not 200: a 502, or no answer within the timeout).
func (p *prober) counts(since, until time.Time) (sent, failed int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range p.seen {
		if a.sent.Before(since) || !a.sent.Before(until) {
			continue
		}
		sent++
		if a.code != http.StatusOK {
			failed++
		}
	}
	return sent, failed
}

// errors counts the reasons requests failed.
func (p *prober) errors() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := map[string]int{}
	for _, a := range p.seen {
		switch {
		case a.err != "":
			e := a.err
			if i := strings.LastIndex(e, ": "); i >= 0 {
				e = e[i+2:]
			}
			m[e]++
		case a.code != http.StatusOK:
			m[fmt.Sprint(a.code)]++
		}
	}
	return m
}
