package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY returns the master and slave ends of a new pseudo-terminal.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetUint32(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return master, slave
}

// RELIABILITY A12: under a terminal (docker run -it), ^C reaches the app —
// pilot puts the main job's group in the foreground — and pilot exits 130.
func TestCtrlCUnderTTY(t *testing.T) {
	t.Parallel()
	master, slave := openPTY(t)
	defer master.Close()
	cmd := exec.Command(self(t), append([]string{"--"}, helperArgv(t, "signals", "die")...)...)
	cmd.Env = append(os.Environ(), roleEnv+"=pilot", raceOptions, "PILOT_SOCKET="+filepath.Join(t.TempDir(), "pilot.sock"))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	screen := newLineLog()
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			if n > 0 {
				screen.Write(buf[:n])
			}
			if err != nil {
				return
			}
		}
	}()
	done := make(chan int, 1)
	go func() {
		_ = cmd.Wait()
		done <- cmd.ProcessState.ExitCode()
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	screen.waitLine(t, 5*time.Second, `ready`)
	if _, err := master.Write([]byte{0x03}); err != nil { // ^C
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 130 {
			t.Fatalf("exit %d, want 130\n%s", code, screen.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("pilot did not exit after ^C\n%s", screen.String())
	}
	if screen.count(`got SIGINT`) != 1 {
		t.Fatalf("the app did not get exactly one SIGINT:\n%s", screen.String())
	}
}
