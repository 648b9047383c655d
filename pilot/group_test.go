package pilot

import (
	"errors"
	"slices"
	"sync"
	"testing"
)

// The first actor to return stops the others, last added first, each
// finished before the next is interrupted.
func TestGroupTeardownOrder(t *testing.T) {
	var (
		mu    sync.Mutex
		order []string
	)
	record := func(s string) {
		mu.Lock()
		order = append(order, s)
		mu.Unlock()
	}
	blocking := func(name string) (func() error, func()) {
		stop := make(chan struct{})
		return func() error { <-stop; record(name + " returned"); return nil },
			func() { record(name + " interrupted"); close(stop) }
	}
	var g group
	g.add(blocking("reaper"))
	g.add(blocking("signals"))
	errDone := errors.New("done")
	g.add(func() error { record("supervisor returned"); return errDone }, func() {})
	if err := g.run(); !errors.Is(err, errDone) {
		t.Fatalf("run returned %v", err)
	}
	want := []string{"supervisor returned", "signals interrupted", "signals returned", "reaper interrupted", "reaper returned"}
	if !slices.Equal(order, want) {
		t.Fatalf("order %v, want %v", order, want)
	}
}
