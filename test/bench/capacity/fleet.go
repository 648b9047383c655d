package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nodepilot/pilot/pilot/control"
	"github.com/nodepilot/pilot/test/bench/benchkit"
)

// service is the one service name every instance registers (ids are left
// at pilot's default, NAME-HOSTNAME-PORT).
const service = "web"

// watchSpec is the watch on `web` a pilot's config carries, if any.
type watchSpec struct {
	none        bool      // no watch at all
	consistency string    // "" leaves watches[].consistency out (pilot's default)
	debounce    [2]string // min, max
	dest        string    // the rendered nginx upstream
}

// instance is one pilot of the fleet and its app.
type instance struct {
	dir      string
	appPort  int
	telPort  int
	agent    string // the client agent's HTTP address, as CONSUL_HTTP_ADDR
	upstream string // DIR/upstream.conf, its watch's render
	pilot    *benchkit.Pilot
	control  *control.Client
}

// fleetConfig is the config of one fleet pilot: the example's app settings
// (examples/nodejs/pilot.yaml: health every 1 s, unhealthyThreshold 2, the
// TTL at its default of three intervals, so a heartbeat a second; drain
// 2 s), telemetry on its own port without a registration, and one watch on
// `web` rendered like the nginx-front example (debounce 50 ms–500 ms), as
// each instance of a real deployment watches its upstream.
func fleetConfig(app string, in *instance, w watchSpec) string {
	var b strings.Builder
	fmt.Fprintf(&b, `log: {level: info}
stopTimeout: 9s
consul:
  address: ${CONSUL_HTTP_ADDR:-127.0.0.1:8500}
telemetry:
  listen: 127.0.0.1:%d
jobs:
  - name: app
    exec: [%q, "%d"]
    main: true
    restart:
      policy: on-failure
      max: 5
      backoff: {initial: 200ms, max: 10s}
    health:
      http: {port: %d, path: /health}
      interval: 1s
      unhealthyThreshold: 2
    service:
      name: %s
      port: %d
      drain: 2s
`, in.telPort, app, in.appPort, in.appPort, service, in.appPort)
	writeWatch(&b, w)
	return b.String()
}

// watcherConfig is the measuring pilot's: a main job that only sleeps and
// one watch on `web`, without debounce so that the file shows each change
// as soon as pilot has it (as test/bench/watch measures), its debug log in
// JSON.
func watcherConfig(agent string, w watchSpec) string {
	var b strings.Builder
	fmt.Fprintf(&b, `log: {level: debug, format: json}
consul: {address: %q}
jobs:
  - name: main
    main: true
    exec: [sleep, "86400"]
`, agent)
	writeWatch(&b, w)
	return b.String()
}

func writeWatch(b *strings.Builder, w watchSpec) {
	if w.none {
		return
	}
	fmt.Fprintf(b, "watches:\n  - service: %s\n", service)
	if w.consistency != "" {
		fmt.Fprintf(b, "    consistency: %s\n", w.consistency)
	}
	fmt.Fprintf(b, "    debounce: {min: %s, max: %s}\n    onChange:\n      render: {format: nginx, dest: %q, name: backend}\n",
		w.debounce[0], w.debounce[1], w.dest)
}

// fleetWatch is the fleet's watch in a given consistency mode.
func fleetWatch(mode string) watchSpec {
	return watchSpec{consistency: mode, debounce: [2]string{"50ms", "500ms"}}
}

// freePorts returns n TCP ports free on 127.0.0.1, below the ephemeral
// range: a port handed out by the kernel (port 0) could be taken as the
// source port of one of the thousands of connections a start opens before
// its app binds it.
func freePorts(n int) ([]int, error) {
	lo := 10000 + int(time.Now().UnixNano()%10000)
	var out []int
	for p := lo; p < 32768 && len(out) < n; p++ {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		out = append(out, p)
	}
	if len(out) < n {
		return nil, fmt.Errorf("only %d free ports in %d–32767, %d wanted", len(out), lo, n)
	}
	return out, nil
}

// startFleet writes every instance's config and starts the pilots,
// instance i through agents[i % len(agents)]: all at once when perSecond
// is 0, else at that pace. It calls started with the time just before the
// first exec, and returns when every exec has returned, with how long that
// took.
func startFleet(dir, pilotBin, app string, n int, perSecond float64, agents []string, w watchSpec, started func(time.Time)) ([]*instance, time.Duration, error) {
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, 0, err
	}
	fleet := make([]*instance, n)
	envs := make([]*benchkit.Env, n)
	cfgs := make([]string, n)
	for i := range fleet {
		in := &instance{dir: filepath.Join(dir, fmt.Sprintf("p%03d", i)), appPort: ports[2*i], telPort: ports[2*i+1], agent: agents[i%len(agents)]}
		in.upstream = filepath.Join(in.dir, "upstream.conf")
		if err := os.Mkdir(in.dir, 0o755); err != nil {
			return nil, 0, err
		}
		fleet[i] = in
		envs[i] = &benchkit.Env{Dir: in.dir, Pilot: pilotBin, PilotEnv: []string{"CONSUL_HTTP_ADDR=" + in.agent}}
		cfgs[i] = fleetConfig(app, in, w.at(in.upstream))
	}
	t0 := time.Now()
	started(t0)
	for i, in := range fleet {
		if perSecond > 0 {
			time.Sleep(time.Until(t0.Add(time.Duration(float64(i) / perSecond * float64(time.Second)))))
		}
		p, err := envs[i].StartPilot(cfgs[i])
		if err != nil {
			stopAll(fleet[:i])
			return nil, 0, fmt.Errorf("pilot %d: %v", i, err)
		}
		in.pilot = p
		in.control = control.NewClient(p.Socket, 30*time.Second)
	}
	return fleet, time.Since(t0), nil
}

// at is w rendering to dest.
func (w watchSpec) at(dest string) watchSpec { w.dest = dest; return w }

// reloadAll rewrites each pilot's config, the first `watchers` with the
// watch w and the others with none, and reloads it through its control
// socket, 16 at a time. A reload that restarts or stops the app is an
// error: only the watches changed.
func reloadAll(ctx context.Context, app string, fleet []*instance, watchers int, w watchSpec) error {
	sem := make(chan struct{}, 16)
	var mu sync.Mutex
	var errs []string
	var wg sync.WaitGroup
	for i, in := range fleet {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			w := w
			if i >= watchers {
				w = watchSpec{none: true}
			}
			err := os.WriteFile(in.pilot.ConfigPath, []byte(fleetConfig(app, in, w.at(in.upstream))), 0o644)
			if err == nil {
				err = reload(ctx, in.control)
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Sprintf("pilot %d: %v", i, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		slices.Sort(errs)
		return fmt.Errorf("reload: %d of %d failed: %s", len(errs), len(fleet), strings.Join(errs[:min(len(errs), 5)], "; "))
	}
	return nil
}

func reload(ctx context.Context, c *control.Client) error {
	res, err := c.Reload(ctx)
	if err != nil {
		return err
	}
	if len(res.Restarted)+len(res.Stopped)+len(res.Started)+len(res.Rolled) > 0 {
		b, _ := json.Marshal(res)
		return fmt.Errorf("a watch-only reload touched jobs: %s", b)
	}
	return nil
}

// stopAll stops every pilot at once (SIGTERM; SIGKILL after 10 s).
func stopAll(fleet []*instance) {
	var wg sync.WaitGroup
	for _, in := range fleet {
		if in != nil && in.pilot != nil {
			wg.Go(in.pilot.Stop)
		}
	}
	wg.Wait()
}

// registration is one passing instance as the catalog lists it.
type registration struct {
	ID    string `json:"id"`
	Node  string `json:"node"`
	Addr  string `json:"addr"` // ADDRESS:PORT, as the rendered upstream lists it
	agent string // base URL of the client agent that holds it
}

// passing returns the passing instances of `web`, read from base (a
// server's HTTP API) with a default-consistency query, and the size of the
// JSON answer.
func passing(ctx context.Context, client *http.Client, base string) ([]registration, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/health/service/"+service+"?passing", nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("GET /v1/health/service/%s: %s", service, resp.Status)
	}
	var entries []struct {
		Node    struct{ Node string }
		Service struct {
			ID      string
			Address string
			Port    int
		}
	}
	if err := json.Unmarshal(body, &entries); err != nil {
		return nil, 0, err
	}
	out := make([]registration, len(entries))
	for i, e := range entries {
		out[i] = registration{ID: e.Service.ID, Node: e.Node.Node, Addr: net.JoinHostPort(e.Service.Address, fmt.Sprint(e.Service.Port))}
	}
	return out, len(body), nil
}
