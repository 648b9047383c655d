package config

import (
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	pilotjobs "github.com/nodepilot/pilot/jobs"
)

func TestValidateWatches(t *testing.T) {
	jobs := []Job{{Name: "nginx", Exec: []string{"nginx"}}, {Name: "app", Exec: []string{"node"}, Main: true},
		{Name: "sync", Exec: []string{"sync.sh"}}, {Name: "tick", Exec: []string{"tick.sh"}, Every: time.Minute},
		{Name: "loop", Exec: []string{"loop.sh"}, Restart: Restart{Policy: pilotjobs.RestartAlways}}}
	consul := &Consul{}
	tests := []struct {
		name    string
		consul  *Consul
		watches []Watch
		want    []string
	}{
		{"valid", consul, []Watch{{Service: "web", Debounce: Debounce{Min: 100 * time.Millisecond, Max: time.Second},
			OnChange: OnChange{Render: &RenderFile{Format: "nginx", Dest: "/etc/nginx/conf.d/web.conf"},
				Reload: &Reload{Job: "nginx", Signal: Signal(unix.SIGHUP)}}}}, nil},
		{"everything wrong", nil, []Watch{{Debounce: Debounce{Min: 2 * time.Second, Max: time.Second},
			OnChange: OnChange{Templates: []TemplateFile{{}}, Render: &RenderFile{Format: RenderTraefik, Name: "a b"},
				Reload: &Reload{Job: "proxy", Exec: []string{}, Signal: Signal(unix.SIGHUP)}}}}, []string{
			`watches[0]: needs the top-level consul block (or discovery: docker)`,
			`watches[0].debounce.min: 2s exceeds debounce.max 1s`,
			`watches[0].onChange.reload.job: unknown job "proxy"`,
			`watches[0].onChange.reload.signal: goes with job, not exec`,
			`watches[0].onChange.render.dest: required`,
			`watches[0].onChange.render.name: "a b": only letters, digits, '-', '_' and '.' are allowed`,
			`watches[0].onChange.templates[0].dest: required`,
			`watches[0].onChange.templates[0].source: required`,
			`watches[0].service: required`,
		}},
		{"nothing to do", consul, []Watch{{Service: "web"}}, []string{`watches[0].onChange: set run, templates, render or reload`}},
		{"run a one-shot", consul, []Watch{{Service: "web", OnChange: OnChange{Run: "sync"}}}, nil},
		{"run targets", consul, []Watch{
			{Service: "a", OnChange: OnChange{Run: "nope"}},
			{Service: "b", OnChange: OnChange{Run: "app"}},
			{Service: "c", OnChange: OnChange{Run: "tick"}},
			{Service: "d", OnChange: OnChange{Run: "loop"}},
		}, []string{
			`watches[0].onChange.run: unknown job "nope"`,
			`watches[1].onChange.run: job "app" is the main job; a job run on change must be a one-shot`,
			`watches[2].onChange.run: job "tick" is periodic (every); a job run on change must be a one-shot`,
			`watches[3].onChange.run: job "loop" restarts always; a job run on change must be a one-shot`,
		}},
		{"docker without consul", nil, []Watch{{Service: "web", Discovery: DiscoveryDocker,
			Docker:   &DockerWatch{Project: "shop", Labels: map[string]string{"tier": "api"}, Network: "shop_default", Port: 3000},
			OnChange: OnChange{Run: "sync"}}}, nil},
		{"docker with consul's keys", consul, []Watch{{Service: "web", Discovery: DiscoveryDocker, Tag: "v1", Datacenter: "dc2", Consistency: ConsistencyDefault,
			Docker: &DockerWatch{Labels: map[string]string{"": "x"}, Port: 70000}, OnChange: OnChange{Run: "sync"}}}, []string{
			`watches[0].consistency: goes with discovery: consul`,
			`watches[0].dc: goes with discovery: consul`,
			`watches[0].docker.labels: a label name is empty`,
			`watches[0].docker.port: 70000 out of range 1..65535 (leave it out for the container's only exposed port)`,
			`watches[0].tag: goes with discovery: consul (select containers with docker.labels)`,
		}},
		{"consul with docker's keys", consul, []Watch{{Service: "web", Docker: &DockerWatch{Port: 3000}, OnChange: OnChange{Run: "sync"}}},
			[]string{`watches[0].docker: goes with discovery: docker`}},
		{"job and exec", consul, []Watch{{Service: "web", OnChange: OnChange{Reload: &Reload{Job: "nginx", Exec: []string{"x"}}}}},
			[]string{`watches[0].onChange.reload: set exactly one of job and exec`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := (&Config{Consul: tt.consul, Jobs: jobs, Watches: tt.watches}).Validate()
			var got []string
			if err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("errors:\n got  %q\n want %q", got, tt.want)
			}
		})
	}
}

func TestValidateDockerHost(t *testing.T) {
	for host, want := range map[string]string{
		"":                            "",
		"unix:///var/run/docker.sock": "",
		"tcp://docker-proxy:2375":     "",
		"unix://docker.sock":          `docker.host: "unix://docker.sock": a unix socket needs an absolute path (unix:///var/run/docker.sock)`,
		"tcp://docker-proxy":          `docker.host: "tcp://docker-proxy": want tcp://HOST:PORT`,
		"/var/run/docker.sock":        `docker.host: "/var/run/docker.sock": want unix:///PATH or tcp://HOST:PORT`,
	} {
		err := (&Config{Docker: &Docker{Host: host}, Jobs: []Job{{Name: "app", Exec: []string{"node"}, Main: true}}}).Validate()
		if got := strings.Join(lines(err), "\n"); got != want {
			t.Errorf("host %q: got %q, want %q", host, got, want)
		}
	}
}
