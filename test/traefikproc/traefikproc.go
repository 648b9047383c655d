// Package traefikproc runs a real Traefik for tests: on free loopback ports,
// with its Consul Catalog provider pointed at a (real) Consul agent, its API
// and ping on a second entrypoint, and its logs and JSON access log in files.
//
// The binary is $PILOT_TRAEFIK_BIN when set, else the one test/traefik.sh
// builds (pinned in test/tools/traefik/go.mod, cached under
// .cache/traefik/VERSION/traefik). It is never built from here: the first
// build takes many minutes; see test/toolbin. When it cannot be had, Start's
// error satisfies toolbin.Unavailable, and StartT fails the test.
//
//	p := traefikproc.StartT(t, traefikproc.Options{ConsulAddr: agent.Addr()})
//	resp, err := p.Get("app.test", "/")          // through the web entrypoint
//	svc, err := p.Service("app@consulcatalog")   // the API's view
package traefikproc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nodepilot/pilot/test/consulagent"
	"github.com/nodepilot/pilot/test/toolbin"
)

// Tool is the binary: $PILOT_TRAEFIK_BIN, or
// ROOT/.cache/traefik/VERSION/traefik with VERSION the one pinned in
// ROOT/test/tools/traefik/go.mod (what test/traefik.sh builds; never built
// from here).
var Tool = toolbin.Tool{
	Name: "traefik", What: "traefik", EnvVar: "PILOT_TRAEFIK_BIN", Script: "traefik.sh",
	Module: "github.com/traefik/traefik/v3",
	Hint:   "set PILOT_TRAEFIK_BIN or run `bash test/traefik.sh` (builds the pinned Traefik once, ~7–15 min on 2 cores)",
}

// Options configure the static configuration.
type Options struct {
	// ConsulAddr is the Consul agent's HTTP address, host:port (required).
	ConsulAddr string
	// RefreshInterval is the provider's refreshInterval (used when the
	// watch is off, and Traefik's retry pace); default 1s.
	RefreshInterval time.Duration
	// NoWatch turns off providers.consulCatalog.watch (blocking queries on
	// the catalog's services and checks): Traefik then polls every
	// RefreshInterval.
	NoWatch bool
	// ThrottleDuration is providers.providersThrottleDuration: after
	// applying a provider's configuration Traefik takes no newer one from
	// it for this long. 0 keeps Traefik's default (2s).
	ThrottleDuration time.Duration
	// Dir holds the config and the logs; default a fresh temp dir.
	Dir string
}

// Proxy is one running Traefik. Its methods are safe for concurrent use.
type Proxy struct {
	bin              string
	dir              string
	webPort, apiPort int
	logPath          string
	accessLogPath    string
	out              *toolbin.LockedBuffer // stdout and stderr (Traefik logs to logPath)
	client           *http.Client

	cmd  *exec.Cmd
	end  chan struct{}
	once sync.Once
}

// Start finds the binary, writes the static configuration, starts Traefik
// and waits until its ping answers (at most 30 s). The caller must Stop it.
func Start(o Options) (*Proxy, error) {
	bin, err := Tool.Path()
	if err != nil {
		return nil, err
	}
	if o.ConsulAddr == "" {
		return nil, errors.New("traefikproc: Options.ConsulAddr is required")
	}
	if o.RefreshInterval == 0 {
		o.RefreshInterval = time.Second
	}
	if o.Dir == "" {
		if o.Dir, err = os.MkdirTemp("", "traefikproc-"); err != nil {
			return nil, err
		}
	}
	ports, err := consulagent.FreePorts(2)
	if err != nil {
		return nil, err
	}
	p := &Proxy{
		bin: bin, dir: o.Dir, webPort: ports[0], apiPort: ports[1],
		logPath:       filepath.Join(o.Dir, "traefik.log"),
		accessLogPath: filepath.Join(o.Dir, "access.log"),
		out:           &toolbin.LockedBuffer{},
		client: &http.Client{
			Transport: &http.Transport{MaxIdleConnsPerHost: 16},
			Timeout:   5 * time.Second,
		},
	}
	cfg := filepath.Join(o.Dir, "traefik.yaml")
	if err := os.WriteFile(cfg, []byte(p.staticConfig(o)), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--configFile="+cfg)
	cmd.Dir = o.Dir
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p.cmd, p.end = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(p.end) }()

	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.end:
			return nil, fmt.Errorf("traefik exited during startup: %s\n%s", p.out.String(), consulagent.Tail(p.Logs(), 3000))
		default:
		}
		if p.ping() == nil {
			return p, nil
		}
		time.Sleep(20 * time.Millisecond) // poll interval, bounded by the deadline
	}
	p.Stop()
	return nil, fmt.Errorf("traefik not answering /ping within 30s: %s\n%s", p.out.String(), consulagent.Tail(p.Logs(), 3000))
}

func (p *Proxy) staticConfig(o Options) string {
	var b strings.Builder
	fmt.Fprintf(&b, `global:
  checkNewVersion: false
  sendAnonymousUsage: false
entryPoints:
  web:
    address: "127.0.0.1:%d"
  traefik:
    address: "127.0.0.1:%d"
ping:
  entryPoint: traefik
api:
  insecure: true
  dashboard: false
log:
  level: DEBUG
  noColor: true
  filePath: %q
accessLog:
  filePath: %q
  format: json
providers:
`, p.webPort, p.apiPort, p.logPath, p.accessLogPath)
	if o.ThrottleDuration > 0 {
		fmt.Fprintf(&b, "  providersThrottleDuration: %s\n", o.ThrottleDuration)
	}
	fmt.Fprintf(&b, `  consulCatalog:
    exposedByDefault: false
    watch: %t
    refreshInterval: %s
    endpoint:
      address: %q
`, !o.NoWatch, o.RefreshInterval, o.ConsulAddr)
	return b.String()
}

// StartT starts Traefik for this test only, stopped at its cleanup (the
// logs' tails are logged when the test failed); it fails the test when it
// cannot.
func StartT(tb testing.TB, o Options) *Proxy {
	tb.Helper()
	if o.Dir == "" {
		o.Dir = tb.TempDir()
	}
	p, err := Start(o)
	Tool.Require(tb, err)
	tb.Cleanup(func() {
		p.Stop()
		if tb.Failed() {
			tb.Logf("traefik log (tail):\n%s", consulagent.Tail(p.Logs(), 6000))
			tb.Logf("traefik stdout/stderr (tail):\n%s", consulagent.Tail(p.out.String(), 2000))
		}
	})
	return p
}

// Stop ends Traefik: SIGTERM, SIGKILL to its process group after 5 s, and
// waits for it. Further calls do nothing.
func (p *Proxy) Stop() {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.end:
		case <-time.After(5 * time.Second):
		}
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.end
		p.client.CloseIdleConnections()
	})
}

// Pid is Traefik's process id.
func (p *Proxy) Pid() int { return p.cmd.Process.Pid }

// WebAddr is the web entrypoint, host:port.
func (p *Proxy) WebAddr() string { return fmt.Sprintf("127.0.0.1:%d", p.webPort) }

// APIAddr is the API and ping entrypoint ("traefik"), host:port.
func (p *Proxy) APIAddr() string { return fmt.Sprintf("127.0.0.1:%d", p.apiPort) }

// Dir is where the config and the logs are.
func (p *Proxy) Dir() string { return p.dir }

// Logs returns Traefik's log file (debug level).
func (p *Proxy) Logs() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

func (p *Proxy) ping() error {
	resp, err := p.client.Get("http://" + p.APIAddr() + "/ping")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("ping: %d", resp.StatusCode)
	}
	return nil
}

// Get sends GET path to the web entrypoint with Host host, through the
// Proxy's own client (keep-alive).
func (p *Proxy) Get(ctx context.Context, host, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+p.WebAddr()+path, nil)
	if err != nil {
		return nil, err
	}
	req.Host = host
	return p.client.Do(req)
}

// Router is an element of /api/http/routers.
type Router struct {
	Name        string   `json:"name"`
	Provider    string   `json:"provider"`
	Rule        string   `json:"rule"`
	Service     string   `json:"service"`
	EntryPoints []string `json:"entryPoints"`
	Status      string   `json:"status"`
	Error       []string `json:"error"`
}

// Service is an element of /api/http/services.
type Service struct {
	Name         string            `json:"name"`
	Provider     string            `json:"provider"`
	Status       string            `json:"status"`
	Error        []string          `json:"error"`
	UsedBy       []string          `json:"usedBy"`
	ServerStatus map[string]string `json:"serverStatus"`
	LoadBalancer *struct {
		Servers []struct {
			URL string `json:"url"`
		} `json:"servers"`
	} `json:"loadBalancer"`
}

// URLs are the service's load-balancer servers.
func (s *Service) URLs() []string {
	if s == nil || s.LoadBalancer == nil {
		return nil
	}
	var out []string
	for _, sv := range s.LoadBalancer.Servers {
		out = append(out, sv.URL)
	}
	return out
}

// Routers returns /api/http/routers.
func (p *Proxy) Routers() ([]Router, error) {
	var out []Router
	return out, p.api("/api/http/routers?per_page=1000", &out)
}

// Service returns /api/http/services/NAME (e.g. "web@consulcatalog"); a
// missing service is (nil, nil).
func (p *Proxy) Service(name string) (*Service, error) {
	var out Service
	err := p.api("/api/http/services/"+name, &out)
	if errors.Is(err, errNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &out, nil
}

var errNotFound = errors.New("not found")

func (p *Proxy) api(path string, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+p.APIAddr()+path, nil)
	if err != nil {
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	switch resp.StatusCode {
	case 200:
		return json.Unmarshal(body, out)
	case 404:
		return fmt.Errorf("GET %s: %w", path, errNotFound)
	default:
		return fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, body)
	}
}

// AccessEntry is one line of the JSON access log (the fields tests use).
type AccessEntry struct {
	StartUTC         time.Time
	RequestHost      string
	RequestPath      string
	RouterName       string
	ServiceName      string
	ServiceURL       string
	OriginStatus     int
	DownstreamStatus int
	Duration         int64 // ns
}

// AccessLog returns the access log's entries so far (a partial last line is
// left out).
func (p *Proxy) AccessLog() ([]AccessEntry, error) {
	b, err := os.ReadFile(p.accessLogPath)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var out []AccessEntry
	for _, line := range bytes.Split(b, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var e AccessEntry
		if err := json.Unmarshal(line, &e); err != nil {
			continue // a line still being written
		}
		out = append(out, e)
	}
	return out, nil
}
