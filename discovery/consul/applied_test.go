package consul

import (
	"errors"
	"net"
	"syscall"
	"testing"
)

// A request that never left cannot have been applied; one whose answer was
// lost may have been (a proxy may already route to the instance).
func TestMayHaveApplied(t *testing.T) {
	c := &Client{}
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	reset := &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	for _, tt := range []struct {
		name string
		err  error
		want bool
	}{
		{"success", nil, true},
		{"connection refused", c.wrap("register", dial), false},
		{"answer lost to a reset", c.wrap("register", reset), true},
		{"other", c.wrap("register", errors.New("odd")), true},
	} {
		if got := mayHaveApplied(tt.err); got != tt.want {
			t.Errorf("%s: mayHaveApplied(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}
