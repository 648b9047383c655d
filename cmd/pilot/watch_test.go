package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodepilot/pilot/test/consulagent"
)

func registerInstance(t *testing.T, a *consulagent.Agent, service, id string, port int) {
	t.Helper()
	body := fmt.Sprintf(`{"ID":%q,"Name":%q,"Address":"127.0.0.1","Port":%d}`, id, service, port)
	req, _ := http.NewRequest(http.MethodPut, "http://"+a.Addr()+"/v1/agent/service/register", bytes.NewBufferString(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("register %s: %s", id, resp.Status)
	}
}

func fileHas(path, want string) func() (string, bool) {
	return func() (string, bool) {
		b, _ := os.ReadFile(path)
		return string(b), strings.Contains(string(b), want)
	}
}

// RELIABILITY E33 and issue 4: a watch renders the nginx upstream from real
// Consul at once, reloads after each change, keeps the last good file while
// Consul is down, and resumes without a restart of pilot when it returns.
func TestWatchRendersNginxUpstream(t *testing.T) {
	a := consulagent.Shared(t)
	dir := t.TempDir()
	dest := filepath.Join(dir, "backend.conf")
	reloads := filepath.Join(dir, "reloads")
	service := fmt.Sprintf("backend%d", time.Now().UnixNano()%1e6)
	cfg := writeConfig(t, fmt.Sprintf(`consul: {address: %q}
jobs:
  - name: app
    main: true
    exec: %s
watches:
  - service: %s
    onChange:
      render: {format: nginx, dest: %q, name: backend}
      reload: {exec: ["/bin/sh", "-c", "echo reloaded >> %s"], timeout: 2s}
`, a.Addr(), yamlArgv(helperArgv(t, "signals", "exit:0")...), service, dest, reloads))
	p := startPilot(t, pilotOpts{}, "run", "--config", cfg)
	waitFor(t, 5*time.Second, "the empty set rendered fail-closed", fileHas(dest, "127.0.0.1:1 down"))

	registered := time.Now()
	registerInstance(t, a, service, service+"-1", 4001)
	waitFor(t, time.Second, "the instance in the upstream", fileHas(dest, "server 127.0.0.1:4001;"))
	t.Logf("Consul change → file on disk: %v", time.Since(registered).Round(time.Millisecond))
	registerInstance(t, a, service, service+"-2", 4002)
	waitFor(t, time.Second, "the second instance", fileHas(dest, "server 127.0.0.1:4002;"))
	waitFor(t, 2*time.Second, "a reload per change", func() (int, bool) {
		b, _ := os.ReadFile(reloads)
		n := strings.Count(string(b), "reloaded")
		return n, n >= 3
	})

	a.Kill()
	before, _ := os.ReadFile(dest)
	// Consul down: the watch fails, retries, and keeps the last good file.
	p.errLog.waitLine(t, 10*time.Second, `consul: watch failing; keeping the last snapshot`)
	waitFor(t, 10*time.Second, "the watch retrying against the dead agent", func() (int, bool) {
		n := p.errLog.count(`consul: watch still failing`)
		return n, n >= 2
	})
	if after, _ := os.ReadFile(dest); !bytes.Equal(before, after) {
		t.Fatalf("the upstream changed while Consul was down:\n%s", after)
	}
	if err := a.Up(); err != nil {
		t.Fatal(err)
	}
	// The restarted dev agent forgot everything; register anew.
	waitFor(t, 10*time.Second, "Consul back", func() (bool, bool) {
		_, err := a.Leader()
		return true, err == nil
	})
	registerInstance(t, a, service, service+"-3", 4003)
	waitFor(t, 10*time.Second, "the watch resumed after Consul came back", fileHas(dest, "server 127.0.0.1:4003;"))
	stopPilot(t, p)
}

// onChange.run: the job runs once per change, never at boot before the
// first set, with the instances as a JSON file and a summary in its env.
func TestWatchRunsJobWithInstances(t *testing.T) {
	a := consulagent.Shared(t)
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs")
	copied := filepath.Join(dir, "instances.json")
	service := fmt.Sprintf("runwatch%d", time.Now().UnixNano()%1e6)
	// The copy is in place before the run's line: the line says it is done.
	script := fmt.Sprintf(`cp "$PILOT_WATCH_INSTANCES_FILE" %[2]s.tmp && mv %[2]s.tmp %[2]s && echo "$PILOT_WATCH_SERVICE $PILOT_WATCH_INSTANCE_COUNT $PILOT_WATCH_ADDRESSES" >> %[1]s`, runs, copied)
	cfg := writeConfig(t, fmt.Sprintf(`consul: {address: %q}
jobs:
  - name: app
    main: true
    exec: %s
  - name: sync
    shell: %q
watches:
  - service: %s
    onChange:
      run: sync
`, a.Addr(), yamlArgv(helperArgv(t, "signals", "exit:0")...), script, service))
	p := startPilot(t, pilotOpts{}, "run", "--config", cfg)
	waitFor(t, 5*time.Second, "a run for the first (empty) set", fileHas(runs, service+" 0 \n"))

	registerInstance(t, a, service, service+"-1", 4101)
	registerInstance(t, a, service, service+"-2", 4102)
	waitFor(t, 5*time.Second, "a run with both instances", fileHas(runs, service+" 2 127.0.0.1:4101,127.0.0.1:4102\n"))
	var got struct {
		Service   string `json:"service"`
		Instances []struct {
			ID       string `json:"id"`
			HostPort string `json:"hostPort"`
			Status   string `json:"status"`
		} `json:"instances"`
	}
	b, err := os.ReadFile(copied)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("instances file: %v\n%s", err, b)
	}
	if got.Service != service || len(got.Instances) != 2 || got.Instances[1].HostPort != "127.0.0.1:4102" || got.Instances[0].Status != "passing" {
		t.Fatalf("instances file:\n%s", b)
	}
	if n := strings.Count(readOrEmpty(runs), "\n"); n > 3 {
		t.Errorf("%d runs for 3 sets: a run per check, not per change?", n)
	}
	p.out.waitLine(t, 10*time.Second, `^ready`) // the app handles TERM from here on
	if code := stopPilot(t, p); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

func readOrEmpty(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}
