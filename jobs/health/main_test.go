package health

import (
	"os"
	"os/exec"
	"syscall"
	"testing"

	"go.uber.org/goleak"
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

// directStarter is the trivial ProcessStarter: os/exec's own Start and Wait.
type directStarter struct{}

func (directStarter) Start(cmd *exec.Cmd) error { return cmd.Start() }
func (directStarter) Wait(cmd *exec.Cmd) error  { return cmd.Wait() }
