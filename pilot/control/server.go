package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The endpoints, by route pattern: the pattern is also the endpoint label
// of pilot_control_requests_total, so a job's name never becomes a label
// value.
const (
	pathStatus      = "/v1/status"
	pathHealth      = "/v1/health"
	pathReload      = "/v1/reload"
	pathMaintenance = "/v1/maintenance"
	pathEnv         = "/v1/env"
	pathMetrics     = "/v1/metrics"
	pathRestart     = "/v1/jobs/{name}/restart"
	pathSignal      = "/v1/jobs/{name}/signal"
	pathReloadJob   = "/v1/jobs/{name}/reload"
	// endpointOther labels the requests for a path pilot does not serve.
	endpointOther = "other"
)

// Server serves an API on the control socket.
type Server struct {
	api      API
	log      *slog.Logger
	requests *prometheus.CounterVec // nil: not counted
	srv      *http.Server
}

// NewServer builds the server; Serve serves it on a listener (Listen's).
// With a Registerer it counts requests in pilot_control_requests_total
// {endpoint,code}; nil counts nothing. A logger is optional.
func NewServer(api API, reg prometheus.Registerer, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{api: api, log: log}
	if reg != nil {
		s.requests = registerRequests(reg, log)
	}
	mux := http.NewServeMux()
	s.route(mux, http.MethodGet, pathStatus, s.status)
	s.route(mux, http.MethodGet, pathHealth, s.health)
	s.route(mux, http.MethodPost, pathReload, s.reload)
	s.route(mux, http.MethodPost, pathMaintenance, s.maintenance)
	s.route(mux, http.MethodPost, pathEnv, s.putEnv)
	s.route(mux, http.MethodPost, pathMetrics, s.setMetrics)
	s.route(mux, http.MethodPost, pathRestart, s.restart)
	s.route(mux, http.MethodPost, pathSignal, s.signal)
	s.route(mux, http.MethodPost, pathReloadJob, s.reloadJob)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.respond(w, r, endpointOther, 0, nil, &requestError{status: http.StatusNotFound,
			msg: fmt.Sprintf("no endpoint %s %s: pilot serves GET %s, GET %s, POST %s, %s, %s, %s, %s, %s and %s",
				r.Method, r.URL.Path, pathStatus, pathHealth, pathReload, pathMaintenance, pathEnv, pathMetrics, pathRestart, pathSignal, pathReloadJob)})
	})
	s.srv = &http.Server{
		Handler: mux,
		// A local client sends its request at once; these only bound
		// what a stuck or hostile one can hold. There is no write
		// timeout: a reload or a restart answers when the jobs have
		// stopped, which their stopTimeout bounds.
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return s
}

// registerRequests registers the request counter, or finds the one a
// previous server registered on reg (a server built again, as after a
// reload, counts on). Any other failure costs the metric, not the socket.
func registerRequests(reg prometheus.Registerer, log *slog.Logger) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pilot_control_requests_total",
		Help: "Requests to the control socket, by endpoint (the route pattern) and HTTP status code.",
	}, []string{"endpoint", "code"})
	err := reg.Register(c)
	if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
		if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
			return existing
		}
	}
	if err != nil {
		log.Warn("control: pilot_control_requests_total not registered; requests are not counted", "err", err)
		return nil
	}
	return c
}

// Serve serves on ln until Shutdown, then returns nil.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops accepting, lets requests in flight finish until ctx ends,
// then closes what is left, which cancels their contexts. It closes the
// listener, which removes the socket file (Listen's).
func (s *Server) Shutdown(ctx context.Context) {
	if err := s.srv.Shutdown(ctx); err != nil {
		s.srv.Close()
	}
}

// handler serves one endpoint: it returns the body to send with status
// (0 for 200), or an error that respond maps to a status.
type handler func(w http.ResponseWriter, r *http.Request) (status int, body any, err error)

// route registers h for method on pattern. The method is checked here
// rather than in the pattern so that a wrong one gets a JSON 405 (the
// mux's own is plain text) and is counted under its endpoint.
func (s *Server) route(mux *http.ServeMux, method, pattern string, h handler) {
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method {
			w.Header().Set("Allow", method)
			s.respond(w, r, pattern, 0, nil, &requestError{status: http.StatusMethodNotAllowed,
				msg: fmt.Sprintf("%s %s: method not allowed; use %s", r.Method, r.URL.Path, method)})
			return
		}
		status, body, err := h(w, r)
		s.respond(w, r, pattern, status, body, err)
	})
}

// errorBody is every error's JSON: the message, and for a config a reload
// refused, its problems one each.
type errorBody struct {
	Error    string   `json:"error"`
	Problems []string `json:"problems,omitempty"`
}

// respond writes body (or err, mapped to a status) as JSON, logs the
// request and counts it.
func (s *Server) respond(w http.ResponseWriter, r *http.Request, endpoint string, status int, body any, err error) {
	if err != nil {
		status, body = errorResponse(r.Context(), err)
	}
	if status == 0 {
		status = http.StatusOK
	}
	data, merr := json.MarshalIndent(body, "", "  ")
	if merr != nil {
		status = http.StatusInternalServerError
		data, _ = json.Marshal(errorBody{Error: "encoding the answer: " + merr.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(data, '\n'))

	if s.requests != nil {
		s.requests.WithLabelValues(endpoint, strconv.Itoa(status)).Inc()
	}
	s.logRequest(r, endpoint, status, err)
}

// logRequest leaves an audit trail of what changed pilot (every POST that
// succeeded, at info), what pilot failed at (5xx, warn) and the rest at
// debug: a status poll every few seconds must not fill the log.
func (s *Server) logRequest(r *http.Request, endpoint string, status int, err error) {
	level := slog.LevelDebug
	switch {
	case status >= 500:
		level = slog.LevelWarn
	case r.Method == http.MethodPost && endpoint != endpointOther:
		level = slog.LevelInfo
	}
	attrs := []any{"method", r.Method, "path", r.URL.Path, "code", status}
	if err != nil {
		attrs = append(attrs, "err", err.Error())
	}
	s.log.Log(r.Context(), level, "control: request", attrs...)
}

// errorResponse maps an error to its status and JSON body.
func errorResponse(ctx context.Context, err error) (int, errorBody) {
	if re, ok := errors.AsType[*requestError](err); ok {
		return re.status, errorBody{Error: re.msg}
	}
	if ce, ok := errors.AsType[*ConfigError](err); ok {
		head, _, _ := strings.Cut(ce.Error(), ":\n")
		return http.StatusUnprocessableEntity, errorBody{Error: head, Problems: nonNil(ce.Problems)}
	}
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrUnknownJob):
		status = http.StatusNotFound
	case errors.Is(err, ErrJobNotRunning), errors.Is(err, ErrReloadInProgress):
		status = http.StatusConflict
	case errors.Is(err, ErrShuttingDown):
		status = http.StatusServiceUnavailable
	case isType[*UnknownMetricError](err):
		status = http.StatusNotFound
	case isType[*InvalidError](err), errors.Is(err, ErrNotCluster):
		status = http.StatusBadRequest
	case ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		// The client went away or pilot is shutting down: no one may
		// read this, but the log and the counter will.
		status = http.StatusServiceUnavailable
	}
	return status, errorBody{Error: err.Error()}
}

func isType[T error](err error) bool {
	_, ok := errors.AsType[T](err)
	return ok
}

func nonNil(list []string) []string { return nonNilSlice(list) }

func nonNilSlice[T any](list []T) []T {
	if list == nil {
		return []T{}
	}
	return list
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) (int, any, error) {
	if err := s.readEmpty(w, r); err != nil {
		return 0, nil, err
	}
	return 0, s.api.Status(), nil
}

// health answers 200 when pilot is healthy, 503 otherwise: what Docker's
// HEALTHCHECK (through pilot health, or curl -f) reads. The verdict is the
// core's (API.Health); the server only makes sure the answer is whole.
func (s *Server) health(w http.ResponseWriter, r *http.Request) (int, any, error) {
	if err := s.readEmpty(w, r); err != nil {
		return 0, nil, err
	}
	report := s.api.Health()
	report.Unhealthy = nonNilSlice(report.Unhealthy)
	if !report.Healthy {
		if report.Reason == "" {
			report.Reason = "not healthy"
		}
		report.Error = report.Reason
		return http.StatusServiceUnavailable, report, nil
	}
	report.Reason, report.Error = "", ""
	return 0, report, nil
}

func (s *Server) reload(w http.ResponseWriter, r *http.Request) (int, any, error) {
	if err := s.readEmpty(w, r); err != nil {
		return 0, nil, err
	}
	res, err := s.api.Reload(r.Context())
	if err != nil {
		return 0, nil, err
	}
	// Lists, never null, for scripts that iterate over them.
	res.Restarted, res.Started, res.Stopped = nonNil(res.Restarted), nonNil(res.Started), nonNil(res.Stopped)
	return 0, res, nil
}

func (s *Server) maintenance(w http.ResponseWriter, r *http.Request) (int, any, error) {
	body, rerr := readBody(w, r)
	if rerr != nil {
		return 0, nil, rerr
	}
	on, rerr := decodeMaintenance(body)
	if rerr != nil {
		return 0, nil, rerr
	}
	if err := s.api.SetMaintenance(r.Context(), on); err != nil {
		return 0, nil, err
	}
	return 0, map[string]bool{"enabled": on}, nil
}

func (s *Server) putEnv(w http.ResponseWriter, r *http.Request) (int, any, error) {
	body, rerr := readBody(w, r)
	if rerr != nil {
		return 0, nil, rerr
	}
	vars, rerr := decodeEnv(body)
	if rerr != nil {
		return 0, nil, rerr
	}
	if err := s.api.PutEnv(vars); err != nil {
		return 0, nil, err
	}
	return 0, map[string][]string{"set": sortedKeys(vars)}, nil
}

func (s *Server) setMetrics(w http.ResponseWriter, r *http.Request) (int, any, error) {
	body, rerr := readBody(w, r)
	if rerr != nil {
		return 0, nil, rerr
	}
	values, rerr := decodeMetrics(body)
	if rerr != nil {
		return 0, nil, rerr
	}
	if err := s.api.SetMetrics(values); err != nil {
		return 0, nil, err
	}
	return 0, map[string][]string{"set": sortedKeys(values)}, nil
}

func (s *Server) restart(w http.ResponseWriter, r *http.Request) (int, any, error) {
	name := r.PathValue("name")
	if err := s.readEmpty(w, r); err != nil {
		return 0, nil, err
	}
	if err := s.api.RestartJob(r.Context(), name); err != nil {
		return 0, nil, s.jobError(name, err)
	}
	return 0, map[string]string{"restarted": name}, nil
}

func (s *Server) reloadJob(w http.ResponseWriter, r *http.Request) (int, any, error) {
	name := r.PathValue("name")
	if err := s.readEmpty(w, r); err != nil {
		return 0, nil, err
	}
	res, err := s.api.ReloadJob(r.Context(), name)
	if err != nil {
		return 0, nil, s.jobError(name, err)
	}
	return 0, res, nil
}

func (s *Server) signal(w http.ResponseWriter, r *http.Request) (int, any, error) {
	name := r.PathValue("name")
	body, rerr := readBody(w, r)
	if rerr != nil {
		return 0, nil, rerr
	}
	sig, rerr := decodeSignal(body)
	if rerr != nil {
		return 0, nil, rerr
	}
	if err := s.api.SignalJob(name, sig); err != nil {
		return 0, nil, s.jobError(name, err)
	}
	return 0, map[string]string{"signaled": name, "signal": signalName(sig)}, nil
}

// jobError makes sure an error about a job names it, and for an unknown
// one, lists the jobs there are: `restart wbe` is a typo more often than
// not.
func (s *Server) jobError(name string, err error) error {
	if !strings.Contains(err.Error(), strconv.Quote(name)) {
		err = fmt.Errorf("job %q: %w", name, err)
	}
	if errors.Is(err, ErrUnknownJob) {
		var names []string
		for _, j := range s.api.Status().Jobs {
			names = append(names, j.Name)
		}
		if len(names) == 0 {
			return fmt.Errorf("%w (pilot runs no jobs)", err)
		}
		return fmt.Errorf("%w (jobs: %s)", err, strings.Join(slices.Sorted(slices.Values(names)), ", "))
	}
	return err
}

// readEmpty reads the body of a request that takes none (decodeEmpty).
func (s *Server) readEmpty(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r)
	if err == nil {
		err = decodeEmpty(body)
	}
	if err != nil {
		return err // an error interface holding nil would read as an error
	}
	return nil
}
