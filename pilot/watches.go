package pilot

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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
	"github.com/nodepilot/pilot/telemetry"
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
	cfg config.Watch
	// name tells this watch from the others (watchNames), in its log
	// lines and its series.
	name    string
	watcher discovery.Watcher
	log     *slog.Logger
	jobs    map[string]*jobs.Job
	starter *jobs.Reaper
	environ []string
	// instancesFile is where the instances are written for onChange.run.
	instancesFile string
	// gate is the reload job's start gate, nil when the watch reloads no
	// job. Its first render opens it, or firstRenderWait without one;
	// gateClaimed makes sure only one of the two does, and says so.
	gate        *startGate
	gateClaimed atomic.Bool
	// afterFunc is time.AfterFunc (tests steer it).
	afterFunc func(time.Duration, func()) interface{ Stop() bool }
	// applied is told of each set applied (telemetry): the watch's name,
	// the instances in it and those skipped; never nil.
	applied func(watch string, instances, skipped int)
	// lastSkipped are the instances the last apply left out, so that each
	// is logged once, not at every change.
	lastSkipped []render.Skipped
}

// watchNames names each watch for its series and log lines
// (telemetry.WatchName): the service it follows, with "#N" added for the
// Nth of several watches of one service; unique within cfg.
func watchNames(ws []config.Watch) []telemetry.WatchName {
	taken := map[string]bool{}
	out := make([]telemetry.WatchName, len(ws))
	for i, w := range ws {
		name := w.Service
		for n := 2; taken[name]; n++ {
			name = fmt.Sprintf("%s#%d", w.Service, n)
		}
		taken[name] = true
		out[i] = telemetry.WatchName{Watch: name, Service: w.Service}
	}
	return out
}

// buildWatches builds the watches; stateDir holds the instance files of
// onChange.run (pilot's private temporary directory); applied is told of
// each set a watch applied.
func buildWatches(cfg config.Config, client *consul.Client, js []*jobs.Job, gates []*startGate, reaper *jobs.Reaper, environ []string, stateDir string, log *slog.Logger, applied func(watch string, instances, skipped int)) ([]*watch, error) {
	byName := make(map[string]*jobs.Job, len(js))
	for _, j := range js {
		byName[j.Name()] = j
	}
	names := watchNames(cfg.Watches)
	var out []*watch
	for i, wc := range cfg.Watches {
		wlog := log.With("watch", names[i].Watch)
		watcher, err := consul.NewWatcher(client, consul.WatcherOptions{}, wlog)
		if err != nil {
			return nil, &ConfigError{fmt.Errorf("watches[%d]: %w", i, err)}
		}
		w := &watch{cfg: wc, name: names[i].Watch, watcher: watcher, log: wlog, jobs: byName, starter: reaper, environ: environ,
			gate: gates[i], afterFunc: afterFunc, applied: applied}
		if wc.OnChange.Run != "" {
			w.instancesFile = filepath.Join(stateDir, fmt.Sprintf("watch-%d-%s.json", i, fileSafe(wc.Service)))
		}
		out = append(out, w)
	}
	return out, nil
}

func afterFunc(d time.Duration, f func()) interface{ Stop() bool } { return time.AfterFunc(d, f) }

// claimGate reports whether the caller is the one to open the reload
// job's start gate: true once, and never without a gate.
func (w *watch) claimGate() bool { return w.gate != nil && w.gateClaimed.CompareAndSwap(false, true) }

func (w *watch) run(ctx context.Context) {
	spec := discovery.WatchSpec{Service: w.cfg.Service, Tag: w.cfg.Tag, Datacenter: w.cfg.Datacenter,
		PassingOnly: *w.cfg.PassingOnly}
	stopWait := func() bool { return false }
	if w.gate != nil {
		job := w.cfg.OnChange.Reload.Job
		stopWait = w.afterFunc(firstRenderWait, func() {
			if w.claimGate() {
				w.log.Warn("watch: no set of instances from Consul yet; starting the job it reloads on the files it has", "job", job, "after", firstRenderWait)
				w.gate.done()
			}
		}).Stop
		defer stopWait()
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
		if w.claimGate() {
			stopWait()
			w.gate.done()
		}
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
// Instances that cannot be rendered safely are left out of everything
// (files, templates, onChange.run's instances), each logged once.
func (w *watch) apply(ctx context.Context, s discovery.Snapshot) {
	s, skipped := render.Routable(s)
	w.logSkipped(skipped)
	attrs := []any{"instances", len(s.Instances)}
	if len(skipped) > 0 {
		attrs = append(attrs, "skipped", len(skipped))
	}
	w.log.Info("watch: instances changed", attrs...)
	w.runJob(s)
	changed := false
	if r := w.cfg.OnChange.Render; r != nil {
		var content []byte
		var err error
		switch r.Format {
		case config.RenderNGINX:
			content, err = render.NGINX(s, render.NGINXOptions{Name: r.Name})
		case config.RenderTraefik:
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
	w.applied(w.name, len(s.Instances), len(skipped))
}

// logSkipped logs each skipped instance, unless the last apply skipped the
// very same ones: once per change of the skipped set, not per render.
func (w *watch) logSkipped(skipped []render.Skipped) {
	same := slices.EqualFunc(skipped, w.lastSkipped, func(a, b render.Skipped) bool {
		return a.Instance.ID == b.Instance.ID && a.Instance.Node == b.Instance.Node && a.Reason == b.Reason
	})
	w.lastSkipped = skipped
	if same {
		return
	}
	for _, sk := range skipped {
		w.log.Warn("watch: instance skipped: it cannot be rendered safely", "id", sk.Instance.ID, "node", sk.Instance.Node,
			"address", sk.Instance.Address, "port", sk.Instance.Port, "reason", sk.Reason)
	}
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
// file that is there stays (or none is written).
func (w *watch) write(dest string, content []byte, renderErr error) bool {
	if renderErr != nil {
		if _, err := os.Stat(dest); err == nil {
			w.log.Error("watch: render failed; keeping the file as it is", "dest", dest, "err", renderErr)
		} else {
			w.log.Error("watch: render failed; no file written (there is none yet)", "dest", dest, "err", renderErr)
		}
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
		j := w.jobs[r.Job]
		if j.Status().Pid == 0 {
			// Not started yet (the start gate holds it until the first
			// render), restarting or ended: it reads the files when it
			// starts.
			w.log.Debug("watch: not reloading: the job is not running; it reads the files when it starts", "job", r.Job)
			return
		}
		sig := syscall.Signal(r.Signal)
		j.Forward(sig)
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
