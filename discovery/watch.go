package discovery

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"net"
	"slices"
	"strconv"
)

// Instance is one instance of a watched service, as the catalog reports it.
type Instance struct {
	ID      string // the service ID; unique per node, not across nodes
	Node    string // the node (agent) it is registered on
	Address string // the service address, or the node's when the service has none
	Port    int
	Tags    []string // sorted in a Snapshot
	Meta    map[string]string
	Status  Status // aggregate of its checks: the worst one
}

// HostPort is Address:Port (IPv6 addresses are bracketed).
func (in Instance) HostPort() string {
	return net.JoinHostPort(in.Address, strconv.Itoa(in.Port))
}

func (in Instance) clone() Instance {
	in.Tags = slices.Clone(in.Tags)
	in.Meta = maps.Clone(in.Meta)
	return in
}

func (in Instance) equal(o Instance) bool {
	return in.ID == o.ID && in.Node == o.Node && in.Address == o.Address &&
		in.Port == o.Port && in.Status == o.Status &&
		slices.Equal(in.Tags, o.Tags) && maps.Equal(in.Meta, o.Meta)
}

func compareInstances(a, b Instance) int {
	return cmp.Or(
		cmp.Compare(a.ID, b.ID),
		cmp.Compare(a.Address, b.Address),
		cmp.Compare(a.Port, b.Port),
		cmp.Compare(a.Node, b.Node),
	)
}

// Snapshot is the whole set of instances of one service at one moment.
// Watchers only hand out snapshots built by NewSnapshot, which are in
// canonical form: instances sorted by ID, then address, port and node; each
// instance's tags sorted. Treat a Snapshot as read-only.
type Snapshot struct {
	Service   string
	Instances []Instance
}

// NewSnapshot returns the canonical snapshot of instances: a deep copy,
// sorted. A nil or empty instances gives an empty (not absent) set.
func NewSnapshot(service string, instances []Instance) Snapshot {
	out := make([]Instance, len(instances))
	for i, in := range instances {
		out[i] = in.clone()
		slices.Sort(out[i].Tags)
	}
	slices.SortFunc(out, compareInstances)
	return Snapshot{Service: service, Instances: out}
}

// Equal reports whether s and o describe the same set: same service and,
// pairwise, the same ID, node, address, port, tags, meta and status. Both
// must be canonical (from NewSnapshot); a nil and an empty Tags, Meta or
// Instances are equal.
func (s Snapshot) Equal(o Snapshot) bool {
	return s.Service == o.Service &&
		slices.EqualFunc(s.Instances, o.Instances, Instance.equal)
}

// Clone returns a deep copy of s.
func (s Snapshot) Clone() Snapshot {
	out := Snapshot{Service: s.Service, Instances: make([]Instance, len(s.Instances))}
	for i, in := range s.Instances {
		out.Instances[i] = in.clone()
	}
	return out
}

// Hash is a stable 64-bit FNV-1a fingerprint of a canonical snapshot, for
// logs, status output and cheap "did it change" checks across processes.
// Equal snapshots have equal hashes; use Equal to decide, not Hash.
func (s Snapshot) Hash() uint64 {
	h := fnv.New64a()
	var n [8]byte
	str := func(v string) {
		binary.LittleEndian.PutUint64(n[:], uint64(len(v)))
		h.Write(n[:])
		h.Write([]byte(v))
	}
	num := func(v int) {
		binary.LittleEndian.PutUint64(n[:], uint64(v))
		h.Write(n[:])
	}
	str(s.Service)
	num(len(s.Instances))
	for _, in := range s.Instances {
		str(in.ID)
		str(in.Node)
		str(in.Address)
		num(in.Port)
		str(string(in.Status))
		num(len(in.Tags))
		for _, t := range in.Tags {
			str(t)
		}
		num(len(in.Meta))
		for _, k := range slices.Sorted(maps.Keys(in.Meta)) {
			str(k)
			str(in.Meta[k])
		}
	}
	return h.Sum64()
}

// WatchSpec says what to watch. Service and PassingOnly mean the same to
// every backend; each backend reads only its own part of the rest.
type WatchSpec struct {
	Service string
	// PassingOnly drops instances that are not passing (a Consul check in
	// warning, a container that is starting or unhealthy); otherwise every
	// instance is reported with its Status.
	PassingOnly bool
	Consul      ConsulQuery
	Docker      DockerQuery
}

// ConsulQuery narrows a Consul watch.
type ConsulQuery struct {
	Tag        string // only instances carrying this tag; "" for all
	Datacenter string // "" for the agent's own
	// Consistency is the read mode of the watch's queries; "" is
	// ConsistencyStale.
	Consistency Consistency
}

// Consistency is a Consul read mode, named as Consul names it.
type Consistency string

const (
	// ConsistencyStale lets any server answer from its own copy of the
	// state, so reads spread over the followers and go on without a
	// leader. A Watcher bounds how far behind that copy may be (see
	// consul.WatcherOptions.MaxStale).
	ConsistencyStale Consistency = "stale"
	// ConsistencyDefault has the leader answer from its state, without
	// first checking that it still leads.
	ConsistencyDefault Consistency = "default"
	// ConsistencyConsistent has the leader confirm with a quorum that it
	// still leads before each answer.
	ConsistencyConsistent Consistency = "consistent"
)

// Valid reports whether c is "" or one of the three modes.
func (c Consistency) Valid() bool {
	switch c {
	case "", ConsistencyStale, ConsistencyDefault, ConsistencyConsistent:
		return true
	}
	return false
}

// DockerQuery says which containers are instances of a Docker watch and
// how to reach them. A container matches when it carries every label in
// Labels and, unless Project is "", com.docker.compose.project=Project and
// com.docker.compose.service=WatchSpec.Service; with Labels set and no
// Project, Service only names the set.
type DockerQuery struct {
	Project string
	Labels  map[string]string
	// Network is the network whose address is the instance's; "" takes the
	// container's only network (a container on several is skipped then).
	Network string
	// Port is the container port to reach; 0 takes the container's only
	// exposed port (a container exposing none or several is skipped then).
	Port int
}

// Validate reports what is wrong with w.
func (w WatchSpec) Validate() error {
	if w.Service == "" {
		return errors.New("watch: service is empty")
	}
	if !w.Consul.Consistency.Valid() {
		return fmt.Errorf("watch %s: consistency %q is not stale, default or consistent", w.Service, w.Consul.Consistency)
	}
	return nil
}

// Watcher follows the instances of services.
type Watcher interface {
	// Watch follows spec until ctx ends, then returns nil; it returns an
	// error at once only for a bad spec. It calls publish with the whole
	// current snapshot: first as soon as the initial state is known (even
	// when empty), then each time the set changes, never twice in a row
	// with Equal snapshots. A transient failure publishes nothing: the last
	// snapshot stays the truth (stale beats partial) and Watch retries with
	// backoff, forever. An empty snapshot therefore always means the
	// service really has no (matching) instances.
	//
	// publish is called from the goroutine running Watch, one call at a
	// time, in order; it must not block long (hand the snapshot off, e.g.
	// to a one-slot "latest" channel): while it runs nothing is watched,
	// although no change is lost — the next query returns the latest state.
	// publish owns the snapshot it is given.
	Watch(ctx context.Context, spec WatchSpec, publish func(Snapshot)) error
}
