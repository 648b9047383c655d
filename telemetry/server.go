package telemetry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Server serves /metrics from a Gatherer and /status from a func.
type Server struct {
	srv *http.Server
}

// NewServer builds the server; Serve serves it on a listener (Listen's).
// status is called for each GET /status.
func NewServer(g prometheus.Gatherer, status func() Status, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:      promLogger{log},
		ErrorHandling: promhttp.ContinueOnError, // one failing collector costs its series, not the scrape
		// gzip took 1.6 ms of a 50-job scrape's ~5 ms (BenchmarkMetricsHandler50Jobs):
		// pilot shares the container's CPU with the app, while ~70 KiB a
		// scrape costs nothing on the network a scraper sits on.
		DisableCompression: true,
	}))
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		body, err := json.MarshalIndent(status(), "", "  ")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(append(body, '\n'))
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "pilot: /metrics (Prometheus), /status (JSON)")
	})
	return &Server{srv: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}}
}

// Serve serves on ln until Shutdown, then returns nil; after Shutdown it
// closes ln and returns nil at once.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops accepting, lets requests in flight finish until ctx ends,
// then closes what is left.
func (s *Server) Shutdown(ctx context.Context) {
	if err := s.srv.Shutdown(ctx); err != nil {
		s.srv.Close()
	}
}

// Bind retry pacing: from listenMinBackoff, doubling, capped at
// listenMaxBackoff (Consul's registration retries use the same bounds).
const (
	listenMinBackoff = 100 * time.Millisecond
	listenMaxBackoff = 5 * time.Second
)

// Listen binds addr (TCP). While it fails — the port is in use, or the
// address is not up yet — it retries with capped exponential backoff until
// ctx ends, and then returns ctx's error: telemetry must never keep the app
// from running. It logs the first failure as a warning, the next ones at
// debug level, and one info line when the bind succeeds after failing.
func Listen(ctx context.Context, addr string, log *slog.Logger) (net.Listener, error) {
	var lc net.ListenConfig
	backoff, failed := time.Duration(0), false
	for {
		ln, err := lc.Listen(ctx, "tcp", addr)
		if err == nil {
			if failed {
				log.Info("telemetry: bound at last", "address", ln.Addr().String())
			}
			return ln, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		backoff = min(max(2*backoff, listenMinBackoff), listenMaxBackoff)
		if !failed {
			log.Warn("telemetry: cannot listen; the jobs run on, /metrics and /status come once it binds", "address", addr, "err", err, "retry_in", backoff)
		} else {
			log.Debug("telemetry: still cannot listen", "address", addr, "err", err, "retry_in", backoff)
		}
		failed = true
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

type promLogger struct{ log *slog.Logger }

func (l promLogger) Println(v ...any) { l.log.Warn("telemetry: /metrics", "err", fmt.Sprint(v...)) }
