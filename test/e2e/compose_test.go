//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// Stand-ins for the registry images the root docker-compose.yml names.
const (
	consulStandin     = "pilot-e2e/consul:standin"
	traefikStandin    = "pilot-e2e/traefik:standin"
	prometheusStandin = "pilot-e2e/prometheus:standin"
	nginxStandin      = "pilot-e2e/nginx:standin"
	composeProject    = "pilote2e"
)

// TestComposeStack runs the repository's docker-compose.yml (rewritten:
// no fixed host ports, every service on the suite's network) with the
// stand-ins, waits for 3 passing `web` instances in Consul and checks that
// all three replicas answer through Traefik and through the nginx front.
func TestComposeStack(t *testing.T) {
	needEngine(t)
	root := engine.root
	tphase := func(name string, f func() error) {
		t.Helper()
		if err := phase(name, f); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []struct{ kind, tag string }{
		{"consul", consulStandin}, {"traefik", traefikStandin},
		{"prometheus", prometheusStandin}, {"nginx", nginxStandin},
	} {
		tphase("stand-in "+s.tag, func() error {
			_, err := runIn(root, 5*time.Minute, "bash", "test/e2e/standins.sh", s.kind, s.tag)
			return err
		})
	}
	tphase("build pilot-nginx-front (examples/nginx-front/Dockerfile)", func() error {
		_, err := runIn(root, 15*time.Minute, dockerCLI, "build", "--network", "host",
			"-f", "examples/nginx-front/Dockerfile",
			"--build-arg", "GO_IMAGE="+goStandin, "--build-arg", "NGINX_IMAGE="+nginxStandin,
			"-t", "pilot-nginx-front", ".")
		return err
	})
	// the app image the suite already built, under the name compose expects
	docker(t, "tag", exampleImg, "pilot-example")

	env := append(os.Environ(),
		"CONSUL_IMAGE="+consulStandin, "TRAEFIK_IMAGE="+traefikStandin,
		"PROMETHEUS_IMAGE="+prometheusStandin, "NGINX_IMAGE="+nginxStandin,
		"NODE_IMAGE="+nodeStandin, "GO_IMAGE="+goStandin)
	dir := t.TempDir()
	file := filepath.Join(dir, "docker-compose.yml")
	compose := func(timeout time.Duration, args ...string) (string, error) {
		return runEnv(root, env, timeout, "docker-compose",
			append([]string{"-p", composeProject, "-f", file, "--project-directory", root}, args...)...)
	}

	tphase("rewrite docker-compose.yml (docker-compose config)", func() error {
		cfg, err := runEnv(root, env, time.Minute, "docker-compose", "-f", filepath.Join(root, "docker-compose.yml"), "config")
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
		phase("docker-compose down", func() error {
			_, err := compose(3*time.Minute, "down", "--remove-orphans", "-t", "10")
			return err
		})
	})
	tphase("docker-compose up -d --no-build", func() error {
		_, err := compose(5*time.Minute, "up", "-d", "--no-build", "--scale", "app=3")
		return err
	})
	dumpLogs := func() {
		logs, _ := compose(time.Minute, "logs", "--tail", "30")
		t.Logf("compose logs:\n%s", logs)
	}

	consulID := composeID(t, compose, "consul")
	// busybox wget inside the consul container: every container is on the
	// network, the host need not route to it
	wget := func(url string) (string, error) {
		return run(10*time.Second, dockerCLI, "exec", consulID, "wget", "-qO-", url) // busybox wget -T segfaulted (exit 139) here
	}
	var passing []string
	if err := phase("wait for 3 passing web instances in Consul", func() error {
		deadline := time.Now().Add(90 * time.Second)
		var last string
		for time.Now().Before(deadline) {
			out, err := wget("http://127.0.0.1:8500/v1/health/service/web?passing=true")
			if err == nil {
				var entries []struct {
					Service struct{ ID, Address string }
				}
				if json.Unmarshal([]byte(out), &entries) == nil {
					passing = passing[:0]
					for _, e := range entries {
						passing = append(passing, e.Service.ID+"@"+e.Service.Address)
					}
					if len(passing) == 3 {
						return nil
					}
				}
				last = out
			} else {
				last = err.Error()
			}
			time.Sleep(time.Second)
		}
		return fmt.Errorf("no 3 passing web instances after 90 s; last answer: %.2000s", last)
	}); err != nil {
		dumpLogs()
		t.Fatal(err)
	}
	t.Logf("passing web instances: %v", passing)

	for _, via := range []struct{ svc, port string }{{"traefik", "80"}, {"front", "8080"}} {
		ip := containerIP(t, composeID(t, compose, via.svc))
		url := "http://" + ip + ":" + via.port + "/"
		var hosts map[string]int
		if err := phase("all 3 replicas answer through "+via.svc, func() error {
			deadline := time.Now().Add(60 * time.Second)
			var last string
			for time.Now().Before(deadline) {
				hosts = map[string]int{}
				for i := 0; i < 30; i++ {
					out, err := wget(url)
					if err != nil {
						last = err.Error()
						continue
					}
					var r struct {
						Host string `json:"host"`
						PID  int    `json:"pid"`
					}
					if err := json.Unmarshal([]byte(out), &r); err != nil || r.Host == "" {
						last = out
						continue
					}
					hosts[r.Host]++
				}
				if len(hosts) == 3 {
					return nil
				}
				time.Sleep(time.Second)
			}
			return fmt.Errorf("%s: replicas answering %v, want 3; last error/answer: %.1000s", url, hosts, last)
		}); err != nil {
			dumpLogs()
			t.Error(err)
			continue
		}
		names := make([]string, 0, len(hosts))
		for h, n := range hosts {
			names = append(names, fmt.Sprintf("%s×%d", h, n))
		}
		sort.Strings(names)
		t.Logf("through %s (%s): %s", via.svc, url, strings.Join(names, " "))
	}
}

// rewriteCompose takes `docker-compose config` output and drops every
// service's fixed host ports, labels every container pilot-e2e (the suite's
// cleanup) and puts the whole project on the external network pilot-e2e.
func rewriteCompose(in []byte) ([]byte, error) {
	var doc map[string]any
	if err := yaml.Unmarshal(in, &doc); err != nil {
		return nil, err
	}
	services, ok := doc["services"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("docker-compose config: no services:\n%s", in)
	}
	for name, v := range services {
		svc, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("service %s: not a mapping", name)
		}
		delete(svc, "ports")
		delete(svc, "build") // images are built by the suite; up --no-build
		delete(svc, "networks")
		labels, _ := svc["labels"].(map[string]any)
		if labels == nil {
			labels = map[string]any{}
		}
		labels["pilot-e2e"] = ""
		svc["labels"] = labels
	}
	doc["networks"] = map[string]any{"default": map[string]any{"external": true, "name": netName}}
	return yaml.Marshal(doc)
}

// composeID is the container ID of the first container of a compose service.
func composeID(t *testing.T, compose func(time.Duration, ...string) (string, error), svc string) string {
	t.Helper()
	out, err := compose(time.Minute, "ps", "-q", svc)
	if err != nil {
		t.Fatal(err)
	}
	ids := strings.Fields(out)
	if len(ids) == 0 {
		t.Fatalf("no container for compose service %s", svc)
	}
	return ids[0]
}

func containerIP(t *testing.T, id string) string {
	t.Helper()
	return docker(t, "inspect", "-f", `{{(index .NetworkSettings.Networks "`+netName+`").IPAddress}}`, id)
}

// runEnv is runIn with an environment for the command.
func runEnv(dir string, env []string, timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = env
	var out, all bytes.Buffer
	cmd.Stdout = &multi{&out, &all}
	cmd.Stderr = &all
	if err := cmd.Run(); err != nil {
		tail := all.String()
		if len(tail) > 4000 {
			tail = "…" + tail[len(tail)-4000:]
		}
		return strings.TrimSpace(out.String()), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, tail)
	}
	return strings.TrimSpace(out.String()), nil
}
