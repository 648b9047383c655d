package container

import (
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"path"
	"slices"
	"strings"
)

// ErrNotContainer says that nothing under /proc/self names a container: pilot
// runs on a host, or in a runtime whose traces this package does not know.
// Callers treat it quietly.
var ErrNotContainer = errors.New("container: not running in a container")

// idLen is the length of a full container id: 64 lowercase hex digits.
const idLen = 64

// The files ID reads, relative to the proc root.
const (
	cgroupFile    = "self/cgroup"
	mountinfoFile = "self/mountinfo"
)

// ID returns the full id of the container pilot runs in, read from the proc
// file system proc (os.DirFS("/proc") in production): first the paths of
// self/cgroup (cgroup v1, and v2 with the host's cgroup namespace), then, when
// they name none (v2 with a private cgroup namespace shows "0::/"), the
// sources of the bind mounts of /etc/hostname, /etc/hosts and
// /etc/resolv.conf in self/mountinfo, which the runtime keeps in a directory
// named after the container.
//
// Only a 64-hex-digit id is accepted. When neither file names one, or both
// are absent, ID returns "" and ErrNotContainer; any other read error is
// returned as is.
func ID(proc fs.FS) (string, error) {
	cg, err := readOptional(proc, cgroupFile)
	if err != nil {
		return "", err
	}
	if id := idFromCgroup(cg); id != "" {
		return id, nil
	}
	mi, err := readOptional(proc, mountinfoFile)
	if err != nil {
		return "", err
	}
	if id := idFromMountinfo(mi); id != "" {
		return id, nil
	}
	return "", ErrNotContainer
}

// readOptional reads name from proc; a file that does not exist reads empty.
func readOptional(proc fs.FS, name string) ([]byte, error) {
	b, err := fs.ReadFile(proc, name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("container: read %s: %w", name, err)
	}
	return b, nil
}

// idFromCgroup finds the id in /proc/self/cgroup, whose lines are
// "hierarchy-ID:controllers:path". The first line whose path names an id
// wins; within a path, the innermost segment does (a nested container's
// path is /docker/<outer>/docker/<inner>).
func idFromCgroup(b []byte) string {
	for line := range lines(b) {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		segs := strings.Split(parts[2], "/")
		for i := len(segs) - 1; i >= 0; i-- {
			if id := idFromSegment(segs[i]); id != "" {
				return id
			}
		}
	}
	return ""
}

// idFromSegment takes one cgroup path segment: the id itself (cgroupfs
// driver: /docker/<id>, /kubepods/<qos>/pod<uid>/<id>) or a systemd unit
// carrying it after the last '-' (docker-<id>.scope, cri-containerd-<id>.scope,
// crio-<id>.scope, libpod-<id>.scope).
func idFromSegment(seg string) string {
	seg = strings.TrimSuffix(seg, ".scope")
	if i := strings.LastIndexAny(seg, "-:"); i >= 0 {
		seg = seg[i+1:]
	}
	if isID(seg) {
		return seg
	}
	return ""
}

// idMounts are the files a runtime bind-mounts into every container from a
// directory of its own.
var idMounts = map[string]bool{
	"/etc/hostname":    true,
	"/etc/hosts":       true,
	"/etc/resolv.conf": true,
}

// idFromMountinfo finds the id in /proc/self/mountinfo, whose lines are
// "mountID parentID major:minor root mountPoint options ... - fstype source
// superOptions". For the mounts of idMounts, root is the file's path on the
// host file system (relative to its own mount), and the innermost 64-hex
// directory of that path is the container's:
//
//	Docker      …/docker/containers/<id>/hostname
//	Podman      …/containers/storage/overlay-containers/<id>/userdata/hostname
//	nerdctl     …/nerdctl/<ns-hash>/containers/<namespace>/<id>/hostname
//
// A path through a "sandboxes" directory is skipped: Kubernetes' CRI keeps
// there the files of the pod sandbox, whose id is not this container's.
func idFromMountinfo(b []byte) string {
	for line := range lines(b) {
		f := strings.Fields(line)
		if len(f) < 5 || !idMounts[unescapeMountinfo(f[4])] {
			continue
		}
		dirs := strings.Split(path.Dir(unescapeMountinfo(f[3])), "/")
		if slices.Contains(dirs, "sandboxes") {
			continue
		}
		for i := len(dirs) - 1; i >= 0; i-- {
			if isID(dirs[i]) {
				return dirs[i]
			}
		}
	}
	return ""
}

// unescapeMountinfo undoes the kernel's octal escapes of space, tab, newline
// and backslash in mountinfo paths ("\040" for a space).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// isID reports whether s is a full container id: 64 lowercase hex digits.
func isID(s string) bool {
	if len(s) != idLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// lines yields the lines of b without their line ends.
func lines(b []byte) iter.Seq[string] {
	return strings.SplitSeq(strings.TrimRight(string(b), "\n"), "\n")
}
