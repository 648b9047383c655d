package output

import (
	"fmt"
	"io"
	"os"
	"sync"
)

// Sink is a destination shared by many jobs: in pilot, its own stdout or its
// own stderr. Every write through a Sink is one call under one lock, so the
// lines of different jobs never interleave.
type Sink struct {
	mu sync.Mutex
	w  io.Writer
}

// NewSink returns a Sink writing to w. For raw mode to work, w must be an
// *os.File, whose descriptor raw children then inherit.
func NewSink(w io.Writer) *Sink { return &Sink{w: w} }

// Write writes p to the destination in a single call that no other writer of
// this Sink can interrupt. Pilot's own logger may write through the Sink so
// that its lines, too, never land in the middle of a job's line.
func (s *Sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

const (
	defaultBufferBytes  = 1 << 20
	defaultMaxLineBytes = 1 << 20
	// readBufferBytes is the size of each read from the pipe. Lines longer
	// than this are accumulated, not split.
	readBufferBytes = 64 << 10
)

// limits bound the memory one attached stream uses.
type limits struct {
	bufferBytes  int
	maxLineBytes int
}

// An Option changes a limit of Attach.
type Option func(*limits)

// WithBufferBytes bounds the output waiting for a slow sink (default 1 MiB),
// not counting the record the sink is about to take. When it is full, whole
// lines (or pieces of long lines) are dropped and counted.
func WithBufferBytes(n int) Option { return func(l *limits) { l.bufferBytes = n } }

// WithMaxLineBytes sets the longest line emitted as one record (default
// 1 MiB). A longer line is emitted in pieces of this size, each with its own
// prefix (or JSON record), so that one runaway line cannot use unbounded
// memory.
func WithMaxLineBytes(n int) Option { return func(l *limits) { l.maxLineBytes = n } }

// Attach prepares one output stream of one run of a job. stream names it in
// JSON records ("stdout" or "stderr"). The returned Attachment's Child is
// what the child process gets as that stream.
//
// In raw mode Child is the Sink's own *os.File: the child inherits pilot's
// descriptor and its bytes never pass through pilot. In the other modes
// Child is the write end of a pipe that pilot reads continuously; see
// Attachment for the calls that must follow.
func (s *Sink) Attach(mode Mode, job, stream string, opts ...Option) (*Attachment, error) {
	if mode == Raw {
		f, ok := s.w.(*os.File)
		if !ok {
			return nil, fmt.Errorf("raw output needs a sink on an *os.File, not %T", s.w)
		}
		return &Attachment{Child: f}, nil
	}
	var format formatter
	switch mode {
	case Prefixed:
		format = prefixFormat(job + " | ")
	case JSON:
		format = jsonFormat{job: job, stream: stream}
	default:
		return nil, fmt.Errorf("unknown output mode %q", mode)
	}
	return attachPipe(s, format, job, stream, opts)
}

// attachPipe starts the pipe, the queue and the two goroutines of an
// Attachment that copies the child's lines, formatted, to s.
func attachPipe(s *Sink, format formatter, job, stream string, opts []Option) (*Attachment, error) {
	lim := limits{bufferBytes: defaultBufferBytes, maxLineBytes: defaultMaxLineBytes}
	for _, o := range opts {
		o(&lim)
	}
	if lim.bufferBytes <= 0 || lim.maxLineBytes <= 0 {
		return nil, fmt.Errorf("output limits must be positive (buffer %d, max line %d)", lim.bufferBytes, lim.maxLineBytes)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("%s %s: output pipe: %w", job, stream, err)
	}
	a := &Attachment{
		Child:        w,
		name:         job + " " + stream,
		stream:       stream,
		bufferBytes:  lim.bufferBytes,
		maxLineBytes: lim.maxLineBytes,
		pipe:         r,
		sink:         s,
		queue:        newQueue(lim.bufferBytes),
		readerDone:   make(chan struct{}),
		writerDone:   make(chan struct{}),
	}
	go a.readPipe(format, lim.maxLineBytes)
	go a.writeSink(format)
	return a, nil
}
