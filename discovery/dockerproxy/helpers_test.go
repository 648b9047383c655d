package dockerproxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// engineDate is the Date of every answer of the fake engine, so that an
// answer read directly and one read through the proxy compare whole.
const engineDate = "Mon, 02 Jan 2006 15:04:05 GMT"

var versionedPath = regexp.MustCompile(`^/v[0-9.]+(/.*)$`)

// seen is a request as it reached the fake engine.
type seen struct {
	method, path, rawPath, query string
	header                       http.Header
	body                         string
}

func (s seen) String() string { return s.method + " " + s.path }

// fakeEngine is a Docker Engine API on a unix socket that records what
// reaches it. Its /events sends one event, waits for release, sends a
// second and ends.
type fakeEngine struct {
	sock    string
	srv     *httptest.Server
	release chan struct{}
	// apiVersion is the Api-Version the engine answers with.
	apiVersion string

	mu   sync.Mutex
	reqs []seen
}

const (
	event1 = `{"status":"start","id":"3f4e5d6c7b8a","Type":"container","Action":"start","time":1700000000}` + "\n"
	event2 = `{"status":"die","id":"3f4e5d6c7b8a","Type":"container","Action":"die","time":1700000001}` + "\n"
)

const containersJSON = `[{"Id":"3f4e5d6c7b8a","Names":["/app-web-1"],"Image":"node:22","State":"running","Status":"Up 2 minutes","Labels":{"com.docker.compose.service":"web"}}]`

func newFakeEngine(t *testing.T) *fakeEngine { return newFakeEngineAt(t, "1.47") }

func newFakeEngineAt(t *testing.T, apiVersion string) *fakeEngine {
	t.Helper()
	e := &fakeEngine{sock: filepath.Join(t.TempDir(), "docker.sock"), release: make(chan struct{}), apiVersion: apiVersion}
	ln, err := net.Listen("unix", e.sock)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewUnstartedServer(http.HandlerFunc(e.serve))
	e.srv.Listener.Close()
	e.srv.Listener = ln
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	return e
}

func (e *fakeEngine) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	e.mu.Lock()
	e.reqs = append(e.reqs, seen{r.Method, r.URL.Path, r.URL.RawPath, r.URL.RawQuery, r.Header.Clone(), string(body)})
	e.mu.Unlock()
	h := w.Header()
	h.Set("Date", engineDate)
	h.Set("Api-Version", e.apiVersion)
	h.Set("Docker-Experimental", "false")
	h.Set("Ostype", "linux")
	h.Set("Server", "Docker/27.5.1 (linux)")
	path := r.URL.Path
	if v := versionedPath.FindStringSubmatch(path); v != nil {
		path = v[1]
	}
	switch path {
	case "/_ping":
		h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
		h.Set("Pragma", "no-cache")
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Content-Length", "2")
		if r.Method != http.MethodHead {
			io.WriteString(w, "OK")
		}
	case "/containers/json":
		h.Set("Content-Type", "application/json")
		h.Set("X-Odd-Header", "kept as is")
		h.Add("X-Odd-Header", "twice")
		io.WriteString(w, containersJSON+"\n")
	case "/containers/gone/json":
		h.Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"message":"No such container: gone"}`+"\n")
	case "/events":
		h.Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		rc.Flush()
		io.WriteString(w, event1)
		rc.Flush()
		select {
		case <-e.release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, event2)
		rc.Flush()
	default:
		h.Set("Content-Type", "application/json")
		if id, ok := strings.CutPrefix(path, "/containers/"); ok && strings.HasSuffix(id, "/json") {
			fmt.Fprintf(w, `{"Id":%q,"State":{"Running":true}}`+"\n", strings.TrimSuffix(id, "/json"))
			return
		}
		w.WriteHeader(http.StatusNotImplemented)
		fmt.Fprintf(w, `{"message":"fake engine: %s %s"}`+"\n", r.Method, r.URL.Path)
	}
}

// requests returns what has reached the engine so far.
func (e *fakeEngine) requests() []seen {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]seen(nil), e.reqs...)
}

// direct is a client of the engine's own socket, bypassing the proxy.
func (e *fakeEngine) direct(t *testing.T) *http.Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", e.sock)
	}, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// startProxy serves p on a free loopback port until the test ends and
// returns its address.
func startProxy(t *testing.T, p *Proxy) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln, 5*time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// httpClient is an HTTP client for the test, its idle connections closed at
// the end (goleak).
func httpClient(t *testing.T) *http.Client {
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// rawRequest sends target as is on the request line — no client
// normalises it — and reads the answer whole.
func rawRequest(t *testing.T, addr, method, target string, extra ...string) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := method + " " + target + " HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n"
	for _, h := range extra {
		req += h + "\r\n"
	}
	if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: body: %v", method, target, err)
	}
	return resp, body
}

// logBuffer collects log records for the test to count.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) lines(substr string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, l := range strings.Split(b.buf.String(), "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}

func newLog(b *logBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
