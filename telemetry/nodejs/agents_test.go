package nodejs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

const exitWithin = 20 * time.Second

type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", r.code, r.stdout, r.stderr)
}

// runToEnd runs node ARGS in env and waits for it to exit on its own.
func (h *harness) runToEnd(job string, env []string, args ...string) (result, int) {
	h.t.Helper()
	a := h.startApp(job, env, args...)
	a.stdin.Close()
	a.wait(h.t, exitWithin)
	return result{a.stdout.String(), a.stderr.String(), a.code}, a.cmd.Process.Pid
}

// TestAppUnchanged: a CJS app, an ESM app and an app with Node children
// write the same bytes, exit with the same code and exit on their own, with
// the agent (which connects and reports), without it, and with the agent but
// no pilot listening.
func TestAppUnchanged(t *testing.T) {
	requireNode(t)
	cases := []struct {
		name string
		args []string
		env  []string
	}{
		{"cjs", []string{"plain.js"}, nil},
		{"cjs-user-NODE_OPTIONS", []string{"plain.js"}, []string{`NODE_OPTIONS=--max-old-space-size=200 --no-deprecation`}},
		{"esm", []string{"esm.mjs"}, nil},
		{"esm-user-NODE_OPTIONS", []string{"esm.mjs"}, []string{`NODE_OPTIONS=--max-old-space-size=200`}},
		{"children", []string{"forks.js"}, []string{`NODE_OPTIONS=--max-old-space-size=200`}},
		{"children-no-user-options", []string{"forks.js"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, nil)
			env := baseEnv(tc.env...)
			without, _ := h.runToEnd("", env, tc.args...)

			withEnv := h.a.Env("app", env)
			if slices.Equal(withEnv, env) {
				t.Fatal("Env added nothing")
			}
			with, pid := h.runToEnd("app", withEnv, tc.args...)
			if with.String() != without.String() {
				t.Errorf("output differs with the agent\nwithout:\n%s\nwith:\n%s", without, with)
			}
			acc := h.eventsOf("accepted", "app")
			if len(acc) != 1 || acc[0].pid != pid {
				t.Errorf("accepted connections %+v, want exactly one from the app's pid %d\nlog:\n%s", acc, pid, h.logs)
			}
			if n := len(h.eventsOf("report", "app")); n == 0 {
				t.Errorf("the app never reported")
			}
			waitFor(t, 5*time.Second, "the job's series to go once its process ended", func() bool {
				return len(h.series("pilot_nodejs_heap_used_bytes")) == 0
			})

			// pilot gone: the agent finds no socket and must stay quiet.
			h.stop()
			if _, err := os.Stat(h.a.SocketPath()); !os.IsNotExist(err) {
				t.Fatalf("socket still there after Run returned: %v", err)
			}
			orphan, _ := h.runToEnd("app", withEnv, tc.args...)
			if orphan.String() != without.String() {
				t.Errorf("output differs with the agent and no pilot\nwithout:\n%s\nwith:\n%s", without, orphan)
			}
		})
	}
}

// TestOnlyTheAppReports: Node children of the app do not load the agent (the
// output comparison in TestAppUnchanged shows what they see), and a child
// that is handed the agent's environment on purpose is refused by pid.
func TestOnlyTheAppReports(t *testing.T) {
	requireNode(t)
	h := newHarness(t, nil)
	env := h.a.Env("app", baseEnv())
	leak := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		leak[k] = v
	}
	leakJSON, _ := json.Marshal(leak)
	a := h.startApp("app", append(env, "LEAK_ENV="+string(leakJSON)), "forks.js")
	a.stdin.Close()
	a.wait(t, exitWithin)
	pid := a.cmd.Process.Pid
	m := regexp.MustCompile(`leak pid (\d+)`).FindStringSubmatch(a.stderr.String())
	if m == nil {
		t.Fatalf("no leak child:\n%s%s", a.stdout, a.stderr)
	}
	leakPid, _ := strconv.Atoi(m[1])
	if a.code != 0 {
		t.Fatalf("app exit %d\n%s%s", a.code, a.stdout, a.stderr)
	}
	acc := h.eventsOf("accepted", "app")
	if len(acc) != 1 || acc[0].pid != pid {
		t.Errorf("accepted %+v, want only the app (pid %d)", acc, pid)
	}
	waitFor(t, 5*time.Second, "the leaked child to be refused", func() bool {
		return slices.ContainsFunc(h.eventsOf("rejected", "app"), func(e event) bool { return e.pid == leakPid })
	})
	for _, e := range h.eventsOf("report", "app") {
		if e.pid != pid {
			t.Errorf("a report from pid %d, not the app's %d", e.pid, pid)
		}
	}
	if !strings.Contains(h.logs.String(), "is a child of the job's process") {
		t.Errorf("no warning about the refused child:\n%s", h.logs)
	}
	if !strings.Contains(a.stdout.String(), "fork child: NODE_OPTIONS=(unset) pilot vars=none agent=false") ||
		!strings.Contains(a.stdout.String(), "spawn child: NODE_OPTIONS=(unset) agent=false") {
		t.Errorf("a child saw the agent:\n%s", a.stdout)
	}
}

// TestEventLoopBlock: a 2 s block shows up as lag ≥ 1.5 s in the first
// report after it, within one report interval.
// It blocks right after a report (the monitor was just reset and has no
// baseline yet) and in the middle of an interval.
func TestEventLoopBlock(t *testing.T) {
	requireNode(t)
	for _, after := range []time.Duration{0, 500 * time.Millisecond} {
		t.Run(fmt.Sprintf("%v after a report", after), func(t *testing.T) {
			t.Parallel()
			testEventLoopBlock(t, after)
		})
	}
}

func testEventLoopBlock(t *testing.T, after time.Duration) {
	h := newHarness(t, nil)
	a := h.startApp("app", h.a.Env("app", baseEnv("BLOCK_MS=2000")), "block.js")
	waitFor(t, 10*time.Second, "the agent to report", func() bool { return len(h.eventsOf("report", "app")) > 0 })
	time.Sleep(after) // where in the report interval the block begins, not a wait for anything
	if _, err := a.stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the block to end", func() bool { return strings.Contains(a.stdout.String(), "unblocked") })
	unblocked := time.Now()
	var lagMax, lagP99 float64
	waitFor(t, 1500*time.Millisecond, "pilot_nodejs_eventloop_lag_seconds{quantile=\"1\"} ≥ 1.5 within one report interval after the block", func() bool {
		s := h.series("pilot_nodejs_eventloop_lag_seconds")
		lagMax, lagP99 = quantile(s["job=app"], 1), quantile(s["job=app"], 0.99)
		return lagMax >= 1.5
	})
	t.Logf("lag after a 2 s block: max %.3fs, p99 %.3fs, seen %v after the block ended", lagMax, lagP99, time.Since(unblocked).Round(time.Millisecond))
	// The next report covers a quiet second: the monitor was reset.
	waitFor(t, 3*time.Second, "the lag to fall back after the next report", func() bool {
		return quantile(h.series("pilot_nodejs_eventloop_lag_seconds")["job=app"], 1) < 0.5
	})
	a.stdin.Close()
	a.wait(t, exitWithin)
}

// TestHeapHandlesGC: heap and handles are there; the GC histogram counts
// forced major GCs; all of the job's series go when the process ends.
func TestHeapHandlesGC(t *testing.T) {
	requireNode(t)
	h := newHarness(t, nil)
	a := h.startApp("app", h.a.Env("app", baseEnv()), "--expose-gc", "gc.js")
	waitFor(t, 10*time.Second, "the agent to report", func() bool { return len(h.eventsOf("report", "app")) > 0 })
	if _, err := a.stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "a major GC in pilot_nodejs_gc_duration_seconds", func() bool {
		m := h.series("pilot_nodejs_gc_duration_seconds")["job=app,kind=major"]
		return m != nil && m.GetHistogram().GetSampleCount() >= 3
	})
	s := h.series("pilot_nodejs_heap_used_bytes")["job=app"]
	total := h.series("pilot_nodejs_heap_total_bytes")["job=app"]
	handles := h.series("pilot_nodejs_active_handles")["job=app"]
	if s == nil || total == nil || handles == nil {
		t.Fatalf("missing series: heap used %v, heap total %v, handles %v", s, total, handles)
	}
	used, tot := s.GetGauge().GetValue(), total.GetGauge().GetValue()
	if used <= 0 || tot < used {
		t.Errorf("heap used %v, total %v", used, tot)
	}
	if v := handles.GetGauge().GetValue(); v < 1 { // stdin
		t.Errorf("active handles %v, want ≥ 1 (stdin)", v)
	}
	gc := h.series("pilot_nodejs_gc_duration_seconds")["job=app,kind=major"].GetHistogram()
	t.Logf("heap used %.0f B, total %.0f B, handles %v, major GCs %d (sum %.4fs)", used, tot, handles.GetGauge().GetValue(), gc.GetSampleCount(), gc.GetSampleSum())
	if lag := h.series("pilot_nodejs_eventloop_lag_seconds")["job=app"].GetSummary(); len(lag.GetQuantile()) != 3 || lag.GetSampleCount() < 50 {
		t.Errorf("lag summary %v, want quantiles 0.5, 0.99, 1 and ≥ 50 samples (10 ms resolution)", lag)
	}
	if problems, err := testutil.CollectAndLint(h.a.coll); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %+v", err, problems)
	}
	a.stdin.Close()
	a.wait(t, exitWithin)
	waitFor(t, 5*time.Second, "every pilot_nodejs series to go", func() bool { return testutil.CollectAndCount(h.a.coll) == 0 })
}

// TestNoAgentWhenItCannotBeInstalled: when the agent cannot be written, or
// other users could not read it, Env changes nothing and pilot warns once;
// the app runs exactly as without pilot.
func TestNoAgentWhenItCannotBeInstalled(t *testing.T) {
	requireNode(t)
	private, err := os.MkdirTemp("", "njs-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(private) })
	if err := os.Chmod(private, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, dir := range map[string]string{
		"missing dir":           filepath.Join(private, "no", "such", "dir"),
		"not searchable by all": private,
		"a file, not a dir":     "/dev/null",
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarnessIn(t, dir, nil)
			if h.a.Enabled() {
				t.Fatal("Enabled() with an agent that cannot be installed")
			}
			env := baseEnv("TICK_MS=50")
			for range 3 {
				if got := h.a.Env("app", env); !slices.Equal(got, env) {
					t.Fatalf("Env changed the environment:\n%q", got[len(env):])
				}
			}
			if n := strings.Count(h.logs.String(), "level=WARN"); n != 1 {
				t.Errorf("%d warnings, want 1:\n%s", n, h.logs)
			}
			r, _ := h.runToEnd("app", h.a.Env("app", env), "plain.js")
			want, _ := h.runToEnd("", env, "plain.js")
			if r.String() != want.String() {
				t.Errorf("differs:\n%s\n%s", r, want)
			}
		})
	}
}

// TestAgentFileRemoved: Env puts back an agent file someone removed, so
// NODE_OPTIONS never names a missing file (Node would refuse to start).
func TestAgentFileRemoved(t *testing.T) {
	requireNode(t)
	h := newHarness(t, nil)
	if err := os.Remove(h.a.AgentPath()); err != nil {
		t.Fatal(err)
	}
	env := h.a.Env("app", baseEnv("TICK_MS=300"))
	got, err := os.ReadFile(h.a.AgentPath())
	if err != nil || !bytes.Equal(got, agentJS) {
		t.Fatalf("agent not rewritten: %v", err)
	}
	r, pid := h.runToEnd("app", env, "plain.js")
	if r.code != 3 {
		t.Fatalf("%s", r)
	}
	if acc := h.eventsOf("accepted", "app"); len(acc) != 1 || acc[0].pid != pid {
		t.Errorf("accepted %+v", acc)
	}
}

// TestAwkwardPath: a directory name with spaces, quotes and backslashes is
// quoted so that Node's NODE_OPTIONS parser finds the file.
func TestAwkwardPath(t *testing.T) {
	requireNode(t)
	dir, err := os.MkdirTemp("", `nj s"q\b '`)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	h := newHarnessIn(t, dir, nil)
	r, pid := h.runToEnd("app", h.a.Env("app", baseEnv("TICK_MS=300", `NODE_OPTIONS=--max-old-space-size=100`)), "plain.js")
	if r.code != 3 || !strings.Contains(r.stdout, "NODE_OPTIONS=--max-old-space-size=100\n") {
		t.Fatalf("%s", r)
	}
	if acc := h.eventsOf("accepted", "app"); len(acc) != 1 || acc[0].pid != pid {
		t.Errorf("accepted %+v\n%s", acc, h.logs)
	}
}

// TestSilentJobWarnsOnce: a job whose process never connects (not Node, or
// Node under a shell) gets one warning.
func TestSilentJobWarnsOnce(t *testing.T) {
	requireNode(t)
	h := newHarness(t, func(a *Agents) { a.warnAfter = 300 * time.Millisecond; a.pollEvery = 50 * time.Millisecond })
	env := h.a.Env("app", baseEnv())
	a := h.startApp("app", env, "-e", "setTimeout(() => {}, 60000)")
	h.setPid("app", a.cmd.Process.Pid+1_000_000) // "the job's process" is not this node
	waitFor(t, 5*time.Second, "the warning", func() bool { return strings.Contains(h.logs.String(), "has not connected") })
	time.Sleep(500 * time.Millisecond) // let more polls pass: still one warning
	if n := strings.Count(h.logs.String(), "has not connected"); n != 1 {
		t.Errorf("%d warnings, want 1", n)
	}
}

// TestProtocol drives the socket directly from this process, which is "the
// job's process" here: a good agent, a bad token, a stranger, bad lines.
func TestProtocol(t *testing.T) {
	h := newHarness(t, func(a *Agents) { a.pidGrace = 100 * time.Millisecond })
	h.a.Env("app", nil)
	h.a.Env("other", nil)
	h.setPid("app", os.Getpid())
	h.setPid("other", 1<<22+1) // no such process
	token := func(job string) string {
		h.a.mu.Lock()
		defer h.a.mu.Unlock()
		return h.a.byJob[job]
	}
	dial := func(lines ...string) *testConn {
		c := dialAgent(t, h.a.SocketPath())
		for _, l := range lines {
			c.send(l)
		}
		return c
	}
	le, _ := json.Marshal(gcBuckets)
	helloFor := func(job string) string {
		return fmt.Sprintf(`{"type":"hello","v":1,"token":%q,"pid":1,"node":"test","le":%s}`, token(job), le)
	}

	t.Run("unknown token", func(t *testing.T) {
		c := dial(`{"type":"hello","token":"nope"}`)
		if got := c.readLine(); !strings.Contains(got, `"reject"`) {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("not a hello", func(t *testing.T) {
		c := dial(`garbage`)
		if got := c.readLine(); !strings.Contains(got, `"reject"`) {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("another job's token", func(t *testing.T) {
		c := dial(helloFor("other"))
		if got := c.readLine(); !strings.Contains(got, `not the job's process`) {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("good agent", func(t *testing.T) {
		buckets := make([]uint64, len(gcBuckets))
		for i := range buckets {
			buckets[i] = uint64(min(i, 5))
		}
		b, _ := json.Marshal(buckets)
		c := dial(helloFor("app"),
			`not json`,
			`{"type":"report","lag":{"p50":0.01,"p99":0.02,"max":0.5,"count":7,"sum":0.7},"heap":{"used":100,"total":200},"handles":4,`+
				`"gc":{"major":{"count":5,"sum":0.01,"buckets":`+string(b)+`},"bogus":{"count":1,"sum":1,"buckets":[1]},"minor":{"count":1,"sum":1,"buckets":[1]}}}`)
		waitFor(t, 5*time.Second, "the report", func() bool { return len(h.eventsOf("report", "app")) > 0 })
		want := `
# HELP pilot_nodejs_heap_used_bytes V8 heap in use in the job's Node process.
# TYPE pilot_nodejs_heap_used_bytes gauge
pilot_nodejs_heap_used_bytes{instance="",job="app"} 100
# HELP pilot_nodejs_active_handles Handles keeping the job's Node process alive (sockets, servers, timers, …).
# TYPE pilot_nodejs_active_handles gauge
pilot_nodejs_active_handles{instance="",job="app"} 4
`
		if err := testutil.GatherAndCompare(h.reg, strings.NewReader(want), "pilot_nodejs_heap_used_bytes", "pilot_nodejs_active_handles"); err != nil {
			t.Error(err)
		}
		if n := testutil.CollectAndCount(h.a.coll, "pilot_nodejs_gc_duration_seconds"); n != 1 {
			t.Errorf("%d GC series, want 1 (major; bogus and malformed dropped)", n)
		}
		if v := quantile(h.series("pilot_nodejs_eventloop_lag_seconds")["job=app"], 1); v != 0.5 {
			t.Errorf("max lag %v", v)
		}
		c.close()
		waitFor(t, 5*time.Second, "the series to go", func() bool { return testutil.CollectAndCount(h.a.coll) == 0 })
	})
}

// TestAgentBucketsMatch: agent.js and metrics.go bucket GC pauses alike.
func TestAgentBucketsMatch(t *testing.T) {
	m := regexp.MustCompile(`var LE = \[([^\]]*)\]`).FindSubmatch(agentJS)
	if m == nil {
		t.Fatal("no LE in agent.js")
	}
	var got []float64
	if err := json.Unmarshal([]byte("["+string(m[1])+"]"), &got); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, gcBuckets) {
		t.Errorf("agent.js LE %v, metrics.go gcBuckets %v", got, gcBuckets)
	}
}

func TestQuoteNodeOption(t *testing.T) {
	for in, want := range map[string]string{
		`/tmp/a/agent.js`:   `"/tmp/a/agent.js"`,
		`/tmp/a b/agent.js`: `"/tmp/a b/agent.js"`,
		`/t"q\b/agent.js`:   `"/t\"q\\b/agent.js"`,
	} {
		if got := quoteNodeOption(in); got != want {
			t.Errorf("quote(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestEnvKeepsUserOptionsAndReplacesStaleAgentVars(t *testing.T) {
	h := newHarness(t, nil)
	in := []string{"A=1", "NODE_OPTIONS=--x", "PILOT_NODE_AGENT_TOKEN=stale", "B=2", "NODE_OPTIONS=--y"}
	got := h.a.Env("app", in)
	opt := "--require " + quoteNodeOption(h.a.AgentPath())
	want := []string{"A=1", "B=2", "NODE_OPTIONS=--y " + opt,
		envSocket + "=" + h.a.SocketPath(), envToken + "=" + h.a.byJob["app"], envOption + "=" + opt}
	if !slices.Equal(got, want) {
		t.Errorf("Env:\n got %q\nwant %q", got, want)
	}
	var nilAgents *Agents
	if got := nilAgents.Env("app", in); !slices.Equal(got, in) {
		t.Errorf("nil Agents changed env")
	}
	if _, err := New(h.dir, h.reg, nil, Options{Pids: h.pidsOf}); err == nil {
		t.Error("New registered the collector twice without an error")
	}
	if _, err := New(h.dir, nil, nil, Options{}); err == nil {
		t.Error("New without a registerer: no error")
	}
}

// TestNilPids: Options without Pids is usable; every process is refused
// (no job has one) and nothing panics.
func TestNilPids(t *testing.T) {
	sub, err := os.MkdirTemp("", "njs-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sub) })
	if err := os.Chmod(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	a, err := New(sub, prometheus.NewRegistry(), nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	a.pidGrace = 50 * time.Millisecond
	var rejected sync.WaitGroup
	rejected.Add(1)
	a.events = func(ev event) {
		if ev.kind == "rejected" {
			rejected.Done()
		}
	}
	a.Env("app", nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	c := dialAgent(t, a.SocketPath())
	le, _ := json.Marshal(gcBuckets)
	c.send(fmt.Sprintf(`{"type":"hello","v":1,"token":%q,"pid":1,"node":"test","le":%s}`, a.byJob["app"], le))
	if got := c.readLine(); !strings.Contains(got, `"reject"`) {
		t.Errorf("got %q", got)
	}
	rejected.Wait()
	cancel()
	<-done
}

// quantile reads one quantile of a gathered summary; -1 when absent.
func quantile(m *dto.Metric, q float64) float64 {
	for _, x := range m.GetSummary().GetQuantile() {
		if x.GetQuantile() == q {
			return x.GetValue()
		}
	}
	return -1
}
