package benchkit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// CPUTicks is utime+stime of pid, all its threads, in clock ticks
// (USER_HZ: 100 a second on Linux, so 10 ms each).
func CPUTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return utime + stime, nil
}

// VmRSS is VmRSS of pid in KiB (0 once it is gone).
func VmRSS(pid int) int { return procKiB(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:") }

// PSS is the proportional set size of pid in KiB (0 once it is gone): its
// RSS with every page shared by k processes counted 1/k, so that the PSS
// of many copies of one binary adds up to the memory they really hold.
func PSS(pid int) int { return procKiB(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss:") }

func procKiB(path, key string) int {
	b, _ := os.ReadFile(path)
	for l := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(l, key); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				v, _ := strconv.Atoi(f[0])
				return v
			}
		}
	}
	return 0
}

// Children lists the children of every thread of pid (the kernel keeps a
// children list per thread).
func Children(pid int) []int {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return nil
	}
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
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
