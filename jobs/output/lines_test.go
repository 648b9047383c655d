package output

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// collect is a line hook that records what it is given.
type collect struct {
	mu    sync.Mutex
	lines []string
}

func (c *collect) add(line []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lines = append(c.lines, string(line)) // copied: the slice is reused
}

func (c *collect) get() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.lines...)
}

func TestAttachLines(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
		opts     []Option
	}{
		{name: "lines", in: "a 1\nb{x=\"y\"} 2\n", want: []string{"a 1", `b{x="y"} 2`}},
		{name: "empty input", in: "", want: nil},
		{name: "empty lines are lines", in: "\n\n", want: []string{"", ""}},
		{name: "crlf and a partial last line", in: "a 1\r\nb 2", want: []string{"a 1", "b 2"}},
		{name: "line over the cap comes in pieces", in: strings.Repeat("x", 25) + "\n",
			want: []string{strings.Repeat("x", 10), strings.Repeat("x", 10), strings.Repeat("x", 5)},
			opts: []Option{WithMaxLineBytes(10)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c collect
			a, err := AttachLines("sensor", "stdout", c.add, tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := a.Child.WriteString(tt.in); err != nil {
				t.Fatal(err)
			}
			if err := a.Finish(5 * time.Second); err != nil {
				t.Fatal(err)
			}
			if got := c.get(); strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if a.Dropped() != 0 {
				t.Errorf("dropped %d", a.Dropped())
			}
		})
	}
}

// A hook that blocks does not block the child: lines beyond the buffer are
// dropped and counted, never announced as a line of data.
func TestAttachLinesSlowHook(t *testing.T) {
	release := make(chan struct{})
	var c collect
	first := true
	a, err := AttachLines("sensor", "stdout", func(line []byte) {
		if first {
			first = false
			<-release
		}
		c.add(line)
	}, WithBufferBytes(64))
	if err != nil {
		t.Fatal(err)
	}
	written := make(chan error, 1)
	go func() {
		for i := range 200 {
			if _, err := a.Child.WriteString(strings.Repeat("x", 10) + string(rune('0'+i%10)) + "\n"); err != nil {
				written <- err
				return
			}
		}
		written <- nil
	}()
	select {
	case err := <-written:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the child blocked on a slow hook")
	}
	eventually(t, "drops", func() bool { return a.Dropped() > 0 })
	close(release)
	if err := a.Finish(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	got := c.get()
	if uint64(len(got))+a.Dropped() != 200 {
		t.Errorf("%d lines + %d dropped != 200", len(got), a.Dropped())
	}
	for _, l := range got {
		if len(l) != 11 {
			t.Errorf("line %q is not one the child wrote", l)
		}
	}
}
