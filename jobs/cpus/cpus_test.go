package cpus

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Mount lines of /proc/self/mountinfo, as a container shows them.
const (
	mountV2       = "30 22 0:27 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate\n"
	mountV1CPU    = "31 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct\n"
	mountV1CPUSet = "33 30 0:30 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n"
	mountRoot     = "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n"
)

func TestFromRoot(t *testing.T) {
	tests := []struct {
		name     string
		files    map[string]string // path under the root → content
		affinity int
		want     int
		source   string
		err      string // a part of the error, which names the file
	}{
		{
			name:     "v2 without a quota",
			files:    map[string]string{"proc/self/cgroup": "0::/\n", "proc/self/mountinfo": mountRoot + mountV2, "sys/fs/cgroup/cpu.max": "max 100000\n"},
			affinity: 8, want: 8, source: "affinity",
		},
		{
			name:     "v2 quota rounded up",
			files:    map[string]string{"proc/self/cgroup": "0::/\n", "proc/self/mountinfo": mountV2, "sys/fs/cgroup/cpu.max": "150000 100000\n"},
			affinity: 8, want: 2, source: "cgroup v2 cpu.max 150000 100000",
		},
		{
			name: "v2 nested: the smallest quota on the way up wins",
			files: map[string]string{
				"proc/self/cgroup":                        "0::/kubepods/pod1/app\n",
				"proc/self/mountinfo":                     mountV2,
				"sys/fs/cgroup/kubepods/pod1/app/cpu.max": "max 100000\n",
				"sys/fs/cgroup/kubepods/pod1/cpu.max":     "200000 100000\n",
				"sys/fs/cgroup/kubepods/cpu.max":          "400000 100000\n",
			},
			affinity: 16, want: 2, source: "cgroup v2 cpu.max 200000 100000",
		},
		{
			name: "v2 mount rooted at the process's cgroup (no cgroup namespace)",
			files: map[string]string{
				"proc/self/cgroup":        "0::/docker/abc\n",
				"proc/self/mountinfo":     "30 22 0:27 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
				"sys/fs/cgroup/cpu.max":   "300000 100000\n",
				"sys/fs/cgroup/x/cpu.max": "100000 100000\n", // a sibling's, not ours
			},
			affinity: 16, want: 3, source: "cgroup v2 cpu.max 300000 100000",
		},
		{
			name: "v2 path outside the namespace: the mount is all there is",
			files: map[string]string{
				"proc/self/cgroup":      "0::/../../other\n",
				"proc/self/mountinfo":   mountV2,
				"sys/fs/cgroup/cpu.max": "100000 100000\n",
			},
			affinity: 4, want: 1, source: "cgroup v2 cpu.max 100000 100000",
		},
		{
			name: "v1 cpu,cpuacct with a quota",
			files: map[string]string{
				"proc/self/cgroup":    "4:cpuset:/\n3:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n",
				"proc/self/mountinfo": mountRoot + mountV1CPUSet + mountV1CPU,
				"sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us":  "250000\n",
				"sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n",
				"sys/fs/cgroup/cpuset/cpu.cfs_quota_us":                  "100000\n", // cpuset is not cpu
			},
			affinity: 8, want: 3, source: "cgroup v1 cpu.cfs_quota_us 250000 cpu.cfs_period_us 100000",
		},
		{
			name: "v1 quota -1 is none",
			files: map[string]string{
				"proc/self/cgroup":                            "3:cpu,cpuacct:/\n",
				"proc/self/mountinfo":                         mountV1CPU,
				"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us":  "-1\n",
				"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n",
			},
			affinity: 6, want: 6, source: "affinity",
		},
		{
			name: "v1 nested: a parent's quota bounds the child",
			files: map[string]string{
				"proc/self/cgroup":                        "2:cpu:/a/b\n",
				"proc/self/mountinfo":                     "31 30 0:28 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n",
				"sys/fs/cgroup/cpu/a/b/cpu.cfs_quota_us":  "-1\n",
				"sys/fs/cgroup/cpu/a/b/cpu.cfs_period_us": "100000\n",
				"sys/fs/cgroup/cpu/a/cpu.cfs_quota_us":    "50000\n",
				"sys/fs/cgroup/cpu/a/cpu.cfs_period_us":   "100000\n",
			},
			affinity: 6, want: 1, source: "cgroup v1 cpu.cfs_quota_us 50000 cpu.cfs_period_us 100000",
		},
		{
			name: "hybrid: the v1 cpu controller is read, not the unified hierarchy",
			files: map[string]string{
				"proc/self/cgroup":                            "3:cpu,cpuacct:/\n0::/\n",
				"proc/self/mountinfo":                         mountV1CPU + "40 30 0:40 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n",
				"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us":  "400000\n",
				"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n",
				"sys/fs/cgroup/unified/cpu.max":               "100000 100000\n",
			},
			affinity: 8, want: 4, source: "cgroup v1 cpu.cfs_quota_us 400000 cpu.cfs_period_us 100000",
		},
		{
			name: "hybrid without the v1 cpu controller mounted: the unified hierarchy",
			files: map[string]string{
				"proc/self/cgroup":              "3:cpu,cpuacct:/\n0::/\n",
				"proc/self/mountinfo":           "40 30 0:40 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n",
				"sys/fs/cgroup/unified/cpu.max": "200000 100000\n",
			},
			affinity: 8, want: 2, source: "cgroup v2 cpu.max 200000 100000",
		},
		{
			name:     "affinity smaller than the quota wins",
			files:    map[string]string{"proc/self/cgroup": "0::/\n", "proc/self/mountinfo": mountV2, "sys/fs/cgroup/cpu.max": "800000 100000\n"},
			affinity: 2, want: 2, source: "affinity",
		},
		{
			name: "a mount point with a space",
			files: map[string]string{
				"proc/self/cgroup":         "0::/\n",
				"proc/self/mountinfo":      `30 22 0:27 / /sys/fs/my\040cgroup rw - cgroup2 cgroup2 rw` + "\n",
				"sys/fs/my cgroup/cpu.max": "100000 50000\n",
			},
			affinity: 8, want: 2, source: "cgroup v2 cpu.max 100000 50000",
		},
		{name: "no proc files", files: map[string]string{}, affinity: 3, want: 3, source: "affinity"},
		{name: "no cgroup files", files: map[string]string{"proc/self/cgroup": "0::/\n", "proc/self/mountinfo": mountV2}, affinity: 3, want: 3, source: "affinity"},
		{name: "no mountinfo", files: map[string]string{"proc/self/cgroup": "0::/\n"}, affinity: 3, want: 3, source: "affinity"},
		{name: "an affinity of zero is one", files: map[string]string{}, affinity: 0, want: 1, source: "affinity"},
		{
			name:     "garbage in cpu.max",
			files:    map[string]string{"proc/self/cgroup": "0::/\n", "proc/self/mountinfo": mountV2, "sys/fs/cgroup/cpu.max": "lots\n"},
			affinity: 4, want: 4, source: "affinity", err: `sys/fs/cgroup/cpu.max: "lots" is not QUOTA PERIOD`,
		},
		{
			name: "garbage in cfs_quota_us",
			files: map[string]string{
				"proc/self/cgroup":                           "3:cpu,cpuacct:/\n",
				"proc/self/mountinfo":                        mountV1CPU,
				"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "1.5\n",
			},
			affinity: 4, want: 4, source: "affinity", err: `sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us: "1.5" is not a quota in µs (or -1)`,
		},
		{
			name: "garbage in cfs_period_us",
			files: map[string]string{
				"proc/self/cgroup":                            "3:cpu,cpuacct:/\n",
				"proc/self/mountinfo":                         mountV1CPU,
				"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us":  "100000\n",
				"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "0\n",
			},
			affinity: 4, want: 4, source: "affinity", err: `sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us: "0" is not a period in µs`,
		},
		{
			name:     "garbage in /proc/self/cgroup",
			files:    map[string]string{"proc/self/cgroup": "cpu\n"},
			affinity: 4, want: 4, source: "affinity", err: `proc/self/cgroup: "cpu" is not ID:controllers:/path`,
		},
		{
			name:     "garbage in mountinfo",
			files:    map[string]string{"proc/self/cgroup": "0::/\n", "proc/self/mountinfo": "30 22 cgroup2\n"},
			affinity: 4, want: 4, source: "affinity", err: `proc/self/mountinfo: "30 22 cgroup2" is not a mountinfo line`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for path, content := range tt.files {
				file := filepath.Join(root, path)
				if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			n, source, err := fromRoot(root, tt.affinity)
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("error %v", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), filepath.Join(root, tt.err))):
				t.Fatalf("error %v, want one with %q", err, filepath.Join(root, tt.err))
			}
			if n != tt.want || source != tt.source {
				t.Errorf("got %d (%s), want %d (%s)", n, source, tt.want, tt.source)
			}
		})
	}
}

// The real thing, on whatever machine runs the tests.
func TestAuto(t *testing.T) {
	n, source, err := Auto()
	if err != nil {
		t.Fatal(err)
	}
	if n < 1 || n > runtime.NumCPU() {
		t.Errorf("Auto() = %d (%s); runtime.NumCPU() = %d", n, source, runtime.NumCPU())
	}
	t.Logf("%d CPUs (%s)", n, source)
}
