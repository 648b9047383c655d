package control

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nodepilot/pilot/telemetry"
)

// answer is one response, its JSON body decoded.
type answer struct {
	code   int
	header http.Header
	raw    string
	json   map[string]any
}

func request(t *testing.T, c *http.Client, method, path, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, "http://pilot"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := answer{code: resp.StatusCode, header: resp.Header, raw: string(data)}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q, want application/json", method, path, ct)
	}
	if err := json.Unmarshal(data, &a.json); err != nil {
		t.Errorf("%s %s: the answer is not a JSON object: %v\n%s", method, path, err, data)
	}
	return a
}

// TestEndpoints drives every endpoint through a real socket: what each
// answers, and what the API was asked.
func TestEndpoints(t *testing.T) {
	t.Parallel()
	fake := newFake()
	c := rawClient(serve(t, fake, nil))
	big := `{"A":"` + strings.Repeat("x", MaxBody) + `"}`

	type check func(t *testing.T, a answer)
	hasError := func(subs ...string) check {
		return func(t *testing.T, a answer) {
			msg, _ := a.json["error"].(string)
			if msg == "" {
				t.Errorf("no error message: %s", a.raw)
			}
			for _, s := range subs {
				if !strings.Contains(msg, s) {
					t.Errorf("error %q lacks %q", msg, s)
				}
			}
		}
	}
	field := func(key string, want any) check {
		return func(t *testing.T, a answer) {
			if got := a.json[key]; !reflect.DeepEqual(got, want) {
				t.Errorf("%s = %#v, want %#v (%s)", key, got, want, a.raw)
			}
		}
	}
	cases := []struct {
		name         string
		method, path string
		body         string
		code         int
		check        check
	}{
		{"status", "GET", "/v1/status", "", 200, func(t *testing.T, a answer) {
			var st telemetry.Status
			if err := json.Unmarshal([]byte(a.raw), &st); err != nil {
				t.Fatal(err)
			}
			if want := fake.Status(); !reflect.DeepEqual(st.Jobs, want.Jobs) || st.Pilot.Version != "1.2.3" {
				t.Errorf("status %+v, want %+v", st, want)
			}
		}},
		{"status, a body", "GET", "/v1/status", `{"verbose":true}`, 400, hasError(`unknown field "verbose"`)},
		{"health", "GET", "/v1/health", "", 200, field("healthy", true)},

		{"reload", "POST", "/v1/reload", "", 200, func(t *testing.T, a answer) {
			field("restarted", []any{"web"})(t, a)
			field("started", []any{})(t, a) // a list, never null
			field("unchanged", 1.0)(t, a)
		}},
		{"reload {}", "POST", "/v1/reload", " {} ", 200, nil},
		{"reload, an option", "POST", "/v1/reload", `{"force":true}`, 400, hasError(`unknown field "force"`)},
		{"reload, GET", "GET", "/v1/reload", "", 405, func(t *testing.T, a answer) {
			hasError("GET /v1/reload", "use POST")(t, a)
			if a.header.Get("Allow") != "POST" {
				t.Errorf("Allow %q, want POST", a.header.Get("Allow"))
			}
		}},

		{"maintenance on", "POST", "/v1/maintenance", `{"enabled":true}`, 200, field("enabled", true)},
		{"maintenance off", "POST", "/v1/maintenance", `{"enabled": false}`, 200, field("enabled", false)},
		{"maintenance {}", "POST", "/v1/maintenance", `{}`, 400, hasError(`"enabled" is missing`)},
		{"maintenance null", "POST", "/v1/maintenance", `null`, 400, hasError(`"enabled" is missing`)},
		{"maintenance, no body", "POST", "/v1/maintenance", ``, 400, hasError("empty", `{"enabled": true}`)},
		{"maintenance, a string", "POST", "/v1/maintenance", `{"enabled":"yes"}`, 400, hasError(`field "enabled"`, "a JSON string where a boolean was expected")},
		{"maintenance, an array", "POST", "/v1/maintenance", `[true]`, 400, hasError("a JSON array where an object was expected")},
		{"maintenance, unknown field", "POST", "/v1/maintenance", `{"enabled":true,"service":"web"}`, 400, hasError(`unknown field "service"`)},
		{"maintenance, malformed", "POST", "/v1/maintenance", `{"enabled":tru}`, 400, hasError("malformed JSON at byte")},
		{"maintenance, cut short", "POST", "/v1/maintenance", `{"enabled":`, 400, hasError("malformed JSON")},
		{"maintenance, trailing data", "POST", "/v1/maintenance", `{"enabled":true} x`, 400, hasError("unexpected data after the JSON value")},
		{"maintenance, two values", "POST", "/v1/maintenance", `{"enabled":true}{"enabled":false}`, 400, hasError("unexpected data after the JSON value")},
		{"maintenance, PUT", "PUT", "/v1/maintenance", `{"enabled":true}`, 405, hasError("PUT", "use POST")},

		{"env", "POST", "/v1/env", `{"B":"2","A":"x=y"}`, 200, field("set", []any{"A", "B"})},
		{"env, empty name", "POST", "/v1/env", `{"":"x"}`, 400, hasError("variable name: empty")},
		{"env, = in the name", "POST", "/v1/env", `{"A=B":"x"}`, 400, hasError(`"A=B"`, "'='")},
		{"env, NUL in the name", "POST", "/v1/env", `{"A\u0000B":"x"}`, 400, hasError("NUL")},
		{"env, NUL in the value", "POST", "/v1/env", `{"A":"x\u0000"}`, 400, hasError("variable A", "NUL")},
		{"env, a number", "POST", "/v1/env", `{"PORT":3000}`, 400, hasError(`field "PORT"`, "a JSON number where a string was expected")},
		{"env, none", "POST", "/v1/env", `{}`, 400, hasError("no variables")},
		{"env, too big", "POST", "/v1/env", big, 413, hasError("larger than 1048576 bytes")},

		{"metrics", "POST", "/v1/metrics", `{"queue_depth":3,"hits":1.5}`, 200, field("set", []any{"hits", "queue_depth"})},
		{"metrics, labels", "POST", "/v1/metrics", `{"queue_depth{queue=\"a\"}":3}`, 200, nil},
		{"metrics, unknown", "POST", "/v1/metrics", `{"queue_dpth":3}`, 404, hasError(`metric "queue_dpth": not declared (declared: hits, queue_depth)`)},
		{"metrics, refused value", "POST", "/v1/metrics", `{"hits":-1}`, 400, hasError("a counter only goes up")},
		{"metrics, a string", "POST", "/v1/metrics", `{"hits":"1"}`, 400, hasError(`field "hits"`, "a JSON string where a number was expected")},
		{"metrics, out of range", "POST", "/v1/metrics", `{"hits":1e999}`, 400, hasError(`field "hits"`)},
		{"metrics, empty name", "POST", "/v1/metrics", `{"":1}`, 400, hasError("metric name: empty")},

		{"restart", "POST", "/v1/jobs/web/restart", "", 200, field("restarted", "web")},
		{"restart, unknown job", "POST", "/v1/jobs/wbe/restart", "", 404, hasError(`job "wbe"`, "no such job", "(jobs: web, worker)")},
		{"restart, escaped name", "POST", "/v1/jobs/a%2Fb/restart", "", 404, hasError(`job "a/b"`)},
		{"restart, GET", "GET", "/v1/jobs/web/restart", "", 405, hasError("use POST")},

		{"signal", "POST", "/v1/jobs/web/signal", `{"signal":"SIGUSR2"}`, 200, field("signal", "SIGUSR2")},
		{"signal, short name", "POST", "/v1/jobs/web/signal", `{"signal":"hup"}`, 200, field("signal", "SIGHUP")},
		{"signal, number", "POST", "/v1/jobs/web/signal", `{"signal":10}`, 200, field("signal", "SIGUSR1")},
		{"signal, number as text", "POST", "/v1/jobs/web/signal", `{"signal":"12"}`, 200, field("signal", "SIGUSR2")},
		{"signal, realtime", "POST", "/v1/jobs/web/signal", `{"signal":40}`, 200, field("signal", "40")},
		{"signal, unknown name", "POST", "/v1/jobs/web/signal", `{"signal":"SIGFOO"}`, 400, hasError(`field "signal"`, `unknown signal "SIGFOO"`)},
		{"signal, 0", "POST", "/v1/jobs/web/signal", `{"signal":0}`, 400, hasError(`signal "0"`, "from 1 to 64")},
		{"signal, 65", "POST", "/v1/jobs/web/signal", `{"signal":"65"}`, 400, hasError("from 1 to 64")},
		{"signal, a boolean", "POST", "/v1/jobs/web/signal", `{"signal":true}`, 400, hasError(`field "signal": true is neither`)},
		{"signal, missing", "POST", "/v1/jobs/web/signal", `{}`, 400, hasError(`"signal" is missing`)},
		{"signal, misspelt field", "POST", "/v1/jobs/web/signal", `{"sig":"HUP"}`, 400, hasError(`unknown field "sig"`)},
		{"signal, not running", "POST", "/v1/jobs/worker/signal", `{"signal":"HUP"}`, 409, hasError(`job "worker" is stopped`, "not running")},
		{"signal, unknown job", "POST", "/v1/jobs/nope/signal", `{"signal":"HUP"}`, 404, hasError(`job "nope"`)},

		{"unknown path", "GET", "/v2/status", "", 404, hasError("no endpoint GET /v2/status", "/v1/status")},
		{"status with a slash", "GET", "/v1/status/", "", 404, hasError("no endpoint")},
		{"status, POST", "POST", "/v1/status", "", 405, hasError("use GET")},
	}
	for _, c2 := range cases {
		a := request(t, c, c2.method, c2.path, c2.body)
		if a.code != c2.code {
			t.Errorf("%s: %s %s: %d, want %d: %s", c2.name, c2.method, c2.path, a.code, c2.code, a.raw)
			continue
		}
		if c2.check != nil {
			t.Run(c2.name, func(t *testing.T) { c2.check(t, a) })
		}
	}

	// What the API saw: only the requests that passed the checks.
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if want := []bool{true, false}; !slices.Equal(fake.maintenance, want) {
		t.Errorf("maintenance calls %v, want %v", fake.maintenance, want)
	}
	if want := []string{"web"}; !slices.Equal(fake.restarted, want) {
		t.Errorf("restarted %v, want %v", fake.restarted, want)
	}
	if want := []string{"web SIGUSR2", "web SIGHUP", "web SIGUSR1", "web SIGUSR2", "web 40"}; !slices.Equal(fake.signals, want) {
		t.Errorf("signals %v, want %v", fake.signals, want)
	}
	if want := map[string]string{"A": "x=y", "B": "2"}; !reflect.DeepEqual(fake.env, want) {
		t.Errorf("env %v, want %v", fake.env, want)
	}
	if want := map[string]float64{"queue_depth": 3, "hits": 1.5, `queue_depth{queue="a"}`: 3}; !reflect.DeepEqual(fake.metrics, want) {
		t.Errorf("metrics %v, want %v", fake.metrics, want)
	}
}

// A reload's failures, each with its status: one in progress (409), a bad
// config (422, with every problem), pilot's own (500).
func TestReloadErrors(t *testing.T) {
	t.Parallel()
	fake := newFake()
	c := rawClient(serve(t, fake, nil))
	problems := []string{"pilot.yaml:4: jobs[1].name: duplicate \"app\" (also jobs[0])", "pilot.yaml:6: jobs[1].restart.max: must be ≥ 0"}
	for _, tc := range []struct {
		err      error
		code     int
		msg      string
		problems []any
	}{
		{ErrReloadInProgress, 409, "a reload is in progress", nil},
		{ErrShuttingDown, 503, "pilot is shutting down", nil},
		{&ConfigError{Problems: problems}, 422, "the config has 2 problems; pilot runs on with the config it had", []any{problems[0], problems[1]}},
		{&ConfigError{Problems: problems[:1]}, 422, "the config has a problem; pilot runs on with the config it had", []any{problems[0]}},
		{errBoom, 500, errBoom.Error(), nil},
	} {
		fake.mu.Lock()
		fake.reloadErr = tc.err
		fake.mu.Unlock()
		a := request(t, c, "POST", "/v1/reload", "")
		if a.code != tc.code || a.json["error"] != tc.msg {
			t.Errorf("%v: %d %v, want %d %q", tc.err, a.code, a.json["error"], tc.code, tc.msg)
		}
		if got, _ := a.json["problems"].([]any); !reflect.DeepEqual(got, tc.problems) {
			t.Errorf("%v: problems %#v, want %#v", tc.err, a.json["problems"], tc.problems)
		}
	}
}

// /v1/health: 200 or 503 as the core's verdict says, the 503 with its
// reason (and as "error", as every failed answer); the list of jobs at
// fault is never null; a healthy answer carries no stale reason.
func TestHealthEndpoint(t *testing.T) {
	t.Parallel()
	fake := newFake()
	c := rawClient(serve(t, fake, nil))
	cases := []struct {
		report HealthReport
		code   int
		want   string
	}{
		{HealthReport{Healthy: true, Checked: 1}, 200, `{"healthy":true,"checked":1,"unhealthy":[]}`},
		{HealthReport{Healthy: true, Reason: "stale"}, 200, `{"healthy":true,"checked":0,"unhealthy":[]}`},
		{HealthReport{Checked: 2, Reason: "unhealthy: api (health check failing: GET http://127.0.0.1:3000/health: status 503)",
			Unhealthy: []JobHealth{{Job: "api", State: "unhealthy", Health: "unhealthy", Reason: "api (health check failing: GET http://127.0.0.1:3000/health: status 503)"}}},
			503, `{"healthy":false,"reason":"unhealthy: api (health check failing: GET http://127.0.0.1:3000/health: status 503)","checked":2,` +
				`"unhealthy":[{"job":"api","health":"unhealthy","state":"unhealthy","reason":"api (health check failing: GET http://127.0.0.1:3000/health: status 503)"}],` +
				`"error":"unhealthy: api (health check failing: GET http://127.0.0.1:3000/health: status 503)"}`},
		{HealthReport{Reason: "stopping: signal SIGTERM"}, 503,
			`{"healthy":false,"reason":"stopping: signal SIGTERM","checked":0,"unhealthy":[],"error":"stopping: signal SIGTERM"}`},
		{HealthReport{}, 503, `{"healthy":false,"reason":"not healthy","checked":0,"unhealthy":[],"error":"not healthy"}`},
	}
	for _, tc := range cases {
		fake.mu.Lock()
		fake.health = tc.report
		fake.mu.Unlock()
		a := request(t, c, "GET", "/v1/health", "")
		var compact bytes.Buffer
		if err := json.Compact(&compact, []byte(a.raw)); err != nil {
			t.Fatalf("%+v: %v: %s", tc.report, err, a.raw)
		}
		if a.code != tc.code || compact.String() != tc.want {
			t.Errorf("%+v:\n got %d %s\nwant %d %s", tc.report, a.code, compact.String(), tc.code, tc.want)
		}
	}
	if a := request(t, c, "GET", "/v1/health", `{"x":1}`); a.code != 400 {
		t.Errorf("a body: %d, want 400", a.code)
	}
}

// pilot_control_requests_total counts by route pattern and code: a job's
// name is never a label value; a server built again on the same registry
// counts on.
func TestRequestCounter(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	fake := newFake()
	c := rawClient(serve(t, fake, reg))
	request(t, c, "POST", "/v1/jobs/web/restart", "")
	request(t, c, "POST", "/v1/jobs/nope/restart", "")
	request(t, c, "POST", "/v1/jobs/nope2/restart", "")
	request(t, c, "GET", "/v1/jobs/web/restart", "")
	request(t, c, "GET", "/v1/status", "")
	request(t, c, "GET", "/v1/health", "")
	fake.mu.Lock()
	fake.health = HealthReport{Reason: "unhealthy: web is starting"}
	fake.mu.Unlock()
	request(t, c, "GET", "/v1/health", "")
	request(t, c, "POST", "/v1/maintenance", "{")
	request(t, c, "GET", "/nope", "")

	// A second server on the same registry: no panic, the same counter.
	c2 := rawClient(serve(t, fake, reg))
	request(t, c2, "GET", "/v1/status", "")

	want := `
# HELP pilot_control_requests_total Requests to the control socket, by endpoint (the route pattern) and HTTP status code.
# TYPE pilot_control_requests_total counter
pilot_control_requests_total{code="200",endpoint="/v1/health"} 1
pilot_control_requests_total{code="200",endpoint="/v1/jobs/{name}/restart"} 1
pilot_control_requests_total{code="200",endpoint="/v1/status"} 2
pilot_control_requests_total{code="400",endpoint="/v1/maintenance"} 1
pilot_control_requests_total{code="404",endpoint="/v1/jobs/{name}/restart"} 2
pilot_control_requests_total{code="404",endpoint="other"} 1
pilot_control_requests_total{code="503",endpoint="/v1/health"} 1
pilot_control_requests_total{code="405",endpoint="/v1/jobs/{name}/restart"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "pilot_control_requests_total"); err != nil {
		t.Error(err)
	}
}

// A registerer holding another collector under the name costs the metric,
// not the server.
func TestRequestCounterConflict(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "pilot_control_requests_total", Help: "x"}))
	c := rawClient(serve(t, newFake(), reg))
	if a := request(t, c, "GET", "/v1/status", ""); a.code != 200 {
		t.Errorf("status: %d", a.code)
	}
}

// The API runs with the request's context: a client that gives up
// cancels it.
func TestRequestContext(t *testing.T) {
	t.Parallel()
	fake := newFake()
	fake.block = make(chan error, 1)
	path := serve(t, fake, nil)
	err := NewClient(path, 50*time.Millisecond).RestartJob(context.Background(), "web")
	if err == nil || !strings.Contains(err.Error(), "did not answer within 50ms on "+path) {
		t.Errorf("err %v, want no answer within 50ms", err)
	}
	select {
	case err := <-fake.block:
		if err != context.Canceled {
			t.Errorf("the API's context ended with %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the API's context did not end within 5s of the client hanging up")
	}
}
