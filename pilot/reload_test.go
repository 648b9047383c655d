package pilot

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/nodepilot/pilot/jobs/output"
	"github.com/nodepilot/pilot/pilot/config"
	"github.com/nodepilot/pilot/pilot/control"
	"github.com/nodepilot/pilot/test/consulagent"
)

// reloadBench is one pilot.Run in this process, its config in a file that
// the test rewrites and reloads through the real control socket.
type reloadBench struct {
	path, socket string
	client       *control.Client
	log          *tailLog
	done         chan error
	cancel       context.CancelFunc
}

func startRun(t *testing.T, yaml string) *reloadBench {
	t.Helper()
	dir := t.TempDir()
	b := &reloadBench{path: filepath.Join(dir, "pilot.yaml"), socket: filepath.Join(dir, "pilot.sock"),
		log: &tailLog{}, done: make(chan error, 1)}
	b.write(t, yaml)
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { devnull.Close() })
	load := func() (*config.Config, error) { return config.Load(b.path, config.Options{}) }
	cfg, err := load()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	log := slog.New(slog.NewTextHandler(b.log, &slog.HandlerOptions{Level: slog.LevelInfo}))
	go func() {
		b.done <- Run(ctx, cfg, Options{Log: log, Stdout: output.NewSink(devnull), Stderr: output.NewSink(devnull),
			Environ: os.Environ(), Load: load, ControlSocket: b.socket})
	}()
	b.client = control.NewClient(b.socket, 10*time.Second)
	waitUntil(t, 5*time.Second, "the control socket", func() bool {
		_, err := b.client.Status(context.Background())
		return err == nil
	})
	return b
}

// tailLog keeps the last 64 KiB of pilot's log: enough to read a failure
// by, and a constant weight for the heap measure.
type tailLog struct {
	mu  sync.Mutex
	buf []byte
}

func (l *tailLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	if over := len(l.buf) - 64<<10; over > 0 {
		l.buf = append(l.buf[:0], l.buf[over:]...)
	}
	return len(p), nil
}

func (l *tailLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.buf)
}

func (b *reloadBench) write(t *testing.T, yaml string) {
	t.Helper()
	if err := os.WriteFile(b.path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
}

// stop ends the run as a SIGTERM would and returns Run's result.
func (b *reloadBench) stop(t *testing.T) error {
	t.Helper()
	b.cancel()
	select {
	case err := <-b.done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatalf("Run did not return; log:\n%s", b.log.String())
		return nil
	}
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// rss is this process's resident set, in KiB.
func rss(t *testing.T) int {
	t.Helper()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// heapSlack is the live heap's noise between two readings here (pooled
// buffers, connections in flight): 256 KiB, so that a leak of 1.5 KiB a
// reload over 190 reloads shows.
const heapSlack = 256 << 10

// liveHeap is the heap still reachable after a collection, in bytes: the
// least of three collections' readings, to take out what a request in
// flight held at one.
func liveHeap() uint64 {
	least := uint64(math.MaxUint64)
	for range 3 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		least = min(least, m.HeapAlloc)
	}
	return least
}

// zombies lists this process's children that have exited and not been
// waited for.
func zombies() []int {
	var out []int
	self := os.Getpid()
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid …: comm may hold spaces and parentheses.
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) > 1 && fields[0] == "Z" && fields[1] == strconv.Itoa(self) {
			out = append(out, pid)
		}
	}
	return out
}

// Issue 11: 200 reloads in a row under a running app with a Consul
// registration and a watch — each restarting a side job, re-registering
// the service (a tag changes) and restarting the watch (its debounce
// changes) — leave no goroutine behind, no zombie, exactly one
// registration of the service in the real agent, and pilot's memory flat.
func TestReload200(t *testing.T) {
	// Its own agent: pilot's final sweep, in this process, ends every
	// child of the process, the agent included.
	agent := consulagent.StartT(t)
	health, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})}
	go server.Serve(health)
	port := health.Addr().(*net.TCPAddr).Port
	leaks := goleak.IgnoreCurrent()

	service := fmt.Sprintf("reload%d", port)
	upstream := filepath.Join(t.TempDir(), "upstream.conf")
	yaml := func(i int) string {
		return fmt.Sprintf(`consul: {address: %s}
stopTimeout: 5s
jobs:
  - name: app
    exec: [sleep, "3600"]
    health:
      http: {port: %d, path: /health}
      interval: 200ms
    service:
      name: %s
      port: %d
      address: {static: 127.0.0.1}
      tags: [gen%d]
  - name: side
    exec: [sleep, "3600"]
    env: {GENERATION: "%d"}
    stopTimeout: 1s
watches:
  - service: %s
    debounce: {min: %dms, max: 100ms}
    onChange:
      render: {format: nginx, dest: %s}
`, agent.Addr(), port, service, port, i%2, i%2, service, 10+i%2, upstream)
	}
	b := startRun(t, yaml(0))
	defer func() {
		if t.Failed() {
			t.Logf("pilot's log:\n%s", b.log.String())
		}
	}()
	serverLine := fmt.Sprintf("server 127.0.0.1:%d", port)
	routed := func() bool {
		es, err := agent.Health(service, true)
		data, _ := os.ReadFile(upstream)
		return err == nil && len(es) == 1 && bytes.Contains(data, []byte(serverLine))
	}
	waitUntil(t, 10*time.Second, "the app registered and rendered", routed)
	appPid := jobPid(t, b, "app")

	const reloads = 200
	var first int
	var firstHeap uint64
	for i := 1; i <= reloads; i++ {
		b.write(t, yaml(i))
		res, err := b.client.Reload(context.Background())
		if err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		if len(res.Restarted) != 1 || res.Restarted[0] != "side" {
			t.Fatalf("reload %d restarted %v, want side", i, res.Restarted)
		}
		if i == 10 { // warmed up: every path has run
			first, firstHeap = rss(t), liveHeap()
		}
	}
	last, lastHeap := rss(t), liveHeap()
	t.Logf("RSS after 10 reloads %d KiB, after %d: %d KiB; live heap %d KiB → %d KiB", first, reloads, last, firstHeap>>10, lastHeap>>10)
	// What a reload leaves behind shows in the live heap; RSS adds the
	// race detector's shadow and the GC's slack, hence its looser bound.
	if lastHeap > firstHeap+heapSlack {
		t.Errorf("live heap grew from %d KiB to %d KiB over %d reloads", firstHeap>>10, lastHeap>>10, reloads-10)
	}
	if last > first+first/4 {
		t.Errorf("RSS grew from %d KiB to %d KiB over %d reloads", first, last, reloads-10)
	}
	waitUntil(t, 10*time.Second, "exactly one registration, passing, rendered", routed)
	if es, err := agent.Health(service, false); err != nil || len(es) != 1 {
		t.Fatalf("registrations of %s: %d (%v), want 1", service, len(es), err)
	}
	if now := jobPid(t, b, "app"); now != appPid {
		t.Errorf("the app was restarted: pid %d → %d", appPid, now)
	}
	if z := zombies(); len(z) > 0 {
		t.Errorf("zombies after %d reloads: %v", reloads, z)
	}

	if err := b.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	server.Close()
	// The agent, a child of this process too, dies in pilot's final sweep;
	// its own Wait reaps it a moment later.
	waitUntil(t, 3*time.Second, "no zombie after the stop", func() bool { return len(zombies()) == 0 })
	goleak.VerifyNone(t, leaks)
}

func jobPid(t *testing.T, b *reloadBench, name string) int {
	t.Helper()
	st, err := b.client.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range st.Jobs {
		if j.Name == name {
			return j.Pid
		}
	}
	t.Fatalf("no job %s in %+v", name, st.Jobs)
	return 0
}
