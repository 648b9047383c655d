package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// daemon is the private dockerd of test/e2e/dockerd.sh, with everything
// under dir (short: unix socket paths are limited to 107 bytes).
type daemon struct {
	script string // test/e2e/dockerd.sh
	dir    string
	sock   string
}

// startDaemon installs what dockerd.sh needs (idempotent) and starts a
// dockerd under a fresh short directory in /tmp.
func startDaemon(script string) (*daemon, error) {
	install := exec.Command("bash", script, "install")
	install.Stdout, install.Stderr = os.Stderr, os.Stderr
	if err := install.Run(); err != nil {
		return nil, fmt.Errorf("%s install: %v", script, err)
	}
	dir, err := os.MkdirTemp("/tmp", "pdw")
	if err != nil {
		return nil, err
	}
	d := &daemon{script: script, dir: dir, sock: filepath.Join(dir, "docker.sock")}
	start := exec.Command("bash", script, "start", dir)
	start.Stderr = os.Stderr
	if out, err := start.Output(); err != nil {
		d.stop()
		return nil, fmt.Errorf("%s start %s: %v (%s)", script, dir, err, strings.TrimSpace(string(out)))
	}
	return d, nil
}

// stop stops the daemon by its pid (dockerd.sh stop), unmounts what it
// left and removes its directory.
func (d *daemon) stop() {
	stop := exec.Command("bash", d.script, "stop", d.dir)
	stop.Stdout, stop.Stderr = os.Stderr, os.Stderr
	if err := stop.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "dockerwatch: %s stop %s: %v (left in place)\n", d.script, d.dir, err)
		return
	}
	os.RemoveAll(d.dir)
}

// cli runs the docker client against the daemon (setup only: nothing timed
// goes through it).
func (d *daemon) cli(stdin io.Reader, args ...string) (string, error) {
	cmd := exec.Command("/usr/bin/docker", args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+d.sock)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// importHTTPD makes the containers' image from the machine's static
// busybox: sh and httpd, nothing else. Each container writes its hostname
// into /www/index.html, so that every answer names the container that gave
// it, serves it on :8080, and exits 0 on SIGTERM (sh as PID 1 with a trap),
// so that `docker stop` is quick.
func (d *daemon) importHTTPD(tag string) error {
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := []string{"bin", "www", "tmp", "etc"}
	for _, dir := range dirs {
		mode := int64(0o755)
		if dir == "tmp" {
			mode = 0o1777
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: mode}); err != nil {
			return err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bb))}); err != nil {
		return err
	}
	if _, err := tw.Write(bb); err != nil {
		return err
	}
	for _, applet := range []string{"sh", "httpd", "hostname", "cat"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + applet, Linkname: "busybox", Mode: 0o777}); err != nil {
			return err
		}
	}
	passwd := "root:x:0:0:root:/:/bin/sh\n"
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/passwd", Mode: 0o644, Size: int64(len(passwd))}); err != nil {
		return err
	}
	if _, err := tw.Write([]byte(passwd)); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	_, err = d.cli(&buf, "import",
		"--change", `CMD ["/bin/sh", "-c", "hostname > /www/index.html; trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait"]`,
		"--change", "EXPOSE 8080",
		"-", tag)
	return err
}

// engine speaks the Docker Engine API over the daemon's unix socket: the
// calls that are timed, and the events stream.
type engine struct {
	client *http.Client // requests
	stream *http.Client // the events stream: no timeout
}

func newEngine(sock string) *engine {
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}
	return &engine{
		client: &http.Client{Transport: &http.Transport{DialContext: dial, MaxIdleConnsPerHost: 4}, Timeout: 60 * time.Second},
		stream: &http.Client{Transport: &http.Transport{DialContext: dial}},
	}
}

// call does METHOD path with body as JSON (nil: none) and decodes the
// answer into out (nil: discarded); a status ≥ 300 is an error.
func (e *engine) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://docker"+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out != nil && len(b) > 0 {
		return json.Unmarshal(b, out)
	}
	return nil
}

// version is the daemon's version and API version.
func (e *engine) version(ctx context.Context) (string, error) {
	var v struct{ Version, APIVersion string }
	if err := e.call(ctx, http.MethodGet, "/version", nil, &v); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s (API %s)", v.Version, v.APIVersion), nil
}

// container is what the harness knows of one container it started.
type container struct {
	Name string `json:"name"`
	ID   string `json:"id"`
	Addr string `json:"addr"` // IP:port on the network
}

// create creates a container of the compose service, as compose
// would label it, plus the labels Traefik's Docker provider reads.
func (e *engine) create(ctx context.Context, o setup, name string, number int) (*container, error) {
	labels := map[string]string{
		"com.docker.compose.project":                                       o.project,
		"com.docker.compose.service":                                       o.service,
		"com.docker.compose.container-number":                              fmt.Sprint(number),
		"com.docker.compose.oneoff":                                        "False",
		"traefik.enable":                                                   "true",
		"traefik.http.routers." + o.service + ".rule":                      "Host(`" + o.host + "`)",
		"traefik.http.routers." + o.service + ".entrypoints":               "web",
		"traefik.http.services." + o.service + ".loadbalancer.server.port": fmt.Sprint(o.port),
	}
	body := map[string]any{
		"Image":        o.image,
		"Hostname":     name,
		"Labels":       labels,
		"ExposedPorts": map[string]any{fmt.Sprintf("%d/tcp", o.port): map[string]any{}},
		"HostConfig":   map[string]any{"NetworkMode": o.network},
		"NetworkingConfig": map[string]any{"EndpointsConfig": map[string]any{
			o.network: map[string]any{"Aliases": []string{o.service}},
		}},
	}
	var created struct{ ID string }
	if err := e.call(ctx, http.MethodPost, "/containers/create?name="+url.QueryEscape(name), body, &created); err != nil {
		return nil, err
	}
	return &container{Name: name, ID: created.ID}, nil
}

func (e *engine) start(ctx context.Context, c *container) error {
	return e.call(ctx, http.MethodPost, "/containers/"+c.ID+"/start", nil, nil)
}

// address reads the container's IP on network.
func (e *engine) address(ctx context.Context, c *container, network string, port int) error {
	var in struct {
		NetworkSettings struct {
			Networks map[string]struct{ IPAddress string }
		}
	}
	if err := e.call(ctx, http.MethodGet, "/containers/"+c.ID+"/json", nil, &in); err != nil {
		return err
	}
	ip := in.NetworkSettings.Networks[network].IPAddress
	if ip == "" {
		return fmt.Errorf("container %s has no address on %s", c.Name, network)
	}
	c.Addr = net.JoinHostPort(ip, fmt.Sprint(port))
	return nil
}

// stop is `docker stop -t 10`: SIGTERM, on which the container exits at once.
func (e *engine) stop(ctx context.Context, c *container) error {
	return e.call(ctx, http.MethodPost, "/containers/"+c.ID+"/stop?t=10", nil, nil)
}

func (e *engine) remove(ctx context.Context, c *container) error {
	return e.call(ctx, http.MethodDelete, "/containers/"+c.ID+"?force=1", nil, nil)
}

// event is one container event of the Engine API's stream.
type event struct {
	ID     string
	Action string
	At     time.Time // the daemon's timeNano
}

// events follows GET /events for the project's containers from the moment
// subscribe returns, and keeps every event, so that a waiter never misses
// one that came before it looked.
type events struct {
	mu      sync.Mutex
	seen    []event
	changed chan struct{} // closed and replaced at each event
	err     error         // why the stream ended
}

// subscribe opens the stream (the daemon has answered with its headers
// when it returns: events from then on are delivered) and reads it until
// ctx ends.
func (e *engine) subscribe(ctx context.Context, project string) (*events, error) {
	filters, _ := json.Marshal(map[string][]string{
		"type":  {"container"},
		"label": {"com.docker.compose.project=" + project},
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/events?filters="+url.QueryEscape(string(filters)), nil)
	if err != nil {
		return nil, err
	}
	resp, err := e.stream.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return nil, fmt.Errorf("GET /events: %d %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	ev := &events{changed: make(chan struct{})}
	go func() {
		defer resp.Body.Close()
		dec := json.NewDecoder(bufio.NewReader(resp.Body))
		for {
			var m struct {
				Action   string
				Actor    struct{ ID string }
				TimeNano int64 `json:"timeNano"`
			}
			err := dec.Decode(&m)
			ev.mu.Lock()
			if err != nil {
				ev.err = err
				close(ev.changed)
				ev.mu.Unlock()
				return
			}
			ev.seen = append(ev.seen, event{ID: m.Actor.ID, Action: m.Action, At: time.Unix(0, m.TimeNano)})
			close(ev.changed)
			ev.changed = make(chan struct{})
			ev.mu.Unlock()
		}
	}()
	return ev, nil
}

// wait returns the time of the first event action of container id, waiting
// for it at most limit.
func (ev *events) wait(ctx context.Context, id, action string, limit time.Duration) (time.Time, error) {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		ev.mu.Lock()
		for _, m := range ev.seen {
			if m.ID == id && m.Action == action {
				ev.mu.Unlock()
				return m.At, nil
			}
		}
		ch, err := ev.changed, ev.err
		ev.mu.Unlock()
		if err != nil {
			return time.Time{}, fmt.Errorf("the events stream ended: %v", err)
		}
		select {
		case <-ch:
		case <-deadline.C:
			return time.Time{}, fmt.Errorf("no %s event for %.12s within %s", action, id, limit)
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}

// of returns the actions seen for container id, in order, with their times.
func (ev *events) of(id string) []event {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	var out []event
	for _, m := range ev.seen {
		if m.ID == id {
			out = append(out, m)
		}
	}
	return out
}
