package docker

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/nodepilot/pilot/discovery"
)

// Compose's labels, as docker compose (v1 and v2) sets them.
const (
	labelProject = "com.docker.compose.project"
	labelService = "com.docker.compose.service"
	labelNumber  = "com.docker.compose.container-number"
)

// Meta keys of an Instance.
const (
	MetaContainerID    = "container_id"
	MetaImage          = "image"
	MetaComposeProject = "compose_project"
	MetaComposeService = "compose_service"
	MetaComposeNumber  = "compose_number"
)

// selector is the label set a container must carry to be an instance of
// a watch (see discovery.DockerQuery).
type selector struct {
	labels map[string]string
	// ambiguous: a selected label is named like an attribute the daemon
	// adds to container events ("name", "image"), which overwrites it
	// there; every container event is then worth a look.
	ambiguous bool
}

func newSelector(spec discovery.WatchSpec) selector {
	q := spec.Docker
	labels := make(map[string]string, len(q.Labels)+2)
	switch {
	case q.Project != "":
		maps.Copy(labels, q.Labels)
		labels[labelProject] = q.Project
		labels[labelService] = spec.Service
	case len(q.Labels) > 0:
		maps.Copy(labels, q.Labels)
	default:
		labels[labelService] = spec.Service
	}
	_, name := labels["name"]
	_, image := labels["image"]
	return selector{labels: labels, ambiguous: name || image}
}

// filters are the daemon-side filters of the container list: the labels,
// running or paused.
func (s selector) filters() client.Filters {
	f := make(client.Filters)
	for _, k := range slices.Sorted(maps.Keys(s.labels)) {
		f.Add("label", k+"="+s.labels[k])
	}
	return f.Add("status", string(container.StateRunning), string(container.StatePaused))
}

// matches reports whether labels (or a container event's attributes, which
// hold the container's labels) carry every selected label.
func (s selector) matches(labels map[string]string) bool {
	for k, v := range s.labels {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// live reports whether an inspected container is one the watch reports:
// running, paused or not, and not restarting.
func live(c *container.InspectResponse) bool {
	return c.State != nil && c.State.Running && !c.State.Restarting
}

// instanceOf turns an inspected container into the instance it is for
// spec, on the daemon named node. The error says why it is none: no
// address on the chosen network, or no single port to reach.
func instanceOf(spec discovery.WatchSpec, node string, c *container.InspectResponse) (discovery.Instance, error) {
	name := strings.TrimPrefix(c.Name, "/")
	var labels map[string]string
	if c.Config != nil {
		labels = c.Config.Labels
	}
	addr, err := address(spec.Docker.Network, labels[labelProject], c.NetworkSettings)
	if err != nil {
		return discovery.Instance{}, err
	}
	port := spec.Docker.Port
	if port <= 0 {
		if port, err = exposedPort(c.Config); err != nil {
			return discovery.Instance{}, err
		}
	}
	meta := map[string]string{MetaContainerID: c.ID}
	if c.Config != nil && c.Config.Image != "" {
		meta[MetaImage] = c.Config.Image
	} else if c.Image != "" {
		meta[MetaImage] = c.Image
	}
	for label, key := range map[string]string{labelProject: MetaComposeProject, labelService: MetaComposeService, labelNumber: MetaComposeNumber} {
		if v, ok := labels[label]; ok {
			meta[key] = v
		}
	}
	return discovery.Instance{
		ID:      name,
		Node:    node,
		Address: addr,
		Port:    port,
		Meta:    meta,
		Status:  status(c.State),
	}, nil
}

// address is the container's address on the network named want (its full
// name, or project_want for a compose container), or on its only network
// when want is "".
func address(want, project string, ns *container.NetworkSettings) (string, error) {
	var nets map[string]*network.EndpointSettings
	if ns != nil {
		nets = ns.Networks
	}
	var (
		netName string
		ep      *network.EndpointSettings
	)
	switch {
	case want != "":
		netName, ep = want, nets[want]
		if ep == nil && project != "" {
			netName, ep = project+"_"+want, nets[project+"_"+want]
		}
		if ep == nil {
			return "", fmt.Errorf("not on network %q (on %s)", want, netNames(nets))
		}
	case len(nets) == 1:
		for netName, ep = range nets {
		}
	case len(nets) == 0:
		return "", fmt.Errorf("on no network")
	default:
		return "", fmt.Errorf("on several networks (%s) and the watch names none", netNames(nets))
	}
	if ep != nil && ep.IPAddress.IsValid() {
		return ep.IPAddress.String(), nil
	}
	if ep != nil && ep.GlobalIPv6Address.IsValid() {
		return ep.GlobalIPv6Address.String(), nil
	}
	return "", fmt.Errorf("no address on network %q", netName)
}

func netNames(nets map[string]*network.EndpointSettings) string {
	if len(nets) == 0 {
		return "none"
	}
	return strings.Join(slices.Sorted(maps.Keys(nets)), ", ")
}

// exposedPort is the container's only exposed TCP port.
func exposedPort(cfg *container.Config) (int, error) {
	var ports []int
	if cfg != nil {
		for p := range cfg.ExposedPorts {
			if p.Proto() == network.TCP {
				ports = append(ports, int(p.Num()))
			}
		}
	}
	switch len(ports) {
	case 1:
		return ports[0], nil
	case 0:
		return 0, fmt.Errorf("exposes no TCP port and the watch names none")
	default:
		slices.Sort(ports)
		return 0, fmt.Errorf("exposes several TCP ports %v and the watch names none", ports)
	}
}

// status maps a running container's state to an instance status: Docker's
// health (healthy passing, starting warning, unhealthy critical); no health
// check counts as passing; paused is critical whatever its health.
func status(s *container.State) discovery.Status {
	switch {
	case s == nil || !s.Running || s.Paused || s.Restarting:
		return discovery.Critical
	case s.Health == nil:
		return discovery.Passing
	}
	switch s.Health.Status {
	case container.Healthy, container.NoHealthcheck, "":
		return discovery.Passing
	case container.Starting:
		return discovery.Warning
	default:
		return discovery.Critical
	}
}
