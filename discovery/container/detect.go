package container

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/moby/moby/client"
)

// DefaultTimeout bounds everything Detect says to the engine: connecting,
// version negotiation and the inspect.
const DefaultTimeout = 2 * time.Second

// Detector finds pilot's own Identity. The zero value is what Detect does.
type Detector struct {
	// Proc is the proc file system to read self/cgroup and self/mountinfo
	// from; nil means os.DirFS("/proc").
	Proc fs.FS
	// DockerHost is the Engine API address; "" means $DOCKER_HOST, and
	// unix:///var/run/docker.sock when that is empty too.
	DockerHost string
	// Timeout bounds the whole exchange with the engine; 0 means
	// DefaultTimeout.
	Timeout time.Duration
	// Log receives what Detect found or why it stopped short; nil discards.
	Log *slog.Logger
}

// Detect is Detector{Log: log, DockerHost: dockerHost}.Detect(ctx).
func Detect(ctx context.Context, log *slog.Logger, dockerHost string) Identity {
	return Detector{Log: log, DockerHost: dockerHost}.Detect(ctx)
}

// Detect returns pilot's Identity: the id from /proc and the hostname, and,
// when the Engine API answers, all Inspect gives. It never fails: what it
// cannot learn stays empty (no ID outside a container).
//
// Without a socket (the usual case: nothing mounted) it costs two small file
// reads and one stat, and logs at debug level only. An engine that cannot be
// reached, or is too slow, is also logged at debug; an engine that answers
// but refuses the inspect is worth a warning, since somebody mounted it on
// purpose. Nothing here takes longer than Timeout.
func (d Detector) Detect(ctx context.Context) Identity {
	log := d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	proc := d.Proc
	if proc == nil {
		proc = os.DirFS("/proc")
	}

	var self Identity
	self.Hostname, _ = os.Hostname()
	id, err := ID(proc)
	switch {
	case errors.Is(err, ErrNotContainer):
		log.Debug("container: not in a container")
		return self
	case err != nil:
		log.Debug("container: no container id", "err", err)
		return self
	}
	self.ID = id

	host := resolveHost(d.DockerHost, os.Getenv(client.EnvOverrideHost))
	if path, ok := strings.CutPrefix(host, "unix://"); ok {
		fi, err := os.Stat(path)
		if err != nil {
			log.Debug("container: no docker socket", "host", host, "err", err)
			return self
		}
		// Bind-mounting a socket that does not exist on the host leaves a
		// directory in its place.
		if fi.Mode().Type() != fs.ModeSocket {
			log.Debug("container: docker host is not a socket", "host", host, "mode", fi.Mode().String())
			return self
		}
	}

	timeout := d.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	cli, err := client.New(client.FromEnv, client.WithHost(host))
	if err != nil {
		log.Debug("container: docker client", "host", host, "err", err)
		return self
	}
	defer cli.Close()
	if _, err := cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		log.Debug("container: docker engine unreachable", "host", host, "err", err)
		return self
	}
	got, err := Inspect(ctx, cli, id)
	if err != nil {
		log.Warn("container: cannot inspect own container", "host", host, "id", id, "err", err)
		return self
	}
	if got.Hostname == "" {
		got.Hostname = self.Hostname
	}
	log.Debug("container: identity", "id", got.ID, "name", got.Name, "image", got.Image,
		"api", cli.ClientVersion())
	return got
}

// resolveHost picks the Engine API address: the explicit one, else
// $DOCKER_HOST (env), else the platform default.
func resolveHost(explicit, env string) string {
	switch {
	case explicit != "":
		return explicit
	case env != "":
		return env
	default:
		return client.DefaultDockerHost
	}
}
