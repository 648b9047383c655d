package main

// Binary-level telemetry tests (issue 5): the real pilot serving /metrics
// and /status on a free port, checked for values, for `promtool check
// metrics`, and — against the real Consul agent — for the "pilot" service
// that telemetry.register keeps in the catalog.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodepilot/pilot/test/consulagent"
	"github.com/nodepilot/pilot/test/promproc"
)

// scrape is one /metrics answer: the body, and each sample by its series
// as exposed (name{labels in promhttp's sorted order}).
type scrape struct {
	body    string
	samples map[string]float64
}

func (s scrape) has(series string) bool { _, ok := s.samples[series]; return ok }

func (s scrape) value(t *testing.T, series string) float64 {
	t.Helper()
	v, ok := s.samples[series]
	if !ok {
		t.Fatalf("no series %s in /metrics:\n%s", series, s.body)
	}
	return v
}

// withPrefix lists the series whose name starts with prefix.
func (s scrape) withPrefix(prefix string) []string {
	var out []string
	for k := range s.samples {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func getBody(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	return string(b), nil
}

func parseScrape(body string) scrape {
	s := scrape{body: body, samples: map[string]float64{}}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			s.samples[withoutEmptyLabels(line[:i])] = v
		}
	}
	return s
}

var emptyLabel = regexp.MustCompile(`([{,])[a-zA-Z_][a-zA-Z0-9_]*=""`)

// withoutEmptyLabels drops the labels with an empty value from a series,
// as Prometheus does when it ingests it: a plain job's series carry
// instance="" beside a cluster job's instance="2".
func withoutEmptyLabels(series string) string {
	series = emptyLabel.ReplaceAllString(series, "$1")
	series = strings.NewReplacer("{,", "{", ",,", ",", ",}", "}").Replace(series)
	return strings.TrimSuffix(series, "{}")
}

// scrapeUntil scrapes base/metrics until cond holds, failing after timeout.
func scrapeUntil(t *testing.T, base string, timeout time.Duration, what string, cond func(scrape) bool) scrape {
	t.Helper()
	var last scrape
	var lastErr error
	deadline := time.Now().Add(timeout)
	for {
		body, err := getBody(base + "/metrics")
		lastErr = err
		if err == nil {
			last = parseScrape(body)
			if cond(last) {
				return last
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s (last error %v); last /metrics:\n%s", timeout, what, lastErr, last.body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type statusDoc struct {
	Pilot struct {
		Version, Commit string
		Pid             int
	}
	Jobs []struct {
		Name, State, Health string
		Main                bool
		Pid, Runs, Restarts int
		LastExit            *struct{ Code, Signal int }
	}
	Services []struct {
		Job, Name, ID, Address, Status string
		Port                           int
		Registered                     bool
	}
	Watches []struct {
		Watch      string
		Service    string
		Instances  *int
		Changes    int
		LastChange *time.Time
	}
}

func getStatus(t *testing.T, base string) statusDoc {
	t.Helper()
	body, err := getBody(base + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var st statusDoc
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/status is not JSON: %v\n%s", err, body)
	}
	return st
}

// promtoolCheck runs `promtool check metrics` on body: any problem it
// reports (errors and lint warnings alike) fails the test.
func promtoolCheck(t *testing.T, body string) {
	t.Helper()
	bin, err := promproc.PromtoolPath()
	promproc.Require(t, err)
	cmd := exec.Command(bin, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ports, err := consulagent.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	return ports[0]
}

func TestTelemetryMetricsAndStatus(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	cfg := writeConfig(t, fmt.Sprintf(`
telemetry: {listen: "127.0.0.1:%d"}
stopTimeout: 9s
jobs:
  - name: app
    main: true
    exec: %s
    health: {exec: ["true"], interval: 100ms}
  - name: flaky
    exec: %s
    restart: {policy: on-failure, max: 2, backoff: {initial: 20ms, max: 20ms}}
  - name: once
    exec: %s
  - name: late
    exec: %s
    after: [{job: once, state: succeeded}]
`, port, yamlArgv(helperArgv(t, "signals", "exit:0", "300ms")...), yamlArgv(helperArgv(t, "exit", "3")...),
		yamlArgv(helperArgv(t, "exit", "0")...), yamlArgv(helperArgv(t, "signals", "die")...)))
	p := startPilot(t, pilotOpts{}, "run", "--config", cfg)

	s := scrapeUntil(t, base, 10*time.Second, "flaky to give up and app to be healthy", func(s scrape) bool {
		return s.samples[`pilot_job_state{job="flaky",state="failed"}`] == 1 &&
			s.samples[`pilot_job_exits_total{code="3",job="flaky"}`] == 3 &&
			s.samples[`pilot_job_state{job="app",state="healthy"}`] == 1 &&
			s.samples[`pilot_job_up{job="late"}`] == 1
	})

	// Jobs: one-hot state, up, restarts, exits by code.
	for series, want := range map[string]float64{
		`pilot_job_up{job="app"}`:                       1,
		`pilot_job_up{job="flaky"}`:                     0,
		`pilot_job_up{job="once"}`:                      0,
		`pilot_job_state{job="once",state="succeeded"}`: 1,
		`pilot_job_state{job="late",state="running"}`:   1,
		`pilot_job_restarts_total{job="flaky"}`:         2,
		`pilot_job_restarts_total{job="app"}`:           0,
		`pilot_job_exits_total{code="3",job="flaky"}`:   3,
		`pilot_job_exits_total{code="0",job="once"}`:    1,
		`pilot_health_status{job="app"}`:                1,
	} {
		if got := s.value(t, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	for _, job := range []string{"app", "flaky", "once", "late"} {
		sum := 0.0
		for _, k := range s.withPrefix(`pilot_job_state{job="` + job + `",`) {
			sum += s.samples[k]
		}
		if n := len(s.withPrefix(`pilot_job_state{job="` + job + `",`)); n != 10 || sum != 1 {
			t.Errorf("pilot_job_state for %s: %d series summing to %v, want 10 one-hot", job, n, sum)
		}
	}
	if got := s.withPrefix(`pilot_job_exits_total{`); len(got) != 2 {
		t.Errorf("exits: %v, want only flaky's code 3 and once's code 0", got)
	}
	if s.has(`pilot_health_status{job="flaky"}`) {
		t.Error("pilot_health_status for a job without a health check")
	}
	if n := s.value(t, `pilot_health_check_duration_seconds_count{job="app"}`); n < 1 {
		t.Errorf("health check durations observed: %v", n)
	}
	if !strings.Contains(s.body, `pilot_build_info{commit="unknown",goversion="go`) {
		t.Errorf("no pilot_build_info in:\n%s", s.body)
	}
	for _, m := range []string{"go_goroutines", "process_resident_memory_bytes", "process_open_fds"} {
		if !s.has(m) {
			t.Errorf("pilot's own %s missing", m)
		}
	}

	// Process metrics: only the jobs with a process now.
	procSeries := s.withPrefix("pilot_process_")
	var procJobs []string
	for _, k := range procSeries {
		job := regexp.MustCompile(`job="([^"]+)"`).FindStringSubmatch(k)[1]
		if !slices.Contains(procJobs, job) {
			procJobs = append(procJobs, job)
		}
	}
	slices.Sort(procJobs)
	if !slices.Equal(procJobs, []string{"app", "late"}) || len(procSeries) != 8 {
		t.Errorf("process series %v, want the four for app and for late", procSeries)
	}
	if rss := s.value(t, `pilot_process_resident_memory_bytes{job="app"}`); rss < 1<<20 {
		t.Errorf("app rss = %v", rss)
	}
	if fds := s.value(t, `pilot_process_open_fds{job="app"}`); fds < 3 {
		t.Errorf("app open fds = %v", fds)
	}
	if start := s.value(t, `pilot_process_start_time_seconds{job="app"}`); start < float64(time.Now().Add(-time.Minute).Unix()) || start > float64(time.Now().Unix()+1) {
		t.Errorf("app start time %v is not about now", start)
	}

	promtoolCheck(t, s.body)

	// /status.
	st := getStatus(t, base)
	if st.Pilot.Pid != p.pid || st.Pilot.Version != "dev" {
		t.Errorf("pilot = %+v, want pid %d", st.Pilot, p.pid)
	}
	if len(st.Jobs) != 4 {
		t.Fatalf("jobs = %+v", st.Jobs)
	}
	app, flaky, once, late := st.Jobs[0], st.Jobs[1], st.Jobs[2], st.Jobs[3]
	if app.Name != "app" || !app.Main || app.State != "healthy" || app.Health != "healthy" || app.Pid == 0 ||
		!processAlive(app.Pid) || app.Restarts != 0 || app.LastExit != nil {
		t.Errorf("app = %+v", app)
	}
	if flaky.Name != "flaky" || flaky.State != "failed" || flaky.Pid != 0 || flaky.Runs != 3 || flaky.Restarts != 2 ||
		flaky.LastExit == nil || flaky.LastExit.Code != 3 || flaky.LastExit.Signal != 0 || flaky.Health != "" {
		t.Errorf("flaky = %+v (lastExit %+v)", flaky, flaky.LastExit)
	}
	if once.State != "succeeded" || once.LastExit == nil || once.LastExit.Code != 0 {
		t.Errorf("once = %+v", once)
	}
	if late.State != "running" || late.Pid == 0 {
		t.Errorf("late = %+v", late)
	}
	if len(st.Services) != 0 || len(st.Watches) != 0 {
		t.Errorf("services %+v, watches %+v: want none", st.Services, st.Watches)
	}

	// late dies of a signal: its exit is counted as 128+N, and its process
	// series go with it.
	if err := syscall.Kill(late.Pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	s = scrapeUntil(t, base, 5*time.Second, "late's exit", func(s scrape) bool {
		return s.samples[`pilot_job_exits_total{code="143",job="late"}`] == 1
	})
	if got := s.withPrefix(`pilot_process_cpu_seconds_total{`); !slices.Equal(got, []string{`pilot_process_cpu_seconds_total{job="app"}`}) {
		t.Errorf("after late ended, process series %v", got)
	}

	// /metrics answers during the shutdown (app takes 300 ms to stop).
	p.signal(syscall.SIGTERM)
	p.errLog.waitLine(t, 5*time.Second, `shutdown: begin`)
	s = scrapeUntil(t, base, 2*time.Second, "a scrape during the shutdown", func(scrape) bool { return true })
	if code := p.wait(10 * time.Second); code != 0 {
		t.Fatalf("pilot exited %d", code)
	}
	if _, err := getBody(base + "/metrics"); err == nil {
		t.Error("/metrics still answers after pilot exited")
	}
}

// TestTelemetryRegister: telemetry.register keeps a "pilot" service in
// Consul, passing while pilot serves /metrics, and takes it out at the end.
func TestTelemetryRegister(t *testing.T) {
	agent := consulagent.Shared(t)
	c := newConsulApp(t, agent.Addr())
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	cfg, err := readFile(c.config(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg += fmt.Sprintf("telemetry: {listen: \":%d\", register: true}\n", port)
	cfg += fmt.Sprintf("watches:\n  - service: %s\n    debounce: {min: 10ms, max: 50ms}\n    onChange: {reload: {exec: [\"true\"]}}\n", c.name)
	p := startPilot(t, pilotOpts{}, "run", "--config", writeConfig(t, cfg))
	wantID := "pilot-" + c.id

	entry := waitFor(t, 10*time.Second, "the pilot service passing in Consul", func() (consulagent.HealthEntry, bool) {
		es, err := agent.Health("pilot", true)
		if err != nil {
			return consulagent.HealthEntry{}, false
		}
		for _, e := range es {
			if e.Service.ID == wantID {
				return e, true
			}
		}
		return consulagent.HealthEntry{}, false
	})
	svc := entry.Service
	if svc.Port != port || svc.Address != "127.0.0.1" || !slices.Equal(svc.Tags, []string{"metrics"}) ||
		svc.Meta["app"] != c.name || svc.Meta["version"] != "dev" {
		t.Errorf("pilot service = %+v, want port %d, address 127.0.0.1 (as the app's), tags [metrics], meta app=%s version=dev", svc, port, c.name)
	}
	// What Prometheus would scrape through consul_sd_configs answers.
	if _, err := getBody(fmt.Sprintf("http://%s:%d/metrics", svc.Address, svc.Port)); err != nil {
		t.Fatal(err)
	}

	s := scrapeUntil(t, base, 10*time.Second, "Consul metrics", func(s scrape) bool {
		return s.samples["pilot_consul_up"] == 1 && s.samples[`pilot_consul_requests_total{op="register",result="ok"}`] >= 2 &&
			s.samples[`pilot_consul_requests_total{op="ttl",result="ok"}`] >= 2 &&
			s.samples[`pilot_consul_requests_total{op="health",result="ok"}`] >= 1 &&
			s.samples[`pilot_watch_instances{service="`+c.name+`",watch="`+c.name+`"}`] == 1
	})
	if n := s.value(t, `pilot_watch_changes_total{service="`+c.name+`",watch="`+c.name+`"}`); n < 1 || n > 2 {
		t.Errorf("watch changes = %v, want 1 or 2 (the first set, empty if the app was not yet in Consul, then the app)", n)
	}
	promtoolCheck(t, s.body)
	st := getStatus(t, base)
	var ids []string
	for _, s := range st.Services {
		ids = append(ids, s.ID)
		if !s.Registered || s.Status != "passing" {
			t.Errorf("service %+v: want registered and passing", s)
		}
	}
	if !slices.Equal(ids, []string{c.id, wantID}) || st.Services[0].Job != "app" || st.Services[1].Job != "" {
		t.Errorf("/status services = %+v, want %s (app) then %s", st.Services, c.id, wantID)
	}

	if len(st.Watches) != 1 || st.Watches[0].Service != c.name || st.Watches[0].Watch != c.name || st.Watches[0].Instances == nil ||
		*st.Watches[0].Instances != 1 || st.Watches[0].LastChange == nil || time.Since(*st.Watches[0].LastChange) > time.Minute {
		t.Errorf("/status watches = %+v", st.Watches)
	}

	p.signal(syscall.SIGTERM)
	if code := p.wait(15 * time.Second); code != 0 {
		t.Fatalf("pilot exited %d", code)
	}
	es, err := agent.Health("pilot", false)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if e.Service.ID == wantID {
			t.Fatalf("%s still in Consul after pilot stopped: %+v", wantID, e)
		}
	}
	p.errLog.waitLine(t, time.Second, `consul: service deregistered.*service_id=`+regexp.QuoteMeta(wantID))
}

// A telemetry.listen port in use never keeps the app from running: pilot
// warns once, retries, and serves /metrics and /status as soon as the port
// is free. With Consul unreachable all along, /status says the service is
// not registered and gives no Consul status beside it (none is held).
func TestTelemetryPortInUse(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := taken.Addr().String()
	deadConsul := freePort(t) // nothing listens there
	appPort := freePort(t)
	cfg := writeConfig(t, fmt.Sprintf(`
consul: {address: "127.0.0.1:%d"}
telemetry: {listen: %q, register: true}
jobs:
  - name: app
    main: true
    exec: %s
    health: {http: {port: %d, path: /health}, interval: 100ms}
    service: {name: web, port: %d, address: {static: 127.0.0.1}}
`, deadConsul, addr, yamlArgv(helperArgv(t, "http", strconv.Itoa(appPort), filepath.Join(t.TempDir(), "unhealthy"))...), appPort, appPort))
	p := startPilot(t, pilotOpts{}, "run", "--config", cfg)
	p.out.waitLine(t, 10*time.Second, `^ready`) // the app runs although the port is taken
	p.errLog.waitLine(t, 10*time.Second, `level=WARN msg="telemetry: cannot listen; the jobs run on, /metrics and /status come once it binds" .*address=`+regexp.QuoteMeta(addr))
	waitFor(t, 10*time.Second, "a few retries", func() (int, bool) {
		n := p.errLog.count(`telemetry: still cannot listen`)
		return n, n >= 2
	})
	taken.Close()
	base := "http://" + addr
	scrapeUntil(t, base, 10*time.Second, "/metrics once the port is free", func(s scrape) bool {
		return s.samples[`pilot_job_up{job="app"}`] == 1
	})
	p.errLog.waitLine(t, 5*time.Second, `telemetry: bound at last`)
	if n := p.errLog.count(`level=WARN msg="telemetry: cannot listen`); n != 1 {
		t.Errorf("%d warnings about the port, want one", n)
	}

	waitFor(t, 10*time.Second, "the app healthy", func() (string, bool) {
		st := getStatus(t, base)
		return st.Jobs[0].Health, st.Jobs[0].Health == "healthy"
	})
	body, err := getBody(base + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Services []map[string]any `json:"services"`
	}
	if err := json.Unmarshal([]byte(body), &raw); err != nil {
		t.Fatal(err)
	}
	if len(raw.Services) != 2 {
		t.Fatalf("/status services: %s", body)
	}
	for _, s := range raw.Services {
		if s["registered"] != false {
			t.Errorf("service %v: registered with Consul unreachable", s)
		}
		if st, ok := s["status"]; ok {
			t.Errorf("service %v: status %v beside registered false; Consul holds none", s, st)
		}
	}
	if code := stopPilot(t, p); code != 0 {
		t.Errorf("exit %d", code)
	}
}
