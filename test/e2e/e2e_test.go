//go:build e2e

// Package e2e runs pilot in containers on a real Docker engine: a private
// dockerd (dockerd.sh) with locally assembled stand-ins for the registry
// base images (standins.sh), pilot's image and the example image built from
// the repository's real Dockerfiles.
//
// It is behind the e2e build tag, so `go test ./...` does not build it (it
// installs Debian packages and starts a daemon); `make e2e` runs it:
//
//	go test -tags e2e -v -count=1 -timeout 30m ./test/e2e
//
// The engine's data root (images, build cache) is kept in .cache/e2e (or
// PILOT_E2E_DIR) so that later runs build from a warm cache; the daemon
// itself is stopped by its pid at the end of every run. PILOT_E2E_CLEAN=1
// removes the data root too. One run at a time per directory (a lock file).
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	dockerCLI = "/usr/bin/docker" // Debian's 20.10 client, matching the daemon

	goStandin   = "pilot-e2e/golang:standin"
	nodeStandin = "pilot-e2e/node:standin"
	buildStage  = "pilot-e2e/pilot:build"
	pilotImage  = "pilot-e2e/pilot:test"
	exampleImg  = "pilot-e2e/example:test"
	netName     = "pilot-e2e"
)

// engine is the state TestMain set up; nil when the suite is not enabled.
var engine *struct {
	root, dir string
	timings   []string
}

func TestMain(m *testing.M) {
	os.Exit(runWithEngine(m))
}

func runWithEngine(m *testing.M) (code int) {
	root, err := filepath.Abs("../..")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	dir := os.Getenv("PILOT_E2E_DIR")
	if dir == "" {
		dir = filepath.Join(root, ".cache", "e2e")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	// runc refuses a container rootfs whose path goes through a symlink,
	// as it does in a git worktree whose .cache links to the main one's.
	if dir, err = filepath.EvalSymlinks(dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	// unix socket paths are limited to 107 bytes; containerd's is the longest
	if n := len(filepath.Join(dir, "exec/containerd/containerd.sock.ttrpc")); n > 100 {
		fmt.Fprintf(os.Stderr, "e2e: %s is too long for the daemon's sockets (%d bytes); set PILOT_E2E_DIR\n", dir, n)
		return 1
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: another run holds %s: %v\n", lock.Name(), err)
		return 1
	}
	engine = &struct {
		root, dir string
		timings   []string
	}{root: root, dir: dir}
	defer func() {
		fmt.Fprintln(os.Stderr, "e2e: phases:")
		for _, t := range engine.timings {
			fmt.Fprintln(os.Stderr, "  "+t)
		}
	}()

	script := func(name string, args ...string) (string, error) {
		return run(5*time.Minute, "bash", append([]string{filepath.Join(root, "test/e2e", name)}, args...)...)
	}
	if err := phase("install docker.io, docker-compose, busybox-static", func() error {
		_, err := script("dockerd.sh", "install")
		return err
	}); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if err := phase("start dockerd", func() error {
		_, err := script("dockerd.sh", "start", dir)
		return err
	}); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	os.Setenv("DOCKER_HOST", "unix://"+filepath.Join(dir, "docker.sock"))
	defer func() {
		// the containers of this run, then the daemon, by its pid
		if ids, _ := run(time.Minute, dockerCLI, "ps", "-aq", "--filter", "label=pilot-e2e"); ids != "" {
			run(time.Minute, dockerCLI, append([]string{"rm", "-f"}, strings.Fields(ids)...)...)
		}
		// vfs stores every layer as a full copy: drop the images (and
		// build-cache layers) an earlier source tree left dangling, or the
		// data root grows by ~1 GB per changed build.
		phase("docker image prune", func() error {
			_, err := run(5*time.Minute, dockerCLI, "image", "prune", "-f")
			return err
		})
		if err := phase("stop dockerd", func() error {
			_, err := script("dockerd.sh", "stop", dir)
			return err
		}); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			code = 1
		}
		if os.Getenv("PILOT_E2E_CLEAN") == "1" {
			if err := os.RemoveAll(dir); err != nil {
				fmt.Fprintln(os.Stderr, "e2e:", err)
			}
		}
	}()

	steps := []struct {
		name string
		args []string
	}{
		{"stand-in " + goStandin, []string{"bash", "test/e2e/standins.sh", "go", goStandin}},
		{"stand-in " + nodeStandin, []string{"bash", "test/e2e/standins.sh", "node", nodeStandin}},
		// --network host: the daemon has no default bridge (dockerd.sh), and
		// the build stage's `go mod download` reaches the module proxy.
		// The build stage under a tag of its own: its layers are then no
		// dangling images, and the prune at the end keeps them as the next
		// run's cache (pilot compiles in ~2 min here).
		{"build " + buildStage + " (Dockerfile --target build)", append([]string{dockerCLI, "build", "--network", "host",
			"--target", "build", "-t", buildStage}, pilotBuildArgs()...)},
		{"build " + pilotImage + " (Dockerfile)", append([]string{dockerCLI, "build", "--network", "host",
			"-t", pilotImage}, pilotBuildArgs()...)},
		{"build " + exampleImg + " (examples/nodejs/Dockerfile)", append([]string{dockerCLI, "build", "--network", "host",
			"-f", "examples/nodejs/Dockerfile", "--build-arg", "NODE_IMAGE=" + nodeStandin,
			"-t", exampleImg}, pilotBuildArgs()...)},
	}
	for _, s := range steps {
		if err := phase(s.name, func() error {
			_, err := runIn(root, 15*time.Minute, s.args[0], s.args[1:]...)
			return err
		}); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
	}
	// A user-defined network: containers need a non-loopback address
	// (pilot registers it in Consul) and there is no default bridge.
	run(time.Minute, dockerCLI, "network", "rm", netName)
	if _, err := run(time.Minute, dockerCLI, "network", "create", "--label", "pilot-e2e", netName); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer run(time.Minute, dockerCLI, "network", "rm", netName)
	return m.Run()
}

// phase runs f and records how long it took.
func phase(name string, f func() error) error {
	start := time.Now()
	err := f()
	status := "ok"
	if err != nil {
		status = "FAILED"
	}
	line := fmt.Sprintf("%-60s %8.1fs %s", name, time.Since(start).Seconds(), status)
	engine.timings = append(engine.timings, line)
	fmt.Fprintln(os.Stderr, "e2e: "+line)
	return err
}

func run(timeout time.Duration, name string, args ...string) (string, error) {
	return runIn("", timeout, name, args...)
}

// runIn runs a command and returns its trimmed stdout; the error carries
// the tail of its combined output.
func runIn(dir string, timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var out, all bytes.Buffer
	cmd.Stdout = &multi{&out, &all}
	cmd.Stderr = &all
	err := cmd.Run()
	if err != nil {
		tail := all.String()
		if len(tail) > 4000 {
			tail = "…" + tail[len(tail)-4000:]
		}
		return strings.TrimSpace(out.String()), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, tail)
	}
	return strings.TrimSpace(out.String()), nil
}

type multi struct{ a, b *bytes.Buffer }

func (m *multi) Write(p []byte) (int, error) { m.a.Write(p); return m.b.Write(p) }

// pilotBuildArgs are the build arguments of every image's pilot stage, and
// the context: the same for all three Dockerfiles, so the builder compiles
// pilot once and the other two builds reuse that layer.
func pilotBuildArgs() []string {
	return []string{"--build-arg", "GO_IMAGE=" + goStandin, "--build-arg", "VERSION=e2e",
		"--build-arg", "COMMIT=" + gitCommit(engine.root), "."}
}

func gitCommit(root string) string {
	out, err := runIn(root, 10*time.Second, "git", "rev-parse", "--short", "HEAD")
	if err != nil || out == "" {
		return "unknown"
	}
	return out
}

func needEngine(t *testing.T) {
	t.Helper()
	if engine == nil {
		t.Fatal("no Docker engine: the harness did not start one")
	}
}

func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := run(2*time.Minute, dockerCLI, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// startExample runs the example image on the suite's network and waits
// until its app answers /health inside the container.
func startExample(t *testing.T, name string, args ...string) {
	t.Helper()
	run(time.Minute, dockerCLI, "rm", "-f", name)
	docker(t, append([]string{"run", "-d", "--name", name, "--label", "pilot-e2e", "--network", netName, exampleImg}, args...)...)
	t.Cleanup(func() { run(time.Minute, dockerCLI, "rm", "-f", name) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := run(5*time.Second, dockerCLI, "exec", name, "wget", "-qO-", "http://127.0.0.1:3000/health")
		if err == nil && strings.Contains(out, "ok") {
			return
		}
		if time.Now().After(deadline) {
			logs, _ := run(time.Minute, dockerCLI, "logs", "--tail", "40", name)
			t.Fatalf("%s: app not healthy after 30 s: %v\nlogs:\n%s", name, err, logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestPilotImageSize(t *testing.T) {
	needEngine(t)
	size, err := strconv.ParseInt(docker(t, "image", "inspect", "--format", "{{.Size}}", pilotImage), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pilot image %s: %d bytes (%.1f MB)", pilotImage, size, float64(size)/1e6)
	if size > 30e6 {
		t.Errorf("pilot image is %d bytes; a static pilot FROM scratch should be well under 30 MB", size)
	}
	if v := docker(t, "run", "--rm", "--label", "pilot-e2e", pilotImage, "version"); !strings.Contains(v, "e2e") {
		t.Errorf("pilot version in the image = %q, want the stamped version e2e", v)
	}
}

// Smoke: pilot is PID 1 as the user the Dockerfile names, and `docker stop`
// ends the container with the app's code well inside Docker's 10 s.
func TestExamplePID1AndStop(t *testing.T) {
	needEngine(t)
	const name = "pilot-e2e-smoke"
	startExample(t, name)
	cmdline := docker(t, "exec", name, "cat", "/proc/1/cmdline")
	if got := strings.ReplaceAll(strings.TrimRight(cmdline, "\x00"), "\x00", " "); got != "pilot run" {
		t.Errorf("PID 1 is %q, want \"pilot run\"", got)
	}
	if u := docker(t, "exec", name, "id", "-un"); u != "node" {
		t.Errorf("container user = %q, want node", u)
	}
	status := docker(t, "exec", name, "cat", "/proc/1/status")
	for _, l := range strings.Split(status, "\n") {
		// VmRSS = RssAnon (pilot's own memory) + RssFile (the binary's
		// pages: file-backed, shared, reclaimable)
		if strings.HasPrefix(l, "VmRSS:") || strings.HasPrefix(l, "RssAnon:") || strings.HasPrefix(l, "RssFile:") {
			t.Logf("pilot (PID 1) %s", strings.Join(strings.Fields(l), " "))
		}
	}
	start := time.Now()
	docker(t, "stop", name)
	took := time.Since(start)
	code := docker(t, "inspect", "-f", "{{.State.ExitCode}}", name)
	t.Logf("docker stop took %v, exit code %s", took.Round(time.Millisecond), code)
	if code != "0" {
		logs, _ := run(time.Minute, dockerCLI, "logs", "--tail", "40", name)
		t.Errorf("exit code after docker stop = %s, want 0 (the app drains on SIGTERM)\nlogs:\n%s", code, logs)
	}
	if took > 9*time.Second {
		t.Errorf("docker stop took %v; it must finish inside Docker's 10 s", took)
	}
}

// Day-2 operation as an operator does it: `docker exec CONTAINER pilot
// status` and `pilot reload`, with no flag, as the image's user (node),
// against the control socket at its default path.
func TestExampleControlSocket(t *testing.T) {
	needEngine(t)
	const name = "pilot-e2e-control"
	startExample(t, name)
	var table string
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := run(10*time.Second, dockerCLI, "exec", name, "pilot", "status")
		if err == nil && regexp.MustCompile(`(?m)^app\s+healthy\s+\d+`).MatchString(out) {
			table = out
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pilot status never showed app healthy: %v\n%s", err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("docker exec %s pilot status:\n%s", name, table)
	for _, want := range []string{"JOB", "migrate", "succeeded", "heartbeat", "web"} {
		if !strings.Contains(table, want) {
			t.Errorf("pilot status lacks %q", want)
		}
	}
	var before struct {
		Jobs []struct {
			Name string `json:"name"`
			Pid  int    `json:"pid"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal([]byte(docker(t, "exec", name, "pilot", "status", "--json")), &before); err != nil {
		t.Fatal(err)
	}
	out := docker(t, "exec", name, "pilot", "reload")
	t.Logf("docker exec %s pilot reload: %s", name, out)
	if !strings.Contains(out, "reloaded") || !strings.Contains(out, "3 unchanged") {
		t.Errorf("pilot reload said %q, want reloaded with 3 unchanged", out)
	}
	var after struct {
		Jobs []struct {
			Name string `json:"name"`
			Pid  int    `json:"pid"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal([]byte(docker(t, "exec", name, "pilot", "status", "--json")), &after); err != nil {
		t.Fatal(err)
	}
	for i, j := range before.Jobs {
		if j.Name == "app" && (i >= len(after.Jobs) || after.Jobs[i].Pid != j.Pid) {
			t.Errorf("the app's pid changed across an unchanged reload: %+v → %+v", before.Jobs, after.Jobs)
		}
	}
	if out, err := run(10*time.Second, dockerCLI, "exec", name, "pilot", "health"); err != nil {
		t.Errorf("pilot health: %v\n%s", err, out)
	}
}

// tini-compatible mode: `pilot -- CMD` supervises CMD (not PID 1 itself)
// and the container exits with CMD's code.
func TestExampleDashDashExitCode(t *testing.T) {
	needEngine(t)
	out, err := run(time.Minute, dockerCLI, "run", "--rm", "--label", "pilot-e2e", "--network", netName,
		"--entrypoint", "pilot", exampleImg, "--", "node", "-e", "console.log('pid', process.pid); process.exit(7)")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 7 {
		t.Fatalf("exit = %v, want code 7\n%s", err, out)
	}
	if !strings.Contains(out, "pid ") || strings.Contains(out, "pid 1\n") {
		t.Errorf("output %q: the app should run under pilot, not as PID 1", out)
	}
}

// `docker stop` of a container whose PID 1 is pilot (tini mode): the app
// gets SIGTERM once and the container exits with the app's own code.
func TestStopExitsWithAppCode(t *testing.T) {
	needEngine(t)
	const name = "pilot-e2e-exitcode"
	run(time.Minute, dockerCLI, "rm", "-f", name)
	docker(t, "run", "-d", "--name", name, "--label", "pilot-e2e", "--network", netName,
		"--entrypoint", "pilot", exampleImg, "--", "node", "-e",
		`process.on("SIGTERM", () => { console.log("got SIGTERM"); process.exit(3) }); console.log("ready"); setInterval(() => {}, 1000)`)
	t.Cleanup(func() { run(time.Minute, dockerCLI, "rm", "-f", name) })
	if err := waitFor(30*time.Second, func() (bool, string) {
		logs, _ := run(10*time.Second, dockerCLI, "logs", name)
		return strings.Contains(logs, "ready"), logs
	}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	docker(t, "stop", name)
	took := time.Since(start)
	code := docker(t, "inspect", "-f", "{{.State.ExitCode}}", name)
	logs, _ := run(10*time.Second, dockerCLI, "logs", name)
	t.Logf("docker stop took %v, exit code %s", took.Round(time.Millisecond), code)
	if code != "3" {
		t.Errorf("exit code = %s, want the app's 3\nlogs:\n%s", code, logs)
	}
	if n := strings.Count(logs, "got SIGTERM"); n != 1 {
		t.Errorf("the app saw SIGTERM %d times, want once\nlogs:\n%s", n, logs)
	}
	if took > 5*time.Second {
		t.Errorf("docker stop took %v; the app exits at once on SIGTERM", took)
	}
}

// A process in the container that orphans 100 children: they are
// reparented to pilot (PID 1) and reaped when they exit, no zombie left.
// The orphans block on a FIFO until the test has seen all 100 adopted, so
// no launch speed decides the outcome; every probe that fails fails the test.
func TestOrphansAreReaped(t *testing.T) {
	needEngine(t)
	const name = "pilot-e2e-orphans"
	const fifo = "/tmp/pilot-e2e-release"
	startExample(t, name)
	// A subshell starts 100 readers of the FIFO, prints their pids and exits
	// at once: the readers' parent is gone, so the kernel hands them to the
	// namespace's PID 1. Their output is redirected so that docker exec does
	// not wait for them.
	out := docker(t, "exec", name, "sh", "-c", `mkfifo `+fifo+` && ( i=0; while [ $i -lt 100 ]; do cat `+fifo+` >/dev/null 2>&1 </dev/null & echo $!; i=$((i+1)); done )`)
	pids := strings.Fields(out)
	if len(pids) != 100 {
		t.Fatalf("the launcher printed %d pids, want 100: %q", len(pids), out)
	}
	// For the orphans' pids: how many are still there, how many of those
	// have PID 1 as parent; then the number of zombies anywhere in the
	// container, and their stat lines. Fields of /proc/PID/stat: pid (comm)
	// state ppid.
	census := `alive=0 adopted=0
for p in ` + strings.Join(pids, " ") + `; do
  s=$(cat /proc/$p/stat 2>/dev/null) || continue
  set -- $s
  alive=$((alive+1))
  [ "$4" = 1 ] && adopted=$((adopted+1))
done
z=$(cat /proc/[0-9]*/stat 2>/dev/null | awk '$3 == "Z"')
echo $alive $adopted $(printf %s "$z" | grep -c .)
printf '%s\n' "$z"`
	count := func() (alive, adopted, zombies int, out string) {
		t.Helper()
		out, err := run(10*time.Second, dockerCLI, "exec", name, "sh", "-c", census)
		if err != nil {
			t.Fatalf("census: %v", err)
		}
		if n, err := fmt.Sscan(out, &alive, &adopted, &zombies); n != 3 || err != nil {
			t.Fatalf("census: unreadable output %q: %v", out, err)
		}
		return alive, adopted, zombies, out
	}
	if err := waitFor(20*time.Second, func() (bool, string) {
		alive, adopted, _, out := count()
		return alive == 100 && adopted == 100, out
	}); err != nil {
		t.Fatalf("the 100 orphans are not all children of PID 1 (alive, adopted, zombies): %v", err)
	}
	t.Logf("100 orphans are children of PID 1")
	// Opening the FIFO for writing and closing it gives every reader EOF.
	docker(t, "exec", name, "sh", "-c", `exec 3>`+fifo+`; exec 3>&-`)
	if err := waitFor(20*time.Second, func() (bool, string) {
		alive, _, zombies, out := count()
		return alive == 0 && zombies == 0, out
	}); err != nil {
		t.Errorf("orphans or zombies left after the orphans ended (alive, adopted, zombies): %v", err)
	}
	docker(t, "stop", name)
}

// Cluster mode's `instances: auto` counts the CPUs Docker gives the
// container (the cgroup quota of `docker run --cpus`), never the host's.
func TestClusterAutoFollowsDockerCPUs(t *testing.T) {
	needEngine(t)
	const cfg = `jobs:
  - name: web
    main: true
    exec: [node, server.js]
    instances: auto
    listen: [":3000"]
    env: {PORT: "3000"}
`
	for _, cpus := range []string{"2", "1"} {
		t.Run("cpus="+cpus, func(t *testing.T) {
			name := "pilot-e2e-auto-" + cpus
			run(time.Minute, dockerCLI, "rm", "-f", name)
			docker(t, "run", "-d", "--name", name, "--label", "pilot-e2e", "--network", netName, "--cpus", cpus,
				"-e", "CFG="+cfg, "--entrypoint", "sh", exampleImg,
				"-c", `printf '%s' "$CFG" > /tmp/cluster.yaml && exec pilot run --config /tmp/cluster.yaml`)
			t.Cleanup(func() { run(time.Minute, dockerCLI, "rm", "-f", name) })
			var st struct {
				Jobs []struct {
					Instances []struct {
						Pid   int    `json:"pid"`
						State string `json:"state"`
					} `json:"instances"`
				} `json:"jobs"`
			}
			if err := waitFor(30*time.Second, func() (bool, string) {
				out, err := run(10*time.Second, dockerCLI, "exec", name, "pilot", "status", "--json")
				if err != nil || json.Unmarshal([]byte(out), &st) != nil || len(st.Jobs) == 0 || len(st.Jobs[0].Instances) == 0 {
					return false, out
				}
				for _, in := range st.Jobs[0].Instances {
					if in.State != "running" {
						return false, out
					}
				}
				return true, out
			}); err != nil {
				logs, _ := run(time.Minute, dockerCLI, "logs", "--tail", "40", name)
				t.Fatalf("%v\nlogs:\n%s", err, logs)
			}
			want, _ := strconv.Atoi(cpus)
			if got := len(st.Jobs[0].Instances); got != want {
				t.Errorf("docker run --cpus %s: %d instances, want %d", cpus, got, want)
			}
			if out, err := run(10*time.Second, dockerCLI, "exec", name, "wget", "-qO-", "http://127.0.0.1:3000/health"); err != nil || !strings.Contains(out, "ok") {
				t.Errorf("the workers do not serve on pilot's socket: %v %q", err, out)
			}
		})
	}
}
