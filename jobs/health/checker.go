package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nodepilot/pilot/jobs"
)

// Checker runs one health check. The context carries the check's timeout;
// Check returns nil when the check passed and an error saying what failed
// otherwise. A Checker must be safe to call again after it returns, but the
// Prober never calls it concurrently with itself.
type Checker interface {
	Check(ctx context.Context) error
}

// CommandRunner runs the commands of exec checks. pilot passes its
// *jobs.Reaper: it registers each check's pid before its PID 1 reaper can
// see it, so that the reaper never steals the exit status that decides the
// check, and it kills the check's whole process group.
type CommandRunner interface {
	RunCommand(ctx context.Context, c jobs.Command) (jobs.CommandResult, error)
}

var (
	_ Checker = (*HTTP)(nil)
	_ Checker = (*TCP)(nil)
	_ Checker = (*Exec)(nil)
)

// DefaultHost is where HTTP and TCP checks connect when no host is given.
const DefaultHost = "127.0.0.1"

// ---------------------------------------------------------------- HTTP

// HTTPConfig describes an HTTP check: GET http://Host:Port/Path.
type HTTPConfig struct {
	Host string // default DefaultHost
	Port int
	Path string // default "/"; may carry a query
	// HostHeader, when set, is sent as the request's Host header.
	HostHeader string
	// ExpectStatus lists the status codes that pass; empty means 200–399.
	ExpectStatus []int
}

// HTTP is an HTTP GET check. It owns its http.Client: a fresh transport
// with keep-alives off, no proxy from the environment, and redirects not
// followed (a 3xx is judged as a status), so that a hung app never pins a
// pooled connection and one check never sees another's.
type HTTP struct {
	url    string
	host   string
	expect []int
	client *http.Client
}

// maxBody bounds how much of a response body a check reads.
const maxBody = 4 << 10

// NewHTTP builds an HTTP check, reporting a port or path that cannot form a URL.
func NewHTTP(c HTTPConfig) (*HTTP, error) {
	if c.Port < 1 || c.Port > 65535 {
		return nil, fmt.Errorf("http check: port %d out of range", c.Port)
	}
	host := c.Host
	if host == "" {
		host = DefaultHost
	}
	path := c.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	u := "http://" + net.JoinHostPort(host, strconv.Itoa(c.Port)) + path
	if _, err := url.ParseRequestURI(u); err != nil {
		return nil, fmt.Errorf("http check: %w", err)
	}
	return &HTTP{
		url:    u,
		host:   c.HostHeader,
		expect: c.ExpectStatus,
		client: &http.Client{
			Transport: &http.Transport{
				Proxy:              nil,
				DialContext:        (&net.Dialer{}).DialContext,
				DisableKeepAlives:  true,
				DisableCompression: true,
			},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

// URL returns the URL the check requests.
func (h *HTTP) URL() string { return h.url }

// Check sends one GET and judges its status.
func (h *HTTP) Check(ctx context.Context) error {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", h.url, err)
	}
	if h.host != "" {
		req.Host = h.host
	}
	req.Header.Set("User-Agent", "pilot-health-check")
	req.Header.Set("Connection", "close")
	resp, err := h.client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", h.url, describe(ctx, err, time.Since(start)))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if h.pass(resp.StatusCode) {
		return nil
	}
	msg := fmt.Sprintf("GET %s: status %s", h.url, resp.Status)
	if s := snippet(body, 128); s != "" {
		msg += ": " + s
	}
	return errors.New(msg)
}

func (h *HTTP) pass(code int) bool {
	if len(h.expect) == 0 {
		return code >= 200 && code < 400
	}
	for _, c := range h.expect {
		if c == code {
			return true
		}
	}
	return false
}

// ---------------------------------------------------------------- TCP

// TCP passes when a TCP connection to Host:Port opens; it closes it at once.
type TCP struct {
	addr string
}

// NewTCP builds a TCP check; an empty host means DefaultHost.
func NewTCP(host string, port int) *TCP {
	if host == "" {
		host = DefaultHost
	}
	return &TCP{addr: net.JoinHostPort(host, strconv.Itoa(port))}
}

// Check dials once.
func (t *TCP) Check(ctx context.Context) error {
	start := time.Now()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return fmt.Errorf("tcp %s: %w", t.addr, describe(ctx, err, time.Since(start)))
	}
	return conn.Close()
}

// describe turns a dial or request error into what failed: a timeout says
// so with the time waited (and still matches context.DeadlineExceeded);
// anything else is the innermost error, e.g. "dial tcp …: connection refused".
func describe(ctx context.Context, err error, took time.Duration) error {
	var ne net.Error
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout()) {
		return fmt.Errorf("timeout after %s: %w", took.Round(time.Millisecond), context.DeadlineExceeded)
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return context.Canceled
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// snippet returns up to n bytes of b as one printable line.
func snippet(b []byte, n int) string {
	s := strings.TrimSpace(string(b))
	if len(s) > n {
		s = s[:n] + "…"
	}
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// ---------------------------------------------------------------- exec

// ExecConfig describes an exec check. Argv is run directly; the shell form
// is the caller's ["/bin/sh", "-c", script].
type ExecConfig struct {
	Argv []string
	// Env is the check's whole environment; nil means pilot's own, as in
	// os/exec. A bare Argv[0] is looked up in Env's PATH.
	Env        []string
	Dir        string
	Credential *syscall.Credential // nil: run as pilot's user
	// WaitDelay bounds how long a check waits, after its process exits or
	// is killed, for descendants to release its output; 0 means
	// jobs.Command's default.
	WaitDelay time.Duration
}

// Exec runs a command as a jobs.Command; exit 0 passes. Each run leads its
// own process group; at the context's end the whole group gets SIGKILL, and
// whatever is left of the group when the run ends (a daemonised
// grandchild) is killed too, so a check never leaves processes behind.
type Exec struct {
	cfg    ExecConfig
	runner CommandRunner
}

// maxOutput bounds the output an exec check keeps: the last 4 KiB.
const maxOutput = 4 << 10

// NewExec builds an exec check whose commands runner runs.
func NewExec(c ExecConfig, runner CommandRunner) (*Exec, error) {
	if len(c.Argv) == 0 || c.Argv[0] == "" {
		return nil, errors.New("exec check: empty command")
	}
	if runner == nil {
		return nil, errors.New("exec check: no command runner")
	}
	c.Argv = append([]string(nil), c.Argv...)
	return &Exec{cfg: c, runner: runner}, nil
}

// Check runs the command once and waits for it.
func (e *Exec) Check(ctx context.Context) error {
	name := e.cfg.Argv[0]
	out := &tail{max: maxOutput}
	res, err := e.runner.RunCommand(ctx, jobs.Command{Argv: e.cfg.Argv, Dir: e.cfg.Dir, Env: e.cfg.Env,
		Credential: e.cfg.Credential, Stdout: out, Stderr: out, WaitDelay: e.cfg.WaitDelay})
	switch {
	case errors.Is(err, exec.ErrNotFound):
		return err // jobs.LookPath's error names the command already
	case err != nil:
		return fmt.Errorf("exec %s: %w", name, err)
	}

	var msg string
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		msg = fmt.Sprintf("exec %s: timeout after %s, process group killed", name, res.Took.Round(time.Millisecond))
		err = context.DeadlineExceeded
	case errors.Is(ctx.Err(), context.Canceled):
		msg = fmt.Sprintf("exec %s: canceled", name)
		err = context.Canceled
	case res.Status.Success():
		return nil
	case res.Status.Err != nil:
		msg = fmt.Sprintf("exec %s: %v", name, res.Status.Err)
		err = res.Status.Err
	default:
		msg = fmt.Sprintf("exec %s: %s", name, exitText(res.Status))
	}
	if s := out.String(); s != "" {
		msg += ": " + s
	}
	return &execError{msg: msg, err: err}
}

// exitText says how a process ended as os.ProcessState does: "exit status
// 1", "signal: terminated".
func exitText(s jobs.ExitStatus) string {
	if s.Signal != 0 {
		return "signal: " + syscall.Signal(s.Signal).String()
	}
	return "exit status " + strconv.Itoa(s.Code)
}

type execError struct {
	msg string
	err error // nil for a command that exited with a code
}

func (e *execError) Error() string { return e.msg }
func (e *execError) Unwrap() error { return e.err }

// tail keeps the last max bytes written to it, in one line for messages.
type tail struct {
	mu        sync.Mutex
	max       int
	buf       []byte
	truncated bool
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	if len(p) >= t.max {
		t.truncated = t.truncated || len(t.buf) > 0 || len(p) > t.max
		t.buf = append(t.buf[:0], p[len(p)-t.max:]...)
		return n, nil
	}
	if over := len(t.buf) + len(p) - t.max; over > 0 {
		t.buf = t.buf[:copy(t.buf, t.buf[over:])]
		t.truncated = true
	}
	t.buf = append(t.buf, p...)
	return n, nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(string(t.buf))
	if s != "" && t.truncated {
		s = "…" + s
	}
	return s
}
