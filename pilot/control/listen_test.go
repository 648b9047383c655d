package control

import (
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// connectable reports whether a unix connect to path succeeds.
func connectable(path string) bool {
	conn, err := net.Dial("unix", path)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// checkSocket fails unless path is a socket of mode 0600 that accepts
// connections, and its directory holds nothing else (no leftover of the
// private directory Listen binds in).
func checkSocket(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: mode %v, want a socket of mode 0600", path, fi.Mode())
	}
	if !connectable(path) {
		t.Errorf("%s: cannot connect", path)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("%s holds %d entries, want only the socket: %v", filepath.Dir(path), len(entries), entries)
	}
}

// The socket is 0600 whatever the umask (here 0, the most permissive),
// and the listener removes it on Close. Not parallel: the umask is the
// process's.
func TestListenMode(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	path := socketPath(t)
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := ln.Addr().String(); got != path {
		t.Errorf("Addr %q, want %q", got, path)
	}
	checkSocket(t, path)
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("after Close: %v, want the socket gone", err)
	}
	if err := ln.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// A path too long to bind beside (the private directory's name would not
// fit in a socket address) is bound in place, still 0600.
func TestListenLongPath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	name := strings.Repeat("s", maxSocketPath-len(dir)-1)
	path := filepath.Join(dir, name)
	if len(path) != maxSocketPath {
		t.Fatalf("path length %d", len(path))
	}
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	checkSocket(t, path)
	ln.Close()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("after Close: %v, want the socket gone", err)
	}

	if _, err := Listen(path + "x"); err == nil || !strings.Contains(err.Error(), "longer than the 107") {
		t.Errorf("a 108-byte path: %v, want an error about its length", err)
	}
	if _, err := Listen(""); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("an empty path: %v", err)
	}
}

// A socket left by a pilot that died (nothing listens: connect is
// refused) is replaced, in place and in the long-path way alike.
func TestListenReplacesStaleSocket(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, path := range []string{filepath.Join(dir, "pilot.sock"), filepath.Join(dir, strings.Repeat("s", maxSocketPath-len(dir)-1))} {
		stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		stale.SetUnlinkOnClose(false)
		stale.Close()
		if connectable(path) {
			t.Fatal("the stale socket accepts")
		}
		ln, err := Listen(path)
		if err != nil {
			t.Fatalf("over a stale socket: %v", err)
		}
		checkSocket(t, path)
		ln.Close()
	}
}

// A socket a process listens on is never taken over, and stays as it was.
func TestListenLiveSocket(t *testing.T) {
	t.Parallel()
	path := socketPath(t)
	live, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	before, _ := os.Lstat(path)
	_, err = Listen(path)
	if want := "control socket " + path + ": another pilot is listening there"; err == nil || err.Error() != want {
		t.Fatalf("err %v, want %q", err, want)
	}
	after, err := os.Lstat(path)
	if err != nil || !os.SameFile(before, after) {
		t.Errorf("the live socket was replaced or removed (%v)", err)
	}
	accepted := make(chan error, 1)
	go func() {
		conn, err := live.Accept()
		if err == nil {
			conn.Close()
		}
		accepted <- err
	}()
	if !connectable(path) {
		t.Error("the live socket no longer accepts")
	}
	if err := <-accepted; err != nil {
		t.Errorf("the live listener: %v", err)
	}
}

// Anything at the path that is not a socket is an error naming it, and
// is left alone.
func TestListenRefusesOtherFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "dir")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	for path, what := range map[string]string{file: "a regular file", sub: "a directory", link: "a symbolic link"} {
		_, err := Listen(path)
		if err == nil || !strings.Contains(err.Error(), "control socket "+path+": "+what+" is there, not a socket; pilot does not remove it") {
			t.Errorf("%s: %v, want an error naming %s", path, err, what)
		}
	}
	if data, err := os.ReadFile(file); err != nil || string(data) != "keep me" {
		t.Errorf("the file: %q, %v", data, err)
	}
	if fi, err := os.Lstat(sub); err != nil || !fi.IsDir() {
		t.Errorf("the directory: %v", err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode().Type() != fs.ModeSymlink {
		t.Errorf("the link: %v", err)
	}
	// A directory that does not exist: the error names it.
	missing := filepath.Join(dir, "no", "pilot.sock")
	if _, err := Listen(missing); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "no")) {
		t.Errorf("in a missing directory: %v", err)
	}
}

// Close removes the socket only while it is this listener's: a pilot
// that replaced it keeps its own.
func TestCloseLeavesAnotherSocket(t *testing.T) {
	t.Parallel()
	path := socketPath(t)
	first, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	// The first pilot's file is gone (someone removed it); a second pilot
	// creates its own there.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	second, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	first.Close()
	if !connectable(path) {
		t.Error("closing the first listener removed the second's socket")
	}
}
