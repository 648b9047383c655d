package pilot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/nodepilot/pilot/jobs"
	"github.com/nodepilot/pilot/pilot/control"
)

// What cluster jobs (instances, listen) need of the core: the sockets
// pilot holds for them, the readiness their instances report through the
// Node agent, and rolling reloads.

// listenAddrsEnv tells the Node agent which address each inherited fd is
// bound to (a JSON array, fd 3 first), so that an unchanged app's
// listen(3000) takes the socket pilot holds.
const listenAddrsEnv = "PILOT_LISTEN_ADDRS"

// sockets are the listening sockets pilot binds for the jobs' `listen`,
// once: they stay open while the instances come and go, so the kernel
// queues every new connection for whichever instance accepts next, and no
// client is refused while an instance restarts or a rolling reload runs.
// pilot never accepts on them; it holds one descriptor each.
type sockets struct {
	mu   sync.Mutex
	held map[string]*heldSocket // by the address as the config writes it
}

type heldSocket struct {
	file  *os.File
	bound string // as bound: 127.0.0.1:3000, [::]:3000
}

// bind binds every address g's jobs listen on that pilot does not hold
// yet. A bind that fails names the job's listen entry; what this call bound
// is closed again, so a refused generation holds nothing new.
func (s *sockets) bind(g *generation) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held == nil {
		s.held = map[string]*heldSocket{}
	}
	var fresh []string
	var errs []error
	for i, p := range g.jobs {
		for k, addr := range p.identity.job.Listen {
			if s.held[addr] != nil {
				continue
			}
			h, err := listenFile(addr)
			if err != nil {
				errs = append(errs, fmt.Errorf("jobs[%d].listen[%d]: %w", i, k, err))
				continue
			}
			s.held[addr] = h
			fresh = append(fresh, addr)
		}
	}
	if len(errs) > 0 {
		for _, addr := range fresh {
			s.held[addr].file.Close()
			delete(s.held, addr)
		}
		return errors.Join(errs...)
	}
	return nil
}

// listenFile binds addr and keeps only a duplicate of the socket's
// descriptor: the net.Listener is closed, so pilot holds one fd and its
// runtime never polls the socket.
//
// The duplicate is made an *os.File while the socket is in blocking mode,
// then put back in non-blocking mode. An *os.File made of a non-blocking
// descriptor puts it in blocking mode at every Fd() — which os/exec calls
// at each start of an instance — and the mode belongs to the socket that
// all workers share: a worker whose event loop accepts until EAGAIN would
// then block in accept() until the next connection came.
func listenFile(addr string) (*heldSocket, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	raw, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		return nil, err
	}
	dup := -1
	if cerr := raw.Control(func(fd uintptr) { dup, err = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); cerr != nil {
		return nil, cerr
	}
	if err != nil {
		return nil, err
	}
	if err := unix.SetNonblock(dup, false); err != nil {
		unix.Close(dup)
		return nil, err
	}
	f := os.NewFile(uintptr(dup), "listen "+addr)
	if err := unix.SetNonblock(dup, true); err != nil {
		f.Close()
		return nil, err
	}
	return &heldSocket{file: f, bound: ln.Addr().String()}, nil
}

// release closes the sockets no job of g listens on. Call it once the jobs
// that used them have stopped.
func (s *sockets) release(g *generation) {
	keep := map[string]bool{}
	for _, p := range g.jobs {
		for _, addr := range p.identity.job.Listen {
			keep[addr] = true
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for addr, h := range s.held {
		if !keep[addr] {
			h.file.Close()
			delete(s.held, addr)
		}
	}
}

func (s *sockets) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for addr, h := range s.held {
		h.file.Close()
		delete(s.held, addr)
	}
}

// attach gives spec the sockets of addrs, as fds 3… named listen0…, and
// tells the agent where each is bound.
func (s *sockets) attach(spec *jobs.Spec, addrs []string) {
	if len(addrs) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	bound := make([]string, len(addrs))
	spec.Listeners = make([]jobs.Listener, len(addrs))
	for i, addr := range addrs {
		h := s.held[addr]
		spec.Listeners[i] = jobs.Listener{Name: "listen" + strconv.Itoa(i), File: h.file}
		bound[i] = h.bound
	}
	js, _ := json.Marshal(bound)
	spec.Env = append(withoutEnv(spec.Env, listenAddrsEnv), listenAddrsEnv+"="+string(js))
}

func withoutEnv(env []string, key string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		return len(kv) > len(key) && kv[:len(key)] == key && kv[len(key)] == '='
	})
}

// readiness holds what instances said through the Node agent: a process
// that called process.send('ready') is ready. A `readiness: message` job's
// probe waits on it.
type readiness struct {
	mu    sync.Mutex
	ready map[int]chan struct{}
}

func (r *readiness) ch(pid int) chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ready == nil {
		r.ready = map[int]chan struct{}{}
	}
	c := r.ready[pid]
	if c == nil {
		c = make(chan struct{})
		r.ready[pid] = c
	}
	return c
}

// markReady records that pid said it is ready; a probe waiting on it, or
// starting later, reports healthy.
func (r *readiness) markReady(pid int) {
	c := r.ch(pid)
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-c:
	default:
		close(c)
	}
}

// forget drops pid once its process is gone (pids are reused).
func (r *readiness) forget(pid int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.ready, pid)
}

// probe is a `readiness: message` job's probe: the run is healthy once its
// process said it is ready, then, when the job has a health check too, as
// that check says.
func (r *readiness) probe(health jobs.Probe) jobs.Probe {
	return func(ctx context.Context, pid int, report func(bool)) {
		defer r.forget(pid)
		select {
		case <-r.ch(pid):
		case <-ctx.Done():
			return
		}
		if health == nil {
			report(true)
			<-ctx.Done()
			return
		}
		health(ctx, pid, report)
	}
}

// reloadApp makes a rolling reload of a cluster job (pilot reload-app,
// POST /v1/jobs/{name}/reload, its reloadSignal). It holds the reload lock,
// so that a config reload does not replace the job under it.
func (c *core) reloadApp(ctx context.Context, name, why string) (*jobs.RollReport, error) {
	if !c.reloading.TryLock() {
		return nil, fmt.Errorf("job %s: %w", name, control.ErrReloadInProgress)
	}
	defer c.reloading.Unlock()
	j := c.sup.job(name)
	if j == nil {
		return nil, fmt.Errorf("job %q: %w", name, control.ErrUnknownJob)
	}
	return c.roll(ctx, j, nil, why)
}

// roll runs j's rolling reload onto next (nil: the same spec) and counts it.
func (c *core) roll(ctx context.Context, j *jobs.Job, next *jobs.Spec, why string) (*jobs.RollReport, error) {
	err := j.Roll(ctx, next, why)
	switch {
	case errors.Is(err, jobs.ErrNotPool):
		return nil, fmt.Errorf("job %q: %w: %w", j.Name(), control.ErrNotCluster, err)
	case errors.Is(err, jobs.ErrRollInProgress):
		return nil, fmt.Errorf("job %q: %w", j.Name(), control.ErrReloadInProgress)
	case errors.Is(err, jobs.ErrShuttingDown):
		return nil, errShuttingDown
	case errors.Is(err, jobs.ErrPoolNotStarted):
		return nil, fmt.Errorf("job %q: %w", j.Name(), control.ErrJobNotRunning)
	}
	result := "ok"
	if err != nil {
		result = "failed"
	}
	if in := c.inst.Load(); in != nil {
		in.rolls.WithLabelValues(j.Name(), result).Inc()
	}
	return j.LastRoll(), err
}

// rollOnSignal is a job's reloadSignal: a rolling reload of every job that
// names sig, but those in skip (a config reload rolled them already).
func (c *core) rollOnSignal(sig syscall.Signal, skip []string) {
	for _, j := range c.sup.current() {
		if j.Spec().ReloadSignal != sig || slices.Contains(skip, j.Name()) {
			continue
		}
		c.log.Info("received signal: rolling reload", "signal", sig, "job", j.Name())
		if _, err := c.reloadApp(context.Background(), j.Name(), "signal "+unix.SignalName(sig)); err != nil {
			c.log.Error("rolling reload on signal failed", "job", j.Name(), "err", err)
		}
	}
}
