package control

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// SocketMode is the control socket's mode: only pilot's user may connect
// (connecting to a unix socket needs write permission on it). The socket
// restarts jobs and sets their environment; anyone else in the container
// has no business there.
const SocketMode = 0o600

// maxSocketPath is the longest path a unix socket may have on Linux:
// sun_path holds 108 bytes, the last for the NUL.
const maxSocketPath = 107

// probeTimeout bounds the connect that tells a live socket from a stale
// one. A unix connect answers at once (accepted, or ECONNREFUSED); it
// waits only when a live pilot's backlog is full, and then it is live.
const probeTimeout = time.Second

// Listen creates the control socket at path, mode SocketMode, and listens
// on it. What it finds at path first:
//   - nothing: it creates the socket;
//   - a socket nothing listens on (connect is refused: a pilot that died
//     without cleaning up): it replaces it;
//   - a socket a process listens on: it returns an error and leaves it;
//   - anything else (a file, a directory): it returns an error naming it
//     and never removes it.
//
// The socket is created with its final mode and no window in between:
// it is bound inside a fresh 0700 directory beside path, chmod-ed there,
// and renamed into place (which also swaps out a stale socket atomically).
// A restricted umask would do the same for one socket, but the umask is
// the process's: a job forked meanwhile would inherit it. When that
// directory's longer path does not fit in a socket address, the socket is
// bound at path and chmod-ed right after; under the usual umask (022) it
// is not writable, so not connectable, by others in between.
//
// Between the check and the rename, a second pilot starting at the same
// moment on the same path could lose its socket to this one; pilots do
// not share a socket path by design, so no lock guards that.
//
// Closing the listener removes the socket file, if the file at path is
// still this socket (another pilot may have replaced it since).
func Listen(path string) (net.Listener, error) {
	if path == "" {
		return nil, errors.New("control socket: the path is empty")
	}
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("control socket %s: the path is %d bytes, longer than the %d a unix socket path may have", path, len(path), maxSocketPath)
	}
	if err := checkExisting(path); err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	tmp, err := os.MkdirTemp(dir, ".pilot-")
	if err != nil {
		return nil, fmt.Errorf("control socket %s: cannot create it in %s: %w", path, dir, unwrapPathError(err))
	}
	defer os.RemoveAll(tmp)
	private := filepath.Join(tmp, "s")
	if len(private) > maxSocketPath {
		return bindInPlace(path)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: private, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	// The file is renamed away from the name the listener knows: the
	// listener must not remove it (or anything else at that name) on Close.
	ln.SetUnlinkOnClose(false)
	id, err := finishSocket(ln, private)
	if err == nil {
		err = os.Rename(private, path)
	}
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, unwrapPathError(err))
	}
	return &socketListener{ln: ln, path: path, id: id}, nil
}

// bindInPlace is Listen's way for a path too long to bind beside: remove
// a stale socket, bind at path, then chmod.
func bindInPlace(path string) (net.Listener, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("control socket %s: removing the stale socket: %w", path, unwrapPathError(err))
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false) // socketListener removes it, if still ours
	id, err := finishSocket(ln, path)
	if err != nil {
		ln.Close()
		os.Remove(path)
		return nil, fmt.Errorf("control socket %s: %w", path, unwrapPathError(err))
	}
	return &socketListener{ln: ln, path: path, id: id}, nil
}

// finishSocket sets the mode of the socket file ln bound at name and
// returns the file's identity, which a rename keeps.
func finishSocket(ln *net.UnixListener, name string) (os.FileInfo, error) {
	if err := os.Chmod(name, SocketMode); err != nil {
		return nil, err
	}
	return os.Lstat(name)
}

// ErrSocketInUse is Listen's error when another process listens at the
// path: pilot never takes a live socket over.
var ErrSocketInUse = errors.New("another pilot is listening there")

// checkExisting says whether Listen may put its socket at path: nothing is
// there, or a stale socket.
func checkExisting(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("control socket %s: %w", path, unwrapPathError(err))
	case fi.Mode().Type() != fs.ModeSocket:
		return fmt.Errorf("control socket %s: %s is there, not a socket; pilot does not remove it: remove it yourself or choose another path", path, describeFile(fi))
	}
	conn, err := net.DialTimeout("unix", path, probeTimeout)
	switch {
	case err == nil:
		conn.Close()
		return fmt.Errorf("control socket %s: %w", path, ErrSocketInUse)
	case errors.Is(err, syscall.ECONNREFUSED):
		return nil // stale: its pilot is gone
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("control socket %s: %w (it did not accept within %v)", path, ErrSocketInUse, probeTimeout)
	}
	return fmt.Errorf("control socket %s: cannot tell whether another pilot listens there: %w", path, err)
}

func describeFile(fi os.FileInfo) string {
	switch t := fi.Mode().Type(); {
	case t == 0:
		return "a regular file"
	case t&fs.ModeDir != 0:
		return "a directory"
	case t&fs.ModeSymlink != 0:
		return "a symbolic link"
	case t&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case t&fs.ModeDevice != 0:
		return "a device"
	}
	return "a file of mode " + fi.Mode().String()
}

// unwrapPathError drops an *fs.PathError's op and path: the messages here
// name the socket path already.
func unwrapPathError(err error) error {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		return pe.Err
	}
	if le, ok := errors.AsType[*os.LinkError](err); ok {
		return le.Err
	}
	return err
}

// socketListener is the control socket's listener: Addr says the socket's
// final path, and Close removes the file if it is still this socket.
type socketListener struct {
	ln   *net.UnixListener
	path string
	id   os.FileInfo

	once     sync.Once
	closeErr error
}

func (l *socketListener) Accept() (net.Conn, error) { return l.ln.Accept() }

func (l *socketListener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

// Close removes the socket file first, then stops listening: a pilot
// starting meanwhile finds either this live socket (and stops) or no file,
// never a stale one it would have to judge.
func (l *socketListener) Close() error {
	l.once.Do(func() {
		if fi, err := os.Lstat(l.path); err == nil && os.SameFile(fi, l.id) {
			os.Remove(l.path)
		}
		l.closeErr = l.ln.Close()
	})
	return l.closeErr
}
