package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nodepilot/pilot/test/consulagent"
	"github.com/nodepilot/pilot/test/traefikproc"
)

// traefikProc is one running Traefik with its Docker provider.
type traefikProc struct {
	label    string // the column: "Traefik" or "Traefik, throttle 0"
	throttle string // providersThrottleDuration as configured ("" = Traefik's default)
	web, api int    // loopback ports: the web entrypoint, the API and ping
	logPath  string
	cmd      *exec.Cmd
	ended    chan struct{}
}

// startTraefik writes a static configuration (web entrypoint on a free
// loopback port, API and ping on another, the Docker provider on the
// daemon's socket with exposedByDefault false and the network) and starts
// Traefik on it; it returns once /ping answers. throttle "" leaves
// providers.providersThrottleDuration at Traefik's default.
func startTraefik(bin, dir, label, sock, network, throttle string) (*traefikProc, error) {
	ports, err := consulagent.FreePorts(2)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	t := &traefikProc{label: label, throttle: throttle, web: ports[0], api: ports[1], logPath: filepath.Join(dir, "traefik.log")}
	var b strings.Builder
	fmt.Fprintf(&b, `global:
  checkNewVersion: false
  sendAnonymousUsage: false
entryPoints:
  web:
    address: "127.0.0.1:%d"
  traefik:
    address: "127.0.0.1:%d"
ping:
  entryPoint: traefik
api:
  insecure: true
  dashboard: false
log:
  level: INFO
  noColor: true
  filePath: %q
providers:
`, t.web, t.api, t.logPath)
	if throttle != "" {
		fmt.Fprintf(&b, "  providersThrottleDuration: %s\n", throttle)
	}
	fmt.Fprintf(&b, `  docker:
    endpoint: "unix://%s"
    exposedByDefault: false
    network: %q
    watch: true
`, sock, network)
	cfg := filepath.Join(dir, "traefik.yaml")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	out, err := os.Create(filepath.Join(dir, "traefik.out"))
	if err != nil {
		return nil, err
	}
	t.cmd = exec.Command(bin, "--configFile="+cfg)
	t.cmd.Dir = dir
	t.cmd.Stdout, t.cmd.Stderr = out, out
	t.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := t.cmd.Start(); err != nil {
		out.Close()
		return nil, err
	}
	t.ended = make(chan struct{})
	go func() { _ = t.cmd.Wait(); out.Close(); close(t.ended) }()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(60 * time.Second) // a 240 MB binary on a busy machine
	for time.Now().Before(deadline) {
		select {
		case <-t.ended:
			return nil, fmt.Errorf("%s exited during startup:\n%s", label, t.logTail())
		default:
		}
		if resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/ping", t.api)); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return t, nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.stop()
	return nil, fmt.Errorf("%s not answering /ping within 60 s:\n%s", label, t.logTail())
}

// stop ends Traefik: SIGTERM, SIGKILL to its process group after 5 s.
func (t *traefikProc) stop() {
	_ = t.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-t.ended:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-t.cmd.Process.Pid, syscall.SIGKILL)
		<-t.ended
	}
}

func (t *traefikProc) logTail() string {
	b, _ := os.ReadFile(t.logPath)
	o, _ := os.ReadFile(filepath.Join(filepath.Dir(t.logPath), "traefik.out"))
	return consulagent.Tail(string(b), 3000) + consulagent.Tail(string(o), 1000)
}

// traefikVersion is the version pinned for test/traefik.sh's build, and
// what the binary says of itself (a module build says "dev").
func traefikVersion(bin string) string {
	pinned, err := traefikproc.Tool.Version()
	if err != nil {
		pinned = "?"
	}
	out, _ := exec.Command(bin, "version").Output()
	for line := range bytes.Lines(out) {
		if k, v, ok := strings.Cut(string(line), ":"); ok && strings.TrimSpace(k) == "Version" {
			return fmt.Sprintf("%s (binary says %q)", pinned, strings.TrimSpace(v))
		}
	}
	return pinned
}
