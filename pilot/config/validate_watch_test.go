package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestValidateWatches(t *testing.T) {
	jobs := []Job{{Name: "nginx", Exec: []string{"nginx"}}}
	consul := &Consul{}
	tests := []struct {
		name    string
		consul  *Consul
		watches []Watch
		want    []string
	}{
		{"valid", consul, []Watch{{Service: "web", Debounce: Debounce{Min: 100 * time.Millisecond, Max: time.Second},
			OnChange: OnChange{Render: &RenderFile{Format: "nginx", Dest: "/etc/nginx/conf.d/web.conf"},
				Reload: &Reload{Job: "nginx", Signal: "SIGHUP"}}}}, nil},
		{"everything wrong", nil, []Watch{{Debounce: Debounce{Min: 2 * time.Second, Max: time.Second},
			OnChange: OnChange{Templates: []TemplateFile{{}}, Render: &RenderFile{Format: "haproxy"},
				Reload: &Reload{Job: "proxy", Signal: "SIGNOPE"}}}}, []string{
			`watches[0]: needs the top-level consul block`,
			`watches[0].debounce.min: 2s exceeds debounce.max 1s`,
			`watches[0].onChange.reload.job: unknown job "proxy"`,
			`watches[0].onChange.reload.signal: unknown signal "SIGNOPE"`,
			`watches[0].onChange.render.dest: required`,
			`watches[0].onChange.render.format: "haproxy" must be one of nginx, traefik`,
			`watches[0].onChange.templates[0].dest: required`,
			`watches[0].onChange.templates[0].source: required`,
			`watches[0].service: required`,
		}},
		{"nothing to do", consul, []Watch{{Service: "web"}}, []string{`watches[0].onChange: set templates, render or reload`}},
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
