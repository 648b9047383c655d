package jobs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Reaper collects every orphan that ends up as pilot's child without ever
// stealing the exit status of a process pilot started itself.
//
// A plain wait4(-1) loop races os/exec's cmd.Wait (ContainerPilot #439,
// containerd #246): whoever waits first gets the status. Here every process
// pilot starts goes through Reaper.Start, which registers its pid, and the
// reaper waits only on children it does not know, pid by pid. Start holds
// startMu for reading across fork and registration, and a scan holds it for
// writing, so a scan never sees a child that is started but not yet known.
//
// The same lock gates the runs of jobs at shutdown: StartJob checks the gate
// under it, across the fork, and CloseJobStarts takes it for writing, so a
// run either started (and said so) before the gate closed, or never starts.
type Reaper struct {
	log  *slog.Logger
	self int

	startMu sync.RWMutex
	// jobStartsClosed is set by CloseJobStarts; guarded by startMu.
	jobStartsClosed bool
	mu              sync.Mutex
	ours            map[int]struct{}

	kick   chan struct{}
	reaped uint64 // guarded by startMu (written only during a scan)
}

func NewReaper(log *slog.Logger) *Reaper {
	return &Reaper{
		log:  log,
		self: os.Getpid(),
		ours: make(map[int]struct{}),
		kick: make(chan struct{}, 1),
	}
}

// BecomeSubreaper makes orphaned descendants re-parent to pilot when it is
// not PID 1, so that it can reap them and find them at shutdown.
func BecomeSubreaper() error {
	if os.Getpid() == 1 {
		return nil
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set child subreaper: %w", err)
	}
	return nil
}

// Start starts cmd and records its pid as pilot's own. RunCommand (hooks,
// exec health checks, reload commands) starts this way, during a shutdown
// too.
func (r *Reaper) Start(cmd *exec.Cmd) error {
	r.startMu.RLock()
	defer r.startMu.RUnlock()
	return r.start(cmd)
}

func (r *Reaper) start(cmd *exec.Cmd) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	r.mu.Lock()
	r.ours[cmd.Process.Pid] = struct{}{}
	r.mu.Unlock()
	return nil
}

// ErrShuttingDown is StartJob's answer once CloseJobStarts has been called.
var ErrShuttingDown = errors.New("pilot is shutting down: no job starts")

// StartJob starts a run of a job as Start does, unless CloseJobStarts has
// been called, and then calls started, all under the gate's lock: whatever
// started logs comes before anything logged after CloseJobStarts returns.
func (r *Reaper) StartJob(cmd *exec.Cmd, started func()) error {
	r.startMu.RLock()
	defer r.startMu.RUnlock()
	if r.jobStartsClosed {
		return ErrShuttingDown
	}
	if err := r.start(cmd); err != nil {
		return err
	}
	started()
	return nil
}

// CloseJobStarts makes every later StartJob fail with ErrShuttingDown. It
// returns once no StartJob is under way, so that from then on no run of a
// job can start. pilot calls it when its shutdown begins.
func (r *Reaper) CloseJobStarts() {
	r.startMu.Lock()
	r.jobStartsClosed = true
	r.startMu.Unlock()
}

// Wait waits for a cmd started with Start and forgets its pid.
func (r *Reaper) Wait(cmd *exec.Cmd) error {
	err := cmd.Wait()
	r.mu.Lock()
	delete(r.ours, cmd.Process.Pid)
	r.mu.Unlock()
	// An orphan that died while its pid was still listed as ours (pid reuse)
	// was skipped by the last scan and will send no further SIGCHLD.
	select {
	case r.kick <- struct{}{}:
	default:
	}
	return err
}

// Run reaps orphans on every SIGCHLD until ctx ends.
func (r *Reaper) Run(ctx context.Context) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGCHLD)
	defer signal.Stop(sigs)
	for {
		r.reapOrphans()
		select {
		case <-ctx.Done():
			return
		case <-sigs:
		case <-r.kick:
		}
	}
}

// Reaped returns how many orphans have been reaped so far.
func (r *Reaper) Reaped() uint64 {
	r.startMu.RLock()
	defer r.startMu.RUnlock()
	return r.reaped
}

func (r *Reaper) reapOrphans() {
	r.startMu.Lock()
	defer r.startMu.Unlock()
	for _, pid := range children(r.self) {
		r.mu.Lock()
		_, ours := r.ours[pid]
		r.mu.Unlock()
		if ours {
			continue
		}
		var ws unix.WaitStatus
		got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		if err == nil && got == pid {
			r.reaped++
		}
	}
}

// Sweep ends every process still descending from pilot — daemons, setsid
// escapees, children of jobs that already exited: SIGTERM first, SIGKILL to
// whatever is left after grace. It returns once none is left or ctx ends,
// with the number of processes signalled and killed.
func (r *Reaper) Sweep(ctx context.Context, grace time.Duration) (termed, killed int) {
	// Every process below pilot is its child or below one: with no child
	// left there is nothing to sweep, and no need to read every process's
	// stat in /proc (the common case at the end, and the costly read).
	if len(children(r.self)) == 0 {
		return 0, 0
	}
	left := descendants(r.self)
	if len(left) == 0 {
		return 0, 0
	}
	for _, pid := range left {
		_ = unix.Kill(pid, unix.SIGTERM)
	}
	termed = len(left)
	r.log.Info("sweep: sent SIGTERM to leftover processes", "count", termed, "pids", left)
	graceEnds := time.NewTimer(grace)
	defer graceEnds.Stop()
	poll := time.NewTicker(5 * time.Millisecond)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return termed, killed
		case <-graceEnds.C:
			rest := descendants(r.self)
			for _, pid := range rest {
				_ = unix.Kill(pid, unix.SIGKILL)
			}
			if len(rest) > 0 {
				killed = len(rest)
				r.log.Warn("sweep: sent SIGKILL to processes that outlived SIGTERM", "count", killed, "pids", rest)
			}
		case <-poll.C:
		}
		r.reapOrphans()
		if len(descendants(r.self)) == 0 {
			return termed, killed
		}
	}
}

// children lists the pids whose parent is pid, from the kernel's per-thread
// children lists; orphans can be re-parented to any thread of pilot. It
// runs on every SIGCHLD and at the end of every shutdown, so it reads /proc
// with bare system calls: os.ReadFile would try to add each /proc file to
// the poller, four wasted calls per file and per thread.
func children(pid int) []int {
	taskDir := "/proc/" + strconv.Itoa(pid) + "/task/"
	tasks, err := readDirNames(taskDir)
	if err != nil {
		return nil
	}
	var pids []int
	buf := make([]byte, 512)
	for _, t := range tasks {
		var data []byte
		data, buf, err = readProcFile(taskDir+t+"/children", buf)
		if errors.Is(err, unix.ENOENT) {
			return childrenFromStat(pid) // kernel without CONFIG_PROC_CHILDREN, or a thread gone
		}
		for _, f := range bytes.Fields(data) {
			if n, err := strconv.Atoi(string(f)); err == nil {
				pids = append(pids, n)
			}
		}
	}
	return pids
}

// readDirNames lists a directory's entries, but . and ..
func readDirNames(dir string) ([]string, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var names []string
	buf := make([]byte, 4096)
	for {
		n, err := unix.ReadDirent(fd, buf)
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}

// readProcFile reads a whole /proc file into buf, growing it as needed,
// and returns the content and the buffer for the next read.
func readProcFile(path string, buf []byte) ([]byte, []byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, buf, err
	}
	defer unix.Close(fd)
	n := 0
	for {
		if n == len(buf) {
			buf = append(buf, make([]byte, max(len(buf), 512))...)
		}
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, buf, err
		}
		if m == 0 {
			return buf[:n], buf, nil
		}
		n += m
	}
}

func childrenFromStat(pid int) []int {
	var pids []int
	for _, p := range processTable() {
		if p.ppid == pid {
			pids = append(pids, p.pid)
		}
	}
	return pids
}

// descendants lists the live (non-zombie) processes below pid.
func descendants(pid int) []int {
	table := processTable()
	kids := make(map[int][]proc)
	for _, p := range table {
		kids[p.ppid] = append(kids[p.ppid], p)
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		parent := queue[0]
		queue = queue[1:]
		for _, c := range kids[parent] {
			queue = append(queue, c.pid)
			if c.state != 'Z' {
				out = append(out, c.pid)
			}
		}
	}
	return out
}

type proc struct {
	pid, ppid, pgrp int
	state           byte
	rssPages        uint64
}

func processTable() []proc {
	names, err := readDirNames("/proc")
	if err != nil {
		return nil
	}
	var table []proc
	buf := make([]byte, 512)
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		var data []byte
		if data, buf, err = readProcFile("/proc/"+name+"/stat", buf); err != nil {
			continue // gone meanwhile
		}
		if p, ok := parseStat(pid, data); ok {
			table = append(table, p)
		}
	}
	return table
}

// parseStat parses "pid (comm) S ppid …"; comm may hold spaces and parentheses,
// so the fields are taken after the last ')'.
func parseStat(pid int, data []byte) (proc, bool) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return proc{}, false
	}
	// Fields after the comm, 0-based: state, ppid, pgrp, … rss is the 22nd.
	fields := bytes.Fields(data[i+1:])
	if len(fields) < 22 || len(fields[0]) != 1 {
		return proc{}, false
	}
	ppid, err1 := strconv.Atoi(string(fields[1]))
	pgrp, err2 := strconv.Atoi(string(fields[2]))
	rss, err3 := strconv.ParseUint(string(fields[21]), 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return proc{}, false
	}
	return proc{pid: pid, ppid: ppid, pgrp: pgrp, state: fields[0][0], rssPages: rss}, true
}

// groupRSS sums the resident memory of the processes in a process group.
func groupRSS(pgid int) uint64 {
	var pages uint64
	for _, p := range processTable() {
		if p.pgrp == pgid {
			pages += p.rssPages
		}
	}
	return pages * uint64(os.Getpagesize())
}
