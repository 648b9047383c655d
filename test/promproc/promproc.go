// Package promproc runs a real Prometheus for tests: on a free loopback
// port, with a temporary config file and storage directory, stopped by its
// pid at cleanup, and queried through its HTTP API (/api/v1/query,
// /api/v1/targets). It also runs promtool, for config and rules checks.
//
// The binaries are $PILOT_PROMETHEUS_BIN and $PILOT_PROMTOOL_BIN when set,
// else the ones `bash test/prometheus.sh` builds from the module pinned in
// test/tools/prometheus (cached under .cache/prometheus/VERSION; never built
// from here). Debian's prometheus package will not do: it is built without
// Consul service discovery, so it refuses consul_sd_configs. When a binary
// cannot be had, the error satisfies toolbin.Unavailable, and Require and
// StartT fail the test.
//
//	p := promproc.StartT(t, promproc.Options{Config: prometheusYML})
//	v, err := p.Query(ctx, `up == 1`)
//
// A Server's methods are safe for concurrent use.
package promproc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nodepilot/pilot/test/consulagent"
	"github.com/nodepilot/pilot/test/toolbin"
)

// prometheus is the pinned build: ROOT/.cache/prometheus/VERSION/prometheus,
// with promtool beside it.
var prometheus = toolbin.Tool{
	Name: "prometheus", What: "prometheus", EnvVar: "PILOT_PROMETHEUS_BIN", Script: "prometheus.sh",
	Module: "github.com/prometheus/prometheus",
	Hint:   hint,
}

const hint = "set PILOT_PROMETHEUS_BIN and PILOT_PROMTOOL_BIN, or run `bash test/prometheus.sh` (builds the pinned Prometheus once, a few minutes; Debian's lacks Consul discovery)"

// PrometheusPath is $PILOT_PROMETHEUS_BIN or the pinned build.
func PrometheusPath() (string, error) { return prometheus.Path() }

// PromtoolPath is $PILOT_PROMTOOL_BIN or the pinned build's promtool.
func PromtoolPath() (string, error) {
	if p := os.Getenv("PILOT_PROMTOOL_BIN"); p != "" {
		path, err := exec.LookPath(p)
		if err != nil {
			return "", fmt.Errorf("promtool %w: PILOT_PROMTOOL_BIN: %v", toolbin.ErrUnavailable, err)
		}
		return path, nil
	}
	if os.Getenv(prometheus.EnvVar) != "" {
		return "", fmt.Errorf("promtool %w: %s is set but PILOT_PROMTOOL_BIN is not", toolbin.ErrUnavailable, prometheus.EnvVar)
	}
	p, err := prometheus.Path()
	if err != nil {
		return "", err
	}
	path, err := exec.LookPath(filepath.Join(filepath.Dir(p), "promtool"))
	if err != nil {
		return "", fmt.Errorf("promtool %w: %v", toolbin.ErrUnavailable, err)
	}
	return path, nil
}

// Require turns the error of finding or starting Prometheus or promtool
// into the test's outcome (toolbin's rule: a missing binary fails).
func Require(tb testing.TB, err error) {
	tb.Helper()
	prometheus.Require(tb, err)
}

// Promtool runs promtool with args in dir and returns its combined output;
// the error carries that output. Require(t, err) a PromtoolPath error first.
func Promtool(ctx context.Context, dir string, args ...string) (string, error) {
	bin, err := PromtoolPath()
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("promtool %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Options configure one Prometheus.
type Options struct {
	// Config is the whole prometheus.yml (global, scrape_configs, …).
	Config string
	// Dir holds the config, the storage and nothing else; default a fresh
	// temp dir, removed by Stop.
	Dir string
	// ReadyTimeout bounds the wait for /-/ready; default 30s.
	ReadyTimeout time.Duration
}

// Server is one running Prometheus.
type Server struct {
	port    int
	dir     string
	ownsDir bool
	out     *toolbin.LockedBuffer
	client  *http.Client
	cmd     *exec.Cmd
	end     chan struct{}
	once    sync.Once
}

// Start writes the config, starts Prometheus on a free loopback port and
// waits until /-/ready answers 200. The caller must Stop it. A config that
// Prometheus refuses shows in the error, with its log.
func Start(o Options) (_ *Server, err error) {
	bin, err := PrometheusPath()
	if err != nil {
		return nil, err
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 30 * time.Second
	}
	owns := o.Dir == ""
	if owns {
		if o.Dir, err = os.MkdirTemp("", "promproc-"); err != nil {
			return nil, err
		}
		defer func() {
			if err != nil {
				os.RemoveAll(o.Dir)
			}
		}()
	}
	ports, err := consulagent.FreePorts(1)
	if err != nil {
		return nil, err
	}
	s := &Server{
		port: ports[0], dir: o.Dir, ownsDir: owns, out: &toolbin.LockedBuffer{},
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}, Timeout: 5 * time.Second},
		end:    make(chan struct{}),
	}
	cfg := filepath.Join(o.Dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(o.Config), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin,
		"--config.file="+cfg,
		"--storage.tsdb.path="+filepath.Join(o.Dir, "data"),
		"--web.listen-address="+s.Addr(),
		"--log.level=info",
	)
	cmd.Dir = o.Dir
	cmd.Stdout, cmd.Stderr = s.out, s.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s.cmd = cmd
	go func() { _ = cmd.Wait(); close(s.end) }()

	deadline := time.Now().Add(o.ReadyTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-s.end:
			s.Stop()
			return nil, fmt.Errorf("prometheus exited during startup: %s", consulagent.Tail(s.Logs(), 3000))
		default:
		}
		if s.ready() {
			return s, nil
		}
		time.Sleep(20 * time.Millisecond) // poll interval, bounded by the deadline
	}
	logs := s.Logs()
	s.Stop()
	return nil, fmt.Errorf("prometheus not ready within %v: %s", o.ReadyTimeout, consulagent.Tail(logs, 3000))
}

// StartT starts a Prometheus for this test, stopped at its cleanup (its
// log shown if the test failed); it fails the test when it cannot.
func StartT(tb testing.TB, o Options) *Server {
	tb.Helper()
	s, err := Start(o)
	Require(tb, err)
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("prometheus log (tail):\n%s", consulagent.Tail(s.Logs(), 6000))
		}
		s.Stop()
	})
	return s
}

// Stop ends Prometheus by its pid: SIGTERM, then SIGKILL to its group after
// 10 s; it removes the directory Start made. Safe to call more than once.
func (s *Server) Stop() {
	s.once.Do(func() {
		pid := s.cmd.Process.Pid
		_ = syscall.Kill(pid, syscall.SIGTERM)
		select {
		case <-s.end:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-s.end
		}
		s.client.CloseIdleConnections()
		if s.ownsDir {
			os.RemoveAll(s.dir)
		}
	})
}

// Addr is host:port of its web listener.
func (s *Server) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.port) }

// Pid is the Prometheus process's pid.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Dir holds prometheus.yml and the storage.
func (s *Server) Dir() string { return s.dir }

// Logs is everything Prometheus printed.
func (s *Server) Logs() string { return s.out.String() }

func (s *Server) ready() bool {
	resp, err := s.client.Get("http://" + s.Addr() + "/-/ready")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}

// Sample is one element of an instant vector.
type Sample struct {
	Metric map[string]string
	Value  float64
	Time   time.Time
}

// Query evaluates expr now (GET /api/v1/query) and returns its vector; a
// scalar comes back as one sample without labels. An API error (bad
// expression, say) is an error carrying Prometheus's message.
func (s *Server) Query(ctx context.Context, expr string) ([]Sample, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := s.api(ctx, "/api/v1/query?"+url.Values{"query": {expr}}.Encode(), &data); err != nil {
		return nil, fmt.Errorf("query %q: %w", expr, err)
	}
	switch data.ResultType {
	case "vector":
		var raw []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(data.Result, &raw); err != nil {
			return nil, err
		}
		out := make([]Sample, 0, len(raw))
		for _, r := range raw {
			smp, err := sample(r.Value)
			if err != nil {
				return nil, fmt.Errorf("query %q: %w", expr, err)
			}
			smp.Metric = r.Metric
			out = append(out, smp)
		}
		return out, nil
	case "scalar":
		var v [2]any
		if err := json.Unmarshal(data.Result, &v); err != nil {
			return nil, err
		}
		smp, err := sample(v)
		if err != nil {
			return nil, err
		}
		return []Sample{smp}, nil
	}
	return nil, fmt.Errorf("query %q: result type %q not handled", expr, data.ResultType)
}

func sample(v [2]any) (Sample, error) {
	ts, ok := v[0].(float64)
	str, ok2 := v[1].(string)
	if !ok || !ok2 {
		return Sample{}, fmt.Errorf("malformed sample %v", v)
	}
	f, err := strconv.ParseFloat(str, 64)
	if err != nil {
		return Sample{}, err
	}
	sec := int64(ts)
	return Sample{Value: f, Time: time.Unix(sec, int64((ts-float64(sec))*1e9))}, nil
}

// Target is one active scrape target (GET /api/v1/targets).
type Target struct {
	DiscoveredLabels map[string]string `json:"discoveredLabels"`
	Labels           map[string]string `json:"labels"`
	ScrapePool       string            `json:"scrapePool"`
	ScrapeURL        string            `json:"scrapeUrl"`
	Health           string            `json:"health"` // up | down | unknown
	LastError        string            `json:"lastError"`
}

// Targets lists the active targets, what service discovery found and
// relabeling kept.
func (s *Server) Targets(ctx context.Context) ([]Target, error) {
	var data struct {
		ActiveTargets []Target `json:"activeTargets"`
	}
	if err := s.api(ctx, "/api/v1/targets?state=active", &data); err != nil {
		return nil, err
	}
	return data.ActiveTargets, nil
}

// api GETs path and decodes the envelope's data into out.
func (s *Server) api(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+s.Addr()+path, nil)
	if err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var env struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  string          `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("%d %s", resp.StatusCode, consulagent.Tail(string(body), 500))
	}
	if env.Status != "success" {
		return errors.New(env.Error)
	}
	return json.Unmarshal(env.Data, out)
}
