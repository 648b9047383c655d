package main

// pilot docker-proxy: the read-only Docker Engine API proxy, run as its own
// compose service with the Docker socket mounted, so that app containers
// get its address instead of the socket. It never starts the supervisor:
// no config, no jobs; as PID 1 of its container it only reaps.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nodepilot/pilot/discovery/dockerproxy"
	"github.com/nodepilot/pilot/jobs"
	"github.com/nodepilot/pilot/pilot/config"
)

const dockerProxyHelp = `usage: pilot docker-proxy --listen ADDR [--upstream unix:///var/run/docker.sock]

Serves a read-only view of the Docker Engine API: GET and HEAD of /_ping,
/version, /info, /containers/json, /containers/{id}/json, /events,
/networks and /networks/{id} (each also under /v1.NN/) go to the upstream
socket; every other call gets 403 and a message the docker client prints.
The Docker socket is root on the host — whoever can create a container can
mount / — so mount it only into the container that runs this proxy, and
give the app containers DOCKER_HOST=tcp://docker-proxy:2375 instead.
Runs until SIGTERM or SIGINT, then stops within 5 s. It does not supervise
anything: run it as its container's command (it reaps orphans as PID 1).

flags:
  --listen ADDR      where to serve: tcp://HOST:PORT, HOST:PORT or
                     unix:///PATH (created mode 0660, removed at exit)
  --upstream URL     the Engine API's socket: unix:///PATH (default
                     $DOCKER_HOST when it is a unix:// address, else
                     unix:///var/run/docker.sock). It need not be up at
                     start: until it is, calls get 502.

environment:
  DOCKER_HOST       the default of --upstream, when it names a unix socket
  PILOT_LOG_LEVEL   debug (each forwarded call), info, warn, error
  PILOT_LOG_FORMAT  text or json

exit codes:
  0   stopped by SIGTERM or SIGINT
  1   cannot listen on ADDR, or the server failed
  2   a usage error
`

const (
	defaultDockerSocket = "/var/run/docker.sock"
	// dockerProxyGrace is the shutdown's grace for calls under way; with
	// /events streams ended at once, the proxy is gone well within 5 s.
	dockerProxyGrace = 4 * time.Second
)

// dockerProxyCall is a docker-proxy command line, read and checked.
type dockerProxyCall struct {
	network, addr string // where to listen: "tcp" or "unix", and the address
	upstream      string // the Engine API socket's path
}

// parseDockerProxy reads docker-proxy's flags; env reads pilot's environment.
func parseDockerProxy(args []string, env func(string) string) (invocation, error) {
	fs := flag.NewFlagSet("pilot docker-proxy", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are printed once, by run, as one line
	listen := fs.String("listen", "", "")
	upstream := fs.String("upstream", "", "")
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return invocation{do: doHelp, topic: "docker-proxy"}, nil
	case err != nil:
		return invocation{}, usageErrorf("pilot docker-proxy: %v (pilot docker-proxy --help)", err)
	case fs.NArg() > 0:
		return invocation{}, usageErrorf("pilot docker-proxy: unexpected argument %q (pilot docker-proxy --help)", fs.Arg(0))
	case *listen == "":
		return invocation{}, usageErrorf("pilot docker-proxy: --listen is required: tcp://HOST:PORT, HOST:PORT or unix:///PATH")
	}
	var call dockerProxyCall
	if call.network, call.addr, err = parseListenAddr(*listen); err != nil {
		return invocation{}, usageErrorf("pilot docker-proxy: --listen %q: %v", *listen, err)
	}
	up, given := *upstream, *upstream != ""
	if !given {
		up = "unix://" + defaultDockerSocket
		if h := env("DOCKER_HOST"); strings.HasPrefix(h, "unix://") {
			up = h
		}
	}
	path, ok := strings.CutPrefix(up, "unix://")
	if !ok || path == "" {
		from := "--upstream"
		if !given {
			from = "DOCKER_HOST"
		}
		return invocation{}, usageErrorf("pilot docker-proxy: %s %q: want unix:///PATH, the Docker Engine API's socket", from, up)
	}
	call.upstream = path
	return invocation{do: doDockerProxy, dockerProxy: call}, nil
}

// parseListenAddr reads tcp://HOST:PORT, HOST:PORT or unix:///PATH.
func parseListenAddr(s string) (network, addr string, err error) {
	if path, ok := strings.CutPrefix(s, "unix://"); ok {
		if path == "" {
			return "", "", errors.New("want unix:///PATH, with a path")
		}
		return "unix", path, nil
	}
	hostPort, explicit := strings.CutPrefix(s, "tcp://")
	if !explicit && strings.Contains(s, "://") {
		return "", "", errors.New("want tcp://HOST:PORT, HOST:PORT or unix:///PATH")
	}
	_, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		return "", "", errors.New("want tcp://HOST:PORT, HOST:PORT or unix:///PATH")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return "", "", fmt.Errorf("port %q: want a number from 0 to 65535", port)
	}
	return "tcp", hostPort, nil
}

// runDockerProxy serves the proxy until SIGTERM or SIGINT (or ctx ends).
func runDockerProxy(ctx context.Context, call dockerProxyCall, io stdio, environ []string) int {
	log, _, err := newLogger(io.err, config.Log{}, envLookup(environ))
	if err != nil {
		fmt.Fprintf(io.err, "pilot docker-proxy: %v\n", err)
		return exitUsage
	}
	log = log.With("cmd", "docker-proxy")
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if os.Getpid() == 1 {
		// The container's init: it starts no process, so every child it
		// ever has is an orphan to reap, until the very end.
		reaping, stopReaping := context.WithCancel(context.Background())
		reaped := make(chan struct{})
		go func() {
			defer close(reaped)
			jobs.NewReaper(log).Run(reaping)
		}()
		defer func() { stopReaping(); <-reaped }()
	}

	ln, err := listenDockerProxy(call.network, call.addr)
	if err != nil {
		log.Error("cannot listen", "listen", call.network+"://"+call.addr, "err", err)
		return exitFailure
	}
	proxy := dockerproxy.New(call.upstream, log)
	upstream := "unix://" + call.upstream
	check, cancel := context.WithTimeout(ctx, 2*time.Second)
	if err := proxy.CheckUpstream(check); err != nil {
		log.Warn("the Docker Engine API is not reachable (yet): calls get 502 until it is", "upstream", upstream, "err", err)
	}
	cancel()
	log.Info("serving a read-only Docker Engine API", "listen", ln.Addr().Network()+"://"+ln.Addr().String(),
		"upstream", upstream, "pid", os.Getpid(), "version", version)
	if err := proxy.Serve(ctx, ln, dockerProxyGrace); err != nil {
		log.Error("serving failed", "err", err)
		return exitFailure
	}
	log.Info("stopped")
	return 0
}

// listenDockerProxy listens on a TCP address or a unix socket; the socket
// is made mode 0660 (its group may connect) and is removed when the
// listener closes. A socket file left by a proxy that died is replaced; a
// live one is not.
func listenDockerProxy(network, addr string) (net.Listener, error) {
	if network != "unix" {
		return net.Listen(network, addr)
	}
	if fi, err := os.Lstat(addr); err == nil && fi.Mode()&os.ModeSocket != 0 {
		if conn, err := net.DialTimeout("unix", addr, time.Second); err == nil {
			conn.Close()
			return nil, fmt.Errorf("%s: a server is already listening there", addr)
		}
		if err := os.Remove(addr); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("unix", addr)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(addr, 0o660); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}
