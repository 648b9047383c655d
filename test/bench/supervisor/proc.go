package main

// Small, allocation-light helpers over /proc and a few raw syscalls.
// Standard library only.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// monoNow reads CLOCK_MONOTONIC in ns: the clock Node's process.hrtime()
// reads (libuv uv_hrtime), comparable across processes of the same time
// namespace (unshare --pid does not create a new one).
func monoNow() int64 {
	var ts syscall.Timespec
	_, _, e := syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, 1 /* CLOCK_MONOTONIC */, uintptr(unsafe.Pointer(&ts)), 0)
	if e != 0 {
		panic("clock_gettime(CLOCK_MONOTONIC): " + e.Error())
	}
	return ts.Nano()
}

// realNow reads CLOCK_REALTIME in ns: the clock `date +%s%N` prints.
func realNow() int64 { return time.Now().UnixNano() }

func readProc(path string) ([]byte, error) { return os.ReadFile(path) }

// childrenOf lists the children of every thread of pid (the kernel keeps a
// children list per thread; reparented orphans land on one of them).
func childrenOf(pid int) []int {
	tasks, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		return nil
	}
	var out []int
	for _, t := range tasks {
		b, err := readProc("/proc/" + strconv.Itoa(pid) + "/task/" + t.Name() + "/children")
		if err != nil {
			continue
		}
		for _, f := range bytes.Fields(b) {
			if n, err := strconv.Atoi(string(f)); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// descendants returns all processes below root (not root itself), BFS.
// skip, if non-nil, names pids whose subtree is not walked (they are still
// returned); used to avoid reading 1,000 empty children files.
func descendants(root int, skip map[int]bool) []int {
	var out []int
	queue := []int{root}
	seen := map[int]bool{root: true}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p != root && skip != nil && skip[p] {
			continue
		}
		for _, c := range childrenOf(p) {
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
				queue = append(queue, c)
			}
		}
	}
	return out
}

type statusInfo struct {
	RSSKiB int64
	NSPid  int // innermost pid (NSpid's last field)
	PPid   int
}

func readStatus(pid int) (statusInfo, error) {
	var si statusInfo
	b, err := readProc("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return si, err
	}
	for _, ln := range bytes.Split(b, []byte{'\n'}) {
		switch {
		case bytes.HasPrefix(ln, []byte("VmRSS:")):
			f := bytes.Fields(ln[6:])
			if len(f) > 0 {
				si.RSSKiB, _ = strconv.ParseInt(string(f[0]), 10, 64)
			}
		case bytes.HasPrefix(ln, []byte("NSpid:")):
			f := bytes.Fields(ln[6:])
			if len(f) > 0 {
				si.NSPid, _ = strconv.Atoi(string(f[len(f)-1]))
			}
		case bytes.HasPrefix(ln, []byte("PPid:")):
			f := bytes.Fields(ln[5:])
			if len(f) > 0 {
				si.PPid, _ = strconv.Atoi(string(f[0]))
			}
		}
	}
	return si, nil
}

type statInfo struct {
	Comm         string
	State        byte
	PPid         int
	UTime, STime uint64 // clock ticks
}

func parseStat(b []byte) (statInfo, error) {
	var si statInfo
	i := bytes.IndexByte(b, '(')
	j := bytes.LastIndexByte(b, ')')
	if i < 0 || j < i || j+2 >= len(b) {
		return si, errors.New("bad stat")
	}
	si.Comm = string(b[i+1 : j])
	f := bytes.Fields(b[j+2:])
	// f[0]=state(3) f[1]=ppid(4) ... f[11]=utime(14) f[12]=stime(15)
	if len(f) < 13 {
		return si, errors.New("short stat")
	}
	si.State = f[0][0]
	si.PPid, _ = strconv.Atoi(string(f[1]))
	si.UTime, _ = strconv.ParseUint(string(f[11]), 10, 64)
	si.STime, _ = strconv.ParseUint(string(f[12]), 10, 64)
	return si, nil
}

func readStat(pid int) (statInfo, error) {
	b, err := readProc("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return statInfo{}, err
	}
	return parseStat(b)
}

// cpuNs sums the first field of /proc/PID/task/*/schedstat: ns on CPU per
// thread (exact, unlike utime/stime, which /proc reports in 10 ms ticks).
// Threads that already exited are not counted (see README).
func cpuNs(pid int) uint64 {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var sum uint64
	for _, t := range tasks {
		b, err := readProc(filepath.Join(dir, t.Name(), "schedstat"))
		if err != nil {
			continue
		}
		f := bytes.Fields(b)
		if len(f) > 0 {
			n, _ := strconv.ParseUint(string(f[0]), 10, 64)
			sum += n
		}
	}
	return sum
}

func wchan(pid int) string {
	b, _ := readProc("/proc/" + strconv.Itoa(pid) + "/wchan")
	return strings.TrimSpace(string(b))
}

// hostPidOf finds the host pid, among root and its descendants, whose
// innermost namespace pid is nspid.
func hostPidOf(root, nspid int) (int, error) {
	cands := append([]int{root}, descendants(root, nil)...)
	for _, p := range cands {
		si, err := readStatus(p)
		if err == nil && si.NSPid == nspid {
			return p, nil
		}
	}
	return 0, fmt.Errorf("no process with namespace pid %d under %d", nspid, root)
}

const sysPidfdOpen = 434 // same number on every Linux architecture

func pidfdOpen(pid int) (int, error) {
	fd, _, e := syscall.Syscall(sysPidfdOpen, uintptr(pid), 0, 0)
	if e != 0 {
		return -1, e
	}
	syscall.CloseOnExec(int(fd))
	return int(fd), nil
}

// exitWatch registers a pidfd per pid with one epoll instance right away
// and returns a channel that delivers, per pid, the moment (CLOCK_MONOTONIC
// ns) epoll first reported it readable, i.e. exited, or -1 on timeout. One
// waiter for all pids keeps the order of the stamps true: two exits seen in
// the same wake-up get the same stamp. A pidfd becomes readable when the
// process exits, whoever its parent is.
func exitWatch(pids []int, timeout time.Duration) (<-chan []int64, error) {
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	fds := make([]int, 0, len(pids))
	closeAll := func() {
		for _, fd := range fds {
			syscall.Close(fd)
		}
		syscall.Close(ep)
	}
	for i, pid := range pids {
		fd, err := pidfdOpen(pid)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("pidfd_open(%d): %w", pid, err)
		}
		fds = append(fds, fd)
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(i)}
		if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
			closeAll()
			return nil, err
		}
	}
	ch := make(chan []int64, 1)
	go func() {
		defer closeAll()
		times := make([]int64, len(pids))
		left := len(pids)
		deadline := time.Now().Add(timeout)
		evs := make([]syscall.EpollEvent, len(pids))
		for left > 0 {
			ms := int(time.Until(deadline) / time.Millisecond)
			if ms <= 0 {
				break
			}
			n, err := syscall.EpollWait(ep, evs, ms)
			now := monoNow()
			if err == syscall.EINTR {
				continue
			}
			if err != nil {
				break
			}
			for _, ev := range evs[:n] {
				i := int(ev.Fd)
				if times[i] == 0 {
					times[i] = now
					left--
					syscall.EpollCtl(ep, syscall.EPOLL_CTL_DEL, fds[i], nil)
				}
			}
		}
		for i := range times {
			if times[i] == 0 {
				times[i] = -1
			}
		}
		ch <- times
	}()
	return ch, nil
}

// cpuBusy returns the machine-wide share of CPU time not idle over d
// (from /proc/stat), to tell readers how busy the shared machine was.
func cpuBusy(d time.Duration) float64 {
	read := func() (idle, total uint64) {
		b, err := os.ReadFile("/proc/stat")
		if err != nil {
			return 0, 0
		}
		ln := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			ln = b[:i]
		}
		f := bytes.Fields(ln)
		for i, x := range f[1:] {
			v, _ := strconv.ParseUint(string(x), 10, 64)
			total += v
			if i == 3 || i == 4 { // idle, iowait
				idle += v
			}
		}
		return
	}
	i0, t0 := read()
	time.Sleep(d)
	i1, t1 := read()
	if t1 <= t0 {
		return 0
	}
	return 1 - float64(i1-i0)/float64(t1-t0)
}
