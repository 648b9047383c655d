package dockerproxy

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// Allowed calls come back as the engine answered them: status, every
// header, body; and the engine sees exactly the path that was matched.
func TestProxyPassesThroughByteForByte(t *testing.T) {
	t.Parallel()
	e := newFakeEngine(t)
	addr := startProxy(t, New(e.sock, nil))
	viaProxy, direct := httpClient(t), e.direct(t)
	for _, c := range []struct{ method, target string }{
		{http.MethodHead, "/_ping"},
		{http.MethodGet, "/_ping"},
		{http.MethodGet, "/v1.47/containers/json?all=1&filters=%7B%22label%22%3A%5B%22com.docker.compose.project%3Dapp%22%5D%7D"},
		{http.MethodGet, "/containers/gone/json"}, // a 404 of the engine's
		{http.MethodGet, "/v1.47/info"},           // whatever it answers (here 501)
		{http.MethodGet, "/networks/app_default"},
	} {
		do := func(c0 *http.Client, base string) (*http.Response, []byte) {
			req, err := http.NewRequest(c.method, base+c.target, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := c0.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", c.method, c.target, err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			return resp, body
		}
		want, wantBody := do(direct, "http://docker")
		got, gotBody := do(viaProxy, "http://"+addr)
		if got.StatusCode != want.StatusCode {
			t.Errorf("%s %s: status %d through the proxy, %d from the engine", c.method, c.target, got.StatusCode, want.StatusCode)
		}
		if !reflect.DeepEqual(got.Header, want.Header) {
			t.Errorf("%s %s: headers through the proxy\n%v\nfrom the engine\n%v", c.method, c.target, got.Header, want.Header)
		}
		if string(gotBody) != string(wantBody) {
			t.Errorf("%s %s: body through the proxy %q, from the engine %q", c.method, c.target, gotBody, wantBody)
		}
	}
	// Each call reached the engine twice, once directly and once through
	// the proxy, alike.
	reqs := e.requests()
	for i := 0; i+1 < len(reqs); i += 2 {
		d, p := reqs[i], reqs[i+1]
		if d.method != p.method || d.path != p.path || d.query != p.query {
			t.Errorf("the proxy sent %s %s?%s; directly: %s %s?%s", p.method, p.path, p.query, d.method, d.path, d.query)
		}
	}
}

// What reaches the engine is the cleaned path that was matched, with the
// query as sent, and nothing that could make a read into more: no body,
// no upgrade to a raw stream.
func TestProxyForwardsWhatItMatched(t *testing.T) {
	t.Parallel()
	e := newFakeEngine(t)
	addr := startProxy(t, New(e.sock, nil))
	for _, c := range []struct {
		target, path, query string
		extra               []string
	}{
		{"//containers/json?all=1", "/containers/json", "all=1", nil},
		{"/containers/abc/../json/", "/containers/json", "", nil},
		{"/v1.47/containers/./app-web-1/json?size=1", "/v1.47/containers/app-web-1/json", "size=1", nil},
		{"/_ping", "/_ping", "", []string{"Connection: Upgrade", "Upgrade: tcp", "Content-Length: 11", "", "hello world"}},
		{"/events?since=0", "/events", "since=0", []string{"Expect: 100-continue", "Transfer-Encoding: chunked", "", "5", "hello", "0", ""}},
	} {
		before := len(e.requests())
		if strings.HasPrefix(c.target, "/events") {
			close(e.release) // this stream ends after its two events
		}
		resp, _ := rawRequest(t, addr, http.MethodGet, c.target, c.extra...)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: status %d", c.target, resp.StatusCode)
			continue
		}
		reqs := e.requests()[before:]
		if len(reqs) != 1 {
			t.Errorf("GET %s: the engine saw %v", c.target, reqs)
			continue
		}
		r := reqs[0]
		if r.path != c.path || r.rawPath != "" || r.query != c.query {
			t.Errorf("GET %s: the engine saw %s %q?%s, want %s?%s", c.target, r.method, r.path, r.query, c.path, c.query)
		}
		for _, h := range []string{"Upgrade", "Expect", "Content-Length", "Transfer-Encoding", "X-Forwarded-For"} {
			if v := r.header.Get(h); v != "" {
				t.Errorf("GET %s: the engine got %s: %s", c.target, h, v)
			}
		}
		if conn := r.header.Get("Connection"); strings.Contains(strings.ToLower(conn), "upgrade") {
			t.Errorf("GET %s: the engine got Connection: %s", c.target, conn)
		}
		if r.body != "" {
			t.Errorf("GET %s: the engine got a body %q", c.target, r.body)
		}
	}
}

// Everything else is a 403 with a message a Docker client prints, and
// never reaches the engine.
func TestProxyRefusesAndNeverForwards(t *testing.T) {
	t.Parallel()
	e := newFakeEngine(t)
	var logs logBuffer
	addr := startProxy(t, New(e.sock, newLog(&logs)))
	refused := []struct{ method, target string }{
		{http.MethodPost, "/containers/create"},
		{http.MethodPost, "/v1.47/containers/create?name=evil"},
		{http.MethodPost, "/containers/abc/exec"},
		{http.MethodPost, "/exec/abc/start"},
		{http.MethodGet, "/exec/abc/json"},
		{http.MethodGet, "/images/json"},
		{http.MethodPost, "/images/create?fromImage=alpine"},
		{http.MethodGet, "/containers/abc/logs?stdout=1"},
		{http.MethodGet, "/containers/abc/archive?path=/"},
		{http.MethodHead, "/containers/abc/archive?path=/"},
		{http.MethodGet, "/secrets"},
		{http.MethodGet, "/swarm"},
		{http.MethodDelete, "/containers/abc"},
		{http.MethodPost, "/containers/x/../create"},
		{http.MethodGet, "//containers"},
		{http.MethodGet, "/containers/abc%2F..%2F..%2Fimages%2Fjson"},
		{http.MethodGet, "/v1.47%2Fcontainers%2Fjson"},
		{http.MethodGet, "/containers/%2e%2e/exec/json"},
		{http.MethodOptions, "/_ping"},
	}
	for _, c := range refused {
		resp, body := rawRequest(t, addr, c.method, c.target, "Content-Length: 2", "", "{}")
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s %s: status %d, want 403", c.method, c.target, resp.StatusCode)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: Content-Type %q", c.method, c.target, ct)
		}
		if c.method == http.MethodHead {
			continue // no body
		}
		var msg struct{ Message string }
		if err := json.Unmarshal(body, &msg); err != nil {
			t.Errorf("%s %s: body %q: %v", c.method, c.target, body, err)
		}
		path, _, _ := strings.Cut(c.target, "?")
		want := "pilot docker-proxy: " + c.method + " " + path + " is not allowed (read-only: ping, version, info, containers list/inspect, events, networks)"
		if msg.Message != want {
			t.Errorf("%s %s: message %q, want %q", c.method, c.target, msg.Message, want)
		}
	}
	// The proxy answers a refusal itself, before any call upstream; a last
	// allowed call, after them all, is the only one the engine saw.
	if resp, _ := rawRequest(t, addr, http.MethodGet, "/_ping?sentinel=1"); resp.StatusCode != http.StatusOK {
		t.Fatalf("sentinel: status %d", resp.StatusCode)
	}
	if reqs := e.requests(); len(reqs) != 1 || reqs[0].query != "sentinel=1" {
		t.Errorf("the engine saw %v, want only the sentinel", reqs)
	}
	// Refusals are logged at warn, with method, path and remote — at most
	// a burst of them.
	warns := logs.lines("level=WARN")
	if len(warns) == 0 || len(warns) > logBurst {
		t.Errorf("%d warn lines for %d refusals, want 1..%d:\n%s", len(warns), len(refused), logBurst, strings.Join(warns, "\n"))
	}
	if len(warns) > 0 && !logLine(warns[0], "method=POST", "path=/containers/create", "remote=127.0.0.1:") {
		t.Errorf("refusal line lacks method, path or remote: %s", warns[0])
	}
	if debug := logs.lines("level=DEBUG"); !slices.ContainsFunc(debug, func(l string) bool { return logLine(l, "forwarding", "path=/_ping") }) {
		t.Errorf("no debug line for the allowed call:\n%s", strings.Join(debug, "\n"))
	}
}

// logLine reports whether line holds every part.
func logLine(line string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(line, p) {
			return false
		}
	}
	return true
}

// /events streams: the first event reaches the client before the engine
// sends the second, and a stream outlives the server's read and write
// timeouts.
func TestProxyEventsStream(t *testing.T) {
	t.Parallel()
	e := newFakeEngine(t)
	p := New(e.sock, nil)
	const timeout = 100 * time.Millisecond
	p.timeouts.read, p.timeouts.write = timeout, timeout
	addr := startProxy(t, p)

	resp, err := httpClient(t).Get("http://" + addr + "/v1.47/events?filters=%7B%7D")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	lines := make(chan string)
	readErr := make(chan error, 1)
	go func() {
		r := bufio.NewReader(resp.Body)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				readErr <- err
				close(lines)
				return
			}
			lines <- line
		}
	}()
	next := func(what string) string {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("%s: stream ended: %v", what, <-readErr)
			}
			return l
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: nothing after 5s", what)
		}
		return ""
	}
	// The engine holds the second event back until release: the first
	// can only be here if the proxy passed it on without waiting for more.
	if got := next("first event"); got != event1 {
		t.Fatalf("first event %q, want %q", got, event1)
	}
	// The delay between the events is what is under test: longer than the
	// server's read and write timeouts, which /events must lift.
	<-time.After(3 * timeout)
	close(e.release)
	if got := next("second event"); got != event2 {
		t.Fatalf("second event %q, want %q", got, event2)
	}
	if _, ok := <-lines; ok {
		t.Fatal("more than two events")
	}
	if err := <-readErr; !errors.Is(err, io.EOF) {
		t.Fatalf("the stream ended with %v, want its clean end", err)
	}
}

// A shutdown ends open /events streams instead of waiting out its grace
// period for them, stops listening, and returns nil.
func TestProxyShutdownEndsStreams(t *testing.T) {
	t.Parallel()
	e := newFakeEngine(t)
	p := New(e.sock, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln, time.Minute) }()

	resp, err := httpClient(t).Get("http://" + addr + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || first != event1 {
		t.Fatalf("first event %q, %v", first, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve still running 10s after the shutdown began, with a minute's grace: the open stream holds it")
	}
	if conn, err := net.Dial("tcp", addr); err == nil {
		conn.Close()
		t.Error("still listening after Serve returned")
	}
}

// An engine that is not there is a 502 with a message, per request; the
// proxy itself keeps serving.
func TestProxyUpstreamDown(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "absent.sock")
	var logs logBuffer
	p := New(sock, newLog(&logs))
	if err := p.CheckUpstream(context.Background()); err == nil {
		t.Fatal("CheckUpstream: no error for an absent socket")
	}
	addr := startProxy(t, p)
	for range 2 {
		resp, body := rawRequest(t, addr, http.MethodGet, "/v1.47/containers/json")
		if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		var msg struct{ Message string }
		if err := json.Unmarshal(body, &msg); err != nil || !strings.Contains(msg.Message, "unix://"+sock) {
			t.Fatalf("body %q: want a message naming the socket", body)
		}
	}
	if resp, _ := rawRequest(t, addr, http.MethodPost, "/containers/create"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a refused call: status %d, want 403", resp.StatusCode)
	}
	if n := len(logs.lines("did not answer")); n != 2 {
		t.Errorf("%d warn lines for 2 failed calls", n)
	}
}

// The log limiter lets a burst through, then one line per period, and the
// line after a gap says how many were dropped.
func TestProxyLogLimiter(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	l := newLogLimiter(func() time.Time { return now }, 3, 10*time.Second)
	type step struct {
		advance time.Duration
		ok      bool
		dropped int
	}
	for i, s := range []step{
		{0, true, 0}, {0, true, 0}, {0, true, 0}, // the burst
		{0, false, 0}, {time.Second, false, 0}, {8 * time.Second, false, 0}, // 9 s in: none back yet
		{time.Second, true, 3},                           // 10 s: one back, three dropped before it
		{0, false, 0},                                    // spent
		{25 * time.Second, true, 1},                      // 35 s: two back
		{0, true, 0},                                     // the second
		{0, false, 0},                                    // spent again
		{5 * time.Second, true, 1},                       // 40 s: the 5 s left over at 35 s counted
		{time.Hour, true, 0}, {0, true, 0}, {0, true, 0}, // full again, never more than the burst
		{0, false, 0},
	} {
		now = now.Add(s.advance)
		ok, dropped := l.allow()
		if ok != s.ok || dropped != s.dropped {
			t.Errorf("step %d (+%v): allow() = %v, %d; want %v, %d", i, s.advance, ok, dropped, s.ok, s.dropped)
		}
	}
}
