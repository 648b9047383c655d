package docker

import (
	"fmt"

	"github.com/moby/moby/client"
)

// NewClient returns a Docker Engine API client for host (unix:///path,
// tcp://host:port, ssh://…). An empty host means DOCKER_HOST, or
// unix:///var/run/docker.sock when that is unset; DOCKER_CERT_PATH,
// DOCKER_TLS_VERIFY and DOCKER_API_VERSION are honoured as the docker CLI
// does. The API version is negotiated with the daemon at the first request
// (the client speaks 1.40 and later). The caller owns the client and closes
// it; Watchers never do.
func NewClient(host string) (*client.Client, error) {
	opts := []client.Opt{client.FromEnv}
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	c, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker: client for %q: %w", host, err)
	}
	return c, nil
}
