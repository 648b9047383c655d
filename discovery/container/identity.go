package container

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/moby/moby/client"
)

// Identity is who pilot's container is. Without the Engine API only ID (and
// Hostname) are known; the rest comes from inspecting the container.
type Identity struct {
	ID       string // full 64-hex container id
	Name     string // container name, without Docker's leading "/"
	Hostname string
	Image    string // the image as the operator named it (Config.Image), not its digest
	Project  string // com.docker.compose.project
	Service  string // com.docker.compose.service
	Replica  int    // com.docker.compose.container-number; 0 if none
	// Addresses maps each network the container is attached to to its IP
	// there (IPv4, else global IPv6); networks with no address are left out.
	Addresses map[string]string
}

// Consul service meta keys that Meta fills. Each matches Consul's
// ^[A-Za-z0-9_-]{1,128}$.
const (
	MetaContainerID    = "container_id"
	MetaContainerName  = "container_name"
	MetaImage          = "image"
	MetaComposeProject = "compose_project"
	MetaComposeService = "compose_service"
	MetaComposeReplica = "compose_replica"
)

// metaValueMax is the longest service meta value Consul accepts, in bytes.
const metaValueMax = 512

// Meta returns the identity as Consul service meta: only the fields that are
// set, each value cut to Consul's 512 bytes at a character boundary. It
// returns nil when nothing is set.
func (id Identity) Meta() map[string]string {
	m := make(map[string]string, 6)
	put := func(k, v string) {
		if v != "" {
			m[k] = truncateUTF8(v, metaValueMax)
		}
	}
	put(MetaContainerID, id.ID)
	put(MetaContainerName, id.Name)
	put(MetaImage, id.Image)
	put(MetaComposeProject, id.Project)
	put(MetaComposeService, id.Service)
	if id.Replica > 0 {
		put(MetaComposeReplica, strconv.Itoa(id.Replica))
	}
	if len(m) == 0 {
		return nil
	}
	return m
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Inspector is the one Engine API call Inspect needs; *client.Client from
// github.com/moby/moby/client satisfies it.
type Inspector interface {
	ContainerInspect(ctx context.Context, containerID string, options client.ContainerInspectOptions) (client.ContainerInspectResult, error)
}

// Compose's labels on the containers it creates.
const (
	labelProject = "com.docker.compose.project"
	labelService = "com.docker.compose.service"
	labelNumber  = "com.docker.compose.container-number"
)

// Inspect asks the engine about container id and returns its Identity. The
// ID in the result is the engine's (the full id, even if id was a prefix or
// a name).
func Inspect(ctx context.Context, c Inspector, id string) (Identity, error) {
	if id == "" {
		return Identity{}, errors.New("container: inspect: empty container id")
	}
	res, err := c.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return Identity{}, fmt.Errorf("container: inspect %s: %w", id, err)
	}
	ct := res.Container
	out := Identity{
		ID:   ct.ID,
		Name: strings.TrimPrefix(ct.Name, "/"),
	}
	if out.ID == "" {
		out.ID = id
	}
	if cfg := ct.Config; cfg != nil {
		out.Hostname = cfg.Hostname
		out.Image = cfg.Image
		out.Project = cfg.Labels[labelProject]
		out.Service = cfg.Labels[labelService]
		if n, err := strconv.Atoi(cfg.Labels[labelNumber]); err == nil && n > 0 {
			out.Replica = n
		}
	}
	if ns := ct.NetworkSettings; ns != nil {
		for name, ep := range ns.Networks {
			if ep == nil {
				continue
			}
			addr := ep.IPAddress
			if !addr.IsValid() || addr.IsUnspecified() {
				addr = ep.GlobalIPv6Address
			}
			if !addr.IsValid() || addr.IsUnspecified() {
				continue
			}
			if out.Addresses == nil {
				out.Addresses = make(map[string]string, len(ns.Networks))
			}
			out.Addresses[name] = addr.String()
		}
	}
	return out, nil
}
