package pilot

import (
	"maps"
	"testing"

	"github.com/nodepilot/pilot/discovery/container"
	"github.com/nodepilot/pilot/pilot/config"
)

func TestDockerHost(t *testing.T) {
	for _, tc := range []struct {
		cfg     *config.Config
		environ []string
		want    string
	}{
		{&config.Config{}, nil, "unix:///var/run/docker.sock"},
		{&config.Config{}, []string{"DOCKER_HOST="}, "unix:///var/run/docker.sock"},
		{&config.Config{}, []string{"DOCKER_HOST=tcp://docker-proxy:2375"}, "tcp://docker-proxy:2375"},
		{&config.Config{Docker: &config.Docker{Host: "unix:///run/d.sock"}}, []string{"DOCKER_HOST=tcp://x:1"}, "unix:///run/d.sock"},
	} {
		if got := dockerHost(tc.cfg, tc.environ); got != tc.want {
			t.Errorf("dockerHost(%+v, %q) = %q, want %q", tc.cfg.Docker, tc.environ, got, tc.want)
		}
	}
}

// The container's meta joins the service's; a key the user set wins.
func TestIdentityMeta(t *testing.T) {
	id := container.Identity{ID: "abc", Name: "shop-api-1", Project: "shop", Service: "api", Replica: 1}
	got := withIdentityMeta(map[string]string{"version": "1.4.2", "compose_service": "mine"}, id)
	want := map[string]string{"version": "1.4.2", "compose_service": "mine", "container_id": "abc",
		"container_name": "shop-api-1", "compose_project": "shop", "compose_replica": "1"}
	if !maps.Equal(got, want) {
		t.Errorf("meta = %v, want %v", got, want)
	}
	user := map[string]string{"version": "1"}
	if got := withIdentityMeta(user, container.Identity{}); !maps.Equal(got, user) {
		t.Errorf("outside a container: %v", got)
	}
}

// A docker watch with neither project nor labels follows the compose
// service in pilot's own project; with either, it is left as written.
func TestDockerWatchDefaults(t *testing.T) {
	id := container.Identity{Project: "shop"}
	if got := dockerDefaults(nil, id); got.Project != "shop" {
		t.Errorf("no selector: project %q, want shop", got.Project)
	}
	if got := dockerDefaults(&config.DockerWatch{Labels: map[string]string{"tier": "web"}}, id); got.Project != "" {
		t.Errorf("labels: project %q, want none", got.Project)
	}
	if got := dockerDefaults(&config.DockerWatch{Project: "other"}, id); got.Project != "other" {
		t.Errorf("project: %q, want other", got.Project)
	}
	if got := dockerDefaults(nil, container.Identity{}); got.Project != "" {
		t.Errorf("outside compose: project %q, want any", got.Project)
	}
}
