package output

import (
	"strings"
	"testing"
)

// The head record (the next the sink takes) does not count against the
// limit, so one record as big as the buffer never fills the queue alone.
func TestQueueAdmission(t *testing.T) {
	type push struct {
		size  int
		piece bool
		want  bool
	}
	tests := []struct {
		name   string
		pushes []push
		want   drops
	}{
		{"small lines up to the limit", []push{{4, false, true}, {5, false, true}, {5, false, true}, {1, false, false}}, drops{lines: 1}},
		{"a head over the limit leaves room behind it", []push{{25, true, true}, {6, false, true}, {4, false, true}, {1, false, false}}, drops{lines: 1}},
		{"a record over the limit is taken while nothing waits behind the head", []push{{25, true, true}, {25, true, true}, {25, true, false}, {3, false, false}}, drops{lines: 1, pieces: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := newQueue(10)
			for i, p := range tt.pushes {
				if got := q.push([]byte(strings.Repeat("x", p.size)), p.piece); got != p.want {
					t.Fatalf("push %d (%d bytes) = %v, want %v", i, p.size, got, p.want)
				}
			}
			_, got, _ := q.take(nil)
			if got != tt.want {
				t.Fatalf("dropped %+v, want %+v", got, tt.want)
			}
			// After a take the queue is empty and anything goes in again.
			if !q.push([]byte(strings.Repeat("x", 25)), false) || !q.push([]byte("x"), false) {
				t.Fatal("an emptied queue refused a record")
			}
		})
	}
}

func TestDropNotice(t *testing.T) {
	a := &Attachment{stream: "stderr", bufferBytes: 1 << 20, maxLineBytes: 64 << 10}
	for d, want := range map[drops]string{
		{lines: 1}:            "dropped 1 line: the job wrote faster than pilot's stderr took its output, with 1 MiB waiting",
		{lines: 2, pieces: 3}: "dropped 2 lines and 3 pieces of lines over 64 KiB: the job wrote faster than pilot's stderr took its output, with 1 MiB waiting",
		{pieces: 1}:           "dropped 1 piece of a line over 64 KiB: the job wrote faster than pilot's stderr took its output, with 1 MiB waiting",
	} {
		if got := a.dropNotice(d); got != want {
			t.Errorf("%+v:\n got %q\nwant %q", d, got, want)
		}
	}
	if got := byteSize(1000); got != "1000 bytes" {
		t.Errorf("byteSize(1000) = %q", got)
	}
}
