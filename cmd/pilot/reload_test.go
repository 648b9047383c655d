package main

// Hot reload and runtime control through the real control socket, against
// the real pilot binary (this test binary in its pilot role): a reload
// restarts exactly the jobs whose effective spec changed, an invalid config
// changes nothing, SIGHUP reloads in config mode, and (with the real Consul
// agent) a reload that adds a watch starts rendering, one that removes a
// service deregisters it, maintenance takes the instance out of a rendered
// nginx upstream and puts it back.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodepilot/pilot/pilot/control"
	"github.com/nodepilot/pilot/telemetry"
	"github.com/nodepilot/pilot/test/consulagent"
)

// controlClient talks to p's control socket.
func controlClient(p *pilotProc) *control.Client { return control.NewClient(p.socket, 10*time.Second) }

// pids reads every job's pid from p's status; it waits until each named
// job has a process.
func pids(t *testing.T, p *pilotProc, names ...string) map[string]int {
	t.Helper()
	return waitFor(t, 10*time.Second, "jobs "+strings.Join(names, ", ")+" running", func() (map[string]int, bool) {
		st, err := controlClient(p).Status(context.Background())
		if err != nil {
			return nil, false
		}
		out := map[string]int{}
		for _, j := range st.Jobs {
			out[j.Name] = j.Pid
		}
		for _, n := range names {
			if out[n] == 0 {
				return out, false
			}
		}
		return out, true
	})
}

// sleeper is a job that runs until stopped, printing X first.
func sleeper(name, x string) string {
	return fmt.Sprintf(`  - name: %s
    shell: 'echo "%s X=$X"; exec sleep 3600'
    env: {X: "%s"}
    stopTimeout: 2s
`, name, name, x)
}

func rewrite(t *testing.T, path, yaml string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReloadRestartsOnlyWhatChanged(t *testing.T) {
	t.Parallel()
	base := "jobs:\n" + sleeper("a", "1") + sleeper("b", "1") + sleeper("c", "1")
	path := writeConfig(t, base)
	p := startPilot(t, pilotOpts{}, "run", "--config", path)
	defer stopPilot(t, p)
	before := pids(t, p, "a", "b", "c")
	client := controlClient(p)

	// A comment and reformatting change no effective spec: nothing restarts.
	rewrite(t, path, "# the same jobs, said differently\njobs:\n"+sleeper("a", "1")+sleeper("b", "1")+
		strings.ReplaceAll(sleeper("c", "1"), "stopTimeout: 2s", "stopTimeout: 2000ms"))
	res, err := client.Reload(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Restarted)+len(res.Started)+len(res.Stopped) != 0 || res.Unchanged != 3 {
		t.Fatalf("a reload with no effective change: %+v", res)
	}
	if now := pids(t, p, "a", "b", "c"); !mapsEqual(now, before) {
		t.Fatalf("pids changed without a change: %v → %v", before, now)
	}

	// b's env changes: b alone restarts, with its new environment.
	rewrite(t, path, "jobs:\n"+sleeper("a", "1")+sleeper("b", "2")+sleeper("c", "1"))
	if res, err = client.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Restarted, []string{"b"}) || res.Unchanged != 2 {
		t.Fatalf("reload result %+v, want b restarted, 2 unchanged", res)
	}
	p.out.waitLine(t, 5*time.Second, `^b X=2$`)
	after := pids(t, p, "a", "b", "c")
	if after["a"] != before["a"] || after["c"] != before["c"] || after["b"] == before["b"] {
		t.Fatalf("pids %v → %v: want only b's to change", before, after)
	}
	if processAlive(before["b"]) {
		t.Fatalf("b's old process %d still runs", before["b"])
	}

	// c removed, d added: c stops, d starts, a and b run on.
	rewrite(t, path, "jobs:\n"+sleeper("a", "1")+sleeper("b", "2")+sleeper("d", "1"))
	if res, err = client.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Stopped, []string{"c"}) || !slices.Equal(res.Started, []string{"d"}) {
		t.Fatalf("reload result %+v, want c stopped, d started", res)
	}
	final := pids(t, p, "a", "b", "d")
	if _, ok := final["c"]; ok || final["a"] != before["a"] || final["b"] != after["b"] {
		t.Fatalf("after removing c and adding d: %v", final)
	}
	waitFor(t, 5*time.Second, "c's process gone", func() (bool, bool) { return true, !processAlive(before["c"]) })

	// An operator's restart: a new process, the restart counted, the
	// others untouched; an unknown job is a 404.
	var stdout, stderr strings.Builder
	if code := run(context.Background(), []string{"restart", "a", "--socket", p.socket}, stdio{nil, &stdout, &stderr}, nil); code != 0 {
		t.Fatalf("pilot restart a: exit %d\n%s", code, stderr.String())
	}
	restarted := pids(t, p, "a", "b", "d")
	if restarted["a"] == final["a"] || restarted["b"] != final["b"] || restarted["d"] != final["d"] {
		t.Fatalf("after pilot restart a: %v → %v", final, restarted)
	}
	st, err := client.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Jobs[0].Name != "a" || st.Jobs[0].Restarts != 1 || st.Jobs[0].Runs != 2 {
		t.Fatalf("a after a restart: %+v", st.Jobs[0])
	}
	if err := client.RestartJob(context.Background(), "nosuch"); !errors.Is(err, control.ErrUnknownJob) {
		t.Fatalf("restart of an unknown job: %v", err)
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// An invalid config changes nothing, and the answer lists every problem
// with its path, as validate prints them.
func TestReloadInvalidConfigChangesNothing(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, "jobs:\n"+sleeper("a", "1")+sleeper("b", "1"))
	p := startPilot(t, pilotOpts{}, "run", "--config", path)
	defer stopPilot(t, p)
	before := pids(t, p, "a", "b")
	rewrite(t, path, "jobs:\n"+sleeper("a", "2")+"    restart: {policy: sometimes}\n"+sleeper("b", "2")+"    every: -1s\n")
	_, err := controlClient(p).Reload(context.Background())
	var ce *control.ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("reload of an invalid config: %v, want a config error", err)
	}
	text := strings.Join(ce.Problems, "\n")
	for _, want := range []string{"jobs[0].restart.policy", "jobs[1].every", path + ":"} {
		if !strings.Contains(text, want) {
			t.Errorf("problems do not name %q:\n%s", want, text)
		}
	}
	if now := pids(t, p, "a", "b"); !mapsEqual(now, before) {
		t.Fatalf("pids changed after a refused reload: %v → %v", before, now)
	}
	// The CLI says the same and exits 1.
	var stdout, stderr strings.Builder
	code := run(context.Background(), []string{"reload", "--socket", p.socket}, stdio{nil, &stdout, &stderr}, nil)
	if code != 1 || !strings.Contains(stderr.String(), "jobs[1].every") {
		t.Fatalf("pilot reload: exit %d, stderr:\n%s", code, stderr.String())
	}
}

// SIGHUP reloads in config mode, then reaches the jobs that forward it.
func TestReloadOnSIGHUP(t *testing.T) {
	t.Parallel()
	hup := fmt.Sprintf(`  - name: proxy
    exec: %s
    forwardSignals: [SIGHUP]
`, yamlArgv(helperArgv(t, "signals", "exit:0")...))
	path := writeConfig(t, "jobs:\n"+sleeper("a", "1")+hup)
	p := startPilot(t, pilotOpts{}, "run", "--config", path)
	defer stopPilot(t, p)
	p.out.waitLine(t, 10*time.Second, `^ready`)
	before := pids(t, p, "a", "proxy")
	rewrite(t, path, "jobs:\n"+sleeper("a", "2")+hup)
	p.signal(syscall.SIGHUP)
	p.errLog.waitLine(t, 10*time.Second, `reload: applied.*restarted=\[a\]`)
	p.out.waitLine(t, 5*time.Second, `^got SIGHUP`)
	after := pids(t, p, "a", "proxy")
	if after["proxy"] != before["proxy"] || after["a"] == before["a"] {
		t.Fatalf("pids %v → %v: want a restarted, proxy kept", before, after)
	}
}

// With the real Consul agent: a reload that adds a watch starts rendering;
// one that removes a service deregisters it and leaves the job running;
// maintenance takes the instance out of the rendered nginx upstream
// within a second and puts it back.
func TestReloadConsulWatchServiceMaintenance(t *testing.T) {
	a := consulagent.Shared(t)
	c := newConsulApp(t, a.Addr())
	path := c.config(t)
	base, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p := startPilot(t, pilotOpts{}, "run", "--config", path)
	defer stopPilot(t, p)
	waitFor(t, 10*time.Second, "registered and passing", passingCount(a, c.name))
	appPid := pids(t, p, "app")["app"]
	client := controlClient(p)

	upstream := t.TempDir() + "/upstream.conf"
	withWatch := string(base) + fmt.Sprintf(`watches:
  - service: %s
    debounce: {min: 10ms, max: 50ms}
    onChange:
      render: {format: nginx, dest: %s}
`, c.name, upstream)
	rewrite(t, path, withWatch)
	if _, err := client.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	line := serverLine(c.port)
	waitFor(t, 5*time.Second, "the upstream rendered with the instance", func() (string, bool) {
		s, err := readFile(upstream)
		return s, err == nil && strings.Contains(s, line)
	})

	// Maintenance: out of the upstream within a second, the app untouched.
	start := time.Now()
	if err := client.SetMaintenance(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "the instance out of the upstream", func() (string, bool) {
		s, err := readFile(upstream)
		return s, err == nil && !strings.Contains(s, line)
	})
	t.Logf("maintenance on → out of the upstream in %s", time.Since(start).Round(time.Millisecond))
	st, err := client.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !serviceInMaintenance(st, c.name) {
		t.Fatalf("status does not show maintenance: %+v", st.Services)
	}
	// It survives an agent restart: the reconciler re-applies it.
	if err := a.Restart(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "the instance registered again, in maintenance", func() (string, bool) {
		es, ok := entries(a, c.name, false)
		if !ok || len(es) != 1 {
			return "", false
		}
		for _, ch := range es[0].Checks {
			if strings.HasPrefix(ch.CheckID, "_service_maintenance:") {
				return ch.Status, true
			}
		}
		return "", false
	})
	if es, _ := entries(a, c.name, true); len(es) != 0 {
		t.Fatalf("passing instances in maintenance after an agent restart: %+v", es)
	}
	start = time.Now()
	if err := client.SetMaintenance(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the instance back in the upstream", func() (string, bool) {
		s, err := readFile(upstream)
		return s, err == nil && strings.Contains(s, line)
	})
	t.Logf("maintenance off → back in the upstream in %s", time.Since(start).Round(time.Millisecond))

	// Removing the service deregisters it; the job is not restarted for it.
	noService := strings.Split(withWatch, "    service:\n")[0] + "watches:" + strings.Split(withWatch, "watches:")[1]
	rewrite(t, path, noService)
	res, err := client.Reload(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Restarted) != 0 {
		t.Fatalf("removing a service restarted %v", res.Restarted)
	}
	waitFor(t, 5*time.Second, "the service deregistered", func() (int, bool) {
		es, ok := entries(a, c.name, false)
		return len(es), ok && len(es) == 0
	})
	if now := pids(t, p, "app")["app"]; now != appPid {
		t.Fatalf("app pid %d → %d", appPid, now)
	}
}

func serviceInMaintenance(st telemetry.Status, name string) bool {
	for _, s := range st.Services {
		if s.Name == name {
			return s.Maintenance
		}
	}
	return false
}

// A reload moves telemetry to its new address and sets pilot's log level,
// both in place: no job restarts for either.
func TestReloadTelemetryAndLogLevel(t *testing.T) {
	t.Parallel()
	ports, err := consulagent.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	cfg := func(port int, level string) string {
		return fmt.Sprintf("log: {level: %s}\ntelemetry: {listen: \"127.0.0.1:%d\"}\njobs:\n%s", level, port, sleeper("a", "1"))
	}
	path := writeConfig(t, cfg(ports[0], "info"))
	p := startPilot(t, pilotOpts{env: []string{"PILOT_LOG_LEVEL="}}, "run", "--config", path)
	defer stopPilot(t, p)
	before := pids(t, p, "a")
	metrics := func(port int) bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}
	waitFor(t, 5*time.Second, "/metrics on the first port", func() (bool, bool) { return true, metrics(ports[0]) })
	if p.errLog.count(`level=DEBUG`) != 0 {
		t.Fatal("debug lines at level info")
	}

	rewrite(t, path, cfg(ports[1], "debug"))
	res, err := controlClient(p).Reload(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Unchanged != 1 {
		t.Fatalf("reload result %+v: the job was touched", res)
	}
	waitFor(t, 5*time.Second, "/metrics on the new port", func() (bool, bool) { return true, metrics(ports[1]) })
	waitFor(t, 5*time.Second, "the old port closed", func() (bool, bool) { return true, !metrics(ports[0]) })
	controlClient(p).Status(context.Background())
	p.errLog.waitLine(t, 5*time.Second, `level=DEBUG`)
	if now := pids(t, p, "a"); !mapsEqual(now, before) {
		t.Fatalf("pids %v → %v", before, now)
	}
}

// Runtime job control through the real core: signal reaches the job's
// group (409 for a job with no process, 404 for none), putenv reaches the
// runs started afterwards only, metric sets a declared metric (404 naming
// the declared ones otherwise) — each through the CLI, as an operator runs
// it.
func TestControlRuntimeJobs(t *testing.T) {
	t.Parallel()
	ports, err := consulagent.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	path := writeConfig(t, fmt.Sprintf(`telemetry: {listen: "127.0.0.1:%d"}
metrics:
  - {name: queue_depth, type: gauge, labels: [queue]}
jobs:
  - name: app
    exec: %s
  - name: env
    shell: 'echo "FLAG=$FLAG OWN=$OWN"; exec sleep 3600'
    env: {OWN: "config"}
  - name: once
    exec: ["true"]
`, ports[0], yamlArgv(helperArgv(t, "signals", "exit:0")...)))
	p := startPilot(t, pilotOpts{}, "run", "--config", path)
	defer stopPilot(t, p)
	p.out.waitLine(t, 10*time.Second, `^ready`)
	p.out.waitLine(t, 5*time.Second, `^FLAG= OWN=config$`)
	cli := func(args ...string) (int, string) {
		var stdout, stderr strings.Builder
		code := run(context.Background(), append(args, "--socket", p.socket), stdio{nil, &stdout, &stderr}, nil)
		return code, stdout.String() + stderr.String()
	}

	if code, out := cli("signal", "app", "USR2"); code != 0 {
		t.Fatalf("pilot signal app USR2: exit %d: %s", code, out)
	}
	p.out.waitLine(t, 5*time.Second, `^got SIGUSR2`)
	waitFor(t, 5*time.Second, "once ended", func() (bool, bool) {
		st, err := controlClient(p).Status(context.Background())
		return true, err == nil && st.Jobs[2].State == "succeeded"
	})
	if code, out := cli("signal", "once", "USR2"); code != 1 || !strings.Contains(out, "not running") {
		t.Errorf("signal to a job with no process: exit %d: %s", code, out)
	}
	if code, out := cli("signal", "nosuch", "USR2"); code != 1 || !strings.Contains(out, "no such job") {
		t.Errorf("signal to an unknown job: exit %d: %s", code, out)
	}

	if code, out := cli("putenv", "FLAG=on", "OWN=putenv"); code != 0 {
		t.Fatalf("pilot putenv: exit %d: %s", code, out)
	}
	if n := p.out.count(`^FLAG=on`); n != 0 {
		t.Fatal("putenv reached a run already started")
	}
	if code, out := cli("restart", "env"); code != 0 {
		t.Fatalf("pilot restart env: exit %d: %s", code, out)
	}
	p.out.waitLine(t, 5*time.Second, `^FLAG=on OWN=config$`) // the job's own env: wins

	if code, out := cli("metric", `queue_depth{queue="mail"}=7`); code != 0 {
		t.Fatalf("pilot metric: exit %d: %s", code, out)
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", ports[0]))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`queue_depth{queue="mail"} 7`, `pilot_control_requests_total{code="200",endpoint="/v1/metrics"} 1`,
		`pilot_control_requests_total{code="409",endpoint="/v1/jobs/{name}/signal"} 1`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if code, out := cli("metric", "nosuch=1"); code != 1 || !strings.Contains(out, "queue_depth") {
		t.Errorf("an undeclared metric: exit %d: %s", code, out)
	}
}

// A second pilot on a live socket exits 1 saying so, and never takes it
// over: the first still answers.
func TestControlSocketNeverStolen(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, "jobs:\n"+sleeper("a", "1"))
	first := startPilot(t, pilotOpts{}, "run", "--config", cfg)
	defer stopPilot(t, first)
	pids(t, first, "a")
	second := startPilot(t, pilotOpts{env: []string{"PILOT_SOCKET=" + first.socket}}, "run", "--config", cfg)
	if code := second.wait(10 * time.Second); code != 1 {
		t.Fatalf("second pilot on %s: exit %d, want 1", first.socket, code)
	}
	if second.errLog.count(`another pilot is listening there`) == 0 {
		t.Errorf("the second pilot did not say why:\n%s", second.errLog.String())
	}
	if _, err := controlClient(first).Status(context.Background()); err != nil {
		t.Fatalf("the first pilot's socket: %v", err)
	}
}
