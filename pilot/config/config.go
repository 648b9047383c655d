package config

import (
	"time"

	"github.com/nodepilot/pilot/jobs"
	"github.com/nodepilot/pilot/jobs/output"
	"github.com/nodepilot/pilot/telemetry/custom"
)

// Config is the raw, decoded configuration file. It holds input only: no
// defaults are filled in here and nothing live. Load decodes it, Validate
// checks it, and pilot builds runtime objects from a valid Config.
type Config struct {
	// Consul is optional: without it pilot is a pure supervisor.
	Consul *Consul `mapstructure:"consul"`
	Log    Log     `mapstructure:"log"`
	// StopTimeout bounds the whole shutdown sequence. Zero means the default.
	StopTimeout time.Duration `mapstructure:"stopTimeout"`
	// A top-level key starting with "x-" is an extension, as in a compose
	// file: it holds YAML anchors for the rest to use, and is not decoded.
	Jobs []Job `mapstructure:"jobs"`
	// Watches follow Consul services and act when their instances change.
	Watches []Watch `mapstructure:"watches"`
	// Telemetry serves /metrics and /status; nil means no listener.
	Telemetry *Telemetry `mapstructure:"telemetry"`
	// Metrics declares custom metrics, set by sensor jobs.
	Metrics []Metric `mapstructure:"metrics"`
	// Control is pilot's control socket; nil means the default.
	Control *Control `mapstructure:"control"`
	// Docker is the Engine API pilot reads for its own identity and for
	// watches with discovery: docker; nil means the default address.
	Docker *Docker `mapstructure:"docker"`
}

// Docker is where pilot reads the Docker Engine API. pilot only reads
// (ping, list, inspect, events); see README "Docker socket".
type Docker struct {
	// Host is unix:///path or tcp://host:port; "" means DOCKER_HOST, else
	// unix:///var/run/docker.sock.
	Host string `mapstructure:"host"`
}

// Control is pilot's control socket (pilot status, reload, …).
type Control struct {
	// Socket is the unix socket's path; nil means PILOT_SOCKET, else the
	// default; "" turns the socket off.
	Socket *string `mapstructure:"socket"`
}

// Telemetry is pilot's HTTP endpoint for Prometheus.
type Telemetry struct {
	// Listen is host:port (":9090" for every interface).
	Listen string `mapstructure:"listen"`
	// Register registers a "pilot" service (port = Listen's port) in
	// Consul, for Prometheus's consul_sd_configs.
	Register bool `mapstructure:"register"`
}

// Metric is a custom metric, exposed under its own name.
type Metric struct {
	Name   string      `mapstructure:"name"`
	Type   custom.Kind `mapstructure:"type"` // counter | gauge | histogram
	Help   string      `mapstructure:"help"`
	Labels []string    `mapstructure:"labels"`
	// Buckets are a histogram's upper bounds, increasing; empty means
	// Prometheus's default buckets.
	Buckets []float64 `mapstructure:"buckets"`
}

// Node configures what pilot does for a Node.js job.
type Node struct {
	// Metrics preloads pilot's agent (NODE_OPTIONS) to report event-loop
	// delay, heap, GC and handles to pilot.
	Metrics bool `mapstructure:"metrics"`
}

// Watch follows one service: in Consul, or among Docker's containers.
type Watch struct {
	Service string `mapstructure:"service"`
	// Discovery is the backend; "" means consul.
	Discovery Discovery `mapstructure:"discovery"`
	// Tag and Datacenter narrow a Consul watch.
	Tag        string `mapstructure:"tag"`
	Datacenter string `mapstructure:"dc"`
	// Consistency is a Consul watch's read mode; "" means stale.
	Consistency Consistency `mapstructure:"consistency"`
	// Docker narrows a Docker watch and says how to reach its containers.
	Docker *DockerWatch `mapstructure:"docker"`
	// PassingOnly keeps only instances whose checks pass; nil means true.
	PassingOnly *bool    `mapstructure:"passingOnly"`
	Debounce    Debounce `mapstructure:"debounce"`
	OnChange    OnChange `mapstructure:"onChange"`
}

// DockerWatch selects a Docker watch's containers: those of compose
// service Service in Project, or those carrying every label of Labels.
type DockerWatch struct {
	// Project is the compose project; "" means pilot's own when it runs in
	// a compose container whose identity it could read, else any project.
	Project string            `mapstructure:"project"`
	Labels  map[string]string `mapstructure:"labels"`
	// Network names the network whose address is used; "" takes the
	// container's only network.
	Network string `mapstructure:"network"`
	// Port is the container port; 0 takes the container's only exposed one.
	Port int `mapstructure:"port"`
}

// Debounce coalesces bursts: act once no change came for Min, and at the
// latest Max after the first change of a burst.
type Debounce struct {
	Min time.Duration `mapstructure:"min"`
	Max time.Duration `mapstructure:"max"`
}

// OnChange is what a watch does with a new set of instances: run a job,
// render files, then reload what reads them.
type OnChange struct {
	// Run names a job started on each change (never at boot) with the
	// instances in a JSON file; see README "onChange.run".
	Run       string         `mapstructure:"run"`
	Templates []TemplateFile `mapstructure:"templates"`
	Render    *RenderFile    `mapstructure:"render"`
	Reload    *Reload        `mapstructure:"reload"`
}

// TemplateFile is a user template rendered to Dest.
type TemplateFile struct {
	Source string `mapstructure:"source"`
	Dest   string `mapstructure:"dest"`
}

// RenderFile is a built-in render: an nginx upstream block or a Traefik
// file-provider config.
type RenderFile struct {
	Format RenderFormat `mapstructure:"format"`
	Dest   string       `mapstructure:"dest"`
	// Name is the upstream (nginx) or service (Traefik) name; empty means
	// render.DefaultName of the watched service.
	Name string `mapstructure:"name"`
}

// Reload tells the proxy about new files: a signal to a job, or a command.
type Reload struct {
	Job     string        `mapstructure:"job"`
	Signal  Signal        `mapstructure:"signal"` // default SIGHUP
	Exec    []string      `mapstructure:"exec"`
	Timeout time.Duration `mapstructure:"timeout"`
}

// Log configures pilot's own log (never the children's output).
type Log struct {
	// Level and Format stay as written: PILOT_LOG_LEVEL and
	// PILOT_LOG_FORMAT override them as text, and ParseLogLevel and
	// ParseLogFormat read both.
	Level  string `mapstructure:"level"`  // debug | info | warn | error
	Format string `mapstructure:"format"` // text | json
}

// Job is one supervised command.
type Job struct {
	Name  string   `mapstructure:"name"`
	Exec  []string `mapstructure:"exec"`  // argv form
	Shell string   `mapstructure:"shell"` // run by /bin/sh -c
	// Main marks the job whose exit ends pilot, with its exit code.
	Main bool   `mapstructure:"main"`
	Dir  string `mapstructure:"dir"`
	// User is a user name, a uid, or "uid:gid" / "name:group".
	User string            `mapstructure:"user"`
	Env  map[string]string `mapstructure:"env"` // keys keep their case
	// After lists the states of other jobs this job waits for.
	After []Dependency `mapstructure:"after"`
	// Every, when set, makes the job periodic: a run starts every Every,
	// never overlapping the previous one.
	Every time.Duration `mapstructure:"every"`
	// Timeout bounds one run; zero means no bound, or Every for a periodic
	// job.
	Timeout time.Duration `mapstructure:"timeout"`
	Restart Restart       `mapstructure:"restart"`
	// StopSignal is written as a name such as "SIGTERM" or "TERM"; zero
	// means the signal that started the shutdown (TERM or INT), else
	// SIGTERM.
	StopSignal Signal `mapstructure:"stopSignal"`
	// StopTimeout is how long the job has to exit after its stop signal
	// before it is killed; it may not exceed the top-level StopTimeout.
	StopTimeout time.Duration `mapstructure:"stopTimeout"`
	PreStop     *Hook         `mapstructure:"preStop"`
	PostStop    *Hook         `mapstructure:"postStop"`
	Output      output.Mode   `mapstructure:"output"` // raw | prefixed | json
	// ForwardSignals names the signals pilot passes on to this job's process
	// group when pilot receives them (SIGHUP, SIGUSR1, SIGUSR2, SIGQUIT,
	// SIGWINCH, SIGALRM).
	ForwardSignals []Signal `mapstructure:"forwardSignals"`
	// MaxMemory is written as a size such as "512MiB": when the job's
	// process group stays above it for several samples, pilot restarts the
	// job gracefully.
	MaxMemory Size `mapstructure:"maxMemory"`
	// Health checks the job while it runs; Service registers it in Consul
	// (it needs Health and the top-level consul block).
	Health  *Health  `mapstructure:"health"`
	Service *Service `mapstructure:"service"`
	// Node holds the Node.js options (runtime metrics).
	Node *Node `mapstructure:"node"`
	// Sensor makes pilot read the job's stdout as metric samples, one per
	// line: `name value` or `name{label="v",…} value`.
	Sensor bool `mapstructure:"sensor"`
	// Instances runs the job as a pool of copies (cluster mode): a number 1..256, or "auto"
	// (the container's CPU quota). Zero value: not set.
	Instances Instances `mapstructure:"instances"`
	// Listen lists sockets pilot binds once and hands to every instance (LISTEN_FDS).
	Listen []string `mapstructure:"listen"`
	// Readiness is when a new instance counts as ready during a rolling reload: health | message.
	Readiness Readiness `mapstructure:"readiness"`
	// ReadyTimeout bounds the wait for a new instance to become ready in a rolling reload.
	ReadyTimeout time.Duration `mapstructure:"readyTimeout"`
	// ReloadSignal, when pilot receives it, makes a rolling reload of this job.
	ReloadSignal Signal `mapstructure:"reloadSignal"`
}

// Cluster reports whether j is a pool job: pilot supervises it as a set of
// instances, replaced one by one in a rolling reload. Listen alone makes
// one: the sockets are pilot's, so even a single instance is replaced
// without dropping a connection.
func (j Job) Cluster() bool { return j.Instances.Set() || len(j.Listen) > 0 }

// Consul is how pilot reaches the Consul agent. Empty fields fall back to
// Consul's own environment (CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, …).
type Consul struct {
	Address   string `mapstructure:"address"` // host:port or https://host:port
	Token     string `mapstructure:"token"`
	TokenFile string `mapstructure:"tokenFile"`
	TLS       TLS    `mapstructure:"tls"`
}

// TLS to Consul verifies certificates unless InsecureSkipVerify is spelled out.
type TLS struct {
	CAFile             string `mapstructure:"caFile"`
	CertFile           string `mapstructure:"certFile"`
	KeyFile            string `mapstructure:"keyFile"`
	ServerName         string `mapstructure:"serverName"`
	InsecureSkipVerify bool   `mapstructure:"insecureSkipVerify"`
}

// Health is a job's health check: exactly one of HTTP, TCP, Exec, Shell.
type Health struct {
	HTTP        *HTTPCheck    `mapstructure:"http"`
	TCP         *TCPCheck     `mapstructure:"tcp"`
	Exec        []string      `mapstructure:"exec"`
	Shell       string        `mapstructure:"shell"`
	Interval    time.Duration `mapstructure:"interval"`
	Timeout     time.Duration `mapstructure:"timeout"`
	StartPeriod time.Duration `mapstructure:"startPeriod"`
	// StartInterval paces the checks until the first pass, so that a
	// new instance is routed as soon as it answers (see health.Policy).
	StartInterval      time.Duration `mapstructure:"startInterval"`
	HealthyThreshold   int           `mapstructure:"healthyThreshold"`
	UnhealthyThreshold int           `mapstructure:"unhealthyThreshold"`
	OnUnhealthy        OnUnhealthy   `mapstructure:"onUnhealthy"` // none | restart
}

// HTTPCheck is a GET to 127.0.0.1:Port/Path; a 2xx or 3xx passes unless
// ExpectStatus lists the codes that do.
type HTTPCheck struct {
	Port         int    `mapstructure:"port"`
	Path         string `mapstructure:"path"`
	Host         string `mapstructure:"host"` // the Host header
	ExpectStatus []int  `mapstructure:"expectStatus"`
}

// TCPCheck passes when 127.0.0.1:Port accepts a connection.
type TCPCheck struct {
	Port int `mapstructure:"port"`
}

// Service is a job's registration in Consul.
type Service struct {
	ID                      string            `mapstructure:"id"` // default NAME-HOSTNAME-PORT (pilot.defaultServiceID)
	Name                    string            `mapstructure:"name"`
	Port                    int               `mapstructure:"port"`
	Address                 Address           `mapstructure:"address"`
	Tags                    []string          `mapstructure:"tags"`
	Meta                    map[string]string `mapstructure:"meta"`
	EnableTagOverride       bool              `mapstructure:"enableTagOverride"`
	TTL                     time.Duration     `mapstructure:"ttl"`
	DeregisterCriticalAfter time.Duration     `mapstructure:"deregisterCriticalAfter"`
	// Drain is the pause between deregistration and the stop signal, for
	// proxies to drop the instance.
	Drain time.Duration `mapstructure:"drain"`
	// Traefik, when set, adds traefik.* tags for Traefik's Consul Catalog
	// provider.
	Traefik *Traefik `mapstructure:"traefik"`
}

// Traefik is a service's routing in Traefik.
type Traefik struct {
	Rule         string              `mapstructure:"rule"`
	EntryPoints  []string            `mapstructure:"entrypoints"`
	Middlewares  []string            `mapstructure:"middlewares"`
	Priority     int                 `mapstructure:"priority"`
	Port         int                 `mapstructure:"port"` // default: the service port
	StickyCookie string              `mapstructure:"stickyCookie"`
	HealthCheck  *TraefikHealthCheck `mapstructure:"healthCheck"`
}

// TraefikHealthCheck is Traefik's own active check of each instance.
type TraefikHealthCheck struct {
	Path     string        `mapstructure:"path"`
	Interval time.Duration `mapstructure:"interval"`
	Timeout  time.Duration `mapstructure:"timeout"`
}

// Address chooses the address registered: at most one of the three; none
// means the first non-loopback IPv4 address.
type Address struct {
	Interface string `mapstructure:"interface"`
	CIDR      string `mapstructure:"cidr"`
	Static    string `mapstructure:"static"`
}

// Dependency makes a job wait until another job has reached a state.
type Dependency struct {
	Job   string          `mapstructure:"job"`
	State DependencyState `mapstructure:"state"`
}

// Restart is a job's restart policy.
type Restart struct {
	Policy jobs.RestartPolicy `mapstructure:"policy"` // never | on-failure | always
	// Max is the number of restarts allowed; nil means unlimited.
	Max     *int    `mapstructure:"max"`
	Backoff Backoff `mapstructure:"backoff"`
}

// Backoff shapes the delay before each restart: it starts at Initial, doubles
// up to Max (with jitter), and resets once a run has stayed up ResetAfter.
type Backoff struct {
	Initial    time.Duration `mapstructure:"initial"`
	Max        time.Duration `mapstructure:"max"`
	ResetAfter time.Duration `mapstructure:"resetAfter"`
}

// Hook is a command run around a job's stop.
type Hook struct {
	Exec    []string      `mapstructure:"exec"`
	Shell   string        `mapstructure:"shell"`
	Timeout time.Duration `mapstructure:"timeout"`
}
