package main

import (
	"fmt"
	"os"
	"regexp"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// jumpWallClock moves CLOCK_REALTIME by d and returns a function that moves
// it back. It needs CAP_SYS_TIME: it fails the test in CI without it, and
// skips loudly elsewhere.
func jumpWallClock(t *testing.T, d time.Duration) (restore func()) {
	t.Helper()
	shift := func(by time.Duration) error {
		var ts unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_REALTIME, &ts); err != nil {
			return err
		}
		ts = unix.NsecToTimespec(ts.Nano() + by.Nanoseconds())
		return unix.ClockSettime(unix.CLOCK_REALTIME, &ts)
	}
	if err := shift(d); err != nil {
		msg := fmt.Sprintf("the wall-clock test needs CAP_SYS_TIME (root): %v", err)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip("SKIPPED — " + msg)
	}
	restored := false
	restore = func() {
		if !restored {
			restored = true
			if err := shift(-d); err != nil {
				t.Errorf("restoring the wall clock: %v", err)
			}
		}
	}
	t.Cleanup(restore)
	return restore
}

// RELIABILITY C23: backoffs and uptimes use the monotonic clock. The wall
// clock is set back an hour during a 300 ms restart backoff, then forward
// two hours during a run: the restart still comes on time, and the run is
// not taken for a stable one (which would reset the backoff). Not parallel:
// it moves the machine's clock, so it runs alone, before the parallel tests
// of this package, and puts the clock back.
func TestWallClockJumpsChangeNothing(t *testing.T) {
	cfg := writeConfig(t, `jobs:
  - name: app
    main: true
    shell: echo run; sleep 0.2; exit 1
    restart: {policy: always, max: 2, backoff: {initial: 300ms, max: 10s, resetAfter: 1h}}
`)
	p := startPilot(t, pilotOpts{pid1: true}, "run", "--config", cfg)
	p.errLog.waitLine(t, 5*time.Second, `msg=restarting`)
	restore := jumpWallClock(t, -time.Hour)
	waited := time.Now() // monotonic reading: unaffected by the jump
	p.out.waitLine(t, 2*time.Second, `^run$`)
	for p.out.count(`^run$`) < 2 {
		if time.Since(waited) > 2*time.Second {
			t.Fatal("the restart did not come within 2 s of a backoff of 300 ms")
		}
		time.Sleep(5 * time.Millisecond)
	}
	restore()
	restore = jumpWallClock(t, 2*time.Hour) // during the second run
	if code := p.wait(5 * time.Second); code != 1 {
		t.Fatalf("exit %d", code)
	}
	restore()
	var delays []time.Duration
	for _, l := range p.errLog.Lines() {
		if m := restartDelay.FindStringSubmatch(l); m != nil {
			d, err := time.ParseDuration(m[1])
			if err != nil {
				t.Fatal(err)
			}
			delays = append(delays, d)
		}
	}
	// Had the +2 h jump counted as uptime, the run would pass for a stable
	// one and the second delay would be back at 300ms; on the monotonic
	// clock it is the doubled 600ms (±20 %).
	if len(delays) != 2 || delays[1] < 480*time.Millisecond || delays[1] > 720*time.Millisecond {
		t.Fatalf("restart delays %v, want the second to be 600ms ±20%%", delays)
	}
}

var restartDelay = regexp.MustCompile(`msg=restarting .* in=(\S+)`)
