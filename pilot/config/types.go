package config

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/nodepilot/pilot/jobs"
)

// The types below are config values that are parsed once, as the file is
// decoded: each has an UnmarshalText that the decoder calls, so a bad value
// is reported at its path with the others, and pilot builds its runtime
// objects from the typed value without parsing it again. Each enum's names
// are listed once, here or in the runtime type the field uses
// (jobs.RestartPolicy, output.Mode, custom.Kind).

// Signal is a signal named in the config ("SIGTERM" or "TERM", in any
// case); zero means none was given.
type Signal syscall.Signal

// UnmarshalText reads a signal name with ParseSignal.
func (s *Signal) UnmarshalText(text []byte) error {
	sig, err := ParseSignal(string(text))
	if err != nil {
		return err
	}
	*s = Signal(sig)
	return nil
}

// MarshalText writes the signal's name, SIGTERM for 15.
func (s Signal) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// String is the signal's name, or its number for a signal with none (a
// config names only named ones; pilot's log may see others).
func (s Signal) String() string {
	if name := unix.SignalName(syscall.Signal(s)); name != "" {
		return name
	}
	return strconv.Itoa(int(s))
}

// Size is a number of bytes written with a unit ("512MiB"; see ParseBytes);
// zero means none was given.
type Size uint64

// UnmarshalText reads a size with ParseBytes.
func (s *Size) UnmarshalText(text []byte) error {
	n, err := ParseBytes(string(text))
	if err != nil {
		return err
	}
	*s = Size(n)
	return nil
}

// DependencyState is the state of another job that an `after:` entry waits
// for; zero means none was given.
type DependencyState uint8

// dependencyStates is the one list of the states `after:` may name, with
// the job state each waits for: "started" is a job that is running.
var dependencyStates = [...]struct {
	name  string
	state jobs.State
}{
	{}, // the zero DependencyState: not set
	{"started", jobs.Running},
	{"healthy", jobs.Healthy},
	{"succeeded", jobs.Succeeded},
	{"failed", jobs.Failed},
	{"stopped", jobs.Stopped},
}

// The dependency states, in the order of dependencyStates.
const (
	DependencyStarted DependencyState = iota + 1
	DependencyHealthy
	DependencySucceeded
	DependencyFailed
	DependencyStopped
)

// UnmarshalText reads a state name: started, healthy, succeeded, failed or
// stopped.
func (d *DependencyState) UnmarshalText(text []byte) error {
	for i, s := range dependencyStates {
		if i > 0 && s.name == string(text) {
			*d = DependencyState(i)
			return nil
		}
	}
	return notOneOf(string(text), dependencyStateNames())
}

// MarshalText writes the state's name.
func (d DependencyState) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

func (d DependencyState) String() string {
	if int(d) < len(dependencyStates) {
		return dependencyStates[d].name
	}
	return fmt.Sprintf("DependencyState(%d)", d)
}

// JobState is the job state that d waits for.
func (d DependencyState) JobState() jobs.State {
	if int(d) < len(dependencyStates) {
		return dependencyStates[d].state
	}
	return jobs.Idle
}

func dependencyStateNames() []string {
	names := make([]string, 0, len(dependencyStates)-1)
	for _, s := range dependencyStates[1:] {
		names = append(names, s.name)
	}
	return names
}

// OnUnhealthy is what pilot does with a job whose health check fails.
type OnUnhealthy string

const (
	// OnUnhealthyNone only reports it (to Consul, /status, metrics).
	OnUnhealthyNone OnUnhealthy = "none"
	// OnUnhealthyRestart stops the run and starts it again after the
	// job's backoff.
	OnUnhealthyRestart OnUnhealthy = "restart"
)

// UnmarshalText reads none or restart.
func (o *OnUnhealthy) UnmarshalText(text []byte) error {
	return parseName(o, text, OnUnhealthyNone, OnUnhealthyRestart)
}

// RenderFormat is the kind of file a watch's onChange.render writes.
type RenderFormat string

const (
	// RenderNGINX is an nginx upstream block.
	RenderNGINX RenderFormat = "nginx"
	// RenderTraefik is a Traefik file-provider dynamic configuration.
	RenderTraefik RenderFormat = "traefik"
)

// UnmarshalText reads nginx or traefik.
func (f *RenderFormat) UnmarshalText(text []byte) error {
	return parseName(f, text, RenderNGINX, RenderTraefik)
}

// Discovery is the backend a watch follows.
type Discovery string

const (
	// DiscoveryConsul follows a service in the Consul catalog.
	DiscoveryConsul Discovery = "consul"
	// DiscoveryDocker follows the running containers of a compose service
	// (or of a label selector) through the Docker Engine API.
	DiscoveryDocker Discovery = "docker"
)

// UnmarshalText reads consul or docker.
func (d *Discovery) UnmarshalText(text []byte) error {
	return parseName(d, text, DiscoveryConsul, DiscoveryDocker)
}

// Consistency is the read mode of a Consul watch's queries, named as
// Consul names them: stale (any server answers; pilot asks the leader
// instead when that server had not heard from it for 2 s), default (the
// leader answers), consistent (the leader confirms its leadership with a
// quorum first). "" means stale.
type Consistency string

const (
	ConsistencyStale      Consistency = "stale"
	ConsistencyDefault    Consistency = "default"
	ConsistencyConsistent Consistency = "consistent"
)

// UnmarshalText reads stale, default or consistent.
func (c *Consistency) UnmarshalText(text []byte) error {
	return parseName(c, text, ConsistencyStale, ConsistencyDefault, ConsistencyConsistent)
}

// Instances is the number of copies of a cluster job: N, or Auto for as
// many as the CPUs the container may use (jobs/cpus), counted when pilot
// starts the job. The zero value means not set. It is decoded from an
// integer or from the text "auto" or a number (an expanded ${N}), by
// toInstances.
type Instances struct {
	N    int
	Auto bool
}

// Set reports whether the config asked for instances.
func (i Instances) Set() bool { return i.N > 0 || i.Auto }

// String is "auto" or the number, as a config writes it; "0" when not set.
func (i Instances) String() string {
	if i.Auto {
		return "auto"
	}
	return strconv.Itoa(i.N)
}

// Readiness is when a new instance of a cluster job counts as ready in a
// rolling reload, so that the next old one may stop; "" means as soon as
// it has started.
type Readiness string

const (
	// ReadinessHealth waits for the instance's health check to pass.
	ReadinessHealth Readiness = "health"
	// ReadinessMessage waits for the app to say it is ready, through
	// pilot's Node agent.
	ReadinessMessage Readiness = "message"
)

// UnmarshalText reads health or message.
func (r *Readiness) UnmarshalText(text []byte) error {
	return parseName(r, text, ReadinessHealth, ReadinessMessage)
}

// parseName sets *v to the name in text if it is one of names, the one list
// of a string enum.
func parseName[T ~string](v *T, text []byte, names ...T) error {
	for _, name := range names {
		if string(name) == string(text) {
			*v = name
			return nil
		}
	}
	list := make([]string, len(names))
	for i, name := range names {
		list[i] = string(name)
	}
	return notOneOf(string(text), list)
}

func notOneOf(value string, names []string) error {
	return fmt.Errorf("%s must be one of %s", quote(value), strings.Join(names, ", "))
}
