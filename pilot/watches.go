package pilot

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/nodepilot/pilot/discovery"
	"github.com/nodepilot/pilot/discovery/consul"
	"github.com/nodepilot/pilot/discovery/render"
	"github.com/nodepilot/pilot/jobs"
	"github.com/nodepilot/pilot/pilot/config"
)

// reloadAttempts and reloadBackoff pace the retries of a failed reload; a
// failed or hung reload is logged and never touches the app.
const (
	reloadAttempts = 3
	reloadBackoff  = 200 * time.Millisecond
)

// firstRenderWait bounds how long a job a watch reloads waits for the
// watch's first render before it starts anyway (Consul down at boot: the
// proxy still starts, on the files it has).
const firstRenderWait = 5 * time.Second

// startGate opens once every watch that reloads a job has rendered its
// first set. A job signalled while it starts can die of it (nginx exits on
// SIGHUP until it has installed its handlers, some 30 ms into its start),
// so such a job starts on the rendered files and is signalled only after.
type startGate struct {
	remaining atomic.Int32
	open      chan struct{}
}

func (g *startGate) done() {
	if g.remaining.Add(-1) == 0 {
		close(g.open)
	}
}

// gateReloadTargets gives every job named by a watch's reload.job a start
// gate, and returns per watch the gate its first render opens (nil when it
// reloads no job).
func gateReloadTargets(cfg config.Config, specs []jobs.Spec) []*startGate {
	gates := map[string]*startGate{}
	perWatch := make([]*startGate, len(cfg.Watches))
	for i, w := range cfg.Watches {
		r := w.OnChange.Reload
		if r == nil || r.Job == "" {
			continue
		}
		g := gates[r.Job]
		if g == nil {
			g = &startGate{open: make(chan struct{})}
			gates[r.Job] = g
		}
		g.remaining.Add(1)
		perWatch[i] = g
	}
	for k := range specs {
		if g := gates[specs[k].Name]; g != nil {
			specs[k].StartGate = g.open
		}
	}
	return perWatch
}

// watch follows one Consul service and, after each debounced change,
// renders its files and reloads what reads them.
type watch struct {
	cfg     config.Watch
	watcher discovery.Watcher
	log     *slog.Logger
	jobs    map[string]*jobs.Job
	starter *jobs.Reaper
	environ []string
	// instancesFile is where the instances are written for onChange.run.
	instancesFile string
	// firstRendered opens the reload job's start gate, once.
	firstRendered func()
	// applied is told of each set applied (telemetry); never nil.
	applied func(discovery.Snapshot)
}

// buildWatches builds the watches; stateDir holds the instance files of
// onChange.run (pilot's private temporary directory); applied is told of
// each set a watch applied.
func buildWatches(cfg config.Config, client *consul.Client, js []*jobs.Job, gates []*startGate, reaper *jobs.Reaper, environ []string, stateDir string, log *slog.Logger, applied func(discovery.Snapshot)) ([]*watch, error) {
	byName := make(map[string]*jobs.Job, len(js))
	for _, j := range js {
		byName[j.Name()] = j
	}
	var out []*watch
	for i, wc := range cfg.Watches {
		wlog := log.With("watch", wc.Service)
		watcher, err := consul.NewWatcher(client, consul.WatcherOptions{}, wlog)
		if err != nil {
			return nil, &ConfigError{fmt.Errorf("watches[%d]: %w", i, err)}
		}
		w := &watch{cfg: wc, watcher: watcher, log: wlog, jobs: byName, starter: reaper, environ: environ,
			firstRendered: func() {}, applied: applied}
		if g := gates[i]; g != nil {
			w.firstRendered = sync.OnceFunc(g.done)
		}
		if wc.OnChange.Run != "" {
			w.instancesFile = filepath.Join(stateDir, fmt.Sprintf("watch-%d-%s.json", i, fileSafe(wc.Service)))
		}
		out = append(out, w)
	}
	return out, nil
}

func (w *watch) run(ctx context.Context) {
	spec := discovery.WatchSpec{Service: w.cfg.Service, Tag: w.cfg.Tag, Datacenter: w.cfg.Datacenter,
		PassingOnly: *w.cfg.PassingOnly}
	if r := w.cfg.OnChange.Reload; r != nil && r.Job != "" {
		wait := time.AfterFunc(firstRenderWait, func() {
			w.log.Warn("watch: no instances yet; starting the job it reloads on the files it has", "job", r.Job, "after", firstRenderWait)
			w.firstRendered()
		})
		defer wait.Stop()
	}
	updates := make(chan discovery.Snapshot, 1)
	watching := make(chan struct{})
	go func() {
		defer close(watching)
		err := w.watcher.Watch(ctx, spec, func(s discovery.Snapshot) {
			select { // the latest snapshot wins; the debounce sees no backlog
			case <-updates:
			default:
			}
			updates <- s
		})
		if err != nil {
			w.log.Error("watch: cannot start", "err", err)
		}
	}()
	defer func() { <-watching }()
	w.debounce(ctx, updates, func(s discovery.Snapshot) {
		w.apply(ctx, s)
		w.firstRendered()
	})
}

// debounce applies a snapshot once no newer one came for Debounce.Min, and
// at the latest Debounce.Max after the first of a burst. The first snapshot
// is applied at once: it is the state at start, not a burst of changes.
func (w *watch) debounce(ctx context.Context, updates <-chan discovery.Snapshot, apply func(discovery.Snapshot)) {
	var (
		pending    *discovery.Snapshot
		burstBegan time.Time
		fire       <-chan time.Time
		applied    bool
	)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case s := <-updates:
			if !applied {
				applied = true
				apply(s)
				continue
			}
			if pending == nil {
				burstBegan = time.Now()
			}
			pending = &s
			wait := min(w.cfg.Debounce.Min, time.Until(burstBegan.Add(w.cfg.Debounce.Max)))
			if wait <= 0 {
				apply(s)
				pending, fire = nil, nil
				continue
			}
			t.Reset(wait) // since Go 1.23 no stale tick survives a Reset
			fire = t.C
		case <-fire:
			apply(*pending)
			pending, fire = nil, nil
		}
	}
}

// apply renders every file of the watch and reloads when one changed.
func (w *watch) apply(ctx context.Context, s discovery.Snapshot) {
	w.log.Info("watch: instances changed", "instances", len(s.Instances))
	w.runJob(s)
	changed := false
	if r := w.cfg.OnChange.Render; r != nil {
		var content []byte
		var err error
		switch r.Format {
		case "nginx":
			content, err = render.NGINX(s, render.NGINXOptions{Name: r.Name})
		case "traefik":
			content, err = render.Traefik(s, render.TraefikOptions{Name: r.Name})
		}
		changed = w.write(r.Dest, content, err) || changed
	}
	for _, t := range w.cfg.OnChange.Templates {
		src, err := os.ReadFile(t.Source)
		var content []byte
		if err == nil {
			content, err = render.Template(src, s)
		}
		changed = w.write(t.Dest, content, err) || changed
	}
	if changed || (w.cfg.OnChange.Render == nil && len(w.cfg.OnChange.Templates) == 0) {
		w.reload(ctx)
	}
	w.applied(s)
}

// runJob writes the instances file and triggers onChange.run's job with
// the file's path and a summary in its environment.
func (w *watch) runJob(s discovery.Snapshot) {
	name := w.cfg.OnChange.Run
	if name == "" {
		return
	}
	content, err := render.JSON(s)
	if err == nil {
		// Readable by a job that runs as another user (user:); the set is
		// no secret, Consul's catalog shows it to anyone.
		_, err = render.Apply(w.instancesFile, content, 0o644)
	}
	if err != nil {
		w.log.Error("watch: not running the job: cannot write the instances file", "job", name, "err", err)
		return
	}
	hostPorts := make([]string, len(s.Instances))
	for i, in := range s.Instances {
		hostPorts[i] = in.HostPort()
	}
	w.jobs[name].Trigger([]string{
		"PILOT_WATCH_SERVICE=" + s.Service,
		"PILOT_WATCH_INSTANCES_FILE=" + w.instancesFile,
		"PILOT_WATCH_INSTANCE_COUNT=" + strconv.Itoa(len(s.Instances)),
		"PILOT_WATCH_ADDRESSES=" + strings.Join(hostPorts, ","),
	})
	w.log.Info("watch: run triggered", "job", name)
}

// fileSafe keeps the letters, digits, '-', '_' and '.' of a service name,
// for a file name.
func fileSafe(name string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r == '.' || r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
			return r
		}
		return '_'
	}, name)
}

// write applies content to dest unless rendering failed, in which case the
// last good file stays.
func (w *watch) write(dest string, content []byte, renderErr error) bool {
	if renderErr != nil {
		w.log.Error("watch: render failed; keeping the last good file", "dest", dest, "err", renderErr)
		return false
	}
	changed, err := render.Apply(dest, content, 0o644)
	if err != nil {
		w.log.Error("watch: cannot write", "dest", dest, "err", err)
		return false
	}
	if changed {
		w.log.Info("watch: rendered", "dest", dest)
	}
	return changed
}

func (w *watch) reload(ctx context.Context) {
	r := w.cfg.OnChange.Reload
	if r == nil {
		return
	}
	if r.Job != "" {
		sig := syscall.Signal(r.Signal)
		w.jobs[r.Job].Forward(sig)
		w.log.Info("watch: reload signal sent", "job", r.Job, "signal", sig)
		return
	}
	delay := reloadBackoff
	for attempt := 1; attempt <= reloadAttempts; attempt++ {
		err := w.runReload(ctx, r)
		if err == nil {
			w.log.Info("watch: reloaded", "attempt", attempt)
			return
		}
		w.log.Warn("watch: reload failed", "attempt", attempt, "of", reloadAttempts, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay *= 2
	}
}

// runReload runs the reload command in its own process group, killed with
// the group at the timeout.
func (w *watch) runReload(ctx context.Context, r *config.Reload) error {
	ctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.Exec[0], r.Exec[1:]...)
	cmd.Env = w.environ
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return unix.Kill(-cmd.Process.Pid, unix.SIGKILL) }
	cmd.WaitDelay = time.Second
	if err := w.starter.Start(cmd); err != nil {
		return err
	}
	err := w.starter.Wait(cmd)
	if ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("killed at its timeout %s", r.Timeout)
	}
	return err
}
