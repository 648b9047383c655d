package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nodepilot/pilot/jobs/output"
)

// Job supervises one command. Its Run loop owns the process and the state
// machine; everything else talks to it through events.
type Job struct {
	spec   Spec
	log    *slog.Logger
	reaper *Reaper
	bus    *Bus
	deps   *Subscription // nil when the job waits on nothing
	stdout *output.Sink
	stderr *output.Sink
	// overlay is putenv's environment, read at each start; nil: none.
	overlay *EnvOverlay
	// pool runs the job as Spec.Instances copies; nil for a plain job.
	pool *pool

	events chan event
	done   chan struct{}

	// triggerEnv is the latest trigger's environment, added at each
	// spawn; only Run's goroutine touches it.
	triggerEnv []string

	// stopRequested is set by Stop (or Run's ctx): a run failing after it
	// is being stopped, not failing, for the log's level.
	stopRequested atomic.Bool

	mu     sync.Mutex
	status Status
}

// Status is a snapshot of a job for logs, /status and tests.
type Status struct {
	Name  string
	State State
	Final bool
	Pid   int // 0 when no process runs
	// Started is when the running process started; zero when none runs.
	Started time.Time
	// Runs counts the runs started (and those that could not start for
	// good); Restarts those of them that replaced a run that ended —
	// restart policy, onUnhealthy, maxMemory, a triggered job's retry —
	// not periodic ticks nor triggers.
	Runs, Restarts int
	LastExit       *ExitStatus
	// Blocked says why a job will never start, as "dependency migrate
	// failed"; "" for a job that was not blocked.
	Blocked string
	// Instance is a pool instance's index (PILOT_INSTANCE).
	Instance int
	// Instances are a pool's instances (Spec.Instances), by index, then an
	// instance a rolling reload is bringing up and those it is stopping;
	// the fields above are then the pool's aggregate (Pid and Started:
	// the first instance's that runs). nil for a plain job.
	Instances []Status
}

// Deps are the shared services a Job uses.
type Deps struct {
	Log    *slog.Logger
	Reaper *Reaper
	Bus    *Bus
	Stdout *output.Sink
	Stderr *output.Sink
	// Env is the environment set at run time (putenv), applied over the
	// Spec's Env at each start of a run or hook; nil: none.
	Env *EnvOverlay
}

// New builds a job. When the job has dependencies it subscribes to the bus
// at once, and so learns the latest state of every job already there: a job
// created after its dependency reached the awaited state starts without
// waiting for it to get there again.
func New(spec Spec, d Deps) *Job {
	j := &Job{
		spec:    spec,
		log:     d.Log.With("job", spec.Name),
		reaper:  d.Reaper,
		bus:     d.Bus,
		stdout:  d.Stdout,
		stderr:  d.Stderr,
		overlay: d.Env,
		events:  make(chan event, 8),
		done:    make(chan struct{}),
		status:  Status{Name: spec.Name},
	}
	if len(spec.After) > 0 {
		j.deps = d.Bus.Subscribe()
	}
	if spec.Instances > 0 {
		j.pool = newPool(spec)
	}
	return j
}

// Succeed makes j the restart of prev, a job of the same name an operator
// restarted: its run and restart counts go on from prev's, that restart
// counted. Call it before Run.
func (j *Job) Succeed(prev Status) {
	if j.pool != nil { // the aggregate sums the instances over this
		j.pool.mu.Lock()
		j.pool.goneRuns, j.pool.goneRestarts = prev.Runs, prev.Restarts+1
		j.pool.mu.Unlock()
	}
	j.mu.Lock()
	j.status.Runs, j.status.Restarts = prev.Runs, prev.Restarts+1
	j.mu.Unlock()
}

func (j *Job) Name() string { return j.spec.Name }

// Spec is the job's spec; a pool's is the one its new instances are made
// from, which a roll onto a new spec replaces (its Name, After and Main
// stay those the job was made with).
func (j *Job) Spec() Spec {
	if j.pool != nil {
		j.pool.mu.Lock()
		defer j.pool.mu.Unlock()
		return j.pool.template
	}
	return j.spec
}

// Done is closed when Run has returned: the job is final and its process gone.
func (j *Job) Done() <-chan struct{} { return j.done }

func (j *Job) Status() Status {
	j.mu.Lock()
	st := j.status
	j.mu.Unlock()
	if j.pool != nil { // the instances as they stand now, not at the last aggregate
		st.Instances = nil
		j.pool.each(func(m *Job) { st.Instances = append(st.Instances, m.Status()) })
	}
	return st
}

// Stop asks the job to stop for good: preStop, then the stop signal (the
// job's own, else sig), then KILL at its stopTimeout. Wait on Done.
func (j *Job) Stop(sig syscall.Signal) {
	j.stopRequested.Store(true)
	j.send(evStop{Signal: sig})
}

// Kill sends SIGKILL to the job's group now, for a shutdown past its deadline.
func (j *Job) Kill() { j.send(evKill{}) }

// Trigger asks a triggered job (Policy.Triggered) for one run with env
// added to its environment. A trigger during a run, a retry's backoff or
// before the dependencies are met is kept, and later ones coalesce with it:
// the next run serves them all with the latest env.
func (j *Job) Trigger(env []string) { j.send(evTrigger{Env: env}) }

// Forward passes sig on to the job's process group if a process runs.
func (j *Job) Forward(sig syscall.Signal) { j.send(evForward{Signal: sig}) }

func (j *Job) send(ev event) {
	select {
	case j.events <- ev:
	case <-j.done:
	}
}

// Run runs the job until it is final and its process is gone. Cancelling
// ctx stops the job as Stop then Kill would.
func (j *Job) Run(ctx context.Context) {
	if j.pool != nil {
		j.runPool(ctx)
		return
	}
	defer close(j.done)
	j.mu.Lock()
	runs, restarts := j.status.Runs, j.status.Restarts // Succeed's
	j.mu.Unlock()
	l := &loop{job: j, m: machine{policy: j.spec.Policy, runs: runs, restarts: restarts}, exits: make(chan evExited, 1),
		preStopped: make(chan struct{}, 1), verdicts: make(chan bool), stopProbe: func() {}}
	l.hookCtx, l.cancelHooks = context.WithCancel(context.Background())
	defer func() {
		l.stopProbe()
		l.cancelHooks()
		l.restart.stop()
		l.timeout.stop()
		l.kill.stop()
		if l.ticker != nil {
			l.ticker.Stop()
		}
		l.background.Wait()
		if j.deps != nil {
			j.bus.Unsubscribe(j.deps)
		}
	}()

	var depsReady <-chan struct{}
	gate := newDependencyGate(j.spec.After)
	depsMet, startGate := j.deps == nil, j.spec.StartGate
	startIfClear := func() {
		if depsMet && startGate == nil {
			l.apply(evStart{})
		}
	}
	if !depsMet {
		depsReady = j.deps.Ready()
		j.log.Info("waiting for dependencies", "after", fmt.Sprint(j.spec.After))
	}
	startIfClear()
	ctxDone := ctx.Done()
	var memorySampled <-chan time.Time
	if j.spec.Policy.MaxMemory > 0 {
		sampler := time.NewTicker(memorySampleInterval)
		defer sampler.Stop()
		memorySampled = sampler.C
	}

	for !l.m.done() {
		select {
		case <-ctxDone:
			ctxDone = nil
			j.stopRequested.Store(true)
			l.apply(evStop{Signal: syscall.SIGTERM})
			l.apply(evKill{})
		case ev := <-j.events:
			if t, ok := ev.(evTrigger); ok {
				j.triggerEnv = t.Env
			}
			l.apply(ev)
		case ev := <-l.exits:
			l.stopProbe()
			l.proc = nil
			l.timeout.stop()
			l.kill.stop()
			l.apply(ev)
		case <-depsReady:
			switch ev := gate.observe(j.deps.Drain()); ev.(type) {
			case evNeverStart:
				j.log.Error("will never start: a dependency ended without reaching its state",
					"dependency", gate.blockedBy, "ended", gate.endedIn)
				j.mu.Lock()
				j.status.Blocked = fmt.Sprintf("dependency %s %s", gate.blockedBy.Job, gate.endedIn)
				j.mu.Unlock()
				depsReady = nil
				l.apply(ev)
			case evStart:
				depsReady, depsMet = nil, true
				startIfClear()
			}
		case <-startGate:
			startGate = nil
			startIfClear()
		case <-l.restart.C:
			l.restart.stop()
			l.apply(evRestartDue{})
		case <-l.timeout.C:
			l.timeout.stop()
			l.apply(evTimeout{})
		case <-l.kill.C:
			l.kill.stop()
			l.apply(evKillDue{})
		case <-l.tickC():
			l.apply(evTick{})
		case <-l.preStopped:
			l.apply(evPreStopped{})
		case healthy := <-l.verdicts:
			if l.proc != nil {
				l.apply(evHealth{Healthy: healthy})
			}
		case <-memorySampled:
			if l.proc != nil {
				rss := groupRSS(l.proc.pgid)
				j.log.Debug("memory sample", "rss", rss, "maxMemory", j.spec.Policy.MaxMemory)
				l.apply(evMemorySample{RSS: rss})
			}
		}
	}
}

// dependencyGate tracks which of a job's dependencies are still awaited.
type dependencyGate struct {
	pending map[string]Dependency
	// blockedBy is set when a dependency can no longer be met, and endedIn
	// to the final state it ended in instead.
	blockedBy Dependency
	endedIn   State
}

func newDependencyGate(after []Dependency) *dependencyGate {
	g := &dependencyGate{pending: make(map[string]Dependency, len(after))}
	for _, d := range after {
		g.pending[d.Job] = d
	}
	return g
}

// observe takes state changes and returns evStart once every dependency is
// met, evNeverStart once one ended without meeting its state, else nil.
// Changes replayed from the bus count as live ones: a dependency already in
// its state meets it, one already final in another blocks the job.
func (g *dependencyGate) observe(changes []StateChange) event {
	for _, c := range changes {
		d, waiting := g.pending[c.Job]
		switch {
		case !waiting:
		case c.reaches(d.State):
			delete(g.pending, c.Job)
		case c.Final:
			g.blockedBy, g.endedIn = d, c.State
			return evNeverStart{}
		}
	}
	if len(g.pending) == 0 {
		return evStart{}
	}
	return nil
}

// reaches reports whether a job that made change c has reached the awaited
// state. A late subscriber hears only each job's latest change (Bus), so the
// states that can only follow the awaited one count too:
//   - "started" (Running) is reached by a run that is up whatever its health
//     verdict, healthy or unhealthy, as the verdict comes after running;
//   - "succeeded" is reached by a periodic or triggered job idle after a good
//     run: it publishes succeeded then idle at once, and only that idle
//     carries no exit (a failed run's idle carries it; no idle is published
//     before the first run).
//
// Live changes are unaffected: the awaited state always comes first.
func (c StateChange) reaches(awaited State) bool {
	switch {
	case c.State == awaited:
		return true
	case awaited == Running:
		return c.State == Healthy || c.State == Unhealthy
	case awaited == Succeeded:
		return c.State == Idle && c.Exit == nil
	}
	return false
}

// memorySampleInterval paces maxMemory's samples: with memorySamples in a
// row, a job is restarted after about 6 s above its limit.
const memorySampleInterval = 2 * time.Second

// loop is the mutable side of Run: the process, the timers and the machine.
type loop struct {
	job        *Job
	m          machine
	proc       *process
	exits      chan evExited
	restart    timer
	timeout    timer
	kill       timer
	ticker     *time.Ticker
	preStopped chan struct{}
	// verdicts carries the probe's health changes for the current run;
	// stopProbe ends the probe of the run.
	verdicts  chan bool
	stopProbe func()

	hookCtx     context.Context
	cancelHooks context.CancelFunc
	// background tracks output drains and hooks so Run never returns
	// before they do.
	background sync.WaitGroup
}

func (l *loop) tickC() <-chan time.Time {
	if l.ticker == nil {
		return nil
	}
	return l.ticker.C
}

// apply feeds ev to the machine and performs the actions, feeding back the
// events that actions produce (a spawn's outcome) before anything else.
func (l *loop) apply(ev event) {
	queue := []event{ev}
	for len(queue) > 0 {
		var acts []action
		l.m, acts = next(l.m, queue[0])
		queue = queue[1:]
		for _, a := range acts {
			if fb := l.perform(a); fb != nil {
				queue = append(queue, fb)
			}
		}
	}
}

func (l *loop) perform(a action) event {
	j := l.job
	switch a := a.(type) {
	case actSpawn:
		return l.spawn()
	case actPublish:
		j.mu.Lock()
		j.status.State, j.status.Final = a.State, a.Final
		j.status.Runs, j.status.Restarts = l.m.runs, l.m.restarts
		if a.Exit != nil {
			j.status.LastExit = a.Exit
		}
		if l.proc == nil {
			j.status.Pid, j.status.Started = 0, time.Time{}
		}
		j.mu.Unlock()
		args := []any{"state", a.State}
		if a.Exit != nil {
			args = append(args, "exit", a.Exit.Code)
		}
		if a.Final {
			args = append(args, "final", true)
		}
		j.log.Debug("state", args...)
		j.bus.Publish(StateChange{Job: j.spec.Name, State: a.State, Final: a.Final, Exit: a.Exit, At: time.Now()})
	case actScheduleRestart:
		l.restart.arm(a.After)
	case actCancelRestart:
		l.restart.stop()
	case actArmTimeout:
		l.timeout.arm(a.After)
	case actArmKill:
		l.kill.arm(a.After)
	case actStartTicker:
		l.ticker = time.NewTicker(a.Every)
	case actRunPreStop:
		l.background.Add(1)
		go func() {
			defer l.background.Done()
			j.runHook(l.hookCtx, "preStop", j.spec.PreStop)
			l.preStopped <- struct{}{}
		}()
	case actSignal:
		if l.proc != nil {
			j.log.Info("sending signal", "signal", a.Signal, "pgid", l.proc.pgid)
			l.proc.signal(a.Signal)
		}
	case actKill:
		if l.proc != nil {
			j.log.Warn("sending SIGKILL to the process group", "pgid", l.proc.pgid)
			l.proc.signal(syscall.SIGKILL)
		}
	case actLog:
		j.log.Log(context.Background(), a.Level, a.Msg, a.Args...)
	}
	return nil
}

func (l *loop) spawn() event {
	j := l.job
	p, err := j.start(func(pid int) {
		j.log.Log(context.Background(), j.runLevel(true), "started", "pid", pid)
	})
	if errors.Is(err, ErrShuttingDown) {
		return evSpawnRefused{}
	}
	if err != nil {
		status, transient := classifyStartError(err)
		if !transient {
			j.log.Error("cannot start", "err", err, "exit", status.Code)
			if nf := (*notFoundError)(nil); errors.As(err, &nf) {
				j.log.Debug("command looked up in PATH", "command", nf.name, "PATH", nf.path)
			}
		}
		return evSpawnFailed{Status: status, Transient: transient, Jitter: rand.Float64()}
	}
	l.proc = p
	j.mu.Lock()
	j.status.Pid, j.status.Started = p.pid, p.started
	j.mu.Unlock()
	l.startProbe()
	l.background.Add(1)
	go func() {
		defer l.background.Done()
		status := p.wait(j.reaper)
		uptime := time.Since(p.started)
		// The exit line comes after the run's last output line, but a
		// descendant holding the output open must not hold up the exit:
		// after exitLogWait it is reported anyway, and the output drains on.
		// Raw output has nothing to drain.
		drained := make(chan struct{})
		if p.finishOutput == nil {
			close(drained)
		} else {
			go func() {
				defer close(drained)
				p.finishOutput()
			}()
			wait := time.NewTimer(exitLogWait)
			select {
			case <-drained:
			case <-wait.C:
			}
			wait.Stop()
		}
		attrs := []any{"pid", p.pid, "code", status.Code}
		if status.Signal != 0 {
			attrs = append(attrs, "signal", syscall.Signal(status.Signal)) // by name in pilot's log
		}
		j.log.Log(context.Background(), j.runLevel(status.Success()), "exited", append(attrs, "uptime", uptime)...)
		l.exits <- evExited{Status: status, Uptime: uptime, Jitter: rand.Float64()}
		<-drained
	}()
	return evSpawned{}
}

// exitLogWait bounds how long a run's exit waits for its output to drain,
// so that its "exited" line follows its last output line.
const exitLogWait = 200 * time.Millisecond

// runLevel is the level of a run's "started" and "exited" lines: debug
// for the routine runs of a periodic or triggered job, warn for a run that
// failed while no stop was asked for, info otherwise.
func (j *Job) runLevel(ok bool) slog.Level {
	switch {
	case !ok && !j.stopRequested.Load():
		return slog.LevelWarn
	case j.spec.Policy.Every > 0 || j.spec.Policy.Triggered:
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// startProbe runs the job's health probe for the run just started. Its
// verdicts reach the loop through l.verdicts; stopProbe cancels it and waits
// until it has returned, so a verdict never outlives its run.
func (l *loop) startProbe() {
	probe := l.job.spec.Probe
	if probe == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		probe(ctx, l.proc.pid, func(healthy bool) {
			select {
			case l.verdicts <- healthy:
			case <-ctx.Done():
			}
		})
	}()
	l.stopProbe = func() {
		cancel()
		<-done
		l.stopProbe = func() {}
	}
}

// timer is a one-shot timer whose channel is nil while disarmed, so a
// select on it blocks.
type timer struct {
	t *time.Timer
	C <-chan time.Time
}

func (t *timer) arm(d time.Duration) {
	t.stop()
	t.t = time.NewTimer(d)
	t.C = t.t.C
}

func (t *timer) stop() {
	if t.t != nil {
		t.t.Stop()
		t.t, t.C = nil, nil
	}
}
