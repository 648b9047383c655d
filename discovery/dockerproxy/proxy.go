package dockerproxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"time"
)

// Timeouts of the proxy's server and of its calls upstream. /events lifts
// the server's read and write deadlines for itself (see ServeHTTP).
type timeouts struct {
	readHeader, read, write, idle time.Duration
	// upstreamHeader bounds the wait for the upstream's response header;
	// dockerd sends /events' header at once, before any event.
	upstreamHeader time.Duration
}

var defaultTimeouts = timeouts{
	readHeader:     10 * time.Second,
	read:           30 * time.Second,
	write:          2 * time.Minute,
	idle:           2 * time.Minute,
	upstreamHeader: time.Minute,
}

// upstreamHost is the authority of requests to the unix socket, which
// dockerd ignores.
const upstreamHost = "docker"

// Proxy is the read-only filter: an http.Handler that forwards what
// Allowed allows to the Engine API's unix socket and refuses the rest.
type Proxy struct {
	upstream  string // the socket's path
	log       *slog.Logger
	rp        *httputil.ReverseProxy
	transport *http.Transport
	timeouts  timeouts
	// refusals and failures limit the warn lines of refused requests
	// and of upstream failures.
	refusals, failures *logLimiter
}

// New returns a Proxy to the Engine API listening on the unix socket at
// upstream (a path, not a URL). Nothing is dialled until a request comes:
// an upstream that is down is a 502 for each request until it is up.
// log nil discards the proxy's log.
func New(upstream string, log *slog.Logger) *Proxy {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{
		upstream: upstream,
		log:      log,
		timeouts: defaultTimeouts,
		refusals: newLogLimiter(time.Now, logBurst, logEvery),
		failures: newLogLimiter(time.Now, logBurst, logEvery),
	}
	p.transport = &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", upstream)
		},
		// Responses pass through as the daemon wrote them: no Accept-Encoding
		// added, nothing decompressed on the way.
		DisableCompression:    true,
		MaxIdleConns:          16,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: p.timeouts.upstreamHeader,
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:       rewrite,
		Transport:     p.transport,
		FlushInterval: -1, // /events: each event goes out as it comes
		ErrorHandler:  p.upstreamFailed,
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return p
}

type routeKey struct{}

// streamsKey carries, in a request's context, the context whose end ends
// the /events streams of a server that is shutting down.
type streamsKey struct{}

// ServeHTTP forwards an allowed request and refuses the rest with 403.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt, ok := match(r.Method, r.URL.EscapedPath())
	if !ok {
		p.refuse(w, r)
		return
	}
	p.log.Debug("forwarding", "method", r.Method, "path", rt.path, "remote", r.RemoteAddr)
	ctx := context.WithValue(r.Context(), routeKey{}, rt)
	if rt.stream {
		// An event stream lasts as long as its client wants: no read or
		// write deadline (the error of a writer that cannot have them, as
		// in tests, is moot), but an end when the server shuts down.
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Time{})
		_ = rc.SetWriteDeadline(time.Time{})
		if streams, ok := r.Context().Value(streamsKey{}).(context.Context); ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithCancel(ctx)
			defer cancel()
			stop := context.AfterFunc(streams, cancel)
			defer stop()
		}
	}
	p.rp.ServeHTTP(w, r.WithContext(ctx))
}

// rewrite builds the upstream request: the path that was matched and the
// query as sent, no body, no upgrade, no forwarding headers.
func rewrite(pr *httputil.ProxyRequest) {
	rt := pr.In.Context().Value(routeKey{}).(route)
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = upstreamHost
	pr.Out.URL.Path = rt.path
	pr.Out.URL.RawPath = ""
	pr.Out.URL.RawQuery = pr.In.URL.RawQuery
	pr.Out.Host = upstreamHost
	pr.Out.Body = nil
	pr.Out.ContentLength = 0
	pr.Out.TransferEncoding = nil
	pr.Out.Header.Del("Content-Length")
	pr.Out.Header.Del("Connection")
	pr.Out.Header.Del("Upgrade")
	pr.Out.Header.Del("Expect")
}

// maxLoggedPath bounds the path quoted in a refusal's message and log line.
const maxLoggedPath = 256

func (p *Proxy) refuse(w http.ResponseWriter, r *http.Request) {
	pth := r.URL.EscapedPath()
	if len(pth) > maxLoggedPath {
		pth = pth[:maxLoggedPath] + "…"
	}
	if ok, dropped := p.refusals.allow(); ok {
		attrs := []any{"method", r.Method, "path", pth, "remote", r.RemoteAddr}
		if dropped > 0 {
			attrs = append(attrs, "suppressed", dropped)
		}
		p.log.Warn("refused a request that is not read-only", attrs...)
	}
	writeError(w, http.StatusForbidden, fmt.Sprintf("pilot docker-proxy: %s %s is not allowed (%s)", r.Method, pth, AllowedSummary))
}

// upstreamFailed answers a request the upstream did not: 502, unless the
// client itself went away (then nobody reads the answer).
func (p *Proxy) upstreamFailed(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		p.log.Debug("request ended before the upstream answered", "method", r.Method, "path", r.URL.EscapedPath(), "err", err)
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	if ok, dropped := p.failures.allow(); ok {
		attrs := []any{"method", r.Method, "path", r.URL.EscapedPath(), "upstream", "unix://" + p.upstream, "err", err}
		if dropped > 0 {
			attrs = append(attrs, "suppressed", dropped)
		}
		p.log.Warn("the Docker Engine API did not answer", attrs...)
	}
	writeError(w, http.StatusBadGateway, fmt.Sprintf("pilot docker-proxy: the Docker Engine API at unix://%s did not answer: %v", p.upstream, err))
}

// writeError answers as dockerd does: a JSON object with a message, which
// Docker clients read only under exactly this Content-Type.
func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Message string `json:"message"`
	}{msg})
}

// CheckUpstream dials the upstream socket once, for a warning at start when
// it is not there yet.
func (p *Proxy) CheckUpstream(ctx context.Context) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", p.upstream)
	if err != nil {
		return err
	}
	return conn.Close()
}

// Serve serves the proxy on ln until ctx ends, then shuts down: it stops
// accepting, ends the /events streams, lets other requests finish and,
// after grace, closes whatever is left. It returns nil after a shutdown,
// else the error that stopped it. ln is closed when Serve returns (a
// unix socket's file with it, when net.Listen made it).
func (p *Proxy) Serve(ctx context.Context, ln net.Listener, grace time.Duration) error {
	streams, endStreams := context.WithCancel(context.Background())
	defer endStreams()
	srv := &http.Server{
		Handler:           p,
		ReadHeaderTimeout: p.timeouts.readHeader,
		ReadTimeout:       p.timeouts.read,
		WriteTimeout:      p.timeouts.write,
		IdleTimeout:       p.timeouts.idle,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
		BaseContext: func(net.Listener) context.Context {
			return context.WithValue(context.Background(), streamsKey{}, streams)
		},
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		ln.Close()
		return err
	case <-ctx.Done():
	}
	endStreams()
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		p.log.Warn("requests still open after the grace period; closing them", "grace", grace)
		srv.Close()
	}
	err := <-served
	p.transport.CloseIdleConnections()
	if !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
