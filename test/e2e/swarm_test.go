//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/nodepilot/pilot/test/consulagent"
)

const swarmStack = "pilotswarm"

// TestSwarmStack deploys examples/swarm/stack.yml with `docker stack
// deploy` on a one-node Swarm of the suite's daemon, with the stand-ins,
// and checks, in order:
//
//   - it converges: 3 Consul servers in one Raft cluster with a leader, the
//     node's client agent joined to them, every app task passing in Consul
//     at its overlay address under pilot's default service ID, Traefik
//     routing to each task, Prometheus scraping each pilot;
//   - `docker service update --force` (the file's start-first rolling
//     update) under a request loop through Traefik: no request fails;
//   - `docker service scale app=5`: the time until the 5th task answers
//     through Traefik (3 rounds, median), no request failing meanwhile;
//   - `docker kill` of a task's container (pilot dies with its app): out of
//     Traefik once its TTL check lapses; Swarm then replaces the task;
//   - `docker kill` of a Consul server's container: Swarm starts a new,
//     empty one, which joins; autopilot removes the dead one; 3 voters and
//     a leader again, and every app task still passing and routed.
//
// The Swarm is this test's own: `docker swarm init` here, and `docker
// swarm leave --force` at its end, so the other tests run on a plain
// engine, before or after it. The host reaches the stack as a user does,
// through its published ports (host mode; the file's fixed ports made
// ephemeral): Traefik's entry point and API, the node's Consul agent,
// Prometheus. Overlay addresses are reachable only between tasks.
func TestSwarmStack(t *testing.T) {
	needEngine(t)
	s := deploySwarmStack(t)
	if !t.Run("rolling update under load drops no request", s.rollingUpdate) {
		return
	}
	if !t.Run("scale 3 to 5: Traefik routes to 5", s.scaleUp) {
		return
	}
	if !t.Run("docker kill of a task: out of Traefik within its TTL", s.killedTask) {
		return
	}
	t.Run("docker kill of a Consul server: replaced, 3 voters again", s.killedServer)
}

// swarm is the deployed stack, as the host sees it (base URLs).
type swarm struct {
	consul, traefikAPI, viaTraefik, prometheus string
}

// swarmTask is one running container of the app service.
type swarmTask struct {
	container, host, ip string // container ID, its hostname, its overlay address
}

func (k swarmTask) url() string { return "http://" + k.ip + ":3000" }

// swarmInit makes the suite's daemon a one-node Swarm until the test ends.
// Its manager port and VXLAN port are free ones: the defaults (2377, 4789)
// are host-wide, as is the name of the docker_gwbridge bridge, removed at
// the end. Only the gossip port, 7946, cannot be moved.
func swarmInit(t *testing.T) {
	t.Helper()
	// a run that died before its cleanup leaves the data root in a Swarm
	if state, _ := run(time.Minute, dockerCLI, "info", "--format", "{{.Swarm.LocalNodeState}}"); state != "inactive" {
		t.Logf("the daemon is in a Swarm (%s) from an earlier run: leaving it", state)
		run(time.Minute, dockerCLI, "swarm", "leave", "--force")
	}
	ports, err := consulagent.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	manager := "127.0.0.1:" + strconv.Itoa(ports[0])
	dataPath, err := swarmDataPathPort()
	if err != nil {
		t.Fatal(err)
	}
	testPhase(t)("docker swarm init", func() error {
		_, err := run(time.Minute, dockerCLI, "swarm", "init", "--advertise-addr", manager, "--listen-addr", manager,
			"--data-path-port", strconv.Itoa(dataPath))
		return err
	})
	t.Cleanup(func() {
		phase("docker swarm leave --force", func() error {
			if _, err := run(time.Minute, dockerCLI, "swarm", "leave", "--force"); err != nil {
				return err
			}
			_, err := run(time.Minute, dockerCLI, "network", "rm", "docker_gwbridge")
			return err
		})
	})
}

// swarmDataPathPort is a free UDP port in the range Swarm accepts for
// VXLAN (1024–49151); the kernel's ephemeral range reaches above it.
func swarmDataPathPort() (int, error) {
	for range 50 {
		p, err := consulagent.FreePorts(1)
		if err != nil {
			return 0, err
		}
		if p[0] <= 49151 {
			return p[0], nil
		}
	}
	return 0, errors.New("no free port ≤ 49151 for Swarm's data path in 50 tries")
}

func deploySwarmStack(t *testing.T) *swarm {
	tphase := testPhase(t)
	standinImages(t, "consul", "traefik", "prometheus")
	swarmInit(t)

	src := filepath.Join(engine.root, "examples", "swarm", "stack.yml")
	file := filepath.Join(t.TempDir(), "stack.yml")
	tphase("rewrite examples/swarm/stack.yml", func() error {
		in, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		out, err := rewriteStack(in, filepath.Dir(src))
		if err != nil {
			return err
		}
		return os.WriteFile(file, out, 0o644)
	})
	// registered after swarmInit's: runs before it
	t.Cleanup(func() {
		if t.Failed() {
			dumpSwarm(t)
		}
		phase("docker stack rm "+swarmStack, func() error {
			if _, err := run(time.Minute, dockerCLI, "stack", "rm", swarmStack); err != nil {
				return err
			}
			// the tasks stop (the app's pilots drain first), then the network goes
			return waitFor(2*time.Minute, func() (bool, string) {
				ids, err := run(time.Minute, dockerCLI, "ps", "-aq", "--filter", "label=com.docker.stack.namespace="+swarmStack)
				nets, _ := run(time.Minute, dockerCLI, "network", "ls", "-q", "--filter", "label=com.docker.stack.namespace="+swarmStack)
				return err == nil && ids == "" && nets == "", fmt.Sprintf("containers %q, networks %q, %v", ids, nets, err)
			})
		})
	})

	env := append(os.Environ(), "CONSUL_IMAGE="+consulStandin, "TRAEFIK_IMAGE="+traefikStandin,
		"PROMETHEUS_IMAGE="+prometheusStandin, "APP_IMAGE="+exampleImg)
	deployed := time.Now()
	tphase("docker stack deploy", func() error {
		// --resolve-image never: no registry to ask for digests
		_, err := runEnv(engine.root, env, 2*time.Minute, dockerCLI, "stack", "deploy", "--resolve-image", "never",
			"-c", file, swarmStack)
		return err
	})
	tphase("every service's tasks running", func() error {
		return waitFor(5*time.Minute, func() (bool, string) {
			out, err := run(time.Minute, dockerCLI, "stack", "services", "--format", "{{.Name}} {{.Replicas}}", swarmStack)
			if err != nil {
				return false, err.Error()
			}
			lines := strings.Split(out, "\n")
			if len(lines) != 5 {
				return false, out
			}
			for _, l := range lines {
				f := strings.Fields(l)
				if len(f) != 2 {
					return false, out
				}
				running, want, _ := strings.Cut(f[1], "/")
				if running != want || running == "0" {
					return false, out
				}
			}
			return true, out
		})
	})
	s := &swarm{}
	tphase("published ports (host mode)", func() error {
		ports := map[string]*string{"consul 8500": &s.consul, "traefik 8080": &s.traefikAPI,
			"traefik 80": &s.viaTraefik, "prometheus 9090": &s.prometheus}
		for key, dst := range ports {
			svc, target, _ := strings.Cut(key, " ")
			port, err := publishedPort(svc, target)
			if err != nil {
				return err
			}
			*dst = "http://127.0.0.1:" + port
		}
		s.viaTraefik += "/"
		return nil
	})

	var raft []raftServer
	tphase("Consul: 3 voters, a leader, the agent joined", func() error {
		return waitFor(2*time.Minute, func() (bool, string) {
			var err error
			raft, err = s.raftServers()
			if err != nil {
				return false, err.Error()
			}
			leaders, voters := 0, 0
			for _, r := range raft {
				if r.Leader {
					leaders++
				}
				if r.Voter {
					voters++
				}
			}
			if len(raft) != 3 || voters != 3 || leaders != 1 {
				return false, fmt.Sprintf("raft configuration %+v", raft)
			}
			var members []struct {
				Name   string
				Status int
				Tags   map[string]string
			}
			if err := getJSON(s.consul+"/v1/agent/members", &members); err != nil {
				return false, err.Error()
			}
			roles := map[string]int{}
			for _, m := range members {
				if m.Status == 1 { // alive
					roles[m.Tags["role"]]++
				}
			}
			return roles["consul"] == 3 && roles["node"] == 1, fmt.Sprintf("alive members by role %v: %+v", roles, members)
		})
	})
	t.Logf("Raft: %+v", raft)
	tasks := s.waitRouted(t, 3, 2*time.Minute)
	t.Logf("docker stack deploy → 3 app tasks passing in Consul and routed by Traefik: %v", time.Since(deployed).Round(100*time.Millisecond))
	for _, k := range tasks {
		t.Logf("app task %s at %s", k.host, k.ip)
	}

	tphase("Prometheus scrapes every pilot through Consul", func() error {
		return waitFor(90*time.Second, func() (bool, string) {
			var r struct {
				Data struct {
					ActiveTargets []struct {
						Labels    map[string]string
						ScrapeURL string
						Health    string
					}
				}
			}
			if err := getJSON(s.prometheus+"/api/v1/targets?state=active", &r); err != nil {
				return false, err.Error()
			}
			var up []string
			for _, target := range r.Data.ActiveTargets {
				if target.Labels["job"] == "web" && target.Health == "up" {
					up = append(up, target.ScrapeURL)
				}
			}
			sort.Strings(up)
			want := make([]string, 0, len(tasks))
			for _, k := range tasks {
				want = append(want, "http://"+k.ip+":9090/metrics")
			}
			sort.Strings(want)
			return slices.Equal(up, want), fmt.Sprintf("targets up with job=web %v, want %v (all: %+v)", up, want, r.Data.ActiveTargets)
		})
	})
	return s
}

// rewriteStack makes examples/swarm/stack.yml runnable here: its fixed host
// ports become ephemeral ones (still host mode, which it checks), its
// configs' files absolute paths (the rewritten file lives elsewhere), and
// every container is labelled pilot-e2e (the suite's cleanup).
func rewriteStack(in []byte, dir string) ([]byte, error) {
	var doc map[string]any
	if err := yaml.Unmarshal(in, &doc); err != nil {
		return nil, err
	}
	services, ok := doc["services"].(map[string]any)
	if !ok {
		return nil, errors.New("stack.yml: no services")
	}
	for name, v := range services {
		svc, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("service %s: not a mapping", name)
		}
		ports, _ := svc["ports"].([]any)
		for _, p := range ports {
			m, ok := p.(map[string]any)
			if !ok || m["mode"] != "host" {
				return nil, fmt.Errorf("service %s: port %v: want the long syntax with mode: host (no routing mesh here)", name, p)
			}
			delete(m, "published")
		}
		labels, _ := svc["labels"].(map[string]any)
		if labels == nil {
			labels = map[string]any{}
		}
		labels["pilot-e2e"] = ""
		svc["labels"] = labels
	}
	configs, _ := doc["configs"].(map[string]any)
	for name, v := range configs {
		c, ok := v.(map[string]any)
		f, isString := c["file"].(string)
		if !ok || !isString {
			return nil, fmt.Errorf("config %s: no file", name)
		}
		if !filepath.IsAbs(f) {
			c["file"] = filepath.Join(dir, f)
		}
	}
	return yaml.Marshal(doc)
}

// publishedPort is the host port of a service's task (the first) for the
// container port target.
func publishedPort(service, target string) (string, error) {
	id, err := run(time.Minute, dockerCLI, "ps", "-q", "--filter", "label=com.docker.swarm.service.name="+swarmStack+"_"+service)
	if err != nil {
		return "", err
	}
	if id, _, _ = strings.Cut(id, "\n"); id == "" {
		return "", fmt.Errorf("no running task of %s", service)
	}
	out, err := run(time.Minute, dockerCLI, "inspect", "-f", "{{json .NetworkSettings.Ports}}", id)
	if err != nil {
		return "", err
	}
	var ports map[string][]struct{ HostIP, HostPort string }
	if err := json.Unmarshal([]byte(out), &ports); err != nil {
		return "", fmt.Errorf("ports of %s: %v: %s", service, err, out)
	}
	if b := ports[target+"/tcp"]; len(b) > 0 && b[0].HostPort != "" {
		return b[0].HostPort, nil
	}
	return "", fmt.Errorf("%s publishes no %s/tcp: %s", service, target, out)
}

type raftServer struct {
	Node, Address string
	Leader, Voter bool
}

// raftServers is the cluster's Raft configuration, asked through the agent
// (which forwards to the leader).
func (s *swarm) raftServers() ([]raftServer, error) {
	var cfg struct{ Servers []raftServer }
	err := getJSON(s.consul+"/v1/operator/raft/configuration", &cfg)
	return cfg.Servers, err
}

// appTasks lists the app's running containers, sorted by overlay address.
func appTasks() ([]swarmTask, error) {
	out, err := run(time.Minute, dockerCLI, "ps", "-q", "--filter", "label=com.docker.swarm.service.name="+swarmStack+"_app")
	if err != nil || out == "" {
		return nil, err
	}
	ids := strings.Fields(out)
	out, err = run(time.Minute, dockerCLI, append([]string{"inspect", "-f",
		`{{.ID}} {{.Config.Hostname}} {{(index .NetworkSettings.Networks "` + swarmStack + `_default").IPAddress}}`}, ids...)...)
	if err != nil {
		return nil, err
	}
	var tasks []swarmTask
	for _, l := range strings.Split(out, "\n") {
		switch f := strings.Fields(l); len(f) {
		case 2: // running, but off the network: a task being torn down
		case 3:
			tasks = append(tasks, swarmTask{container: f[0], host: f[1], ip: f[2]})
		default:
			return nil, fmt.Errorf("docker inspect: %q", l)
		}
	}
	sort.Slice(tasks, func(i, j int) bool { return tasks[i].ip < tasks[j].ip })
	return tasks, nil
}

// passingWeb is Consul's passing `web` instances: ID by address.
func (s *swarm) passingWeb() (map[string]string, error) {
	var entries []struct{ Service struct{ ID, Address string } }
	if err := getJSON(s.consul+"/v1/health/service/web?passing=true", &entries); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, e := range entries {
		out[e.Service.Address] = e.Service.ID
	}
	return out, nil
}

// traefikServers is Traefik's load balancer for `web`: each server's URL
// and the status of Traefik's own health check of it (UP, DOWN).
func (s *swarm) traefikServers() (map[string]string, error) {
	var services []struct {
		Provider     string
		LoadBalancer struct{ Servers []struct{ URL string } }
		ServerStatus map[string]string
	}
	if err := getJSON(s.traefikAPI+"/api/http/services", &services); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, svc := range services {
		if svc.Provider != "consulcatalog" {
			continue
		}
		for _, srv := range svc.LoadBalancer.Servers {
			out[srv.URL] = svc.ServerStatus[srv.URL]
		}
	}
	return out, nil
}

// waitRouted waits until the app runs n tasks, each passing in Consul at
// its overlay address under pilot's default ID (web-HOSTNAME-3000), each in
// Traefik's load balancer and no other, and requests through Traefik reach
// every one. It returns the tasks.
func (s *swarm) waitRouted(t *testing.T, n int, timeout time.Duration) []swarmTask {
	t.Helper()
	var tasks []swarmTask
	err := phase(fmt.Sprintf("%d app tasks passing in Consul and routed by Traefik", n), func() error {
		return waitFor(timeout, func() (bool, string) {
			var err error
			if tasks, err = appTasks(); err != nil || len(tasks) != n {
				return false, fmt.Sprintf("app tasks %+v, %v", tasks, err)
			}
			passing, err := s.passingWeb()
			if err != nil {
				return false, err.Error()
			}
			servers, err := s.traefikServers()
			if err != nil {
				return false, err.Error()
			}
			wantServers := map[string]string{}
			for _, k := range tasks {
				if id := passing[k.ip]; id != "web-"+k.host+"-3000" {
					return false, fmt.Sprintf("task %+v: passing in Consul as %q; passing: %v", k, id, passing)
				}
				wantServers[k.url()] = "UP"
			}
			if len(passing) != n || !maps.Equal(servers, wantServers) {
				return false, fmt.Sprintf("passing %v; Traefik's servers %v; tasks %+v", passing, servers, tasks)
			}
			hosts := map[string]int{}
			for range 6 * n {
				if host, err := getHost(http.DefaultClient, s.viaTraefik); err == nil {
					hosts[host]++
				}
			}
			for _, k := range tasks {
				if hosts[k.host] == 0 {
					return false, fmt.Sprintf("through Traefik: %s; tasks %+v", countsString(hosts), tasks)
				}
			}
			return true, ""
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return tasks
}

func (s *swarm) rollingUpdate(t *testing.T) {
	before, err := appTasks()
	if err != nil {
		t.Fatal(err)
	}
	loop := startLoop("Traefik", s.viaTraefik, 4)
	defer loop.stop()
	loop.waitMore(t, 50) // running before the update…
	departed := s.followDepartures(before)
	start := time.Now()
	// without --detach the CLI returns once the service has converged,
	// the last new task included (and the file's monitor period)
	out, err := run(10*time.Minute, dockerCLI, "service", "update", "--force", swarmStack+"_app")
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	loop.waitMore(t, 200) // …and after it
	loop.stop()
	t.Logf("docker service update --force %s_app: %v; through Traefik meanwhile: %d ok, %d failed; %s",
		swarmStack, took.Round(100*time.Millisecond), loop.ok, loop.failed, countsString(loop.hosts))
	// how long Traefik kept routing to each old task after it left Consul:
	// the stack's drain (DRAIN, 5 s) must cover it
	for ip, d := range departed() {
		if d.consul.IsZero() || d.traefik.IsZero() {
			t.Logf("old task %s: left Consul at %v, Traefik at %v (zero: not seen leaving)", ip, d.consul, d.traefik)
			continue
		}
		t.Logf("old task %s: out of Traefik %v after it left Consul's passing instances (drain: the stack's DRAIN, 5s)",
			ip, d.traefik.Sub(d.consul).Round(time.Millisecond))
	}
	if loop.failed > 0 {
		t.Errorf("%d of %d requests through Traefik failed during the rolling update: %v\n%s",
			loop.failed, loop.ok+loop.failed, loop.errs, out)
	}
	after := s.waitRouted(t, 3, 2*time.Minute)
	for _, k := range after {
		if slices.ContainsFunc(before, func(b swarmTask) bool { return b.container == k.container }) {
			t.Errorf("task %s survived the forced update", k.host)
		}
	}
}

// departure is when a task left Consul's passing instances and when it
// left Traefik's servers.
type departure struct{ consul, traefik time.Time }

// followDepartures polls Consul and Traefik every 25 ms for tasks until the
// returned function is called, which returns what it saw, by address.
func (s *swarm) followDepartures(tasks []swarmTask) func() map[string]departure {
	ctx, cancel := context.WithCancel(context.Background())
	seen := map[string]departure{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			passing, err := s.passingWeb()
			atConsul := time.Now()
			servers, err2 := s.traefikServers()
			atTraefik := time.Now()
			for _, k := range tasks {
				d := seen[k.ip]
				if _, in := passing[k.ip]; err == nil && !in && d.consul.IsZero() {
					d.consul = atConsul
				}
				if _, in := servers[k.url()]; err2 == nil && !in && d.traefik.IsZero() {
					d.traefik = atTraefik
				}
				seen[k.ip] = d
			}
			select {
			case <-ctx.Done():
			case <-time.After(25 * time.Millisecond):
			}
		}
	}()
	return func() map[string]departure {
		cancel()
		<-done
		return seen
	}
}

func (s *swarm) scaleUp(t *testing.T) {
	const rounds = 3
	var took []time.Duration
	for i := range rounds {
		if i > 0 {
			if _, err := run(5*time.Minute, dockerCLI, "service", "scale", swarmStack+"_app=3"); err != nil {
				t.Fatal(err)
			}
			s.waitRouted(t, 3, 2*time.Minute)
		}
		took = append(took, s.timeScaleTo5(t))
	}
	t.Logf("docker service scale app=5 → the 5th task answers through Traefik: %v, median %v",
		roundAll(took), median(took).Round(10*time.Millisecond))
	s.waitRouted(t, 5, time.Minute)
}

// timeScaleTo5 scales the app from 3 to 5 tasks and times the command to
// the first answer, through Traefik, of the 5th distinct task (and, for
// the account of where the time goes, to the 5th passing instance in
// Consul); requests every 20 ms meanwhile, none of which may fail.
func (s *swarm) timeScaleTo5(t *testing.T) time.Duration {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	seen := map[string]bool{}
	var failed []string
	var inConsul time.Duration
	before, err := appTasks()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := run(time.Minute, dockerCLI, "service", "scale", "--detach", swarmStack+"_app=5"); err != nil {
		t.Fatal(err)
	}
	for deadline := start.Add(3 * time.Minute); len(seen) < 5; {
		if time.Now().After(deadline) {
			t.Fatalf("5 tasks not answering through Traefik 3 min after docker service scale: %v", slices.Sorted(maps.Keys(seen)))
		}
		if inConsul == 0 {
			if passing, err := s.passingWeb(); err == nil && len(passing) == 5 {
				inConsul = time.Since(start)
			}
		}
		host, err := getHost(client, s.viaTraefik)
		if err != nil {
			failed = append(failed, err.Error())
		} else {
			seen[host] = true
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(start)
	t.Logf("scale 3 → 5: the new containers started (Docker's StartedAt) after %s, 5 passing in Consul after %v, the 5th task answered through Traefik after %v",
		newTasksStarted(t, before, start), inConsul.Round(10*time.Millisecond), took.Round(10*time.Millisecond))
	if len(failed) > 0 {
		t.Errorf("%d requests through Traefik failed while scaling up: %q", len(failed), failed[:min(5, len(failed))])
	}
	return took
}

func (s *swarm) killedTask(t *testing.T) {
	// examples/nodejs/pilot.yaml sets no ttl: pilot's default, 3 × the
	// health interval (1 s)
	const ttl = 3 * time.Second
	tasks, err := appTasks()
	if err != nil || len(tasks) == 0 {
		t.Fatalf("app tasks: %v %v", tasks, err)
	}
	victim := tasks[0]
	if servers, err := s.traefikServers(); err != nil || servers[victim.url()] != "UP" {
		t.Fatalf("before the kill, Traefik's servers %v (%v) lack %s UP", servers, err, victim.url())
	}
	// Traefik's view every 10 ms: when its own health check (every 2 s)
	// marks the task DOWN, and when the task leaves its configuration
	// (Consul's TTL check lapsed)
	type seen struct {
		down, gone time.Time
	}
	ctx, cancel := context.WithTimeout(context.Background(), ttl+10*time.Second)
	defer cancel()
	result := make(chan seen, 1)
	go func() {
		var v seen
		for ctx.Err() == nil {
			if servers, err := s.traefikServers(); err == nil {
				status, in := servers[victim.url()]
				if v.down.IsZero() && in && status != "UP" {
					v.down = time.Now()
				}
				if !in {
					v.gone = time.Now()
					break
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		result <- v
	}()
	killed := time.Now()
	docker(t, "kill", victim.container)
	v := <-result
	if v.gone.IsZero() {
		t.Fatalf("the killed task %s (%s) still in Traefik %v after the kill", victim.host, victim.url(), ttl+10*time.Second)
	}
	gone := v.gone.Sub(killed)
	down := "not before it left"
	if !v.down.IsZero() {
		down = v.down.Sub(killed).Round(time.Millisecond).String()
	}
	t.Logf("docker kill of task %s: out of Traefik's configuration after %v (TTL %v); marked DOWN by Traefik's own health check: %s",
		victim.host, gone.Round(time.Millisecond), ttl, down)
	if limit := ttl + time.Second; gone > limit {
		t.Errorf("the killed task left Traefik after %v, want within its TTL + 1 s (%v)", gone, limit)
	}
	// Swarm replaces it
	s.waitRouted(t, len(tasks), 2*time.Minute)
	t.Logf("the replacement task routed %v after the kill", time.Since(killed).Round(100*time.Millisecond))
}

// newTasksStarted says when, after since, the app containers not in before
// started: the last one's Docker StartedAt.
func newTasksStarted(t *testing.T, before []swarmTask, since time.Time) string {
	t.Helper()
	now, err := appTasks()
	if err != nil {
		return err.Error()
	}
	var last time.Duration
	for _, k := range now {
		if slices.ContainsFunc(before, func(b swarmTask) bool { return b.container == k.container }) {
			continue
		}
		out, err := run(time.Minute, dockerCLI, "inspect", "-f", "{{.State.StartedAt}}", k.container)
		if err != nil {
			return err.Error()
		}
		at, err := time.Parse(time.RFC3339Nano, out)
		if err != nil {
			return err.Error()
		}
		last = max(last, at.Sub(since))
	}
	return last.Round(10 * time.Millisecond).String()
}

func (s *swarm) killedServer(t *testing.T) {
	raft, err := s.raftServers()
	if err != nil {
		t.Fatal(err)
	}
	var victim string
	for _, r := range raft {
		if !r.Leader {
			victim = r.Node // a follower: no election, the replacement alone
			break
		}
	}
	if victim == "" {
		t.Fatalf("no follower in %+v", raft)
	}
	// a server's node name is its container's hostname: the short ID
	docker(t, "kill", victim)
	killed := time.Now()
	var after []raftServer
	err = phase("Consul: 3 voters and a leader again, the killed one gone", func() error {
		return waitFor(2*time.Minute, func() (bool, string) {
			var err error
			if after, err = s.raftServers(); err != nil {
				return false, err.Error()
			}
			voters, leaders := 0, 0
			for _, r := range after {
				if r.Node == victim {
					return false, fmt.Sprintf("the killed %s still a peer: %+v", victim, after)
				}
				if r.Voter {
					voters++
				}
				if r.Leader {
					leaders++
				}
			}
			return len(after) == 3 && voters == 3 && leaders == 1, fmt.Sprintf("raft configuration %+v", after)
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Consul server %s killed: 3 voters again, without it, after %v: %+v", victim, time.Since(killed).Round(100*time.Millisecond), after)
	tasks, err := appTasks()
	if err != nil {
		t.Fatal(err)
	}
	s.waitRouted(t, len(tasks), time.Minute)
}

// dumpSwarm logs each service's tasks and the tail of its logs.
func dumpSwarm(t *testing.T) {
	services, _ := run(time.Minute, dockerCLI, "stack", "services", "--format", "{{.Name}}", swarmStack)
	for _, svc := range strings.Fields(services) {
		ps, _ := run(time.Minute, dockerCLI, "service", "ps", "--no-trunc", svc)
		t.Logf("docker service ps %s:\n%s\ndocker service logs --tail 40 %s:\n%s", svc, ps, svc,
			combinedOutput(time.Minute, dockerCLI, "service", "logs", "--tail", "40", svc))
	}
}

// combinedOutput runs a command for its stdout and stderr together (the
// tasks' two streams, for service logs), within timeout: 20.10's docker
// service logs can hang after it has printed what it has.
func combinedOutput(timeout time.Duration, name string, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Sprintf("%s\n(%v)", out, err)
	}
	return string(out)
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(10 * time.Millisecond)
	}
	return out
}
