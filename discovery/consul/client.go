package consul

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"strings"
	"sync/atomic"

	"github.com/hashicorp/consul/api"
)

// TLSConfig configures TLS to the agent. Verification is on unless
// InsecureSkipVerify is set.
type TLSConfig struct {
	CAFile, CertFile, KeyFile, ServerName string
	InsecureSkipVerify                    bool
}

func (t TLSConfig) set() bool {
	return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "" || t.InsecureSkipVerify
}

// Config is how pilot reaches the agent. Empty fields fall back to the
// CONSUL_* environment, then to Consul's defaults (127.0.0.1:8500).
type Config struct {
	Address   string // host:port, http://host:port, https://host:port or unix:///path
	Token     string
	TokenFile string // read once, at NewClient; wins over Token
	TLS       TLSConfig
	// Observe, when set, is told of every request to the agent once it has
	// ended (telemetry counts them). It runs on the requesting goroutine
	// and must be quick. A request cancelled by its caller is not reported.
	Observe func(Request)
}

// Request is one finished request to the agent, as Config.Observe sees it.
type Request struct {
	// Op is what the request did: register, deregister, ttl, maintenance,
	// lookup (what the agent holds under a service ID, before registering
	// it) or health (a watch's blocking health query).
	Op string
	// OK is true when the agent answered with success.
	OK bool
	// Reached is true when the agent answered at all (even with an error).
	Reached bool
}

// Request ops.
const (
	OpRegister    = "register"
	OpDeregister  = "deregister"
	OpTTL         = "ttl"
	OpMaintenance = "maintenance"
	OpHealth      = "health"
	OpLookup      = "lookup"
)

// Client is a configured connection to one Consul agent, shared by the
// registrars of one pilot.
type Client struct {
	api     *api.Client
	http    *http.Client
	token   string
	observe func(Request)
}

// Close releases idle connections to the agent. The Client must not be used
// afterwards.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// NewClient builds a Client. It reads TokenFile (the error names the file,
// never its content) and the TLS files, but does not contact the agent.
func NewClient(cfg Config) (*Client, error) {
	ac := api.DefaultConfig()
	if cfg.Address != "" {
		ac.Address = cfg.Address
		if !strings.Contains(cfg.Address, "://") && cfg.TLS.set() {
			ac.Scheme = "https"
		}
	}
	token := ac.Token // CONSUL_HTTP_TOKEN
	tokenFile := ac.TokenFile
	if cfg.Token != "" {
		token, tokenFile = cfg.Token, ""
	}
	if cfg.TokenFile != "" {
		tokenFile = cfg.TokenFile
	}
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, fmt.Errorf("consul: reading token file %q: %v", tokenFile, err)
		}
		token = strings.TrimSpace(string(b))
		if token == "" {
			return nil, fmt.Errorf("consul: token file %q is empty", tokenFile)
		}
	}
	ac.Token, ac.TokenFile = token, ""

	if t := cfg.TLS; t.CAFile != "" {
		ac.TLSConfig.CAFile, ac.TLSConfig.CAPath = t.CAFile, ""
	}
	if t := cfg.TLS; t.CertFile != "" || t.KeyFile != "" {
		ac.TLSConfig.CertFile, ac.TLSConfig.KeyFile = t.CertFile, t.KeyFile
	}
	if cfg.TLS.ServerName != "" {
		ac.TLSConfig.Address = cfg.TLS.ServerName
	}
	if cfg.TLS.InsecureSkipVerify {
		ac.TLSConfig.InsecureSkipVerify = true
	}

	hc, err := api.NewHttpClient(ac.Transport, ac.TLSConfig)
	if err != nil {
		return nil, fmt.Errorf("consul: TLS configuration: %s", redact(err.Error(), token))
	}
	ac.HttpClient = hc
	c, err := api.NewClient(ac)
	if err != nil {
		// api.NewClient errors name files and schemes, never the token;
		// scrub anyway.
		return nil, fmt.Errorf("consul: building client: %s", redact(err.Error(), token))
	}
	return &Client{api: c, http: hc, token: token, observe: cfg.Observe}, nil
}

// agentError is an error from one agent request, rebuilt so that neither
// the request URL nor headers leak. Reached reports whether the agent
// answered at all.
type agentError struct {
	op      string
	code    int // HTTP status; 0 when the agent was not reached
	msg     string
	reached bool
}

func (e *agentError) Error() string {
	if e.code != 0 {
		return fmt.Sprintf("consul %s: HTTP %d: %s", e.op, e.code, e.msg)
	}
	return fmt.Sprintf("consul %s: %s", e.op, e.msg)
}

// done reports a finished request of kind op (one of the Op constants) to
// the observer and returns its error wrapped as wrap does; desc names the
// operation in that error.
func (c *Client) done(op, desc string, err error) error {
	wrapped := c.wrap(desc, err)
	if c.observe != nil && !errors.Is(err, context.Canceled) {
		c.observe(Request{Op: op, OK: err == nil, Reached: reached(wrapped)})
	}
	return wrapped
}

// wrap turns an error from the api package into an *agentError (or nil).
func (c *Client) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	e := &agentError{op: op}
	var se api.StatusError
	var ue *url.Error
	var oe *net.OpError
	switch {
	case errors.As(err, &se):
		e.code, e.reached = se.Code, true
		e.msg = se.Body
		if len(e.msg) > 200 {
			e.msg = e.msg[:200] + "…"
		}
	case errors.Is(err, context.DeadlineExceeded):
		e.msg = "agent unreachable: timed out"
	case errors.Is(err, context.Canceled):
		e.msg = "canceled"
	case errors.As(err, &oe):
		e.msg = "agent unreachable: " + oe.Err.Error()
		if oe.Op != "" {
			e.msg = "agent unreachable: " + oe.Op + ": " + oe.Err.Error()
		}
	case errors.As(err, &ue):
		e.msg = "agent unreachable: " + ue.Err.Error()
	default:
		e.msg = err.Error()
	}
	e.msg = redact(e.msg, c.token)
	return e
}

func redact(s, token string) string {
	if token == "" {
		return s
	}
	return strings.ReplaceAll(s, token, "[redacted]")
}

// notFound reports whether err says the agent does not know the check or
// service (a restarted dev agent answers 404; older agents 500 "does not
// have associated TTL").
func notFound(err error) bool {
	var e *agentError
	if !errors.As(err, &e) {
		return false
	}
	return e.code == 404 ||
		(e.code == 500 && (strings.Contains(e.msg, "does not have associated TTL") ||
			strings.Contains(e.msg, "No service registered") ||
			strings.Contains(e.msg, "Unknown")))
}

// traceSent returns ctx traced so that sent reports whether a request made
// with it reached the wire (its headers were written): only then may the
// agent have applied it, whatever the error says afterwards (an answer
// lost to a reset or a timeout leaves it open). A request cancelled while
// it waited for a connection was never sent.
func traceSent(ctx context.Context) (traced context.Context, sent func() bool) {
	var wrote atomic.Bool
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{WroteHeaders: func() { wrote.Store(true) }}), wrote.Load
}

func reached(err error) bool {
	var e *agentError
	return err == nil || (errors.As(err, &e) && e.reached)
}
