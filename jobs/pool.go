package jobs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// A pool is a Job run as Spec.Instances copies (cluster mode). It composes
// plain Jobs rather than making the state machine N-ary: each instance is a
// Job of its own (its process group, its restarts, its probe, its log lines
// tagged "instance"), publishing on the pool's private bus. The pool's Job
// runs no process itself; its loop waits on the dependencies, starts the
// instances, and publishes on the shared bus one aggregate state for the job
// as a whole, so that dependants, services and the supervisor see one job:
//
//   - healthy while any instance is healthy, else running while any runs,
//     else the most advanced of unhealthy, starting, restarting, stopping;
//   - final once every instance has ended for good (stopped, or given up by
//     its restart policy), with the exit of the last one to end.
//
// A rolling reload (Roll) replaces the instances one by one: start a new
// one, wait until it is ready, then stop an old one through its normal stop
// sequence, so the pool never has fewer ready instances than before. With
// MaxMemory, the pool samples each instance and replaces one that stays
// above it through the same path, instead of the instance restarting in
// place.
type pool struct {
	bus *Bus // private: the instances publish here
	sub *Subscription
	// poke wakes the loop after a roll changed the members.
	poke chan struct{}
	// rolling serialises rolls (operator, config reload, maxMemory).
	rolling sync.Mutex

	mu sync.Mutex
	// template is the spec new instances are made from; a roll with a new
	// spec replaces it.
	template Spec
	slots    []*Job // by instance index
	// incoming is the instance a roll is bringing up, retiring the ones it
	// is stopping: both count in the aggregate and get signals.
	incoming *Job
	retiring []*Job
	started  bool
	stopping bool
	// runs, restarts and lastExit of instances gone, so the pool's counts
	// cover its whole life.
	goneRuns, goneRestarts int
	lastExit               *ExitStatus
	lastRoll               *RollReport
	// published is the aggregate last published on the shared bus.
	published StateChange
	members   sync.WaitGroup
}

// RollReport is the outcome of a pool's latest rolling reload.
type RollReport struct {
	At   time.Time
	Took time.Duration
	// Replaced counts the instances replaced before the roll ended.
	Replaced int
	// Err is why it failed; "" when it succeeded.
	Err string
}

// Errors of Roll.
var (
	ErrNotPool         = errors.New("not a cluster job (instances or listen)")
	ErrRollInProgress  = errors.New("a rolling reload of this job is in progress")
	ErrPoolNotStarted  = errors.New("the job has not started yet")
	errInstanceGone    = errors.New("ended before it was ready")
	errInstanceTimeout = errors.New("not ready in time")
)

func newPool(spec Spec) *pool {
	b := NewBus()
	return &pool{bus: b, sub: b.Subscribe(), poke: make(chan struct{}, 1), template: spec}
}

// member makes instance i from spec: no dependencies (the pool waited on
// them), no start gate, its own index in the environment, and no memory
// limit of its own (the pool replaces it instead).
func (j *Job) member(spec Spec, i int) *Job {
	spec.Instances, spec.instance = 0, i
	spec.After, spec.StartGate, spec.Main = nil, nil, false
	spec.Policy.MaxMemory = 0
	spec.Env = append(withoutKeys(spec.Env, "PILOT_INSTANCE"), "PILOT_INSTANCE="+strconv.Itoa(i))
	m := New(spec, Deps{Log: j.log, Reaper: j.reaper, Bus: j.pool.bus, Stdout: j.stdout, Stderr: j.stderr, Env: j.overlay})
	m.log = j.log.With("instance", i)
	m.status.Instance = i
	return m
}

func (j *Job) startMember(m *Job) {
	j.pool.members.Add(1)
	go func() {
		defer j.pool.members.Done()
		m.Run(context.Background()) // stopped explicitly
	}()
}

// all returns every instance that counts: the slots, the incoming one and
// the retiring ones. Hold p.mu.
func (p *pool) all() []*Job {
	out := slices.Clone(p.slots)
	if p.incoming != nil {
		out = append(out, p.incoming)
	}
	return append(out, p.retiring...)
}

func (p *pool) each(f func(*Job)) {
	p.mu.Lock()
	ms := p.all()
	p.mu.Unlock()
	for _, m := range ms {
		f(m)
	}
}

// runPool is Run for a pool.
func (j *Job) runPool(ctx context.Context) {
	p := j.pool
	defer close(j.done)
	defer p.members.Wait()
	defer func() {
		if j.deps != nil {
			j.bus.Unsubscribe(j.deps)
		}
	}()

	if !j.awaitStart(ctx) {
		return
	}
	p.mu.Lock()
	if !p.stopping {
		p.started = true
		for i := range p.template.Instances {
			m := j.member(p.template, i)
			p.slots = append(p.slots, m)
			j.startMember(m)
		}
	}
	p.mu.Unlock()

	ctxDone := ctx.Done()
	var memorySampled <-chan time.Time
	if j.spec.Policy.MaxMemory > 0 {
		sampler := time.NewTicker(memorySampleInterval)
		defer sampler.Stop()
		memorySampled = sampler.C
	}
	above := map[*Job]int{}
	for {
		select {
		case <-ctxDone:
			ctxDone = nil
			j.stopPool(syscall.SIGTERM)
			p.each((*Job).Kill)
		case ev := <-j.events:
			switch ev := ev.(type) {
			case evStop:
				j.stopPool(ev.Signal)
			case evKill:
				p.each((*Job).Kill)
			case evForward:
				p.each(func(m *Job) { m.Forward(ev.Signal) })
			}
		case <-p.sub.Ready():
			if j.aggregate(p.sub.Drain()) {
				return
			}
		case <-p.poke:
			if j.aggregate(nil) {
				return
			}
		case <-memorySampled:
			j.sampleMemory(above)
		}
	}
}

// awaitStart waits for the dependencies and the start gate; false when the
// pool was stopped or can never start (it is then final).
func (j *Job) awaitStart(ctx context.Context) bool {
	var depsReady <-chan struct{}
	gate := newDependencyGate(j.spec.After)
	if j.deps != nil {
		depsReady = j.deps.Ready()
		j.log.Info("waiting for dependencies", "after", fmt.Sprint(j.spec.After))
	}
	startGate := j.spec.StartGate
	for depsReady != nil || startGate != nil {
		select {
		case <-ctx.Done():
			j.endBeforeStart("")
			return false
		case ev := <-j.events:
			if _, ok := ev.(evStop); ok {
				j.endBeforeStart("")
				return false
			}
		case <-depsReady:
			switch gate.observe(j.deps.Drain()).(type) {
			case evNeverStart:
				j.log.Error("will never start: a dependency ended without reaching its state",
					"dependency", gate.blockedBy, "ended", gate.endedIn)
				j.endBeforeStart(fmt.Sprintf("dependency %s %s", gate.blockedBy.Job, gate.endedIn))
				return false
			case evStart:
				depsReady = nil
			}
		case <-startGate:
			startGate = nil
		}
	}
	return true
}

// endBeforeStart makes a pool that never started final, as a plain job's
// machine does (stopped, final).
func (j *Job) endBeforeStart(blocked string) {
	j.pool.mu.Lock()
	j.pool.stopping = true
	j.pool.mu.Unlock()
	j.mu.Lock()
	j.status.State, j.status.Final, j.status.Blocked = Stopped, true, blocked
	j.mu.Unlock()
	j.bus.Publish(StateChange{Job: j.spec.Name, State: Stopped, Final: true, At: time.Now()})
}

func (j *Job) stopPool(sig syscall.Signal) {
	j.stopRequested.Store(true)
	p := j.pool
	p.mu.Lock()
	p.stopping = true
	ms := p.all()
	p.mu.Unlock()
	for _, m := range ms {
		m.Stop(sig)
	}
	select { // an empty pool (every instance gone) has nothing to publish
	case p.poke <- struct{}{}:
	default:
	}
}

// aggregate folds the instances' states into the pool's status and
// publishes the aggregate when it moved, or when an instance's run ended
// (its exit is counted once, under the job's name). It reports whether the
// pool is final with nothing left running.
func (j *Job) aggregate(changes []StateChange) bool {
	p := j.pool
	var exit *ExitStatus
	for _, c := range changes {
		if c.Exit != nil {
			exit = c.Exit
		}
	}
	p.mu.Lock()
	if exit != nil {
		p.lastExit = exit
	}
	ms := p.all()
	st := Status{Name: j.spec.Name, Runs: p.goneRuns, Restarts: p.goneRestarts, LastExit: p.lastExit}
	rolling := p.incoming != nil
	p.mu.Unlock()

	best, final := Idle, true
	for _, m := range ms {
		ist := m.Status()
		st.Runs += ist.Runs
		st.Restarts += ist.Restarts
		if !ist.Final {
			final = false
		}
		if rank(ist.State) > rank(best) {
			best = ist.State
		}
		st.Instances = append(st.Instances, ist)
		if st.Pid == 0 && ist.Pid != 0 {
			st.Pid, st.Started = ist.Pid, ist.Started
		}
	}
	final = final && !rolling && (len(ms) > 0 || p.stoppingNow())
	state := best
	if final {
		state = Stopped
		if p.lastExit != nil && !j.stopRequested.Load() {
			state = endState(*p.lastExit)
		}
	}
	st.State, st.Final = state, final
	j.mu.Lock()
	st.Blocked = j.status.Blocked
	j.status = st
	j.mu.Unlock()

	if state != p.published.State || final != p.published.Final || exit != nil || p.published.At.IsZero() {
		c := StateChange{Job: j.spec.Name, State: state, Final: final, Exit: exit, At: time.Now()}
		if final && c.Exit == nil {
			c.Exit = p.lastExit
		}
		p.published = c
		j.bus.Publish(c)
	}
	return final
}

func (p *pool) stoppingNow() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopping
}

// endState is how a pool whose instances all ended on their own ended.
func endState(e ExitStatus) State {
	if e.Success() {
		return Succeeded
	}
	return Failed
}

// rank orders the states for the aggregate: the state that says the most
// about the pool's ability to serve wins.
func rank(s State) int {
	switch s {
	case Healthy:
		return 8
	case Running:
		return 7
	case Unhealthy:
		return 6
	case Starting:
		return 5
	case Restarting:
		return 4
	case Stopping:
		return 3
	case Idle:
		return 0
	}
	return 1 // the final states
}

// sampleMemory replaces, through a roll of its slot, an instance whose
// group RSS stayed above MaxMemory for memorySamples samples in a row.
func (j *Job) sampleMemory(above map[*Job]int) {
	p := j.pool
	p.mu.Lock()
	slots := slices.Clone(p.slots)
	p.mu.Unlock()
	for k := range above {
		if !slices.Contains(slots, k) {
			delete(above, k)
		}
	}
	for i, m := range slots {
		pid := m.Status().Pid
		if pid == 0 {
			delete(above, m)
			continue
		}
		rss := groupRSS(pid)
		if rss <= j.spec.Policy.MaxMemory {
			delete(above, m)
			continue
		}
		if above[m]++; above[m] < memorySamples {
			continue
		}
		delete(above, m)
		j.log.Warn("instance above maxMemory: replacing it", "instance", i, "rss", rss, "maxMemory", j.spec.Policy.MaxMemory)
		go func() {
			if err := j.rollSlots(context.Background(), nil, []int{i}, "maxMemory"); err != nil && !errors.Is(err, ErrRollInProgress) {
				j.log.Error("replacing the instance above maxMemory failed", "instance", i, "err", err)
			}
		}()
	}
}

// Roll replaces every instance, one at a time: start a new one, wait until
// it is ready (Healthy when the spec has a Probe, else Running) within
// ReadyTimeout, then stop the old one through its stop sequence. With next,
// the new instances run next (a config reload); its Instances may differ,
// and the pool grows or shrinks at the end. A new instance that is not
// ready in time, or ends, aborts the roll: it is stopped, the old instances
// keep serving, and the error says which. One roll runs at a time
// (ErrRollInProgress). why says what asked for it, for the log.
func (j *Job) Roll(ctx context.Context, next *Spec, why string) error {
	if j.pool == nil {
		return ErrNotPool
	}
	return j.rollSlots(ctx, next, nil, why)
}

// LastRoll is the outcome of the latest roll, nil before the first.
func (j *Job) LastRoll() *RollReport {
	if j.pool == nil {
		return nil
	}
	j.pool.mu.Lock()
	defer j.pool.mu.Unlock()
	return j.pool.lastRoll
}

// Pids returns the pids of the job's processes: a pool's every instance
// (incoming and retiring ones too), else the one run's.
func (j *Job) Pids() []int {
	if j.pool == nil {
		if pid := j.Status().Pid; pid != 0 {
			return []int{pid}
		}
		return nil
	}
	var pids []int
	j.pool.each(func(m *Job) {
		if pid := m.Status().Pid; pid != 0 {
			pids = append(pids, pid)
		}
	})
	return pids
}

// rollSlots rolls the given slots (nil: all) onto next (nil: the current
// template).
func (j *Job) rollSlots(ctx context.Context, next *Spec, only []int, why string) error {
	p := j.pool
	if !p.rolling.TryLock() {
		return ErrRollInProgress
	}
	defer p.rolling.Unlock()
	p.mu.Lock()
	if p.stopping {
		p.mu.Unlock()
		return ErrShuttingDown
	}
	if !p.started {
		p.mu.Unlock()
		return ErrPoolNotStarted
	}
	if next != nil {
		p.template = *next
	}
	template, have := p.template, len(p.slots)
	p.mu.Unlock()

	start := time.Now()
	j.log.Info("rolling reload: begin", "why", why, "instances", template.Instances)
	replaced, err := 0, error(nil)
	for i := range max(have, template.Instances) {
		if only != nil && !slices.Contains(only, i) {
			continue
		}
		if i >= template.Instances {
			err = j.retireSlot(ctx, i)
		} else {
			err = j.replaceSlot(ctx, template, i)
		}
		if err != nil {
			break
		}
		replaced++
	}
	if err == nil && only == nil && have > template.Instances {
		p.mu.Lock()
		p.slots = p.slots[:template.Instances]
		p.mu.Unlock()
	}
	report := &RollReport{At: start, Took: time.Since(start), Replaced: replaced}
	if err != nil {
		report.Err = err.Error()
		j.log.Error("rolling reload: failed; the instances not replaced keep serving", "why", why, "replaced", replaced, "err", err)
	} else {
		j.log.Info("rolling reload: done", "why", why, "replaced", replaced, "took", report.Took.Round(time.Millisecond))
	}
	p.mu.Lock()
	p.lastRoll = report
	p.mu.Unlock()
	j.wake()
	return err
}

func (j *Job) wake() {
	select {
	case j.pool.poke <- struct{}{}:
	default:
	}
}

// replaceSlot brings up a new instance i from spec, waits until it is
// ready, then stops the old one (if any still runs).
func (j *Job) replaceSlot(ctx context.Context, spec Spec, i int) error {
	p := j.pool
	sub := p.bus.Subscribe()
	defer p.bus.Unsubscribe(sub)
	p.mu.Lock()
	if p.stopping {
		p.mu.Unlock()
		return ErrShuttingDown
	}
	m := j.member(spec, i)
	p.incoming = m
	j.startMember(m)
	p.mu.Unlock()

	if err := m.awaitReady(ctx, sub, spec.ReadyTimeout, spec.Probe != nil); err != nil {
		m.Stop(syscall.SIGTERM)
		<-m.Done()
		m.RunPostStop(context.WithoutCancel(ctx))
		p.mu.Lock()
		p.incoming = nil
		p.goneRuns += m.Status().Runs
		p.mu.Unlock()
		j.wake()
		return fmt.Errorf("new instance %d %w", i, err)
	}

	p.mu.Lock()
	var old *Job
	if i < len(p.slots) {
		old = p.slots[i]
		p.slots[i] = m
	} else {
		p.slots = append(p.slots, m)
	}
	p.incoming = nil
	if old != nil {
		p.retiring = append(p.retiring, old)
	}
	p.mu.Unlock()
	if old != nil {
		j.stopRetired(ctx, old)
	}
	return nil
}

// retireSlot stops instance i, which the new spec no longer has.
func (j *Job) retireSlot(ctx context.Context, i int) error {
	p := j.pool
	p.mu.Lock()
	if i >= len(p.slots) {
		p.mu.Unlock()
		return nil
	}
	old := p.slots[i]
	p.retiring = append(p.retiring, old)
	p.mu.Unlock()
	j.stopRetired(ctx, old)
	return nil
}

func (j *Job) stopRetired(ctx context.Context, old *Job) {
	p := j.pool
	old.Stop(syscall.SIGTERM) // the job's own stopSignal wins
	<-old.Done()              // killed at its stopTimeout
	old.RunPostStop(context.WithoutCancel(ctx))
	st := old.Status()
	p.mu.Lock()
	p.retiring = slices.DeleteFunc(p.retiring, func(r *Job) bool { return r == old })
	p.goneRuns += st.Runs
	p.goneRestarts += st.Restarts
	p.mu.Unlock()
	j.wake()
}

// awaitReady waits until m is ready: Healthy with a probe, else Running.
func (m *Job) awaitReady(ctx context.Context, sub *Subscription, timeout time.Duration, probed bool) error {
	if timeout <= 0 {
		timeout = defaultReadyTimeout
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		st := m.Status()
		switch {
		case st.State == Healthy, !probed && st.State == Running:
			return nil
		case st.Final, st.State == Restarting, st.State == Failed:
			if st.LastExit != nil {
				return fmt.Errorf("%w (exit %s)", errInstanceGone, st.LastExit)
			}
			return errInstanceGone
		}
		select {
		case <-sub.Ready():
			sub.Drain()
		case <-m.Done():
		case <-deadline.C:
			return fmt.Errorf("%w: %s after %s", errInstanceTimeout, st.State, timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// defaultReadyTimeout is the readiness wait when the spec sets none.
const defaultReadyTimeout = 60 * time.Second
