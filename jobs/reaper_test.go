package jobs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The reaper collects orphans re-parented to this process while commands
// started through it keep their own exit statuses (ARCHITECTURE 5): many
// commands with known codes run while orphans die around them.
func TestReaperKeepsOwnExitStatuses(t *testing.T) {
	if err := BecomeSubreaper(); err != nil {
		t.Fatalf("subreaper: %v", err)
	}
	r := NewReaper(slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	reaperDone := make(chan struct{})
	go func() { r.Run(ctx); close(reaperDone) }()
	defer func() { cancel(); <-reaperDone }()

	// Orphans: each shell leaves 20 short-lived background children behind.
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command("/bin/sh", "-c", "for i in $(seq 20); do (sleep 0.05 &) ; done")
			if err := r.Start(cmd); err != nil {
				t.Error(err)
				return
			}
			if err := r.Wait(cmd); err != nil {
				t.Errorf("orphan maker: %v", err)
			}
		}()
	}
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code := i % 7
			cmd := exec.Command("/bin/sh", "-c", "exit "+string(rune('0'+code)))
			if err := r.Start(cmd); err != nil {
				t.Error(err)
				return
			}
			st := exitStatus(r.Wait(cmd))
			if st.Code != code || st.Err != nil {
				t.Errorf("command %d: got %v, want code %d", i, st, code)
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(3 * time.Second)
	for r.Reaped() < 200 {
		if time.Now().After(deadline) {
			t.Fatalf("reaped %d orphans, want 200", r.Reaped())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, pid := range children(r.self) {
		data, _, err := readProcFile(fmt.Sprintf("/proc/%d/stat", pid), nil)
		if err != nil {
			continue // reaped since
		}
		if st, ok := parseStat(pid, data); ok && st.state == 'Z' {
			t.Fatalf("zombie %d left", pid)
		}
	}
}

func TestClassifyStartError(t *testing.T) {
	for _, c := range []struct {
		err       error
		code      int
		transient bool
	}{
		{exec.ErrNotFound, 127, false},
		{&exec.Error{Name: "x", Err: syscall.ENOENT}, 127, false},
		{syscall.EACCES, 126, false},
		{syscall.ENOEXEC, 126, false},
		{syscall.EAGAIN, 1, true},
		{errors.Join(errors.New("fork"), syscall.EMFILE), 1, true},
	} {
		st, transient := classifyStartError(c.err)
		if st.Code != c.code || transient != c.transient {
			t.Errorf("%v: got %d transient=%v", c.err, st.Code, transient)
		}
	}
}

// readProcFile reads a whole file whatever buffer it starts with, growing
// it past a /proc file's first read.
func TestReadProcFile(t *testing.T) {
	want, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, buf := range [][]byte{nil, make([]byte, 7), make([]byte, 64<<10)} {
		got, _, err := readProcFile("/proc/self/status", buf)
		if err != nil {
			t.Fatal(err)
		}
		// The status of this process changes between reads only in its
		// counters; the first line (Name) and the length's order do not.
		if len(got) < len(want)/2 || !bytes.HasPrefix(got, want[:bytes.IndexByte(want, '\n')]) {
			t.Errorf("with a %d-byte buffer: read %d bytes %.40q, want about %d", len(buf), len(got), got, len(want))
		}
	}
	if _, _, err := readProcFile("/proc/self/no-such-file", nil); !errors.Is(err, unix.ENOENT) {
		t.Errorf("missing file: %v, want ENOENT", err)
	}
}
