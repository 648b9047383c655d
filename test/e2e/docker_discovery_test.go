//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

const discoveryProject = "pilotdisc"

// The Consul-less stack of examples/docker-discovery, as a user runs it:
// the front's pilot follows the app's healthy containers through pilot
// docker-proxy, with no project or network named in its watch (its own
// compose project, its only network). Scaling 1 → 3 → 2 and a replica
// turning unhealthy and back move the rendered upstream within 1 s of
// Docker's verdict; the app containers, which have no socket, know their
// container from their cgroup and log nothing about Docker.
func TestDockerDiscoveryStack(t *testing.T) {
	needEngine(t)
	root := engine.root
	tphase := testPhase(t)
	composeImages(t)

	env := append(os.Environ(), "NGINX_IMAGE="+nginxStandin, "NODE_IMAGE="+nodeStandin, "GO_IMAGE="+goStandin,
		"DOCKER_SOCK="+filepath.Join(engine.dir, "docker.sock"))
	src := filepath.Join(root, "examples", "docker-discovery", "docker-compose.yml")
	file := filepath.Join(t.TempDir(), "docker-compose.yml")
	compose := func(timeout time.Duration, args ...string) (string, error) {
		return runEnv(root, env, timeout, "docker-compose",
			append([]string{"-p", discoveryProject, "-f", file, "--project-directory", filepath.Dir(src)}, args...)...)
	}
	tphase("rewrite examples/docker-discovery/docker-compose.yml", func() error {
		cfg, err := runEnv(filepath.Dir(src), env, time.Minute, "docker-compose", "-f", src, "config")
		if err != nil {
			return err
		}
		out, err := rewriteCompose([]byte(cfg))
		if err != nil {
			return err
		}
		return os.WriteFile(file, out, 0o644)
	})
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := compose(time.Minute, "logs", "--tail", "60")
			t.Logf("compose logs:\n%s", logs)
		}
		phase("docker-compose down (docker discovery)", func() error {
			_, err := compose(3*time.Minute, "down", "--remove-orphans", "-t", "10")
			return err
		})
	})
	tphase("docker-compose up -d (docker discovery, app=1)", func() error {
		_, err := compose(5*time.Minute, "up", "-d", "--no-build", "--scale", "app=1")
		return err
	})
	front := discoveryProject + "_front_1"

	// rendered is the set of servers in the front's upstream block.
	rendered := func() ([]string, error) {
		out, err := run(10*time.Second, dockerCLI, "exec", front, "cat", "/etc/nginx/upstream.conf")
		if err != nil {
			return nil, err
		}
		var servers []string
		for _, m := range regexp.MustCompile(`server (\S+):3000;`).FindAllStringSubmatch(out, -1) {
			servers = append(servers, m[1])
		}
		slices.Sort(servers)
		return servers, nil
	}
	apps := func() []string {
		out := docker(t, "ps", "-q", "--no-trunc", "--filter", "label=com.docker.compose.project="+discoveryProject,
			"--filter", "label=com.docker.compose.service=app")
		return strings.Fields(out)
	}
	// healthyAt is when Docker's first passing probe of id ended: the
	// moment its status turned healthy.
	healthyAt := func(id string) (time.Time, bool) {
		var h struct {
			Status string
			Log    []struct {
				End      time.Time
				ExitCode int
			}
		}
		if err := json.Unmarshal([]byte(docker(t, "inspect", "-f", "{{json .State.Health}}", id)), &h); err != nil || h.Status != "healthy" {
			return time.Time{}, false
		}
		for _, l := range h.Log {
			if l.ExitCode == 0 {
				return l.End, true
			}
		}
		return time.Time{}, false
	}
	// renders are the times of the front's renders, from pilot's log.
	renders := func() []time.Time {
		logs, err := allLogs(front)
		if err != nil {
			t.Fatal(err)
		}
		var out []time.Time
		for _, m := range regexp.MustCompile(`time=(\S+) level=INFO msg="watch: rendered"`).FindAllStringSubmatch(logs, -1) {
			if at, err := time.Parse(time.RFC3339Nano, m[1]); err == nil {
				out = append(out, at)
			}
		}
		return out
	}
	// follow waits until the rendered set is want's addresses, and checks
	// that each container in fresh was rendered within 1 s of turning
	// healthy: by the first render pilot logged after Docker's first
	// passing probe of it ended (the same host clock).
	follow := func(what string, want, fresh []string) {
		t.Helper()
		var ips []string
		for _, id := range want {
			ips = append(ips, containerIP(t, id))
		}
		slices.Sort(ips)
		err := waitFor(90*time.Second, func() (bool, string) {
			got, err := rendered()
			if err != nil {
				return false, err.Error()
			}
			return slices.Equal(got, ips), fmt.Sprintf("rendered %v, want %v", got, ips)
		})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		times := renders()
		for _, id := range fresh {
			at, ok := healthyAt(id)
			if !ok {
				t.Fatalf("%s: %s rendered but not healthy", what, id[:12])
			}
			i := slices.IndexFunc(times, func(r time.Time) bool { return !r.Before(at) })
			if i < 0 {
				t.Fatalf("%s: no render logged after %s turned healthy at %v", what, id[:12], at)
			}
			lag := times[i].Sub(at)
			t.Logf("%s: %s rendered %v after Docker called it healthy", what, id[:12], lag.Round(time.Millisecond))
			if lag > time.Second {
				t.Errorf("%s: %s rendered %v after turning healthy, want ≤ 1s", what, id[:12], lag)
			}
		}
	}

	one := apps()
	if len(one) != 1 {
		t.Fatalf("app containers %v, want 1", one)
	}
	follow("app=1", one, nil)

	tphase("docker-compose up -d --scale app=3", func() error {
		_, err := compose(5*time.Minute, "up", "-d", "--no-build", "--no-recreate", "--scale", "app=3")
		return err
	})
	three := apps()
	if len(three) != 3 {
		t.Fatalf("app containers %v, want 3", three)
	}
	var added []string
	for _, id := range three {
		if !slices.Contains(one, id) {
			added = append(added, id)
		}
	}
	follow("app=3", three, added)

	tphase("docker-compose up -d --scale app=2", func() error {
		_, err := compose(5*time.Minute, "up", "-d", "--no-build", "--no-recreate", "--scale", "app=2")
		return err
	})
	scaledDown := time.Now()
	two := apps()
	if len(two) != 2 {
		t.Fatalf("app containers %v, want 2", two)
	}
	follow("app=2", two, nil)
	t.Logf("app=2: rendered %v after docker-compose returned", time.Since(scaledDown).Round(time.Millisecond))

	// A replica whose /health fails: pilot says unhealthy, then Docker
	// does, and the front drops it; back when it passes again.
	sick := two[0]
	docker(t, "exec", sick, "touch", "/tmp/app-down")
	follow("unhealthy", two[1:], nil)
	docker(t, "exec", sick, "rm", "/tmp/app-down")
	follow("healthy again", two, []string{})

	// Requests through the front reach both replicas.
	frontIP := containerIP(t, front)
	client := &http.Client{Timeout: 5 * time.Second}
	for i := range 10 {
		resp, err := client.Get("http://" + frontIP + ":8080/")
		if err != nil {
			t.Fatalf("request %d through the front: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d through the front: %s", i, resp.Status)
		}
	}

	// Identity: the front read its compose labels through the proxy; an
	// app replica, with no socket, knows only its id, and said nothing
	// about Docker above debug.
	type statusDoc struct {
		Pilot struct {
			Container *struct {
				ID      string `json:"id"`
				Project string `json:"composeProject"`
				Service string `json:"composeService"`
				Replica int    `json:"composeReplica"`
			} `json:"container"`
		} `json:"pilot"`
	}
	var fst, ast statusDoc
	if err := json.Unmarshal([]byte(docker(t, "exec", front, "pilot", "status", "--json")), &fst); err != nil {
		t.Fatal(err)
	}
	frontID := docker(t, "inspect", "-f", "{{.Id}}", front)
	if c := fst.Pilot.Container; c == nil || c.ID != frontID || c.Project != discoveryProject || c.Service != "front" || c.Replica != 1 {
		t.Errorf("front's identity = %+v, want id %s, compose %s/front #1", c, frontID, discoveryProject)
	}
	if err := json.Unmarshal([]byte(docker(t, "exec", two[1], "pilot", "status", "--json")), &ast); err != nil {
		t.Fatal(err)
	}
	if c := ast.Pilot.Container; c == nil || c.ID != two[1] || c.Project != "" {
		t.Errorf("app's identity = %+v, want id %s from its cgroup only", c, two[1])
	}
	logs, err := allLogs(two[1])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs, "pilot starting") {
		t.Fatalf("no pilot log read from %s:\n%.2000s", two[1][:12], logs)
	}
	for _, l := range strings.Split(logs, "\n") {
		if (strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR")) &&
			(strings.Contains(strings.ToLower(l), "docker") || strings.Contains(l, "container:")) {
			t.Errorf("an app with no Docker socket logged: %s", l)
		}
	}
}

// allLogs is a container's output, stdout and stderr (where pilot logs).
func allLogs(name string) (string, error) {
	return run(time.Minute, "sh", "-c", dockerCLI+" logs "+name+" 2>&1")
}
