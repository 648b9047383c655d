package health

import (
	"log/slog"
	"os"
	"syscall"
	"testing"

	"go.uber.org/goleak"

	"github.com/nodepilot/pilot/jobs"
)

func TestMain(m *testing.M) {
	// Become a subreaper, as pilot is (PID 1 or PR_SET_CHILD_SUBREAPER), so
	// that a check's orphaned grandchildren re-parent to this process and the
	// tests can prove nothing of a check's group is left, zombies included.
	const prSetChildSubreaper = 36
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		os.Stderr.WriteString("cannot become subreaper: " + errno.Error() + "\n")
		os.Exit(1)
	}
	goleak.VerifyTestMain(m)
}

// newRunner is the CommandRunner pilot passes, a *jobs.Reaper. It need not
// run: this process reaps the orphans of checks itself (assertGroupGone).
func newRunner() CommandRunner { return jobs.NewReaper(slog.New(slog.DiscardHandler)) }
