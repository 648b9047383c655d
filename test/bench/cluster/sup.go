package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nodepilot/pilot/test/bench/benchkit"
)

// stopTimeout is pilot's default job stopTimeout (config.DefaultJobStopTimeout),
// written into both configs: pilot's stopTimeout and pm2's kill_timeout.
const stopTimeout = 8 * time.Second

// appJS is the app both supervisors run: a plain HTTP server with a tiny bit
// of work per request and keep-alive defaults, ready when listening. It also
// drops DIR/ready/PID once listening, so that the harness can tell ready
// workers from started ones in the same way under both supervisors. On
// SIGINT (pm2's stop) or SIGTERM (pilot's) it closes the server and exits
// once the requests in flight are answered, as a production app does.
const appJS = `'use strict';
const http = require('http');
const fs = require('fs');
const path = require('path');
const PORT = %d;
const server = http.createServer((req, res) => {
  let x = 0;
  for (let i = 0; i < 5000; i++) x += i %% 7;
  res.writeHead(200, {'content-type': 'text/plain'});
  res.end('ok ' + x + '\n');
});
server.listen(PORT, () => {
  try { fs.writeFileSync(path.join(__dirname, 'ready', String(process.pid)), ''); } catch (e) {}
  process.send && process.send('ready');
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
`

// kind is one supervisor under test.
type kind struct {
	name   string // "pilot" or "pm2"
	pilot  string // pilot binary
	pm2    string // pm2 CLI
	pm2rt  string // pm2-runtime
	nodeJS string // node
}

// sup is one running supervisor with its app.
type sup struct {
	k      *kind
	dir    string // run dir: app.js, ready/, config, logs
	app    string // DIR/app.js
	port   int
	n      int
	cmd    *exec.Cmd
	logf   *os.File
	ended  chan struct{}
	env    []string // for the reload command (PILOT_SOCKET or PM2_HOME)
	seen   map[int]bool
	seenMu sync.Mutex
	once   sync.Once
}

// start writes the app and the supervisor's config into a fresh dir under
// base and starts the supervisor in its own process group, its output to
// DIR/sup.log. It returns once n workers are ready. The sup is registered
// for cleanup at once, so that a failed start is cleaned too.
func start(ctx context.Context, k *kind, base string, n int) (*sup, error) {
	dir, err := os.MkdirTemp(base, k.name+"-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &sup{k: k, dir: dir, app: filepath.Join(dir, "app.js"), port: port, n: n, seen: map[int]bool{}, ended: make(chan struct{})}
	if err := os.Mkdir(filepath.Join(dir, "ready"), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(s.app, []byte(fmt.Sprintf(appJS, port)), 0o644); err != nil {
		return nil, err
	}
	var argv []string
	switch k.name {
	case "pilot":
		cfg := pilotConfig(k.nodeJS, s.app, n, port)
		p := filepath.Join(dir, "pilot.yaml")
		if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
			return nil, err
		}
		s.env = append(os.Environ(), "PILOT_SOCKET="+filepath.Join(dir, "pilot.sock"))
		argv = []string{k.pilot, "run", "--config", p}
	case "pm2":
		app := map[string]any{
			"name": "app", "script": s.app, "exec_mode": "cluster", "instances": n,
			"wait_ready": true, "listen_timeout": 30000, "kill_timeout": stopTimeout.Milliseconds(),
			"autorestart": true,
		}
		b, _ := json.MarshalIndent(map[string]any{"apps": []any{app}}, "", "  ")
		p := filepath.Join(dir, "ecosystem.config.js")
		if err := os.WriteFile(p, append([]byte("module.exports = "), append(b, ";\n"...)...), 0o644); err != nil {
			return nil, err
		}
		s.env = append(os.Environ(), "PM2_HOME="+filepath.Join(dir, "pm2home"))
		argv = []string{k.pm2rt, "start", p}
	}
	if s.logf, err = os.Create(filepath.Join(dir, "sup.log")); err != nil {
		return nil, err
	}
	s.cmd = exec.Command(argv[0], argv[1:]...)
	s.cmd.Dir = dir
	s.cmd.Env = s.env
	s.cmd.Stdout, s.cmd.Stderr = s.logf, s.logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		s.logf.Close()
		return nil, fmt.Errorf("starting %s: %v", k.name, err)
	}
	go func() { _ = s.cmd.Wait(); close(s.ended) }()
	addCleanup(s.stop)
	if _, err := s.waitWorkers(ctx, nil, 60*time.Second); err != nil {
		return s, err
	}
	if k.name == "pilot" {
		if out, err := s.command(ctx, k.pilot, "status", "--json"); err != nil {
			return s, fmt.Errorf("pilot status --json: %v\n%s", err, out)
		}
	}
	return s, nil
}

// command runs a command of the supervisor's CLI with its env.
func (s *sup) command(ctx context.Context, bin string, args ...string) ([]byte, error) {
	c := exec.CommandContext(ctx, bin, args...)
	c.Env = s.env
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return c.CombinedOutput()
}

// reload runs `pilot reload-app app` or `pm2 reload app` and returns its
// wall time.
func (s *sup) reload(ctx context.Context) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, maxReload)
	defer cancel()
	var out []byte
	var err error
	t0 := time.Now()
	if s.k.name == "pilot" {
		out, err = s.command(ctx, s.k.pilot, "reload-app", "app")
	} else {
		out, err = s.command(ctx, s.k.pm2, "reload", "app")
	}
	d := time.Since(t0)
	if err != nil {
		return d, fmt.Errorf("%s reload: %v\n%s", s.k.name, err, bytes.TrimSpace(out))
	}
	return d, nil
}

// log is the tail of the supervisor's output.
func (s *sup) log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "sup.log"))
	if len(b) > 3000 {
		b = append([]byte("…"), b[len(b)-3000:]...)
	}
	return strings.TrimSpace(string(b))
}

// workers is the supervisor's descendants that run the app, and which of
// them are ready (DIR/ready/PID exists).
func (s *sup) workers() (all, ready []int) {
	for _, p := range descendants(s.cmd.Process.Pid) {
		if strings.Contains(cmdline(p), s.app) {
			all = append(all, p)
			if _, err := os.Stat(filepath.Join(s.dir, "ready", strconv.Itoa(p))); err == nil {
				ready = append(ready, p)
			}
		}
	}
	s.seenMu.Lock()
	for _, p := range all {
		s.seen[p] = true
	}
	s.seenMu.Unlock()
	slices.Sort(all)
	slices.Sort(ready)
	return all, ready
}

// waitWorkers waits until exactly n workers run, all ready, none of them in
// old. It fails early when the supervisor exits.
func (s *sup) waitWorkers(ctx context.Context, old []int, timeout time.Duration) ([]int, error) {
	deadline := time.Now().Add(timeout)
	for {
		all, ready := s.workers()
		if len(all) == s.n && len(ready) == s.n && !slices.ContainsFunc(all, func(p int) bool { return slices.Contains(old, p) }) {
			return ready, nil
		}
		select {
		case <-s.ended:
			return nil, fmt.Errorf("%s exited (%v) before %d workers were ready; its output:\n%s", s.k.name, s.cmd.ProcessState, s.n, s.log())
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s: %d workers ready of %d running (want %d, none of %v) after %v; its output:\n%s",
				s.k.name, len(ready), len(all), s.n, old, timeout, s.log())
		}
	}
}

// rss is the supervisor's own RSS in KiB: VmRSS summed over its process
// tree minus the workers' subtrees (pilot: the pilot process; pm2-runtime
// 7: one process, its God runs inside it, "no daemon mode"), and the
// processes counted.
func (s *sup) rss() (int, []string) {
	total, names := 0, []string(nil)
	var walk func(p int)
	walk = func(p int) {
		if strings.Contains(cmdline(p), s.app) {
			return
		}
		total += benchkit.VmRSS(p)
		names = append(names, fmt.Sprintf("%d %s", p, comm(p)))
		for _, c := range children(p) {
			walk(c)
		}
	}
	walk(s.cmd.Process.Pid)
	return total, names
}

// stop ends the supervisor: SIGTERM (pm2-runtime and pilot both stop their
// apps on it), SIGKILL to its process group after stopTimeout + 5 s, then
// SIGKILL to any worker still alive (pilot may start them in their own
// groups), and `pm2 kill` if a pm2 daemon was started under its PM2_HOME.
func (s *sup) stop() {
	s.once.Do(func() {
		pid := s.cmd.Process.Pid
		_ = syscall.Kill(pid, syscall.SIGTERM)
		select {
		case <-s.ended:
		case <-time.After(stopTimeout + 5*time.Second):
			fmt.Fprintf(os.Stderr, "cluster: %s did not stop within %v; SIGKILL\n", s.k.name, stopTimeout+5*time.Second)
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-s.ended
		}
		_ = syscall.Kill(-pid, syscall.SIGKILL) // whatever is left in its group
		s.seenMu.Lock()
		for p := range s.seen {
			if strings.Contains(cmdline(p), s.app) {
				fmt.Fprintf(os.Stderr, "cluster: %s left worker %d running; SIGKILL\n", s.k.name, p)
				_ = syscall.Kill(p, syscall.SIGKILL)
			}
		}
		s.seenMu.Unlock()
		if s.k.name == "pm2" {
			home := filepath.Join(s.dir, "pm2home")
			b, _ := os.ReadFile(filepath.Join(home, "pm2.pid"))
			if d, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && d != pid && syscall.Kill(d, 0) == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				_, _ = s.command(ctx, s.k.pm2, "kill")
				cancel()
				_ = syscall.Kill(d, syscall.SIGKILL)
			}
		}
		s.logf.Close()
	})
}

// --- /proc ---

func children(pid int) []int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []int
	for _, t := range tasks {
		b, _ := os.ReadFile(t)
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

func descendants(pid int) []int {
	var out []int
	for _, c := range children(pid) {
		out = append(out, c)
		out = append(out, descendants(c)...)
	}
	return out
}

func cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return string(bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
}

func comm(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}

// --- cleanup on every exit path, ctrl-C included ---

var (
	cleanMu  sync.Mutex
	cleanups []func()
)

func addCleanup(f func()) {
	cleanMu.Lock()
	cleanups = append(cleanups, f)
	cleanMu.Unlock()
}

// cleanupAll runs the registered cleanups, newest first, once each.
func cleanupAll() {
	cleanMu.Lock()
	fs := cleanups
	cleanups = nil
	cleanMu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

var errStopped = errors.New("interrupted")
