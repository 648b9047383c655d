package pilot

import (
	"context"
	"log/slog"

	"github.com/moby/moby/client"
	"github.com/nodepilot/pilot/discovery"
	"github.com/nodepilot/pilot/discovery/docker"
	"sync"
	"syscall"
	"time"

	"github.com/nodepilot/pilot/discovery/consul"
	"github.com/nodepilot/pilot/pilot/config"
	"github.com/nodepilot/pilot/pilot/watches"
)

// watchSet runs the current generation's watches (package watches), each
// on its own goroutine; a reload keeps those whose config and Consul client
// are unchanged and replaces the rest.
type watchSet struct {
	c *core

	mu sync.Mutex
	// docker is the Engine API client docker watches share, for the host
	// dockerAt; made at the first docker watch, replaced when the host
	// changes.
	docker   *client.Client
	dockerAt string
	ctx      context.Context // run's; nil before run
	byName   map[string]*runningWatch
	pending  []*runningWatch
	files    int // instance files handed out, for unique names
}

type runningWatch struct {
	plan   watchPlan
	client *consul.Client // a consul watch's; nil for others
	w      *watches.Watch
	stop   func()
	done   chan struct{}
}

func newWatchSet(c *core) *watchSet { return &watchSet{c: c, byName: map[string]*runningWatch{}} }

// gates pairs each watch about to start with the start gate it opens.
type watchGates map[string]*watches.StartGate

// startGates gives each job about to start that one of ws reloads a start
// gate, opened by those watches' first renders.
func startGates(ws []watchPlan, starting func(job string) bool) (map[string]<-chan struct{}, watchGates) {
	cfgs := make([]config.Watch, len(ws))
	for i, w := range ws {
		cfgs[i] = w.cfg
	}
	perJob, perWatch := watches.NewStartGates(cfgs, starting)
	gates := watchGates{}
	for i, g := range perWatch {
		if g != nil {
			gates[ws[i].name.Watch] = g
		}
	}
	return perJob, gates
}

// kept names the running watches a reload to plans keeps.
func (ws *watchSet) kept(plans []watchPlan, clientChanged bool) map[string]bool {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	out := map[string]bool{}
	for _, p := range plans {
		if r := ws.byName[p.name.Watch]; r != nil && r.plan.same(p) && !(clientChanged && r.client != nil) {
			out[p.name.Watch] = true
		}
	}
	return out
}

// stopChanged stops the running watches a reload to plans does not keep.
func (ws *watchSet) stopChanged(plans []watchPlan, clientChanged bool) {
	keep := ws.kept(plans, clientChanged)
	ws.mu.Lock()
	var stopping []*runningWatch
	for name, r := range ws.byName {
		if !keep[name] {
			stopping = append(stopping, r)
			delete(ws.byName, name)
		}
	}
	ws.mu.Unlock()
	for _, r := range stopping {
		r.halt()
	}
}

// apply makes the set that of plans: a watch whose plan and client are
// unchanged keeps running; the others stop, and the new ones start, each
// opening the gate gates give it.
func (ws *watchSet) apply(plans []watchPlan, client *consul.Client, clientChanged bool, gates watchGates) {
	ws.stopChanged(plans, clientChanged)
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for _, p := range plans {
		if ws.byName[p.name.Watch] != nil {
			continue
		}
		log := ws.c.log.With("watch", p.name.Watch)
		watcher, err := watcherBackends[p.cfg.Discovery](ws, p, client, log)
		if err != nil { // validation leaves only a client that cannot be made
			log.Error("watch: cannot start", "discovery", p.cfg.Discovery, "err", err)
			continue
		}
		name := p.name.Watch
		ws.files++
		r := &runningWatch{plan: p, w: watches.New(watches.Options{
			Name: name, Config: p.cfg, Watcher: watcher, Jobs: watchJobs{ws.c}, Runner: ws.c.reaper,
			Environ: ws.c.opts.Environ, InstancesFile: watches.InstancesFile(ws.c.stateDir, ws.files, p.cfg),
			Gate: gates[name], Stdout: ws.c.opts.Stdout, Stderr: ws.c.opts.Stderr, Log: ws.c.log,
			Applied: func(instances, skipped int) {
				if in := ws.c.inst.Load(); in != nil {
					in.watches.Applied(name, instances, skipped, time.Now())
				}
			},
		})}
		if p.cfg.Discovery == config.DiscoveryConsul {
			r.client = client
		}
		ws.byName[name] = r
		ws.launch(r)
	}
}

// watcherBackends makes the discovery.Watcher of each backend a watch may
// name (config.Discovery); called with mu held.
var watcherBackends = map[config.Discovery]func(ws *watchSet, p watchPlan, c *consul.Client, log *slog.Logger) (discovery.Watcher, error){
	config.DiscoveryConsul: func(_ *watchSet, _ watchPlan, c *consul.Client, log *slog.Logger) (discovery.Watcher, error) {
		return consul.NewWatcher(c, consul.WatcherOptions{}, log)
	},
	config.DiscoveryDocker: func(ws *watchSet, p watchPlan, _ *consul.Client, log *slog.Logger) (discovery.Watcher, error) {
		c, err := ws.dockerClient(p.dockerHost)
		if err != nil {
			return nil, err
		}
		return docker.NewWatcher(c, docker.WatcherOptions{}, log)
	},
}

// dockerClient is the shared Engine API client for host; one for another
// host is closed once no watch uses it (stopChanged ran first: a watch on
// the old host was not kept, as its plan names the host). Called with mu
// held.
func (ws *watchSet) dockerClient(host string) (*client.Client, error) {
	if ws.docker != nil && ws.dockerAt == host {
		return ws.docker, nil
	}
	c, err := docker.NewClient(host)
	if err != nil {
		return nil, err
	}
	if ws.docker != nil {
		ws.docker.Close()
	}
	ws.docker, ws.dockerAt = c, host
	return c, nil
}

// launch runs r now if the set runs, else once it does. Called with mu
// held.
func (ws *watchSet) launch(r *runningWatch) {
	r.done = make(chan struct{})
	if ws.ctx == nil {
		r.stop = func() {}
		ws.pending = append(ws.pending, r)
		return
	}
	ctx, cancel := context.WithCancel(ws.ctx)
	r.stop = cancel
	go func() {
		defer close(r.done)
		r.w.Run(ctx)
	}()
}

func (r *runningWatch) halt() {
	r.stop()
	<-r.done
}

// run starts the watches built so far and those a reload adds, until ctx
// ends; it returns once every watch has.
func (ws *watchSet) run(ctx context.Context) {
	ws.mu.Lock()
	ws.ctx = ctx
	for _, r := range ws.pending {
		ws.launch(r)
	}
	ws.pending = nil
	ws.mu.Unlock()
	<-ctx.Done()
	ws.mu.Lock()
	all := make([]*runningWatch, 0, len(ws.byName))
	for _, r := range ws.byName {
		all = append(all, r)
	}
	ws.mu.Unlock()
	for _, r := range all {
		<-r.done
	}
	ws.mu.Lock()
	if ws.docker != nil {
		ws.docker.Close()
		ws.docker = nil
	}
	ws.mu.Unlock()
}

// watchJobs is how watches reach the jobs: by name, in the current set.
type watchJobs struct{ c *core }

func (w watchJobs) Signal(job string, sig syscall.Signal) bool {
	j := w.c.sup.job(job)
	if j == nil || j.Status().Pid == 0 {
		return false
	}
	j.Forward(sig)
	return true
}

func (w watchJobs) Trigger(job string, env []string) {
	if j := w.c.sup.job(job); j != nil {
		j.Trigger(env)
	}
}
