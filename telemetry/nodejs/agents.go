package nodejs

import (
	"bytes"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

//go:embed agent.js
var agentJS []byte

// File names inside the directory given to New.
const (
	agentFile  = "agent.js"
	socketFile = "agent.sock"
)

// Environment variables the agent reads (and removes from process.env).
const (
	envSocket = "PILOT_NODE_AGENT_SOCKET"
	envToken  = "PILOT_NODE_AGENT_TOKEN"
	envOption = "PILOT_NODE_AGENT_OPTION" // the exact text appended to NODE_OPTIONS
	envNodeOp = "NODE_OPTIONS"
)

// Environment of cluster mode, which pilot sets for the app (the agent
// reads it and leaves it in place; see doc.go).
const (
	envListenFDs   = "LISTEN_FDS"
	envListenNames = "LISTEN_FDNAMES"
	envListenAddrs = "PILOT_LISTEN_ADDRS"
	envInstance    = "PILOT_INSTANCE"
	envDrainGrace  = "PILOT_DRAIN_GRACE_MS" // a test knob; 1000 when unset
)

// connectWarnAfter is how long a job's process may run without its agent
// connecting before pilot warns (once per job).
const connectWarnAfter = 10 * time.Second

// Options are what New needs from pilot besides the directory, registry and
// logger.
type Options struct {
	// Pids returns the pids of the job's current processes (all instances);
	// a connecting process is accepted when it is one of them. (A descendant
	// of one is refused, as before cluster mode: only the processes pilot
	// started report, see doc.go.) Nil means no job has a process.
	Pids func(job string) []int
	// OnEvent, when set, is called (from the connection's goroutine; must
	// not block long) for each listening/ready report and when a verified
	// connection ends.
	OnEvent func(Event)
}

// EventKind says what a process reported.
type EventKind string

const (
	// EventListening: the process listens on the inherited sockets in FDs
	// (every one it listens on so far, ascending).
	EventListening EventKind = "listening"
	// EventReady: the app called process.send('ready') (PM2's convention).
	EventReady EventKind = "ready"
	// EventGone: the process's verified connection ended (it exited, or
	// pilot is stopping).
	EventGone EventKind = "gone"
)

// Event is one report from a job's process, for pilot's rolling reload.
type Event struct {
	Job      string
	Instance int // PILOT_INSTANCE of the process, -1 when it has none
	Pid      int // the peer's pid (SO_PEERCRED), not the one the agent claims
	Kind     EventKind
	FDs      []int // EventListening only
}

// Agents hands the agent to Node jobs and collects what the agents report.
// A nil *Agents is valid: Env returns the environment unchanged and Run
// waits for its context.
type Agents struct {
	dir     string
	log     *slog.Logger
	pids    func(job string) []int // never nil
	onEvent func(Event)            // may be nil
	coll    *collector

	ln       *net.UnixListener // nil when disabled
	disabled string            // why the agent is not handed out ("" = enabled)

	// Test knobs.
	warnAfter  time.Duration
	pollEvery  time.Duration
	pidGrace   time.Duration
	helloLimit time.Duration
	events     func(ev event)

	mu       sync.Mutex
	tokens   map[string]string // token → job
	byJob    map[string]string // job → token
	warned   map[string]bool   // "disabled", "rewrite", "reject:JOB", "silent:JOB"
	conns    map[*conn]struct{}
	current  map[string]map[int]*conn // job → pid → that process's verified connection
	seq      uint64                   // counts verified connections (newest wins a shared label set)
	closed   bool
	wg       sync.WaitGroup
	lastPids map[string]map[int]time.Time // job → pid → when watchSilent first saw it
}

// event is what tests observe: a connection accepted or rejected, a report.
type event struct {
	kind string // "accepted", "rejected", "report", "closed"
	job  string
	pid  int
}

// New writes the agent into dir, which pilot created for it (the files are
// made readable by every user, for jobs that run as another user), and
// listens on a unix socket there. reg receives the pilot_nodejs_* collector;
// opts.Pids returns a job's current processes: only those may report for
// the job, each on its own connection with its own series.
//
// Only a nil reg, or a collector already registered, is an error.
// When the agent cannot be written and verified or the socket cannot be
// opened, New logs one warning and returns Agents whose Env adds nothing, so
// that every Node job still starts as it would without pilot's agent.
func New(dir string, reg prometheus.Registerer, log *slog.Logger, opts Options) (*Agents, error) {
	if reg == nil {
		return nil, errors.New("nodejs: New needs a registerer")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pids := opts.Pids
	if pids == nil {
		pids = func(string) []int { return nil }
	}
	a := &Agents{
		dir:        dir,
		log:        log,
		pids:       pids,
		onEvent:    opts.OnEvent,
		coll:       newCollector(),
		warnAfter:  connectWarnAfter,
		pollEvery:  time.Second,
		pidGrace:   3 * time.Second,
		helloLimit: 10 * time.Second,
		tokens:     map[string]string{},
		byJob:      map[string]string{},
		warned:     map[string]bool{},
		conns:      map[*conn]struct{}{},
		current:    map[string]map[int]*conn{},
		lastPids:   map[string]map[int]time.Time{},
	}
	if err := reg.Register(a.coll); err != nil {
		return nil, fmt.Errorf("nodejs: registering the Node metrics: %w", err)
	}
	if abs, err := filepath.Abs(dir); err == nil {
		a.dir = abs
	}
	if err := a.writeAgent(); err != nil {
		a.disable(fmt.Sprintf("cannot install the agent: %v", err))
		return a, nil
	}
	sock := filepath.Join(a.dir, socketFile)
	_ = os.Remove(sock)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		a.disable(fmt.Sprintf("cannot listen on %s: %v", sock, err))
		return a, nil
	}
	// connect(2) needs write permission on the socket; jobs may run as
	// another user. Who may report is decided by pid, not by file mode.
	if err := os.Chmod(sock, 0o666); err != nil {
		ln.Close()
		a.disable(fmt.Sprintf("cannot open %s to other users: %v", sock, err))
		return a, nil
	}
	a.ln = ln
	return a, nil
}

func (a *Agents) disable(why string) {
	a.disabled = why
	a.log.Warn("Node metrics disabled: Node jobs start without pilot's agent", "reason", why)
}

// Enabled reports whether Env hands the agent out.
func (a *Agents) Enabled() bool { return a != nil && a.disabled == "" }

// AgentPath is the agent script's path (for logs and the README).
func (a *Agents) AgentPath() string { return filepath.Join(a.dir, agentFile) }

// SocketPath is the unix socket the agents connect to.
func (a *Agents) SocketPath() string { return filepath.Join(a.dir, socketFile) }

// writeAgent writes agent.js atomically, mode 0644, reads it back and checks
// that every user can reach it.
func (a *Agents) writeAgent() error {
	path := a.AgentPath()
	tmp, err := os.CreateTemp(a.dir, ".agent-*.js")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(agentJS)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr, os.Chmod(tmp.Name(), 0o644)); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return a.verifyAgent()
}

// verifyAgent checks that agent.js holds exactly the embedded script and
// that any user can read it: each directory above it searchable by others,
// the file readable by others. A --require of a file Node cannot read stops
// the app from starting, so NODE_OPTIONS names the file only when this holds.
func (a *Agents) verifyAgent() error {
	path := a.AgentPath()
	got, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, agentJS) {
		return fmt.Errorf("%s: content differs from the embedded agent", path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o004 == 0 {
		return fmt.Errorf("%s: not a regular file readable by every user (mode %v)", path, fi.Mode())
	}
	for d := a.dir; ; d = filepath.Dir(d) {
		di, err := os.Stat(d)
		if err != nil {
			return err
		}
		if di.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%s: not searchable by other users (mode %v); jobs running as another user could not load the agent", d, di.Mode().Perm())
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// Env returns env with the agent added for job: NODE_OPTIONS gets
// `--require "<agent>"` appended (a NODE_OPTIONS already in env is kept, in
// front), and the socket path and the job's token are set. The agent removes
// all of it from process.env before the app runs, so the app and its child
// processes see env as it was given.
//
// Env returns env unchanged (and logs one warning) when the agent is not
// available: a Node app must never fail to start because of pilot's agent.
func (a *Agents) Env(job string, env []string) []string {
	if a == nil {
		return env
	}
	if a.disabled != "" {
		return env
	}
	if err := a.verifyAgent(); err != nil {
		// Someone removed or changed the file (a tmp cleaner?): write it again.
		if err2 := a.writeAgent(); err2 != nil {
			a.warnOnce("rewrite", "Node metrics: the agent file is gone and cannot be written again; job starts without it",
				"job", job, "err", err, "rewriteErr", err2)
			return env
		}
	}
	token := a.tokenFor(job)
	opt := "--require " + quoteNodeOption(a.AgentPath())

	out := make([]string, 0, len(env)+4)
	hadNodeOptions := false
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case envSocket, envToken, envOption:
			continue
		case envNodeOp:
			// The last one wins in exec; keep its position.
			if hadNodeOptions {
				for i := range out {
					if strings.HasPrefix(out[i], envNodeOp+"=") {
						out = append(out[:i], out[i+1:]...)
						break
					}
				}
			}
			hadNodeOptions = true
			out = append(out, envNodeOp+"="+v+" "+opt)
			continue
		}
		out = append(out, kv)
	}
	if !hadNodeOptions {
		out = append(out, envNodeOp+"="+opt)
	}
	return append(out,
		envSocket+"="+a.SocketPath(),
		envToken+"="+token,
		envOption+"="+opt,
	)
}

// quoteNodeOption quotes s for NODE_OPTIONS, which Node splits on spaces
// outside double quotes; inside them a backslash escapes the next byte.
func quoteNodeOption(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

func (a *Agents) tokenFor(job string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if t, ok := a.byJob[job]; ok {
		return t
	}
	var buf [16]byte
	_, _ = rand.Read(buf[:]) // never fails (crypto/rand)
	t := hex.EncodeToString(buf[:])
	a.byJob[job] = t
	a.tokens[t] = job
	return t
}

func (a *Agents) warnOnce(key, msg string, args ...any) {
	a.mu.Lock()
	seen := a.warned[key]
	a.warned[key] = true
	a.mu.Unlock()
	if !seen {
		a.log.Warn(msg, args...)
	}
}

func (a *Agents) emit(ev event) {
	if a.events != nil {
		a.events(ev)
	}
}

// report hands ev to pilot's OnEvent, if any.
func (a *Agents) report(ev Event) {
	if a.onEvent != nil {
		a.onEvent(ev)
	}
}

// Run accepts agent connections until ctx ends, then closes the socket and
// every connection, and returns once all its goroutines have ended. It also
// warns, once per job, when a job given the agent runs for 10 s without its
// process connecting.
func (a *Agents) Run(ctx context.Context) {
	if a == nil || a.ln == nil {
		<-ctx.Done()
		return
	}
	stop := context.AfterFunc(ctx, func() {
		a.mu.Lock()
		a.closed = true
		for c := range a.conns {
			c.nc.Close()
		}
		a.mu.Unlock()
		a.ln.Close()
	})
	defer stop()
	a.wg.Go(func() { a.watchSilent(ctx) })
	for {
		nc, err := a.ln.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if errors.Is(err, net.ErrClosed) {
				break
			}
			a.log.Warn("Node metrics: accept failed", "err", err)
			select { // e.g. EMFILE: do not spin
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		c := &conn{nc: nc}
		a.mu.Lock()
		if a.closed {
			a.mu.Unlock()
			nc.Close()
			break
		}
		a.conns[c] = struct{}{}
		a.mu.Unlock()
		a.wg.Go(func() { a.serve(ctx, c) })
	}
	a.ln.Close()
	a.wg.Wait()
}

// watchSilent warns once per job when one of its processes has run for
// warnAfter without a verified connection.
func (a *Agents) watchSilent(ctx context.Context) {
	t := time.NewTicker(a.pollEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			a.mu.Lock()
			jobs := make([]string, 0, len(a.byJob))
			for j := range a.byJob {
				jobs = append(jobs, j)
			}
			a.mu.Unlock()
			for _, job := range jobs {
				pids := a.pids(job) // outside the lock: pilot's function may take its own
				a.mu.Lock()
				seen := a.lastPids[job]
				fresh := make(map[int]time.Time, len(pids))
				silent := 0
				for _, pid := range pids {
					if pid <= 0 {
						continue
					}
					since, ok := seen[pid]
					if !ok {
						since = now
					}
					fresh[pid] = since
					if a.current[job][pid] == nil && now.Sub(since) >= a.warnAfter && silent == 0 {
						silent = pid
					}
				}
				a.lastPids[job] = fresh // forget pids that are gone
				a.mu.Unlock()
				if silent != 0 {
					a.warnOnce("silent:"+job, "Node metrics: the job's process has not connected to pilot; is it a Node process started directly (exec form, or `exec node …` in shell)?",
						"job", job, "pid", silent, "after", a.warnAfter)
				}
			}
		}
	}
}
