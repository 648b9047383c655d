package jobs

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	RunTrampoline() // the test binary is the trampoline of its jobs with sockets
	goleak.VerifyTestMain(m)
}
