package pilot

import (
	"maps"
	"strings"

	"github.com/nodepilot/pilot/discovery/container"
	"github.com/nodepilot/pilot/pilot/config"
	"github.com/nodepilot/pilot/telemetry"
)

// defaultDockerHost is the Engine API's address when neither docker.host
// nor DOCKER_HOST says another.
const defaultDockerHost = "unix:///var/run/docker.sock"

// dockerHost is where pilot reads the Docker Engine API: docker.host, else
// DOCKER_HOST from pilot's environment, else the default socket.
func dockerHost(cfg *config.Config, environ []string) string {
	if cfg != nil && cfg.Docker != nil && cfg.Docker.Host != "" {
		return cfg.Docker.Host
	}
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "DOCKER_HOST="); ok && v != "" {
			return v
		}
	}
	return defaultDockerHost
}

// withIdentityMeta is a service's meta with what pilot knows of its
// container added under keys the user's meta does not set: the user's
// word wins.
func withIdentityMeta(meta map[string]string, id container.Identity) map[string]string {
	add := id.Meta()
	if len(add) == 0 {
		return meta
	}
	maps.Copy(add, meta)
	return add
}

// containerStatus is the identity as /status shows it; nil outside a
// container.
func containerStatus(id container.Identity) *telemetry.ContainerStatus {
	if id.ID == "" && id.Name == "" {
		return nil
	}
	return &telemetry.ContainerStatus{ID: id.ID, Name: id.Name, Image: id.Image, Project: id.Project,
		Service: id.Service, Replica: id.Replica, Addresses: id.Addresses}
}

// dockerDefaults fills what a docker watch left to pilot: with neither a
// project nor labels, the compose service is looked for in pilot's own
// project, when pilot knows it (else in any project).
func dockerDefaults(d *config.DockerWatch, id container.Identity) *config.DockerWatch {
	out := config.DockerWatch{}
	if d != nil {
		out = *d
	}
	if out.Project == "" && len(out.Labels) == 0 {
		out.Project = id.Project
	}
	return &out
}
