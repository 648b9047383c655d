package pilot

import (
	"errors"
	"fmt"
	"github.com/nodepilot/pilot/discovery/container"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"syscall"
	"time"

	"github.com/nodepilot/pilot/discovery"
	"github.com/nodepilot/pilot/jobs"
	"github.com/nodepilot/pilot/jobs/health"
	"github.com/nodepilot/pilot/pilot/config"
	"github.com/nodepilot/pilot/pilot/watches"
	"github.com/nodepilot/pilot/telemetry"
	"github.com/nodepilot/pilot/telemetry/custom"
)

// generation is one config made ready to run: everything pilot derives
// from a config, built without side effects — no process, file, socket or
// registration — so that a config that cannot be built changes nothing.
// The core applies a generation to the long-lived parts (supervisor,
// services, watches, telemetry), each of which keeps what did not change.
type generation struct {
	cfg      config.Config // defaults filled in
	jobs     []jobPlan     // in the file's order
	services []servicePlan // in the order of their jobs
	watches  []watchPlan
	metrics  []custom.Def
	// sensors is set when a job feeds custom metrics from its stdout.
	sensors bool
	// identity is pilot's container, as the build was given it.
	identity container.Identity
}

// jobPlan is one job of a generation.
type jobPlan struct {
	spec jobs.Spec
	// identity is what decides whether a reload restarts the job: its
	// effective config (after ${VAR} expansion and defaults) less its
	// service, which updates in place, plus what other parts of the config
	// make of it. Two equal identities run the same process.
	identity jobIdentity
}

type jobIdentity struct {
	job config.Job
	// triggered: a watch's onChange.run names the job.
	triggered bool
	// instances is a cluster job's count as resolved: `auto` follows the
	// CPU quota, which may have changed since the last build.
	instances int
}

func (p jobPlan) sameJob(o jobPlan) bool { return reflect.DeepEqual(p.identity, o.identity) }

// servicePlan is the registration of one job's service.
type servicePlan struct {
	job      string
	svc      discovery.Service
	drain    time.Duration
	selector discovery.AddressSelector
}

func (p servicePlan) same(o servicePlan) bool { return reflect.DeepEqual(p, o) }

// watchPlan is one watch; name tells it from the others (watches.Names).
type watchPlan struct {
	name telemetry.WatchName
	cfg  config.Watch
	// dockerHost is the Engine API a docker watch reads ("" for others):
	// a change of docker.host (or DOCKER_HOST) restarts it.
	dockerHost string
}

func (p watchPlan) same(o watchPlan) bool { return reflect.DeepEqual(p, o) }

// buildInputs are what a build reads besides the config: pilot's
// environment, and hooks into the long-lived parts, which a build only
// captures, never calls.
type buildInputs struct {
	environ []string
	// starter runs exec health checks (the reaper).
	starter *jobs.Reaper
	// observeHealth is told of every health check's result (telemetry).
	observeHealth func(job string, r health.Result)
	log           *slog.Logger
	// sensor returns the stdout hook of a sensor job (custom metrics).
	sensor func(job string) func(line []byte)
	// nodeEnv adds pilot's Node agent to a job's environment.
	nodeEnv  func(job string, env []string) []string
	hostname string
	// identity is pilot's container: its meta goes into every service's,
	// its compose project is a docker watch's default.
	identity container.Identity
	// cpus counts the CPUs the container may use, for `instances: auto`.
	cpus func() int
	// readiness wraps a `readiness: message` job's probe so that a run is
	// ready once its process said so through the Node agent.
	readiness func(health jobs.Probe) jobs.Probe
}

// build makes a generation of a checked config. Its errors are
// *ConfigError: faults found only now, such as a user deleted since the
// host checks ran, each prefixed by its path.
func build(raw *config.Config, in buildInputs) (*generation, error) {
	cfg := raw.WithDefaults()
	g := &generation{cfg: cfg, identity: in.identity}
	var errs []error
	specs, err := buildSpecs(cfg, in.environ, in.starter, in.log, in.observeHealth)
	if err != nil {
		return nil, err
	}
	runOnChange := map[string]bool{}
	for _, w := range cfg.Watches {
		runOnChange[w.OnChange.Run] = true
	}
	for i, jc := range cfg.Jobs {
		spec := specs[i]
		if jc.Sensor && in.sensor != nil {
			spec.StdoutLines = in.sensor(jc.Name)
		}
		if (jc.Node != nil && jc.Node.Metrics || len(jc.Listen) > 0) && in.nodeEnv != nil {
			spec.Env = in.nodeEnv(jc.Name, spec.Env)
		}
		if jc.Cluster() {
			spec.Instances = max(jc.Instances.N, 1)
			if jc.Instances.Auto && in.cpus != nil {
				spec.Instances = in.cpus()
			}
			spec.ReadyTimeout = jc.ReadyTimeout
			spec.ReloadSignal = syscall.Signal(jc.ReloadSignal)
			if jc.Readiness == config.ReadinessMessage && in.readiness != nil {
				spec.Probe = in.readiness(spec.Probe)
			}
		}
		identity := jobIdentity{job: jc, triggered: runOnChange[jc.Name], instances: spec.Instances}
		identity.job.Service = nil
		g.jobs = append(g.jobs, jobPlan{spec: spec, identity: identity})
		g.sensors = g.sensors || jc.Sensor
		if sc := jc.Service; sc != nil {
			plan, err := planService(jc.Name, *sc, in.hostname)
			plan.svc.Meta = withIdentityMeta(plan.svc.Meta, in.identity)
			if err != nil {
				errs = append(errs, fmt.Errorf("jobs[%d].service.%w", i, err))
				continue
			}
			g.services = append(g.services, plan)
		}
	}
	for i, name := range watches.Names(cfg.Watches) {
		plan := watchPlan{name: name, cfg: cfg.Watches[i]}
		if plan.cfg.Discovery == config.DiscoveryDocker {
			plan.cfg.Docker = dockerDefaults(plan.cfg.Docker, in.identity)
			plan.dockerHost = dockerHost(&cfg, in.environ)
		}
		g.watches = append(g.watches, plan)
	}
	for _, m := range cfg.Metrics {
		g.metrics = append(g.metrics, custom.Def{Name: m.Name, Kind: custom.Kind(m.Type), Help: m.Help, Labels: m.Labels, Buckets: m.Buckets})
	}
	if len(errs) > 0 {
		return nil, &ConfigError{errors.Join(errs...)}
	}
	return g, nil
}

func planService(job string, sc config.Service, hostname string) (servicePlan, error) {
	sel := discovery.AddressSelector{Interface: sc.Address.Interface, CIDR: sc.Address.CIDR, Static: sc.Address.Static}
	svc, err := discoveryService(sc, sel, hostname)
	if err != nil {
		return servicePlan{}, err
	}
	return servicePlan{job: job, svc: svc, drain: sc.Drain, selector: sel}, nil
}

// job returns the plan of the named job, false when the generation has
// none.
func (g *generation) job(name string) (jobPlan, bool) {
	for _, p := range g.jobs {
		if p.spec.Name == name {
			return p, true
		}
	}
	return jobPlan{}, false
}

// jobDiff is what applying next over prev does to the jobs.
type jobDiff struct {
	stop  []string    // changed and removed: stopped
	start []jobs.Spec // changed and added: started
	order []string    // every job of next
	// unchanged counts the jobs that keep running untouched.
	unchanged                 int
	restarted, added, removed []string
	// rolled are the changed cluster jobs that a rolling reload replaces
	// instance by instance, instead of a stop and a start.
	rolled []string
}

func diffJobs(prev, next *generation) jobDiff {
	var d jobDiff
	for _, p := range next.jobs {
		d.order = append(d.order, p.spec.Name)
		old, ok := prev.job(p.spec.Name)
		switch {
		case !ok:
			d.added = append(d.added, p.spec.Name)
			d.start = append(d.start, p.spec)
		case !old.sameJob(p) && rollable(old, p):
			d.rolled = append(d.rolled, p.spec.Name)
		case !old.sameJob(p):
			d.restarted = append(d.restarted, p.spec.Name)
			d.stop = append(d.stop, p.spec.Name)
			d.start = append(d.start, p.spec)
		default:
			d.unchanged++
		}
	}
	for _, p := range prev.jobs {
		if _, ok := next.job(p.spec.Name); !ok {
			d.removed = append(d.removed, p.spec.Name)
			d.stop = append(d.stop, p.spec.Name)
		}
	}
	return d
}

// rollable says whether a change of a cluster job can be applied by a
// rolling reload: it stays a cluster job on the same sockets, with the same
// dependencies and main flag. Anything else (a socket moved, say) restarts
// the job whole.
func rollable(old, next jobPlan) bool {
	o, n := old.identity.job, next.identity.job
	return o.Cluster() && n.Cluster() && slices.Equal(o.Listen, n.Listen) &&
		reflect.DeepEqual(o.After, n.After) && o.Main == n.Main
}

// consulChanged reports whether next reaches Consul differently from prev
// (another agent, token or TLS): every registration and watch then moves
// to a new client.
func consulChanged(prev, next *generation) bool {
	return !reflect.DeepEqual(prev.cfg.Consul, next.cfg.Consul)
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}
