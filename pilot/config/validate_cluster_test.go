package config

import (
	"reflect"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Instances are read from an integer in any format, from "auto", and from
// the text of a number (a quoted ${N}).
func TestInstancesDecode(t *testing.T) {
	tests := []struct {
		name, format, doc string
		env               map[string]string
		want              Instances
	}{
		{"yaml integer", "yaml", "jobs: [{instances: 4}]", nil, Instances{N: 4}},
		{"yaml auto", "yaml", "jobs: [{instances: auto}]", nil, Instances{Auto: true}},
		{"yaml quoted number", "yaml", `jobs: [{instances: "256"}]`, nil, Instances{N: 256}},
		{"yaml unquoted variable", "yaml", "jobs: [{instances: ${N}}]", map[string]string{"N": "3"}, Instances{N: 3}},
		{"yaml quoted variable", "yaml", `jobs: [{instances: "${N:-auto}"}]`, nil, Instances{Auto: true}},
		{"json number", "json", `{"jobs": [{"instances": 1}]}`, nil, Instances{N: 1}},
		{"json auto", "json", `{"jobs": [{"instances": "auto"}]}`, nil, Instances{Auto: true}},
		{"toml integer", "toml", "[[jobs]]\ninstances = 8\n", nil, Instances{N: 8}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := decodeOnly([]byte(tt.doc), tt.format, env(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Jobs[0].Instances; got != tt.want || !got.Set() {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestInstancesDecodeErrors(t *testing.T) {
	doc := `jobs:
  - instances: many
  - instances: 0
  - instances: -1
  - instances: 257
  - instances: 2.5
  - instances: "4 "
  - instances: Auto
  - instances: true
  - instances: [2]
  - readiness: ready
`
	_, err := decodeOnly([]byte(doc), "yaml", noEnv)
	assertLines(t, err,
		`jobs[0].instances: must be a whole number from 1 to 256 or "auto", got "many"`,
		`jobs[1].instances: must be a whole number from 1 to 256 or "auto", got 0`,
		`jobs[2].instances: must be a whole number from 1 to 256 or "auto", got -1`,
		`jobs[3].instances: must be a whole number from 1 to 256 or "auto", got 257`,
		`jobs[4].instances: must be a whole number from 1 to 256 or "auto", got 2.5`,
		`jobs[5].instances: must be a whole number from 1 to 256 or "auto", got "4 "`,
		`jobs[6].instances: must be a whole number from 1 to 256 or "auto", got "Auto"`,
		`jobs[7].instances: must be a whole number from 1 to 256 or "auto", got boolean true`,
		`jobs[8].instances: must be a whole number from 1 to 256 or "auto", got a list`,
		`jobs[9].readiness: "ready" must be one of health, message`,
	)
	_, err = decodeOnly([]byte(`{"jobs": [{"instances": 1.5}]}`), "json", noEnv)
	assertLines(t, err, `jobs[0].instances: must be a whole number from 1 to 256 or "auto", got 1.5`)
}

func TestInstancesString(t *testing.T) {
	for _, tt := range []struct {
		in   Instances
		want string
		set  bool
	}{{Instances{}, "0", false}, {Instances{N: 3}, "3", true}, {Instances{Auto: true}, "auto", true}} {
		if got := tt.in.String(); got != tt.want || tt.in.Set() != tt.set {
			t.Errorf("%+v: String %q, Set %v", tt.in, got, tt.in.Set())
		}
	}
}

func TestCluster(t *testing.T) {
	for _, tt := range []struct {
		job  Job
		want bool
	}{
		{Job{}, false},
		{Job{Instances: Instances{N: 1}}, true},
		{Job{Instances: Instances{Auto: true}}, true},
		{Job{Listen: []string{":3000"}}, true},
		{Job{Listen: []string{}}, false},
	} {
		if got := tt.job.Cluster(); got != tt.want {
			t.Errorf("%+v: Cluster() = %v", tt.job, got)
		}
	}
}

func TestValidateCluster(t *testing.T) {
	app := func(mod func(*Job)) Job {
		j := Job{Name: "app", Exec: []string{"node", "server.js"}}
		mod(&j)
		return j
	}
	health := &Health{HTTP: &HTTPCheck{Port: 3000}}
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"instances and listen", Config{Jobs: []Job{app(func(j *Job) {
			j.Instances = Instances{N: 4}
			j.Listen = []string{":3000", "127.0.0.1:3001", "[::1]:3002", "localhost:3003", "0.0.0.0:3004", "[::]:3005", "[fe80::1]:3006"}
			j.Health = health
			j.Readiness = ReadinessHealth
			j.ReadyTimeout = time.Second
			j.ReloadSignal = Signal(unix.SIGUSR2)
			j.MaxMemory = 512 << 20
			j.Main = true
		})}}, nil},
		{"auto, readiness message through node metrics", Config{Telemetry: &Telemetry{Listen: ":9090"}, Jobs: []Job{app(func(j *Job) {
			j.Instances = Instances{Auto: true}
			j.Node = &Node{Metrics: true}
			j.Readiness = ReadinessMessage
		})}}, nil},
		{"readiness message through listen", Config{Jobs: []Job{app(func(j *Job) {
			j.Listen = []string{":3000"}
			j.Readiness = ReadinessMessage
		})}}, nil},
		{"instances out of range in code", Config{Jobs: []Job{
			app(func(j *Job) { j.Instances = Instances{N: 257} }),
			{Name: "b", Shell: "x", Instances: Instances{N: -1}},
			{Name: "c", Shell: "x", Instances: Instances{N: 2, Auto: true}},
		}}, []string{
			`jobs[0].instances: must be a whole number from 1 to 256 or "auto", got 257`,
			`jobs[1].instances: must be a whole number from 1 to 256 or "auto", got -1`,
			`jobs[2].instances: must be a whole number from 1 to 256 or "auto", got both "auto" and 2`,
		}},
		{"bad listen entries", Config{Jobs: []Job{app(func(j *Job) {
			j.Listen = []string{"3000", "::1:3000", "example.com:3000", "[fe80::1%eth0]:3000", ":0", ":65536", ":http", ":+80", "127.0.0.1:"}
		})}}, []string{
			`jobs[0].listen[0]: "3000": not host:port (":3000", "127.0.0.1:3000", "[::1]:3000")`,
			`jobs[0].listen[1]: "::1:3000": not host:port (":3000", "127.0.0.1:3000", "[::1]:3000")`,
			`jobs[0].listen[2]: "example.com:3000": host "example.com" is not an IP address or localhost (leave it empty for every address)`,
			`jobs[0].listen[3]: "[fe80::1%eth0]:3000": host "fe80::1%eth0" is not an IP address or localhost (leave it empty for every address)`,
			`jobs[0].listen[4]: ":0": port "0": want 1-65535 (not 0: the app must know its port)`,
			`jobs[0].listen[5]: ":65536": port "65536": want 1-65535 (not 0: the app must know its port)`,
			`jobs[0].listen[6]: ":http": port "http": want 1-65535 (not 0: the app must know its port)`,
			`jobs[0].listen[7]: ":+80": port "+80": want 1-65535 (not 0: the app must know its port)`,
			`jobs[0].listen[8]: "127.0.0.1:": port "": want 1-65535 (not 0: the app must know its port)`,
		}},
		{"overlapping sockets", Config{Telemetry: &Telemetry{Listen: "127.0.0.1:9090"}, Jobs: []Job{
			app(func(j *Job) { j.Listen = []string{":3000", "127.0.0.1:3001", "0.0.0.0:3000", ":9090"} }),
			{Name: "b", Shell: "x", Listen: []string{
				"[::]:3001", "127.0.0.2:3001", "localhost:3001", "[::1]:4000", "[0:0:0:0:0:0:0:1]:4000", "localhost:4000", "10.0.0.1:4000",
			}},
		}}, []string{
			`jobs[0].listen[2]: "0.0.0.0:3000": port 3000 is also bound by jobs[0].listen[0] (":3000")`,
			`jobs[0].listen[3]: ":9090": port 9090 is also bound by telemetry.listen ("127.0.0.1:9090")`,
			`jobs[1].listen[0]: "[::]:3001": port 3001 is also bound by jobs[0].listen[1] ("127.0.0.1:3001")`,
			`jobs[1].listen[2]: "localhost:3001": port 3001 is also bound by jobs[0].listen[1] ("127.0.0.1:3001")`,
			`jobs[1].listen[4]: "[0:0:0:0:0:0:0:1]:4000": port 4000 is also bound by jobs[1].listen[3] ("[::1]:4000")`,
			`jobs[1].listen[5]: "localhost:4000": port 4000 is also bound by jobs[1].listen[3] ("[::1]:4000")`,
		}},
		{"telemetry on another port or host", Config{Telemetry: &Telemetry{Listen: "127.0.0.1:9090"}, Jobs: []Job{
			app(func(j *Job) { j.Listen = []string{":9091", "10.0.0.1:9090"} }),
		}}, nil},
		{"telemetry on a host name", Config{Telemetry: &Telemetry{Listen: "pilot.internal:9090"}, Jobs: []Job{
			app(func(j *Job) { j.Listen = []string{"127.0.0.1:9090", ":9090"} }),
		}}, []string{`jobs[0].listen[1]: ":9090": port 9090 is also bound by telemetry.listen ("pilot.internal:9090")`}},
		{"a cluster job is not periodic, run on change, or a sensor", Config{
			Consul:    &Consul{},
			Telemetry: &Telemetry{Listen: ":9090"},
			Metrics:   []Metric{{Name: "queue_depth", Type: "gauge"}},
			Watches:   []Watch{{Service: "db", OnChange: OnChange{Reload: &Reload{Exec: []string{"x"}}}}, {Service: "db", OnChange: OnChange{Run: "sync"}}},
			Jobs: []Job{
				{Name: "tick", Shell: "x", Every: time.Minute, Instances: Instances{N: 2}},
				{Name: "sync", Shell: "x", Listen: []string{":3000"}},
				{Name: "probe", Shell: "x", Sensor: true, Instances: Instances{Auto: true}, Listen: []string{":3001"}},
			},
		}, []string{
			`jobs[0].instances: a periodic job (every) runs one copy at a time; remove instances or every`,
			`jobs[1].listen: watches[1].onChange.run runs this job once per change, as a one-shot; remove listen or the watch's run`,
			`jobs[2].instances: a sensor job's samples are one set of values, which copies would overwrite; remove instances or sensor`,
		}},
		{"cluster keys on a job that is not one", Config{Jobs: []Job{app(func(j *Job) {
			j.Readiness = ReadinessHealth
			j.Health = health
			j.ReadyTimeout = time.Minute
			j.ReloadSignal = Signal(unix.SIGHUP)
		})}}, []string{
			`jobs[0].readiness: only for a cluster job (instances or listen)`,
			`jobs[0].readyTimeout: only for a cluster job (instances or listen)`,
			`jobs[0].reloadSignal: only for a cluster job (instances or listen)`,
		}},
		{"readiness needs what reports it", Config{Jobs: []Job{
			app(func(j *Job) { j.Instances = Instances{N: 2}; j.Readiness = ReadinessHealth }),
			{Name: "b", Shell: "x", Instances: Instances{N: 2}, Readiness: ReadinessMessage, Node: &Node{}},
		}}, []string{
			`jobs[0].readiness: health needs a health check (health)`,
			`jobs[1].readiness: message comes through pilot's Node agent, which only a job with listen or node: {metrics: true} has`,
		}},
		{"ready timeout", Config{Jobs: []Job{
			app(func(j *Job) { j.Instances = Instances{N: 2}; j.ReadyTimeout = 999 * time.Millisecond }),
			{Name: "b", Shell: "x", Instances: Instances{N: 2}, ReadyTimeout: -time.Second},
		}}, []string{
			`jobs[0].readyTimeout: must be ≥ 1s`,
			`jobs[1].readyTimeout: must be ≥ 1s`,
		}},
		{"reload signals", Config{Jobs: []Job{
			app(func(j *Job) { j.Instances = Instances{N: 2}; j.ReloadSignal = Signal(unix.SIGTERM) }),
			{Name: "b", Shell: "x", Instances: Instances{N: 2}, ReloadSignal: Signal(unix.SIGQUIT)},
			{Name: "c", Shell: "x", Instances: Instances{N: 2}, ReloadSignal: Signal(unix.SIGUSR1), ForwardSignals: signals(unix.SIGUSR1)},
			{Name: "d", Shell: "x", Instances: Instances{N: 2}, ReloadSignal: Signal(unix.SIGHUP), ForwardSignals: signals(unix.SIGUSR1)},
		}}, []string{
			`jobs[0].reloadSignal: SIGTERM cannot be a reload signal (use SIGHUP, SIGUSR1 or SIGUSR2: TERM and INT stop pilot, KILL and STOP cannot be caught)`,
			`jobs[1].reloadSignal: SIGQUIT cannot be a reload signal (use SIGHUP, SIGUSR1 or SIGUSR2: TERM and INT stop pilot, KILL and STOP cannot be caught)`,
			`jobs[2].reloadSignal: SIGUSR1 is also in forwardSignals: pilot either passes it on or reloads, not both`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertLines(t, tt.cfg.Validate(), tt.want...)
		})
	}
}

// Through the file: the lines, an explicit zero, and a readiness on a job
// whose health check could not be decoded is not also missing its check.
func TestClusterInTheFile(t *testing.T) {
	doc := `jobs:
  - name: app
    exec: [node, server.js]
    instances: 2
    readyTimeout: 0s
  - name: b
    shell: x
    listen: [":3000"]
    readiness: health
    health: often
  - name: c
    shell: x
    readyTimeout: 0s
`
	_, err := checkYAML(doc)
	assertLines(t, err,
		`line 5: jobs[0].readyTimeout: must be ≥ 1s (leave it out for the default 1m)`,
		`line 10: jobs[1].health: expected a map, got string "often"`,
		`line 13: jobs[2].readyTimeout: only for a cluster job (instances or listen)`,
	)
}

func TestClusterDefaults(t *testing.T) {
	raw := Config{Jobs: []Job{
		{Name: "checked", Shell: "x", Instances: Instances{N: 2}, Health: &Health{Shell: "true"}},
		{Name: "unchecked", Shell: "x", Listen: []string{":3000"}},
		{Name: "explicit", Shell: "x", Instances: Instances{Auto: true}, Health: &Health{Shell: "true"},
			Node: &Node{Metrics: true}, Readiness: ReadinessMessage, ReadyTimeout: 5 * time.Second},
		{Name: "single", Shell: "x", Health: &Health{Shell: "true"}},
	}}
	got := raw.WithDefaults()
	for i, want := range []struct {
		readiness Readiness
		timeout   time.Duration
	}{
		{ReadinessHealth, DefaultReadyTimeout},
		{"", DefaultReadyTimeout},
		{ReadinessMessage, 5 * time.Second},
		{"", 0},
	} {
		if j := got.Jobs[i]; j.Readiness != want.readiness || j.ReadyTimeout != want.timeout {
			t.Errorf("%s: readiness %q, readyTimeout %v; want %q, %v", j.Name, j.Readiness, j.ReadyTimeout, want.readiness, want.timeout)
		}
	}
	got.Jobs[1].Listen[0] = "changed"
	if !reflect.DeepEqual(raw.Jobs[1].Listen, []string{":3000"}) {
		t.Error("the defaults share listen with the raw config")
	}
}
