//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
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
// stand-ins and checks, in order, on the running stack:
//
//   - 3 passing `web` instances in Consul; all three replicas answer through
//     Traefik and through the nginx front;
//   - Prometheus finds the three pilots through Consul and scrapes them;
//   - SIGKILL of one replica's app process: out of the nginx front's
//     upstream and out of Traefik within 1 s, then back once healthy;
//   - `docker stop` of another replica under request loops through both
//     proxies: no failed request, the instance leaves Consul before its app
//     gets SIGTERM (once), the container exits with the app's code 0, well
//     inside Docker's 10 s;
//   - `docker kill` of a third replica (pilot too): out of both proxies
//     once its TTL check lapses.
//
// The host reaches the containers' addresses on the suite's network
// directly (dockerd.sh's bridge, no published ports).
func TestComposeStack(t *testing.T) {
	needEngine(t)
	s := upStack(t)
	if !t.Run("prometheus scrapes the three pilots", s.prometheusScrapesPilots) {
		return
	}
	if !t.Run("killed app leaves both proxies within 1s", s.killedAppLeavesProxies) {
		return
	}
	if !t.Run("docker stop under load drops no request", s.stopUnderLoad) {
		return
	}
	t.Run("docker kill of a replica: out when its TTL lapses", s.killedContainerLeavesProxies)
}

// stack is the running compose project, as the host sees it.
type stack struct {
	compose                        func(timeout time.Duration, args ...string) (string, error)
	consul, prometheus, traefikAPI string   // base URLs
	viaTraefik, viaFront           string   // the app, through each proxy
	front                          string   // the front's container ID
	apps                           []string // the app replicas' container IDs
	appIP                          map[string]string
}

func upStack(t *testing.T) *stack {
	root := engine.root
	tphase := testPhase(t)
	composeImages(t, "consul", "traefik", "prometheus")
	env := append(os.Environ(),
		"CONSUL_IMAGE="+consulStandin, "TRAEFIK_IMAGE="+traefikStandin,
		"PROMETHEUS_IMAGE="+prometheusStandin, "NGINX_IMAGE="+nginxStandin,
		"NODE_IMAGE="+nodeStandin, "GO_IMAGE="+goStandin)
	file := filepath.Join(t.TempDir(), "docker-compose.yml")
	s := &stack{appIP: map[string]string{}}
	s.compose = func(timeout time.Duration, args ...string) (string, error) {
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
		if t.Failed() {
			logs, _ := s.compose(time.Minute, "logs", "--tail", "40")
			t.Logf("compose logs:\n%s", logs)
		}
		phase("docker-compose down", func() error {
			_, err := s.compose(3*time.Minute, "down", "--remove-orphans", "-t", "10")
			return err
		})
	})
	tphase("docker-compose up -d --no-build", func() error {
		_, err := s.compose(5*time.Minute, "up", "-d", "--no-build", "--scale", "app=3")
		return err
	})

	s.consul = "http://" + containerIP(t, s.ids(t, "consul")[0]) + ":8500"
	s.prometheus = "http://" + containerIP(t, s.ids(t, "prometheus")[0]) + ":9090"
	traefikIP := containerIP(t, s.ids(t, "traefik")[0])
	s.traefikAPI = "http://" + traefikIP + ":8080"
	s.viaTraefik = "http://" + traefikIP + ":80/"
	s.front = s.ids(t, "front")[0]
	s.viaFront = "http://" + containerIP(t, s.front) + ":8080/"
	s.apps = s.ids(t, "app")
	if len(s.apps) != 3 {
		t.Fatalf("compose runs %d app replicas, want 3", len(s.apps))
	}
	for _, id := range s.apps {
		s.appIP[id] = containerIP(t, id)
	}

	tphase("wait for 3 passing web instances in Consul", func() error {
		return waitFor(90*time.Second, func() (bool, string) {
			addrs, err := s.passing()
			return err == nil && len(addrs) == 3, fmt.Sprint(addrs, err)
		})
	})
	for _, via := range []struct{ name, url string }{{"traefik", s.viaTraefik}, {"front", s.viaFront}} {
		var hosts map[string]int
		tphase("all 3 replicas answer through "+via.name, func() error {
			return waitFor(60*time.Second, func() (bool, string) {
				hosts = map[string]int{}
				var last string
				for range 30 {
					host, err := getHost(http.DefaultClient, via.url)
					if err != nil {
						last = err.Error()
						continue
					}
					hosts[host]++
				}
				return len(hosts) == 3, fmt.Sprintf("replicas answering %v; last error %s", hosts, last)
			})
		})
		t.Logf("through %s (%s): %s", via.name, via.url, countsString(hosts))
	}
	return s
}

func (s *stack) ids(t *testing.T, svc string) []string {
	t.Helper()
	out, err := s.compose(time.Minute, "ps", "-q", svc)
	if err != nil {
		t.Fatal(err)
	}
	ids := strings.Fields(out)
	if len(ids) == 0 {
		t.Fatalf("no container for compose service %s", svc)
	}
	return ids
}

// passing lists the addresses of the passing `web` instances in Consul.
func (s *stack) passing() ([]string, error) {
	var entries []struct{ Service struct{ Address string } }
	if err := getJSON(s.consul+"/v1/health/service/web?passing=true", &entries); err != nil {
		return nil, err
	}
	addrs := make([]string, 0, len(entries))
	for _, e := range entries {
		addrs = append(addrs, e.Service.Address)
	}
	sort.Strings(addrs)
	return addrs, nil
}

func (s *stack) prometheusScrapesPilots(t *testing.T) {
	// Prometheus finds pilots through Consul (the "pilot" service each
	// registers) and scrapes every 15 s: allow a few rounds.
	var up map[string]string
	err := phase("prometheus: 3 pilots found through Consul and up", func() error {
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
			up = map[string]string{}
			for _, target := range r.Data.ActiveTargets {
				if target.Labels["job"] == "web" && target.Health == "up" {
					up[target.Labels["instance"]] = target.ScrapeURL
				}
			}
			return len(up) == 3, fmt.Sprintf("targets up with job=web: %v (all: %+v)", up, r.Data.ActiveTargets)
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("scraped pilots: %v", up)
	// The Node agent's metrics come through too, one series per replica.
	err = waitFor(30*time.Second, func() (bool, string) {
		var r struct {
			Data struct {
				Result []struct{ Value []any }
			}
		}
		q := url.QueryEscape(`count(pilot_nodejs_heap_used_bytes{job="web",pilot_job="app"})`)
		if err := getJSON(s.prometheus+"/api/v1/query?query="+q, &r); err != nil {
			return false, err.Error()
		}
		return len(r.Data.Result) == 1 && len(r.Data.Result[0].Value) == 2 && r.Data.Result[0].Value[1] == "3",
			fmt.Sprintf("count(pilot_nodejs_heap_used_bytes) = %+v", r.Data.Result)
	})
	if err != nil {
		t.Error(err)
	}
}

// membership is one proxy's view of one backend: whether it routes to it,
// with the time each change was seen.
type membership struct {
	at time.Time
	in bool
}

// frontMembership streams whether the front's rendered upstream lists addr
// (a shell loop in the front's container, a line per change, 10 ms apart;
// it ends by itself after a minute).
func (s *stack) frontMembership(ctx context.Context, addr string) <-chan membership {
	script := `p=; i=0; while [ $i -lt 6000 ]; do
  if grep -qF "server ` + addr + `" /etc/nginx/upstream.conf; then c=in; else c=out; fi
  [ "$c" != "$p" ] && echo $c && p=$c
  usleep 10000; i=$((i+1))
done`
	ch := make(chan membership, 16)
	cmd := exec.CommandContext(ctx, dockerCLI, "exec", s.front, "sh", "-c", script)
	out, err := cmd.StdoutPipe()
	if err != nil || cmd.Start() != nil {
		close(ch)
		return ch
	}
	go func() {
		defer close(ch)
		defer cmd.Wait()
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			ch <- membership{time.Now(), sc.Text() == "in"}
		}
	}()
	return ch
}

// traefikMembership polls Traefik's API every 10 ms for a server at addr.
func (s *stack) traefikMembership(ctx context.Context, addr string) <-chan membership {
	ch := make(chan membership, 16)
	go func() {
		defer close(ch)
		known, was := false, false
		for ctx.Err() == nil {
			var services []struct {
				LoadBalancer struct{ Servers []struct{ URL string } }
			}
			if getJSON(s.traefikAPI+"/api/http/services", &services) == nil {
				in := false
				for _, svc := range services {
					for _, srv := range svc.LoadBalancer.Servers {
						in = in || srv.URL == "http://"+addr
					}
				}
				if !known || in != was {
					known, was = true, in
					ch <- membership{time.Now(), in}
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return ch
}

// watchProxies follows whether the nginx front and Traefik route to addr,
// from the moment both do.
func (s *stack) watchProxies(t *testing.T, ctx context.Context, addr string) (front, traefik <-chan membership) {
	t.Helper()
	front, traefik = s.frontMembership(ctx, addr), s.traefikMembership(ctx, addr)
	await(t, "front lists "+addr, front, true, 10*time.Second)
	await(t, "Traefik lists "+addr, traefik, true, 10*time.Second)
	return front, traefik
}

// await returns when the view reaches in, or fails after timeout.
func await(t *testing.T, what string, ch <-chan membership, in bool, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m, ok := <-ch:
			if !ok {
				t.Fatalf("%s: the watch ended before in=%v", what, in)
			}
			if m.in == in {
				return m.at
			}
		case <-deadline:
			t.Fatalf("%s: not in=%v within %v", what, in, timeout)
		}
	}
}

func (s *stack) killedAppLeavesProxies(t *testing.T) {
	victim := s.apps[0]
	addr := s.appIP[victim] + ":3000"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	front, traefik := s.watchProxies(t, ctx, addr)

	pid := docker(t, "exec", victim, "sh", "-c",
		`for p in $(pidof node); do grep -q server.js /proc/$p/cmdline && echo $p; done`)
	if _, err := strconv.Atoi(pid); err != nil {
		t.Fatalf("the app's node process in %s: %q", victim, pid)
	}
	killed := time.Now() // before the exec: the figures below include its own latency
	docker(t, "exec", victim, "kill", "-KILL", pid)
	execTook := time.Since(killed)
	frontOut := await(t, "front drops "+addr, front, false, 5*time.Second).Sub(killed)
	traefikOut := await(t, "Traefik drops "+addr, traefik, false, 5*time.Second).Sub(killed)
	t.Logf("SIGKILL of the app (pid %s in %.12s): out of the nginx front after %v, out of Traefik after %v (from the start of a docker exec kill that took %v)",
		pid, victim, frontOut.Round(time.Millisecond), traefikOut.Round(time.Millisecond), execTook.Round(time.Millisecond))
	if frontOut > time.Second {
		t.Errorf("the killed replica left the nginx front after %v, want ≤ 1s", frontOut)
	}
	if traefikOut > time.Second {
		t.Errorf("the killed replica left Traefik after %v, want ≤ 1s", traefikOut)
	}
	// pilot restarts the app (on-failure); it comes back once healthy.
	frontBack := await(t, "front lists "+addr+" again", front, true, 30*time.Second).Sub(killed)
	traefikBack := await(t, "Traefik lists "+addr+" again", traefik, true, 30*time.Second).Sub(killed)
	t.Logf("restarted app back in the front after %v, in Traefik after %v",
		frontBack.Round(time.Millisecond), traefikBack.Round(time.Millisecond))
}

// `docker kill` takes pilot down with its app (SIGKILL to PID 1 ends the
// whole PID namespace): nobody is left to withdraw the instance, so it goes
// when its TTL check lapses in Consul: 3 s in the example (three health
// intervals).
func (s *stack) killedContainerLeavesProxies(t *testing.T) {
	const ttl = 3 * time.Second
	victim := s.apps[2]
	addr := s.appIP[victim] + ":3000"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	front, traefik := s.watchProxies(t, ctx, addr)
	killed := time.Now()
	docker(t, "kill", victim)
	frontOut := await(t, "front drops "+addr, front, false, ttl+5*time.Second).Sub(killed)
	traefikOut := await(t, "Traefik drops "+addr, traefik, false, ttl+5*time.Second).Sub(killed)
	t.Logf("docker kill of %.12s: out of the nginx front after %v, out of Traefik after %v (TTL %v)",
		victim, frontOut.Round(time.Millisecond), traefikOut.Round(time.Millisecond), ttl)
	if limit := ttl + time.Second; frontOut > limit || traefikOut > limit {
		t.Errorf("a killed container must leave both proxies within its TTL + 1 s (%v)", limit)
	}
}

// requestLoop requests one URL from several goroutines until stopped and
// counts the outcomes.
type requestLoop struct {
	via    string
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu         sync.Mutex
	ok, failed int
	hosts      map[string]int
	errs       []string
}

func startLoop(via, url string, workers int) *requestLoop {
	ctx, cancel := context.WithCancel(context.Background())
	l := &requestLoop{via: via, cancel: cancel, hosts: map[string]int{}}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil { // a request in flight finishes: stopping fails none
				host, err := getHost(client, url)
				l.mu.Lock()
				if err != nil {
					l.failed++
					if len(l.errs) < 5 {
						l.errs = append(l.errs, err.Error())
					}
				} else {
					l.ok++
					l.hosts[host]++
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func (l *requestLoop) done() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok + l.failed
}

// waitMore returns once the loop has made n more requests.
func (l *requestLoop) waitMore(t *testing.T, n int) {
	t.Helper()
	target := l.done() + n
	if err := waitFor(30*time.Second, func() (bool, string) {
		return l.done() >= target, fmt.Sprintf("%d requests through %s, want %d", l.done(), l.via, target)
	}); err != nil {
		t.Fatal(err)
	}
}

func (l *requestLoop) stop() {
	l.cancel()
	l.wg.Wait()
}

func (s *stack) stopUnderLoad(t *testing.T) {
	victim := s.apps[1]
	loops := []*requestLoop{startLoop("nginx front", s.viaFront, 4), startLoop("Traefik", s.viaTraefik, 4)}
	defer func() {
		for _, l := range loops {
			l.stop()
		}
	}()
	for _, l := range loops {
		l.waitMore(t, 50) // running before the stop…
	}
	start := time.Now()
	_, err := run(30*time.Second, dockerCLI, "stop", victim) // Docker's default 10 s
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range loops {
		l.waitMore(t, 200) // …and after it
		l.stop()
	}
	for _, l := range loops {
		t.Logf("through %s during docker stop: %d ok, %d failed; %s", l.via, l.ok, l.failed, countsString(l.hosts))
		if l.failed > 0 {
			t.Errorf("through %s: %d of %d requests failed during docker stop: %v", l.via, l.failed, l.ok+l.failed, l.errs)
		}
	}

	code := docker(t, "inspect", "-f", "{{.State.ExitCode}}", victim)
	t.Logf("docker stop of %.12s took %v, exit code %s", victim, took.Round(time.Millisecond), code)
	if code != "0" {
		t.Errorf("exit code after docker stop = %s, want the app's 0", code)
	}
	if took > 9*time.Second {
		t.Errorf("docker stop took %v; it must finish inside Docker's 10 s", took)
	}
	logs, err := runIn("", time.Minute, "sh", "-c", dockerCLI+" logs "+victim+" 2>&1")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs, "SIGTERM: closing"); n != 1 {
		t.Errorf("the app saw SIGTERM %d times, want once; logs:\n%s", n, logs)
	}
	deregistered := logTime(logs, `msg="shutdown: deregistered"`)
	signalled := logTime(logs, `msg="sending signal" logger=pilot job=app`)
	switch {
	case deregistered.IsZero() || signalled.IsZero():
		t.Errorf("no deregistration or signal line in pilot's log:\n%s", logs)
	case !deregistered.Before(signalled):
		t.Errorf("the app got its signal at %v, before its instance left Consul at %v", signalled, deregistered)
	default:
		t.Logf("instance left Consul %v before the app's SIGTERM (the drain)", signalled.Sub(deregistered).Round(time.Millisecond))
	}
	if addrs, err := s.passing(); err != nil || slices.Contains(addrs, s.appIP[victim]) {
		t.Errorf("after docker stop, passing web instances %v (%v) still list %s", addrs, err, s.appIP[victim])
	}
}

var logTimeField = regexp.MustCompile(`time=(\S+)`)

// logTime is the time= of pilot's first log line containing marker.
func logTime(logs, marker string) time.Time {
	for _, line := range strings.Split(logs, "\n") {
		if !strings.Contains(line, marker) {
			continue
		}
		if m := logTimeField.FindStringSubmatch(line); m != nil {
			at, _ := time.Parse(time.RFC3339Nano, m[1])
			return at
		}
	}
	return time.Time{}
}

func getJSON(url string, v any) error {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %.300s", url, resp.Status, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: %v: %.300s", url, err, body)
	}
	return nil
}

// getHost requests the example app (through a proxy) and returns the
// replica that answered.
func getHost(client *http.Client, url string) (string, error) {
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	var r struct {
		Host string `json:"host"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &r) != nil || r.Host == "" {
		return "", fmt.Errorf("%s: %s %.200q", url, resp.Status, body)
	}
	return r.Host, nil
}

// waitFor polls cond every 200 ms until it holds; the error carries cond's
// last account of itself.
func waitFor(timeout time.Duration, cond func() (bool, string)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, last := cond()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v; last: %.2000s", timeout, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func countsString(m map[string]int) string {
	parts := make([]string, 0, len(m))
	for k, n := range m {
		parts = append(parts, fmt.Sprintf("%s×%d", k, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
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

// testPhase is phase, failing t on error.
func testPhase(t *testing.T) func(name string, f func() error) {
	return func(name string, f func() error) {
		t.Helper()
		if err := phase(name, f); err != nil {
			t.Fatal(err)
		}
	}
}

var standinTags = map[string]string{"consul": consulStandin, "traefik": traefikStandin,
	"prometheus": prometheusStandin, "nginx": nginxStandin}

// standinImages readies the stand-ins of kinds (keys of standinTags).
func standinImages(t *testing.T, kinds ...string) {
	t.Helper()
	tphase := testPhase(t)
	for _, kind := range kinds {
		tag := standinTags[kind]
		tphase("stand-in "+tag, func() error {
			_, err := runIn(engine.root, 5*time.Minute, "bash", "test/e2e/standins.sh", kind, tag)
			return err
		})
	}
}

// composeImages readies what the compose files name: the stand-ins of
// kinds (nginx's always, for the front), the nginx front built from its
// Dockerfile, and the example image under the name compose expects.
func composeImages(t *testing.T, kinds ...string) {
	t.Helper()
	tphase := testPhase(t)
	standinImages(t, append(kinds, "nginx")...)
	tphase("build pilot-nginx-front (examples/nginx-front/Dockerfile)", func() error {
		_, err := runIn(engine.root, 15*time.Minute, dockerCLI, append([]string{"build", "--network", "host",
			"-f", "examples/nginx-front/Dockerfile", "--build-arg", "NGINX_IMAGE=" + nginxStandin,
			"-t", "pilot-nginx-front"}, pilotBuildArgs()...)...)
		return err
	})
	// the app image the suite already built, under the name compose expects
	docker(t, "tag", exampleImg, "pilot-example")
}
