package cpus

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Auto returns how many CPUs this process may use: the cgroup CPU quota
// (ceil(quota/period); cgroup v2 cpu.max, v1 cpu.cfs_quota_us/cpu.cfs_period_us) when one is set
// on its cgroup or any ancestor (the smallest wins), capped by the CPUs in its affinity mask
// (sched_getaffinity); with no quota, the affinity count. At least 1. source says which
// ("cgroup v2 cpu.max 200000 100000", "affinity") for the log.
//
// A cgroup file it cannot make sense of is an error that names the file;
// n and source are then the affinity count and "affinity", so that a
// caller may log the error and go on with them.
func Auto() (n int, source string, err error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return 1, "affinity", fmt.Errorf("sched_getaffinity: %w", err)
	}
	return fromRoot("/", set.Count())
}

// quota is a CPU quota found in a cgroup file.
type quota struct {
	cpus   int    // ceil(quota/period)
	source string // what the file said, for the log
}

// fromRoot is Auto with the files read under root (a fake tree in tests)
// and the affinity count given. A file that is missing means no quota
// there: not every level of a hierarchy has the files, and a container
// may not see its cgroups at all.
func fromRoot(root string, affinity int) (int, string, error) {
	affinity = max(affinity, 1)
	q, err := findQuota(root)
	if err != nil {
		return affinity, "affinity", err
	}
	if q == nil || affinity < q.cpus {
		return affinity, "affinity", nil
	}
	return q.cpus, q.source, nil
}

// findQuota finds the cpu hierarchy of the process, v1 before v2, and the
// smallest quota on the way from its cgroup up to the hierarchy's root;
// nil when there is none.
func findQuota(root string) (*quota, error) {
	memberships, err := readCgroups(filepath.Join(root, "proc/self/cgroup"))
	if err != nil || memberships == nil {
		return nil, err
	}
	mounts, err := readMounts(filepath.Join(root, "proc/self/mountinfo"))
	if err != nil {
		return nil, err
	}
	if path, ok := memberships["cpu"]; ok {
		if m, ok := mountFor(mounts, path, func(m mount) bool { return m.fsType == "cgroup" && slices.Contains(m.options, "cpu") }); ok {
			return walkUp(root, m, path, readV1)
		}
	}
	if path, ok := memberships[""]; ok {
		if m, ok := mountFor(mounts, path, func(m mount) bool { return m.fsType == "cgroup2" }); ok {
			return walkUp(root, m, path, readV2)
		}
	}
	return nil, nil
}

// readCgroups reads /proc/self/cgroup ("ID:controllers:path" per line)
// into the path of each v1 controller, and of the v2 hierarchy under "";
// nil when the file is missing.
func readCgroups(file string) (map[string]string, error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	paths := map[string]string{}
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			continue
		}
		_, rest, ok1 := strings.Cut(line, ":")
		controllers, path, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 || !strings.HasPrefix(path, "/") {
			return nil, fmt.Errorf("%s: %q is not ID:controllers:/path", file, line)
		}
		for c := range strings.SplitSeq(controllers, ",") {
			paths[c] = path
		}
	}
	return paths, nil
}

// mount is a cgroup file system in /proc/self/mountinfo.
type mount struct {
	root, point string // the cgroup shown at the mount point, and where
	fsType      string
	options     []string // the super options, which name a v1 hierarchy's controllers
}

// readMounts reads the cgroup mounts of /proc/self/mountinfo:
// "ID PARENT MAJ:MIN ROOT POINT OPTIONS [OPTIONAL…] - TYPE SOURCE SUPEROPTIONS".
func readMounts(file string) ([]mount, error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var mounts []mount
	for line := range strings.Lines(string(data)) {
		fields := strings.Fields(line)
		sep := slices.Index(fields, "-")
		if sep < 6 || len(fields) < sep+4 {
			return nil, fmt.Errorf("%s: %q is not a mountinfo line", file, strings.TrimSuffix(line, "\n"))
		}
		if fsType := fields[sep+1]; fsType == "cgroup" || fsType == "cgroup2" {
			mounts = append(mounts, mount{
				root:    unescape(fields[3]),
				point:   unescape(fields[4]),
				fsType:  fsType,
				options: strings.Split(fields[sep+3], ","),
			})
		}
	}
	return mounts, nil
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mountFor picks, among the mounts that match, the one whose root holds
// the cgroup path most closely (a hierarchy may be mounted more than once).
func mountFor(mounts []mount, path string, match func(mount) bool) (mount, bool) {
	best, found := mount{}, false
	for _, m := range mounts {
		if match(m) && within(path, m.root) && (!found || len(m.root) > len(best.root)) {
			best, found = m, true
		}
	}
	return best, found
}

// within reports whether the cgroup path lies at or under root.
func within(path, root string) bool {
	return root == "/" || path == root || strings.HasPrefix(path, root+"/")
}

// walkUp reads the quota of the cgroup at path and of each of its
// ancestors up to the mount's root, and keeps the smallest.
func walkUp(root string, m mount, path string, read func(dir string) (*quota, error)) (*quota, error) {
	top := filepath.Join(root, m.point)
	dir := filepath.Join(top, strings.TrimPrefix(path, m.root))
	if !strings.HasPrefix(dir, top+string(filepath.Separator)) {
		// The mount itself, or a path that climbs out of it (a cgroup
		// outside the process's cgroup namespace shows as /../…): the
		// mount is all that can be seen.
		dir = top
	}
	var smallest *quota
	for {
		q, err := read(dir)
		if err != nil {
			return nil, err
		}
		if q != nil && (smallest == nil || q.cpus < smallest.cpus) {
			smallest = q
		}
		if dir == top {
			return smallest, nil
		}
		dir = filepath.Dir(dir)
	}
}

// readV2 reads a v2 cgroup's cpu.max: "QUOTA PERIOD", or "max PERIOD" for
// none.
func readV2(dir string) (*quota, error) {
	file := filepath.Join(dir, "cpu.max")
	text, ok, err := readFile(file)
	if !ok || err != nil {
		return nil, err
	}
	quotaText, periodText, _ := strings.Cut(text, " ")
	period, err := strconv.ParseInt(periodText, 10, 64)
	if err != nil || period <= 0 {
		return nil, fmt.Errorf("%s: %q is not QUOTA PERIOD", file, text)
	}
	if quotaText == "max" {
		return nil, nil
	}
	q, err := strconv.ParseInt(quotaText, 10, 64)
	if err != nil || q <= 0 {
		return nil, fmt.Errorf("%s: %q is not QUOTA PERIOD", file, text)
	}
	return &quota{cpus: ceilDiv(q, period), source: "cgroup v2 cpu.max " + text}, nil
}

// readV1 reads a v1 cgroup's cpu.cfs_quota_us (-1 for none) and
// cpu.cfs_period_us.
func readV1(dir string) (*quota, error) {
	quotaFile := filepath.Join(dir, "cpu.cfs_quota_us")
	quotaText, ok, err := readFile(quotaFile)
	if !ok || err != nil {
		return nil, err
	}
	q, err := strconv.ParseInt(quotaText, 10, 64)
	if err != nil || q == 0 || q < -1 {
		return nil, fmt.Errorf("%s: %q is not a quota in µs (or -1)", quotaFile, quotaText)
	}
	if q == -1 {
		return nil, nil
	}
	periodFile := filepath.Join(dir, "cpu.cfs_period_us")
	periodText, ok, err := readFile(periodFile)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%s: missing beside %s", periodFile, quotaFile)
	}
	period, err := strconv.ParseInt(periodText, 10, 64)
	if err != nil || period <= 0 {
		return nil, fmt.Errorf("%s: %q is not a period in µs", periodFile, periodText)
	}
	return &quota{cpus: ceilDiv(q, period), source: fmt.Sprintf("cgroup v1 cpu.cfs_quota_us %d cpu.cfs_period_us %d", q, period)}, nil
}

// readFile reads a one-line cgroup file, trimmed; ok is false when the
// file is missing.
func readFile(file string) (text string, ok bool, err error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return strings.TrimSpace(string(data)), true, nil
}

// ceilDiv is ⌈a/b⌉ for positive a and b, without the overflow of a+b-1.
func ceilDiv(a, b int64) int {
	n := a / b
	if a%b != 0 {
		n++
	}
	return int(n)
}
