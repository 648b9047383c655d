package docker

import (
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/system"
)

// fakeEngine is a Docker Engine API (1.41, as dockerd 20.10 speaks it)
// on a unix socket: just what the watcher reads — ping, version, info, the
// container list (label and status filters), inspect and a streaming
// /events. Its containers change through its methods, each of which emits
// the events the real daemon would. Stop takes the socket away; Start
// serves again on the same path with the same state.
type fakeEngine struct {
	t    testing.TB
	sock string

	mu         sync.Mutex
	name       string
	containers map[string]*fakeContainer // by full ID
	subs       map[*fakeSub]struct{}
	srv        *httptest.Server
	down       chan struct{} // closed by Stop: the streams end
	nextID     int

	lists    atomic.Int64
	inspects sync.Map // container ID → *atomic.Int64
}

// fakeContainer is one container of the fake; fields as docker sets them.
type fakeContainer struct {
	ID, Name, Image string
	Labels          map[string]string
	Networks        map[string]string // network name → IPv4 ("" for none)
	Exposed         []string          // "3000/tcp"
	State           container.ContainerState
	Health          container.HealthStatus // "" without a health check
}

type fakeSub struct {
	ch    chan events.Message
	types map[string]bool // nil: all
}

func newFakeEngine(t testing.TB) *fakeEngine {
	t.Helper()
	// A short directory of its own: unix socket paths hold 107 bytes.
	dir, err := os.MkdirTemp("", "pdk")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeEngine{
		t:          t,
		sock:       filepath.Join(dir, "d.sock"),
		name:       "fakehost",
		containers: make(map[string]*fakeContainer),
		subs:       make(map[*fakeSub]struct{}),
	}
	f.Start()
	t.Cleanup(func() {
		f.Stop()
		os.RemoveAll(dir)
	})
	return f
}

// Host is the DOCKER_HOST of the fake.
func (f *fakeEngine) Host() string { return "unix://" + f.sock }

// Start serves on the socket (again).
func (f *fakeEngine) Start() {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.srv != nil {
		return
	}
	l, err := net.Listen("unix", f.sock)
	if err != nil {
		f.t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	f.srv, f.down = srv, make(chan struct{})
}

// Stop ends every stream and request and removes the socket, as a daemon
// that exits does.
func (f *fakeEngine) Stop() {
	f.mu.Lock()
	srv, down := f.srv, f.down
	f.srv = nil
	f.mu.Unlock()
	if srv == nil {
		return
	}
	close(down)
	srv.CloseClientConnections()
	srv.Close()
}

// Lists is how many container lists the fake answered.
func (f *fakeEngine) Lists() int64 { return f.lists.Load() }

// Inspects is how many times the fake answered an inspect of id.
func (f *fakeEngine) Inspects(id string) int64 {
	if n, ok := f.inspects.Load(id); ok {
		return n.(*atomic.Int64).Load()
	}
	return 0
}

// Run adds a running container and emits create, network connect(s) and
// start, as `docker run` does. It returns the full ID. Health "" means no
// health check; a container with one starts in "starting" unless said.
func (f *fakeEngine) Run(c fakeContainer) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	if c.ID == "" {
		c.ID = fmt.Sprintf("%064x", f.nextID)
	}
	if c.Image == "" {
		c.Image = "pilot-e2e/node:standin"
	}
	if c.State == "" {
		c.State = container.StateRunning
	}
	c.Labels = maps.Clone(c.Labels)
	c.Networks = maps.Clone(c.Networks)
	f.containers[c.ID] = &c
	f.emitContainer(&c, events.ActionCreate)
	for n := range c.Networks {
		f.emitNetwork(&c, n, events.ActionConnect)
	}
	f.emitContainer(&c, events.ActionStart)
	return c.ID
}

// Remove kills and removes a container (`docker rm -f`).
func (f *fakeEngine) Remove(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.get(id)
	f.emitContainer(c, events.ActionKill)
	c.State = container.StateExited
	f.emitContainer(c, events.ActionDie)
	for n := range c.Networks {
		f.emitNetwork(c, n, events.ActionDisconnect)
	}
	delete(f.containers, id)
	f.emitContainer(c, events.ActionDestroy)
}

// SetHealth changes a container's health, with its health_status event.
func (f *fakeEngine) SetHealth(id string, h container.HealthStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.get(id)
	c.Health = h
	f.emitContainer(c, events.Action("health_status: "+string(h)))
}

// Pause and Unpause a container.
func (f *fakeEngine) Pause(id string, paused bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.get(id)
	if paused {
		c.State = container.StatePaused
		f.emitContainer(c, events.ActionPause)
	} else {
		c.State = container.StateRunning
		f.emitContainer(c, events.ActionUnPause)
	}
}

// Connect attaches a container to a network ("" ip: no address);
// Disconnect detaches it.
func (f *fakeEngine) Connect(id, netName, ip string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.get(id)
	if c.Networks == nil {
		c.Networks = make(map[string]string)
	}
	c.Networks[netName] = ip
	f.emitNetwork(c, netName, events.ActionConnect)
}

func (f *fakeEngine) Disconnect(id, netName string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.get(id)
	delete(c.Networks, netName)
	f.emitNetwork(c, netName, events.ActionDisconnect)
}

// Emit sends any event to the subscribers.
func (f *fakeEngine) Emit(m events.Message) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.emit(m)
}

// Quietly changes a container's state without an event: what a daemon
// that is down meanwhile (or an event the watcher missed) amounts to.
func (f *fakeEngine) Quietly(fn func(containers map[string]*fakeContainer)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f.containers)
}

func (f *fakeEngine) get(id string) *fakeContainer {
	c, ok := f.containers[id]
	if !ok {
		f.t.Fatalf("fake engine: no container %s", id)
	}
	return c
}

// emitContainer sends a container event with the attributes the daemon
// gives one: the labels, then image and name.
func (f *fakeEngine) emitContainer(c *fakeContainer, action events.Action) {
	attrs := maps.Clone(c.Labels)
	if attrs == nil {
		attrs = make(map[string]string)
	}
	attrs["image"], attrs["name"] = c.Image, c.Name
	f.emit(events.Message{Type: events.ContainerEventType, Action: action,
		Actor: events.Actor{ID: c.ID, Attributes: attrs}, Scope: "local"})
}

func (f *fakeEngine) emitNetwork(c *fakeContainer, netName string, action events.Action) {
	f.emit(events.Message{Type: events.NetworkEventType, Action: action,
		Actor: events.Actor{ID: "net-" + netName, Attributes: map[string]string{"container": c.ID, "name": netName, "type": "bridge"}},
		Scope: "local"})
}

func (f *fakeEngine) emit(m events.Message) {
	now := time.Now()
	m.Time, m.TimeNano = now.Unix(), now.UnixNano()
	for s := range f.subs {
		if s.types != nil && !s.types[string(m.Type)] {
			continue
		}
		select {
		case s.ch <- m:
		default:
			f.t.Errorf("fake engine: a subscriber's buffer is full; event %s %s dropped", m.Type, m.Action)
		}
	}
}

var apiVersionPrefix = regexp.MustCompile(`^/v[0-9.]+/`)

func (f *fakeEngine) serve(w http.ResponseWriter, r *http.Request) {
	path := apiVersionPrefix.ReplaceAllString(r.URL.Path, "/")
	w.Header().Set("Api-Version", "1.41")
	w.Header().Set("Ostype", "linux")
	switch {
	case path == "/_ping":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if r.Method != http.MethodHead {
			fmt.Fprint(w, "OK")
		}
	case path == "/version":
		writeJSON(w, map[string]string{"Version": "20.10.24", "ApiVersion": "1.41", "MinAPIVersion": "1.12", "Os": "linux"})
	case path == "/info":
		f.mu.Lock()
		name := f.name
		f.mu.Unlock()
		writeJSON(w, system.Info{Name: name, SystemTime: time.Now().Format(time.RFC3339Nano)})
	case path == "/containers/json":
		f.list(w, r)
	case strings.HasPrefix(path, "/containers/") && strings.HasSuffix(path, "/json"):
		f.inspect(w, strings.TrimSuffix(strings.TrimPrefix(path, "/containers/"), "/json"))
	case path == "/events":
		f.events(w, r)
	default:
		w.WriteHeader(http.StatusNotFound)
		writeJSON(w, map[string]string{"message": "page not found"})
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// filters decodes the filters parameter in both of the forms the daemon
// accepts: {"label":{"a=b":true}} and {"label":["a=b"]}.
func filters(r *http.Request) (map[string][]string, error) {
	out := make(map[string][]string)
	raw := r.URL.Query().Get("filters")
	if raw == "" {
		return out, nil
	}
	var sets map[string]map[string]bool
	if err := json.Unmarshal([]byte(raw), &sets); err == nil {
		for k, vs := range sets {
			for v := range vs {
				out[k] = append(out[k], v)
			}
		}
		return out, nil
	}
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		return nil, err
	}
	return out, nil
}

func (f *fakeEngine) list(w http.ResponseWriter, r *http.Request) {
	f.lists.Add(1)
	flt, err := filters(r)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		writeJSON(w, map[string]string{"message": err.Error()})
		return
	}
	all := r.URL.Query().Get("all") == "1"
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []container.Summary{}
	for _, c := range f.containers {
		if !all && len(flt["status"]) == 0 && c.State != container.StateRunning {
			continue
		}
		if !matchAll(c, flt) {
			continue
		}
		s := container.Summary{ID: c.ID, Names: []string{"/" + c.Name}, Image: c.Image, Labels: c.Labels, State: c.State,
			NetworkSettings: &container.NetworkSettingsSummary{Networks: endpoints(c)}}
		out = append(out, s)
	}
	writeJSON(w, out)
}

// matchAll: every label term and, if given, one of the status values.
func matchAll(c *fakeContainer, flt map[string][]string) bool {
	for _, l := range flt["label"] {
		k, v, hasValue := strings.Cut(l, "=")
		got, ok := c.Labels[k]
		if !ok || hasValue && got != v {
			return false
		}
	}
	if st := flt["status"]; len(st) > 0 {
		for _, s := range st {
			if s == string(c.State) {
				return true
			}
		}
		return false
	}
	return true
}

func endpoints(c *fakeContainer) map[string]*network.EndpointSettings {
	eps := make(map[string]*network.EndpointSettings, len(c.Networks))
	for n, ip := range c.Networks {
		ep := &network.EndpointSettings{NetworkID: "net-" + n, EndpointID: "ep-" + n}
		if ip != "" {
			ep.IPAddress = netip.MustParseAddr(ip)
			ep.IPPrefixLen = 24
		}
		eps[n] = ep
	}
	return eps
}

func (f *fakeEngine) inspect(w http.ResponseWriter, id string) {
	f.mu.Lock()
	c, ok := f.containers[id]
	if !ok {
		for _, o := range f.containers {
			if o.Name == id {
				c, ok = o, true
			}
		}
	}
	var resp container.InspectResponse
	if ok {
		n, _ := f.inspects.LoadOrStore(c.ID, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
		exposed := make(network.PortSet)
		for _, p := range c.Exposed {
			exposed[network.MustParsePort(p)] = struct{}{}
		}
		state := &container.State{Status: c.State, Running: c.State == container.StateRunning || c.State == container.StatePaused,
			Paused: c.State == container.StatePaused, Pid: 4242}
		var hc *container.HealthConfig
		if c.Health != "" {
			state.Health = &container.Health{Status: c.Health}
			hc = &container.HealthConfig{Test: []string{"CMD-SHELL", "test -f /tmp/ok"}, Interval: time.Second}
		}
		resp = container.InspectResponse{ID: c.ID, Name: "/" + c.Name, Image: "sha256:" + strings.Repeat("ab", 32), State: state,
			Config:          &container.Config{Image: c.Image, Labels: maps.Clone(c.Labels), ExposedPorts: exposed, Healthcheck: hc},
			NetworkSettings: &container.NetworkSettings{Networks: endpoints(c)}}
	}
	f.mu.Unlock()
	if !ok {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		writeJSON(w, map[string]string{"message": "No such container: " + id})
		return
	}
	writeJSON(w, resp)
}

// events streams events as JSON lines until the client goes or the fake
// stops. It subscribes before it answers, so nothing emitted after the
// client has its headers is missed.
func (f *fakeEngine) events(w http.ResponseWriter, r *http.Request) {
	flt, err := filters(r)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		writeJSON(w, map[string]string{"message": err.Error()})
		return
	}
	sub := &fakeSub{ch: make(chan events.Message, 1024)}
	if ts := flt["type"]; len(ts) > 0 {
		sub.types = make(map[string]bool)
		for _, t := range ts {
			sub.types[t] = true
		}
	}
	f.mu.Lock()
	f.subs[sub] = struct{}{}
	down := f.down
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.subs, sub)
		f.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	fl := w.(http.Flusher)
	fl.Flush()
	enc := json.NewEncoder(w)
	for {
		select {
		case <-r.Context().Done():
			return
		case <-down:
			return
		case m := <-sub.ch:
			if err := enc.Encode(m); err != nil {
				return
			}
			fl.Flush()
		}
	}
}
