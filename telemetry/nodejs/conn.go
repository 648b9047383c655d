package nodejs

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// maxLine bounds one message; a report is a few hundred bytes.
const maxLine = 64 << 10

// maxFDs bounds the fds of one listening report (pilot hands a job a few).
const maxFDs = 64

// conn is one agent connection.
type conn struct {
	nc       *net.UnixConn
	job      string // set once verified
	pid      int    // the peer's pid (SO_PEERCRED)
	instance int    // from the hello; -1 for a process outside cluster mode
	seq      uint64 // order of verification, for the collector
}

type hello struct {
	Type     string    `json:"type"`
	V        int       `json:"v"`
	Token    string    `json:"token"`
	Pid      int       `json:"pid"`
	Instance *int      `json:"instance"` // PILOT_INSTANCE; absent or -1 outside cluster mode
	Node     string    `json:"node"`
	LE       []float64 `json:"le"`
}

// listening is the agent's {"type":"listening","fds":[…]}.
type listening struct {
	FDs []int `json:"fds"`
}

type report struct {
	Type string `json:"type"`
	Lag  *struct {
		P50   float64 `json:"p50"`
		P99   float64 `json:"p99"`
		Max   float64 `json:"max"`
		Count uint64  `json:"count"` // cumulative
		Sum   float64 `json:"sum"`   // cumulative, seconds
	} `json:"lag"`
	Heap *struct {
		Used  float64 `json:"used"`
		Total float64 `json:"total"`
	} `json:"heap"`
	Handles *float64          `json:"handles"`
	GC      map[string]gcHist `json:"gc"`
}

type gcHist struct {
	Count   uint64   `json:"count"`
	Sum     float64  `json:"sum"`
	Buckets []uint64 `json:"buckets"`
}

// serve verifies one connection and then feeds its reports to the
// collector, and its events to OnEvent, until it closes.
func (a *Agents) serve(ctx context.Context, c *conn) {
	defer func() {
		c.nc.Close()
		a.mu.Lock()
		delete(a.conns, c)
		last := c.job != "" && a.current[c.job][c.pid] == c
		if last {
			delete(a.current[c.job], c.pid)
			if len(a.current[c.job]) == 0 {
				delete(a.current, c.job)
			}
		}
		a.mu.Unlock()
		if last {
			a.coll.remove(procKey{c.job, c.pid})
			a.log.Debug("Node agent disconnected", "job", c.job, "pid", c.pid, "instance", c.instance)
			a.emit(event{kind: "closed", job: c.job, pid: c.pid})
			a.report(Event{Job: c.job, Instance: c.instance, Pid: c.pid, Kind: EventGone})
		}
	}()
	pid, err := peerPid(c.nc)
	if err != nil {
		a.log.Debug("Node metrics: cannot read the peer's credentials", "err", err)
		return
	}
	c.pid = pid
	sc := bufio.NewScanner(c.nc)
	sc.Buffer(make([]byte, 4096), maxLine)

	_ = c.nc.SetReadDeadline(time.Now().Add(a.helloLimit))
	if !sc.Scan() {
		return
	}
	_ = c.nc.SetReadDeadline(time.Time{})
	var h hello
	if err := json.Unmarshal(sc.Bytes(), &h); err != nil || h.Type != "hello" {
		a.reject(c, "", "expected a hello")
		return
	}
	a.mu.Lock()
	job, ok := a.tokens[h.Token]
	a.mu.Unlock()
	if !ok {
		a.reject(c, "", "unknown token")
		return
	}
	if why := a.verifyPid(ctx, job, pid); why != "" {
		a.reject(c, job, why)
		return
	}
	c.instance = -1
	if h.Instance != nil && *h.Instance >= 0 {
		c.instance = *h.Instance
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	c.job = job
	a.seq++
	c.seq = a.seq
	if a.current[job] == nil {
		a.current[job] = map[int]*conn{}
	}
	prev := a.current[job][pid]
	a.current[job][pid] = c
	a.mu.Unlock()
	if prev != nil { // the same process connected again (its agent reconnected): the old one is stale
		prev.nc.Close()
	}
	key := procKey{job, pid}
	a.coll.remove(key) // a new connection: its series start afresh
	a.log.Debug("Node agent connected", "job", job, "pid", pid, "instance", c.instance, "node", h.Node)
	a.emit(event{kind: "accepted", job: job, pid: pid})

	gcOK := slices.Equal(h.LE, gcBuckets)
	label := ""
	if c.instance >= 0 {
		label = strconv.Itoa(c.instance)
	}
	for sc.Scan() {
		var r report
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			continue
		}
		a.mu.Lock()
		still := a.current[job][pid] == c
		a.mu.Unlock()
		if !still {
			return
		}
		switch r.Type {
		case "report":
			if !gcOK {
				r.GC = nil
			}
			a.coll.update(key, label, c.seq, &r)
			a.emit(event{kind: "report", job: job, pid: pid})
		case "listening":
			var l listening
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil || !validFDs(l.FDs) {
				continue
			}
			a.log.Debug("Node process listens on inherited sockets", "job", job, "pid", pid, "instance", c.instance, "fds", l.FDs)
			a.report(Event{Job: job, Instance: c.instance, Pid: pid, Kind: EventListening, FDs: l.FDs})
		case "ready":
			a.log.Debug("Node process is ready", "job", job, "pid", pid, "instance", c.instance)
			a.report(Event{Job: job, Instance: c.instance, Pid: pid, Kind: EventReady})
		}
	}
}

// validFDs accepts what pilot can hand out: fds from 3 (SD_LISTEN_FDS_START)
// on, ascending, no more than maxFDs of them.
func validFDs(fds []int) bool {
	if len(fds) == 0 || len(fds) > maxFDs {
		return false
	}
	for i, fd := range fds {
		if fd < 3 || (i > 0 && fd <= fds[i-1]) {
			return false
		}
	}
	return true
}

// verifyPid returns "" when pid is one of job's processes, else why not. A
// descendant of one is refused at once; another pid gets pidGrace, in which
// pilot may record a process it has just started.
func (a *Agents) verifyPid(ctx context.Context, job string, pid int) string {
	deadline := time.Now().Add(a.pidGrace)
	for {
		want := a.pids(job)
		if slices.Contains(want, pid) {
			return ""
		}
		for _, p := range want {
			if p > 0 && isDescendant(pid, p) {
				return fmt.Sprintf("pid %d is a child of the job's process (pid %d); only the job's own processes report", pid, p)
			}
		}
		if !time.Now().Before(deadline) {
			return fmt.Sprintf("pid %d is not the job's process (pids %v)", pid, want)
		}
		select {
		case <-ctx.Done():
			return "pilot is stopping"
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (a *Agents) reject(c *conn, job, why string) {
	msg, _ := json.Marshal(map[string]string{"type": "reject", "reason": why})
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.nc.Write(append(msg, '\n'))
	key := "reject:" + job
	if job == "" {
		key = "reject:?"
	}
	a.warnOnce(key, "Node metrics: refused a Node agent", "job", job, "pid", c.pid, "reason", why)
	a.emit(event{kind: "rejected", job: job, pid: c.pid})
}

// peerPid is the pid of the process that connected (SO_PEERCRED), which the
// kernel vouches for, unlike the pid in the hello.
func peerPid(c *net.UnixConn) (int, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if cerr != nil {
		return 0, cerr
	}
	return int(cred.Pid), nil
}

// isDescendant reports whether pid descends from ancestor, following PPid
// in /proc (a few reads; only when the pid is not the job's own).
func isDescendant(pid, ancestor int) bool {
	for range 64 {
		ppid := parentPid(pid)
		if ppid <= 1 {
			return ancestor == 1 && ppid == 1
		}
		if ppid == ancestor {
			return true
		}
		pid = ppid
	}
	return false
}

func parentPid(pid int) int {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// pid (comm) state ppid …; comm may hold spaces and parentheses.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}
