package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nodepilot/pilot/telemetry"
)

// DefaultSocket is where pilot listens, and its clients look, when neither
// the config (control.socket) nor PILOT_SOCKET says otherwise. /tmp is
// writable by every user, including an image's unprivileged USER (the
// example's node), and in a container it is the container's own; the
// socket's mode, not the directory, keeps others out.
const DefaultSocket = "/tmp/pilot.sock"

// SocketEnv is the environment variable that names the socket for pilot
// and its clients alike.
const SocketEnv = "PILOT_SOCKET"

// SocketPath is the socket a client talks to: the --socket flag when
// given, else PILOT_SOCKET, else DefaultSocket.
func SocketPath(flag string, env func(string) string) string {
	if flag != "" {
		return flag
	}
	if p := env(SocketEnv); p != "" {
		return p
	}
	return DefaultSocket
}

// ServerSocketPath is the socket pilot listens on: control.socket from the
// config when the file sets it (configured non-nil), else PILOT_SOCKET,
// else DefaultSocket. "" means no control socket: a config that sets
// control.socket to "" turns it off.
func ServerSocketPath(configured *string, env func(string) string) string {
	if configured != nil {
		return *configured
	}
	return SocketPath("", env)
}

// Client talks to a running pilot over its control socket. Each call is
// one request on a connection of its own; a Client is safe for concurrent
// use.
type Client struct {
	path    string
	timeout time.Duration
	http    *http.Client
}

// NewClient returns a client of the socket at path. timeout bounds each
// call, from connecting to reading the whole answer; 0 leaves it to the
// context.
func NewClient(path string, timeout time.Duration) *Client {
	c := &Client{path: path, timeout: timeout}
	c.http = &http.Client{
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", path)
			},
			// One request per connection: a CLI makes one call, and an
			// idle connection left open would outlive it for nothing.
			DisableKeepAlives: true,
		},
		// pilot never redirects; a redirect means something else answers.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c
}

// Path is the socket the client talks to.
func (c *Client) Path() string { return c.path }

// ResponseError is an error pilot answered with: its HTTP status and
// message. It unwraps to the API error the status stands for on its
// endpoint (ErrUnknownJob for a 404 on a job, ErrJobNotRunning and
// ErrReloadInProgress for a 409), so callers can use errors.Is as with the
// API itself. A 422 comes back as a *ConfigError instead.
type ResponseError struct {
	Status  int
	Message string
	api     error
}

func (e *ResponseError) Error() string { return e.Message }
func (e *ResponseError) Unwrap() error { return e.api }

// Status returns pilot's status document.
func (c *Client) Status(ctx context.Context) (telemetry.Status, error) {
	var st telemetry.Status
	body, err := c.StatusJSON(ctx)
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return st, fmt.Errorf("pilot's status on %s is not a status document: %w", c.path, err)
	}
	return st, nil
}

// StatusJSON returns pilot's status document as pilot sent it, fields this
// client does not know included.
func (c *Client) StatusJSON(ctx context.Context) ([]byte, error) {
	return c.do(ctx, http.MethodGet, pathStatus, nil, nil)
}

// Health asks whether every job with a health check is healthy. An
// unhealthy pilot is an answer, not an error: see Healthy.
func (c *Client) Health(ctx context.Context) (HealthReport, error) {
	var report HealthReport
	body, err := c.do(ctx, http.MethodGet, pathHealth, nil, nil, http.StatusServiceUnavailable)
	if err != nil {
		return report, err
	}
	if err := json.Unmarshal(body, &report); err != nil {
		return report, fmt.Errorf("pilot's health report on %s: %w", c.path, err)
	}
	return report, nil
}

// Reload has pilot read its config again and apply it. The result is nil
// when pilot did not say what changed.
func (c *Client) Reload(ctx context.Context) (*ReloadResult, error) {
	body, err := c.do(ctx, http.MethodPost, pathReload, nil, nil)
	if err != nil || len(bytes.TrimSpace(body)) == 0 {
		return nil, err
	}
	// Pointers tell a summary from an answer that is JSON but none.
	var got struct {
		Rolled, Restarted, Started, Stopped *[]string
		Unchanged                           *int
	}
	if json.Unmarshal(body, &got) != nil || got.Restarted == nil && got.Started == nil && got.Stopped == nil && got.Unchanged == nil {
		return nil, nil // reloaded; a summary this client cannot read is no failure
	}
	return &ReloadResult{Rolled: deref(got.Rolled), Restarted: deref(got.Restarted), Started: deref(got.Started), Stopped: deref(got.Stopped), Unchanged: deref(got.Unchanged)}, nil
}

// SetMaintenance takes pilot's services out of rotation (on) or puts them
// back (off).
func (c *Client) SetMaintenance(ctx context.Context, on bool) error {
	_, err := c.do(ctx, http.MethodPost, pathMaintenance, map[string]bool{"enabled": on}, nil)
	return err
}

// RestartJob restarts the job name.
func (c *Client) RestartJob(ctx context.Context, name string) error {
	path, err := jobPath(name, "restart")
	if err != nil {
		return err
	}
	_, err = c.do(ctx, http.MethodPost, path, nil, ErrUnknownJob)
	return err
}

// ReloadJob makes a rolling reload of the cluster job name and returns
// when it has ended.
func (c *Client) ReloadJob(ctx context.Context, name string) (RollResult, error) {
	path, err := jobPath(name, "reload")
	if err != nil {
		return RollResult{}, err
	}
	data, err := c.do(ctx, http.MethodPost, path, nil, ErrUnknownJob)
	if err != nil {
		return RollResult{}, err
	}
	var res RollResult
	if err := json.Unmarshal(data, &res); err != nil {
		return RollResult{}, fmt.Errorf("pilot answered %s with %q: %w", path, data, err)
	}
	return res, nil
}

// SignalJob sends the signal sig (a name, as "SIGUSR2" or "USR2", or a
// number) to the job name.
func (c *Client) SignalJob(ctx context.Context, name, sig string) error {
	path, err := jobPath(name, "signal")
	if err != nil {
		return err
	}
	if _, err := ParseSignal(sig); err != nil {
		return err
	}
	_, err = c.do(ctx, http.MethodPost, path, map[string]string{"signal": sig}, ErrUnknownJob)
	return err
}

// PutEnv sets variables for the job runs that start from now on.
func (c *Client) PutEnv(ctx context.Context, vars map[string]string) error {
	_, err := c.do(ctx, http.MethodPost, pathEnv, vars, nil)
	return err
}

// SetMetrics applies values to custom metrics (API.SetMetrics).
func (c *Client) SetMetrics(ctx context.Context, values map[string]float64) error {
	if err := finite(values); err != nil {
		return err
	}
	_, err := c.do(ctx, http.MethodPost, pathMetrics, values, nil)
	return err
}

// deref is *p, or the zero value for nil.
func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func jobPath(name, action string) (string, error) {
	if name == "" {
		return "", errors.New("the job name is empty")
	}
	return "/v1/jobs/" + url.PathEscape(name) + "/" + action, nil
}

// do sends one request, the JSON of in as its body unless nil, and returns
// the answer's body when its status is 200 or one of also. notFound is the
// API error a 404 on this endpoint stands for.
func (c *Client) do(ctx context.Context, method, path string, in any, notFound error, also ...int) ([]byte, error) {
	parent := ctx
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("encoding the request: %w", err)
		}
		body = bytes.NewReader(data)
	}
	// The host is a placeholder: the transport dials the socket.
	req, err := http.NewRequestWithContext(ctx, method, "http://pilot"+path, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.transportError(parent, ctx, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, c.transportError(parent, ctx, err)
	}
	if resp.StatusCode == http.StatusOK || slices.Contains(also, resp.StatusCode) {
		return data, nil
	}
	return nil, c.answerError(resp, data, path, notFound)
}

// answerError reads an error answer: pilot's JSON, or whatever else is on
// that socket.
func (c *Client) answerError(resp *http.Response, data []byte, path string, notFound error) error {
	var eb errorBody
	if json.Unmarshal(data, &eb) != nil || eb.Error == "" {
		text := strings.TrimSpace(string(data))
		if len(text) > 200 {
			text = text[:200] + "…"
		}
		return &ResponseError{Status: resp.StatusCode,
			Message: fmt.Sprintf("%s answered %s without pilot's JSON error (is it pilot's control socket?): %q", c.path, resp.Status, text)}
	}
	if resp.StatusCode == http.StatusUnprocessableEntity {
		return &ConfigError{Problems: eb.Problems}
	}
	re := &ResponseError{Status: resp.StatusCode, Message: eb.Error}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		re.api = notFound
	case resp.StatusCode == http.StatusConflict && path == pathReload:
		re.api = ErrReloadInProgress
	case resp.StatusCode == http.StatusConflict && strings.HasSuffix(path, "/signal"):
		re.api = ErrJobNotRunning
	}
	return re
}

// transportError says why no answer came, in terms of what to do about
// it. ctx is the call's context, parent the caller's: a deadline of the
// call's own is the client's timeout.
func (c *Client) transportError(parent, ctx context.Context, err error) error {
	switch {
	case parent.Err() != nil:
		return parent.Err()
	case ctx.Err() != nil:
		return fmt.Errorf("pilot did not answer within %v on %s", c.timeout, c.path)
	case errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("pilot is not running, or listens elsewhere: no control socket at %s (pass --socket PATH or set %s to the socket pilot was given)", c.path, SocketEnv)
	case errors.Is(err, syscall.ECONNREFUSED):
		if fi, serr := os.Lstat(c.path); serr == nil && fi.Mode().Type() != fs.ModeSocket {
			return fmt.Errorf("%s is not a socket (%s): pass --socket PATH or set %s to pilot's control socket", c.path, describeFile(fi), SocketEnv)
		}
		return fmt.Errorf("pilot is not running: nothing listens on %s (a pilot that ended left it behind)", c.path)
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return fmt.Errorf("permission denied on the control socket %s: it is mode 0600, for the user pilot runs as%s", c.path, c.ownerHint())
	case errors.Is(err, syscall.ENOTDIR):
		return fmt.Errorf("no control socket at %s: a part of that path is not a directory", c.path)
	}
	return fmt.Errorf("control socket %s: %w", c.path, err)
}

// ownerHint names the socket's owner and how to run as them, when the
// socket can be looked at.
func (c *Client) ownerHint() string {
	fi, err := os.Stat(c.path)
	if err != nil {
		return "; run this command as that user (docker exec -u USER …)"
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "; run this command as that user (docker exec -u USER …)"
	}
	who := strconv.FormatUint(uint64(st.Uid), 10)
	if u, err := user.LookupId(who); err == nil {
		who = u.Username
	}
	return fmt.Sprintf(" (%s); run this command as %s (docker exec -u %s …)", who, who, who)
}
