package container

import (
	"context"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder is a slog.Handler that keeps every record, at every level.
type recorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec.Clone())
	return nil
}

// records returns the messages logged, and the highest level among them.
func (r *recorder) records() (msgs []string, maxLevel slog.Level) {
	r.mu.Lock()
	defer r.mu.Unlock()
	maxLevel = slog.LevelDebug - 1
	for _, rec := range r.recs {
		msgs = append(msgs, rec.Message)
		maxLevel = max(maxLevel, rec.Level)
	}
	return msgs, maxLevel
}

// attr returns the value of key in the first record that has it.
func (r *recorder) attr(key string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.recs {
		var v string
		rec.Attrs(func(a slog.Attr) bool {
			if a.Key == key {
				v = a.Value.String()
				return false
			}
			return true
		})
		if v != "" {
			return v
		}
	}
	return ""
}

// quiet fails t unless something was logged, and only at debug level.
func (r *recorder) quiet(t *testing.T) {
	t.Helper()
	msgs, lvl := r.records()
	if len(msgs) == 0 {
		t.Error("nothing logged; want the reason at debug level")
	}
	if lvl > slog.LevelDebug {
		t.Errorf("logged at %v (%q); want debug only", lvl, msgs)
	}
}

func hostname(t testing.TB) string {
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestDetectNoSocket(t *testing.T) {
	var rec recorder
	d := Detector{
		Proc:       procFixture("v2-private-docker"),
		DockerHost: "unix://" + filepath.Join(t.TempDir(), "docker.sock"),
		Log:        slog.New(&rec),
	}
	got := d.Detect(context.Background())
	want := Identity{ID: fixtureID, Hostname: hostname(t)}
	if !equalIdentity(got, want) {
		t.Errorf("Detect = %+v, want %+v", got, want)
	}
	rec.quiet(t)
}

func TestDetectNotContainer(t *testing.T) {
	var rec recorder
	// A socket that would answer must not even be asked.
	srv, elog := fakeEngine(t, nil)
	got := Detector{Proc: procFixture("host"), DockerHost: srv, Log: slog.New(&rec)}.Detect(context.Background())
	if got.ID != "" || got.Name != "" || got.Meta() != nil {
		t.Errorf("Detect = %+v, want no container", got)
	}
	if asked := elog.get(); len(asked) != 0 {
		t.Errorf("engine asked %q outside a container", asked)
	}
	rec.quiet(t)
}

func TestDetectDockerHostFromEnv(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "from-env.sock")
	t.Setenv("DOCKER_HOST", "unix://"+missing)
	var rec recorder
	got := Detector{Proc: procFixture("v1-docker"), Log: slog.New(&rec)}.Detect(context.Background())
	if got.ID == "" || got.Name != "" {
		t.Errorf("Detect = %+v, want the cgroup-only identity", got)
	}
	if h := rec.attr("host"); h != "unix://"+missing {
		t.Errorf("host tried = %q, want $DOCKER_HOST", h)
	}
	rec.quiet(t)

	// Exported Detect with an explicit host goes past $DOCKER_HOST.
	explicit := "unix://" + filepath.Join(t.TempDir(), "explicit.sock")
	rec = recorder{}
	Detect(context.Background(), slog.New(&rec), explicit)
	// /proc of the test process is no container, so it may stop before
	// the host; it must never log above debug.
	if _, lvl := rec.records(); lvl > slog.LevelDebug {
		t.Errorf("Detect logged at %v", lvl)
	}
}

func TestResolveHost(t *testing.T) {
	for _, tt := range []struct{ explicit, env, want string }{
		{"unix:///x.sock", "tcp://1.2.3.4:2375", "unix:///x.sock"},
		{"", "tcp://1.2.3.4:2375", "tcp://1.2.3.4:2375"},
		{"", "", "unix:///var/run/docker.sock"},
	} {
		if got := resolveHost(tt.explicit, tt.env); got != tt.want {
			t.Errorf("resolveHost(%q, %q) = %q, want %q", tt.explicit, tt.env, got, tt.want)
		}
	}
}

// Mounting a socket that does not exist on the host leaves a directory.
func TestDetectSocketIsDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "docker.sock")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var rec recorder
	got := Detector{Proc: procFixture("v1-docker"), DockerHost: "unix://" + dir, Log: slog.New(&rec)}.Detect(context.Background())
	if got.ID == "" || got.Name != "" {
		t.Errorf("Detect = %+v, want the cgroup-only identity", got)
	}
	rec.quiet(t)
}

// engineLog is what the fake engine was asked.
type engineLog struct {
	mu    sync.Mutex
	paths []string
}

func (l *engineLog) add(r *http.Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.paths = append(l.paths, r.Method+" "+r.URL.Path)
}

func (l *engineLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.paths...)
}

// fakeEngine serves a Docker Engine API 1.41 on a unix socket in a temp dir:
// /_ping, /version, and /v1.41/containers/{id}/json, which answers from
// testdata/inspect-1.41.json for fixtureID, or with inspect when set. It
// returns the socket as a docker host.
func fakeEngine(t testing.TB, inspect http.HandlerFunc) (host string, log *engineLog) {
	t.Helper()
	raw, _ := inspectFixture(t)
	log = &engineLog{}
	mux := http.NewServeMux()
	mux.HandleFunc("/_ping", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		w.Header().Set("Ostype", "linux")
		w.Header().Set("Cache-Control", "no-cache, no-store, must-revalidate")
		if r.Method == http.MethodGet {
			io.WriteString(w, "OK")
		}
	})
	mux.HandleFunc("GET /{version}/version", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"Version":"20.10.24","ApiVersion":"1.41","MinAPIVersion":"1.12","Os":"linux","Arch":"amd64"}`)
	})
	mux.HandleFunc("GET /{version}/containers/{id}/json", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("version") != "v1.41" {
			http.Error(w, `{"message":"client version is too new"}`, http.StatusBadRequest)
			return
		}
		if inspect != nil {
			inspect(w, r)
			return
		}
		if r.PathValue("id") != fixtureID {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"message":"No such container: `+r.PathValue("id")+`"}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(raw)
	})

	sock := filepath.Join(t.TempDir(), "docker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.add(r)
		mux.ServeHTTP(w, r)
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return "unix://" + sock, log
}

// TestDetectEngine drives the real client end to end: version negotiation
// down to the engine's 1.41, the inspect, the identity.
func TestDetectEngine(t *testing.T) {
	host, elog := fakeEngine(t, nil)
	var rec recorder
	got := Detector{Proc: procFixture("v2-private-docker"), DockerHost: host, Log: slog.New(&rec)}.Detect(context.Background())
	if !equalIdentity(got, fixtureIdentity) {
		t.Errorf("Detect =\n%+v\nwant\n%+v", got, fixtureIdentity)
	}
	rec.quiet(t)
	if api := rec.attr("api"); api != "1.41" {
		t.Errorf("negotiated API %q, want 1.41", api)
	}
	paths := elog.get()
	if want := "GET /v1.41/containers/" + fixtureID + "/json"; len(paths) == 0 || paths[len(paths)-1] != want {
		t.Errorf("engine was asked %q; want it to end with %q", paths, want)
	}
}

// An engine that answers but will not inspect (a socket proxy that forbids
// it, a daemon that does not know the id) is worth a warning.
func TestDetectEngineRefuses(t *testing.T) {
	host, _ := fakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"message":"forbidden by the socket proxy"}`)
	})
	var rec recorder
	got := Detector{Proc: procFixture("v2-private-docker"), DockerHost: host, Log: slog.New(&rec)}.Detect(context.Background())
	if want := (Identity{ID: fixtureID, Hostname: hostname(t)}); !equalIdentity(got, want) {
		t.Errorf("Detect = %+v, want %+v", got, want)
	}
	if _, lvl := rec.records(); lvl != slog.LevelWarn {
		t.Errorf("highest level logged %v, want WARN", lvl)
	}
}

// A socket that accepts and never answers costs Timeout, no more.
func TestDetectHungSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "docker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		done  = make(chan struct{})
	)
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // read nothing, answer nothing
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})

	const timeout = 200 * time.Millisecond
	var rec recorder
	start := time.Now()
	got := Detector{
		Proc:       procFixture("v2-private-docker"),
		DockerHost: "unix://" + sock,
		Timeout:    timeout,
		Log:        slog.New(&rec),
	}.Detect(context.Background())
	took := time.Since(start)
	if got.ID != fixtureID || got.Name != "" {
		t.Errorf("Detect = %+v, want the cgroup-only identity", got)
	}
	if took < timeout || took > timeout+time.Second {
		t.Errorf("Detect took %v with a hung socket and a %v timeout", took, timeout)
	}
	rec.quiet(t)
}

// BenchmarkDetectNoSocket is the cost Detect adds to pilot's start in the
// usual case: no docker socket mounted. "container" reads a fixture of a
// container (cgroup says "0::/", so mountinfo too) and stats the missing
// socket; "proc" reads this machine's /proc, where the test is no container.
func BenchmarkDetectNoSocket(b *testing.B) {
	for _, bc := range []struct {
		name string
		proc fs.FS
	}{
		{"container", procFixture("v2-private-docker")},
		{"proc", os.DirFS("/proc")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			d := Detector{
				Proc:       bc.proc,
				DockerHost: "unix://" + filepath.Join(b.TempDir(), "docker.sock"),
				Log:        slog.New(slog.DiscardHandler),
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				d.Detect(ctx)
			}
		})
	}
}
