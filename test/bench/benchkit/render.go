package benchkit

import (
	"bytes"
	"encoding/binary"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Canonical is a set of host:port as one comparable string.
func Canonical(s []string) string {
	s = slices.Clone(s)
	slices.Sort(s)
	return strings.Join(s, " ")
}

// UpstreamServers reads an nginx upstream that pilot rendered and returns
// its servers as Canonical, without the placeholder an empty upstream holds
// ("server 127.0.0.1:1 down;"); an unreadable file gives "<ERROR>".
func UpstreamServers(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	var s []string
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(strings.TrimSuffix(strings.TrimSpace(line), ";"))
		if len(f) >= 2 && f[0] == "server" && !slices.Contains(f[2:], "down") {
			s = append(s, strings.TrimSuffix(f[1], ";"))
		}
	}
	return Canonical(s)
}

// FileEvent is pilot creating its temporary file next to a rendered file
// (Moved false) or renaming it over the destination (Moved true), stamped
// when the event was read.
type FileEvent struct {
	At    time.Time
	Moved bool
}

// WatchDir reports on out the inotify events of dir that concern base:
// IN_CREATE of ".BASE.pilot-*" (render.Apply's temporary file) and
// IN_MOVED_TO of BASE. An event that finds out full is dropped, so a
// reader keeps a fallback poll. The watch lasts as long as the process
// (its goroutine blocks in read(2)).
func WatchDir(dir, base string, out chan<- FileEvent) error {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		return err
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_MOVED_TO); err != nil {
		unix.Close(fd)
		return err
	}
	tempPrefix := "." + base + ".pilot-"
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := unix.Read(fd, buf)
			at := time.Now()
			if err == unix.EINTR {
				continue
			}
			if err != nil || n <= 0 {
				return
			}
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				mask := binary.NativeEndian.Uint32(buf[off+4:])
				nameLen := int(binary.NativeEndian.Uint32(buf[off+12:]))
				name := string(bytes.TrimRight(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+nameLen], "\x00"))
				off += unix.SizeofInotifyEvent + nameLen
				var ev FileEvent
				switch {
				case mask&unix.IN_MOVED_TO != 0 && name == base:
					ev = FileEvent{at, true}
				case mask&unix.IN_CREATE != 0 && strings.HasPrefix(name, tempPrefix):
					ev = FileEvent{at, false}
				default:
					continue
				}
				select {
				case out <- ev:
				default:
				}
			}
		}
	}()
	return nil
}
