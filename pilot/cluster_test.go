package pilot

import (
	"os"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

// The socket pilot holds stays non-blocking however many instances start
// with it: os/exec's Fd() must not turn the shared socket blocking, or a
// worker would block in accept() until the next connection.
func TestHeldSocketStaysNonBlocking(t *testing.T) {
	h, err := listenFile("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer h.file.Close()
	for range 3 {
		cmd := exec.Command("true")
		cmd.ExtraFiles = []*os.File{h.file}
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := h.file.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var flags int
	raw.Control(func(fd uintptr) { flags, err = unix.FcntlInt(fd, unix.F_GETFL, 0) })
	if err != nil {
		t.Fatal(err)
	}
	if flags&unix.O_NONBLOCK == 0 {
		t.Errorf("the held socket is in blocking mode after three starts (flags %#o)", flags)
	}
}
