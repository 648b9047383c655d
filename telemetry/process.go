package telemetry

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/nodepilot/pilot/jobs"
)

// ProcessCollector reads, at scrape time, /proc for the process pilot
// started for each job that has one at that moment (Status().Pid; the
// process itself, not its children): pilot_process_cpu_seconds_total,
// pilot_process_resident_memory_bytes, pilot_process_open_fds and
// pilot_process_start_time_seconds, each labelled {job, instance} (instance
// "" — no label — for a plain job; a cluster job's index otherwise). A job without a
// process — or whose process has ended, even if not yet waited for — has
// no series.
//
// It reads /proc/PID/stat itself rather than through prometheus/procfs:
// every field it needs is in that one file, and a scrape of 50 jobs spent
// most of its time in procfs's extra syscalls (a stat of /proc/PID before
// each read, a read to EOF, fmt.Fscan parsing). The open-fd count is the
// size of /proc/PID/fd (O(1) since Linux 6.2), else the entries listed.
type ProcessCollector struct {
	jobs     func() []Job
	procRoot string
	pageSize float64

	cpu, rss, fds, start *prometheus.Desc

	bootOnce sync.Once
	boot     float64 // seconds since the epoch; 0 when unknown
}

// NewProcessCollector returns the collector for the jobs js returns at
// each scrape, reading /proc.
func NewProcessCollector(js func() []Job) (*ProcessCollector, error) {
	const procRoot = "/proc"
	if _, err := os.Stat(procRoot + "/self/stat"); err != nil {
		return nil, err
	}
	return &ProcessCollector{
		jobs:     js,
		procRoot: procRoot,
		pageSize: float64(os.Getpagesize()),
		cpu: prometheus.NewDesc("pilot_process_cpu_seconds_total",
			"User and system CPU time of the job's process, in seconds.", []string{"job", "instance"}, nil),
		rss: prometheus.NewDesc("pilot_process_resident_memory_bytes",
			"Resident memory of the job's process, in bytes.", []string{"job", "instance"}, nil),
		fds: prometheus.NewDesc("pilot_process_open_fds",
			"Open file descriptors of the job's process.", []string{"job", "instance"}, nil),
		start: prometheus.NewDesc("pilot_process_start_time_seconds",
			"Start time of the job's process, in seconds since the Unix epoch.", []string{"job", "instance"}, nil),
	}, nil
}

func (c *ProcessCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.cpu
	ch <- c.rss
	ch <- c.fds
	ch <- c.start
}

// userHZ is the unit of /proc/PID/stat's times (USER_HZ, 100 on every
// Linux ABI pilot runs on).
const userHZ = 100

func (c *ProcessCollector) Collect(ch chan<- prometheus.Metric) {
	buf := make([]byte, 1024)
	for _, j := range entries(c.jobs()) {
		for _, p := range processesOf(j.status()) {
			dir := c.procRoot + "/" + strconv.Itoa(p.pid)
			st, err := readStat(dir+"/stat", buf)
			if err != nil || st.state == 'Z' {
				continue // gone, or a zombie about to be waited for
			}
			ch <- prometheus.MustNewConstMetric(c.cpu, prometheus.CounterValue, float64(st.utime+st.stime)/userHZ, j.name, p.instance)
			ch <- prometheus.MustNewConstMetric(c.rss, prometheus.GaugeValue, float64(st.rssPages)*c.pageSize, j.name, p.instance)
			if n, err := countFDs(dir + "/fd"); err == nil {
				ch <- prometheus.MustNewConstMetric(c.fds, prometheus.GaugeValue, float64(n), j.name, p.instance)
			}
			if boot := c.bootTime(); boot > 0 {
				ch <- prometheus.MustNewConstMetric(c.start, prometheus.GaugeValue, boot+float64(st.starttime)/userHZ, j.name, p.instance)
			}
		}
	}
}

type jobProcess struct {
	pid      int
	instance string // "" for a plain job
}

// processesOf lists a job's processes: a pool's instances by index, else
// the one run. While a rolling reload overlaps an old and a new instance of
// one index, the one in the slot (listed first) has the series.
func processesOf(st jobs.Status) []jobProcess {
	if st.Instances == nil {
		if st.Pid == 0 {
			return nil
		}
		return []jobProcess{{pid: st.Pid}}
	}
	var out []jobProcess
	seen := map[int]bool{}
	for _, in := range st.Instances {
		if in.Pid == 0 || seen[in.Instance] {
			continue
		}
		seen[in.Instance] = true
		out = append(out, jobProcess{pid: in.Pid, instance: strconv.Itoa(in.Instance)})
	}
	return out
}

// bootTime reads btime from /proc/stat once: it does not change.
func (c *ProcessCollector) bootTime() float64 {
	c.bootOnce.Do(func() {
		data, err := os.ReadFile(c.procRoot + "/stat")
		if err != nil {
			return
		}
		for line := range bytes.Lines(data) {
			if v, ok := bytes.CutPrefix(line, []byte("btime ")); ok {
				n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
				if err == nil {
					c.boot = float64(n)
				}
				return
			}
		}
	})
	return c.boot
}

// procStat holds the fields of /proc/PID/stat the collector uses.
type procStat struct {
	state        byte
	utime, stime uint64 // clock ticks
	starttime    uint64 // clock ticks after boot
	rssPages     uint64
}

var errStat = errors.New("malformed /proc/PID/stat")

// readStat reads and parses path (a /proc/PID/stat) into buf: one open,
// one read, one close.
func readStat(path string, buf []byte) (procStat, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return procStat{}, err
	}
	n, err := unix.Read(fd, buf)
	unix.Close(fd)
	if err != nil {
		return procStat{}, err
	}
	return parseStat(buf[:n])
}

// parseStat parses /proc/PID/stat (proc(5)). The command name, field 2,
// may hold spaces and parentheses: the fields that follow start after the
// last ')'.
func parseStat(data []byte) (procStat, error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 || i+2 >= len(data) {
		return procStat{}, errStat
	}
	// fields[0] is field 3 (state).
	fields := bytes.Fields(data[i+2:])
	if len(fields) < 22 {
		return procStat{}, errStat
	}
	num := func(k int) uint64 { // field k of proc(5), 1-based
		n, _ := strconv.ParseUint(string(fields[k-3]), 10, 64)
		return n
	}
	return procStat{
		state:     fields[0][0],
		utime:     num(14),
		stime:     num(15),
		starttime: num(22),
		rssPages:  num(24),
	}, nil
}

// countFDs counts the entries of a /proc/PID/fd directory.
func countFDs(dir string) (int, error) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return 0, err
	}
	if st.Size > 0 { // Linux ≥ 6.2 reports the count as the size
		return int(st.Size), nil
	}
	f, err := os.Open(dir)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	return len(names), err
}
