package output

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// retainBytes is the largest scratch buffer kept for reuse. Buffers grown
// beyond it by a burst or a long line are let go, so an idle job holds
// little memory.
const retainBytes = 128 << 10

// Attachment is one output stream of one run of a job. In prefixed and JSON
// modes it owns a pipe and two goroutines: a reader that drains the pipe
// into a bounded queue, so the child never waits on the sink, and a writer
// that moves the queue to the Sink. The caller drives it like this:
//
//	a, err := sink.Attach(mode, job, "stdout")
//	cmd.Stdout = a.Child
//	if err := cmd.Start(); err != nil {
//		a.Abort()
//		return err
//	}
//	a.Started()
//	…
//	cmd.Wait()
//	err = a.Finish(timeout)
//
// In raw mode Started, Abort and Finish do nothing.
type Attachment struct {
	// Child is the file the child gets as its stdout or stderr. Pilot's copy
	// is closed by Started (or Finish); do not use it after that.
	Child *os.File

	// The rest is unset in raw mode, where nothing is copied.
	name   string // "job stream", for errors
	stream string // "stdout" or "stderr", for the drop notice
	// bufferBytes and maxLineBytes are the limits, for the drop notice.
	bufferBytes, maxLineBytes int
	pipe                      *os.File // pilot's read end, closed by Finish once the reader is done
	sink                      *Sink
	queue                     *queue
	closeChild                sync.Once
	dropped                   atomic.Uint64
	readerDone                chan struct{}
	readErr                   error // why the reader stopped, nil at end of file; set before readerDone closes
	writerDone                chan struct{}
	writeErr                  error // the sink's first error; set before writerDone closes
}

// Started releases pilot's copy of Child once the child holds its own, as
// os/exec does with the pipes it creates. Call it right after cmd.Start
// succeeds. The pipe reports end of file only when every copy of its write
// end is closed; Finish closes pilot's copy too, so forgetting Started costs
// a descriptor for the length of the run, not a hang.
func (a *Attachment) Started() {
	if a.pipe != nil {
		a.releaseChild()
	}
}

// Abort releases the pipe and the goroutines of a child that never started.
func (a *Attachment) Abort() {
	// Nothing was written, so there is nothing to wait for and no error
	// worth reporting.
	_ = a.Finish(0)
}

// Finish waits, for at most timeout, until everything the child wrote has
// reached the sink, then releases the pipe. Call it once, after cmd.Wait
// returns.
//
// The pipe ends only when every process holding its write end has closed
// it, and a grandchild that inherited it may outlive the job. If that holds
// past the timeout, Finish stops reading, emits the partial line already
// read, closes the read end (so a descendant that keeps writing gets EPIPE)
// and returns an error. If instead the sink has not taken the last output by
// the timeout, Finish returns an error without waiting further; the writer
// goroutine exits as soon as the sink takes what remains (at most the
// buffer). Both errors wrap os.ErrDeadlineExceeded.
func (a *Attachment) Finish(timeout time.Duration) error {
	if a.pipe == nil {
		return nil // raw: the child wrote straight to pilot's descriptor
	}
	a.releaseChild()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	select {
	case <-a.readerDone:
	case <-deadline.C:
		// Wake the reader from its blocked read; it flushes what it has.
		if err := a.pipe.SetReadDeadline(time.Now()); err != nil {
			return fmt.Errorf("%s: cannot stop reading output: %w", a.name, err)
		}
		<-a.readerDone
	}
	a.pipe.Close()
	if errors.Is(a.readErr, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%s: output still open %v after the job exited (held by a descendant?), stopped reading: %w", a.name, timeout, a.readErr)
	}
	if a.readErr != nil {
		return fmt.Errorf("%s: reading output: %w", a.name, a.readErr)
	}
	select {
	case <-a.writerDone:
		if a.writeErr != nil {
			return fmt.Errorf("%s: writing output: %w", a.name, a.writeErr)
		}
		return nil
	case <-deadline.C:
		return fmt.Errorf("%s: the sink did not take the last output within %v: %w", a.name, timeout, os.ErrDeadlineExceeded)
	}
}

// Copied reports whether pilot copies this stream through a pipe (prefixed,
// JSON, lines); a raw child writes to pilot's own descriptor, and Finish
// has nothing to wait for.
func (a *Attachment) Copied() bool { return a.pipe != nil }

// Dropped is the number of records lost so far — lines, or pieces of lines
// over the line cap — because the sink was too slow or failing. It is safe
// to call at any time.
func (a *Attachment) Dropped() uint64 { return a.dropped.Load() }

func (a *Attachment) releaseChild() {
	a.closeChild.Do(func() { a.Child.Close() })
}

// readPipe turns the pipe's bytes into records until end of file (every
// holder of the write end has closed it) or until Finish gives up.
func (a *Attachment) readPipe(format formatter, maxLine int) {
	defer close(a.readerDone)
	defer a.queue.close()
	var rec []byte
	// long is set while the line being read is over the cap: all its
	// records, the last one too, are pieces.
	long := false
	emit := func(text []byte) {
		rec = format.line(rec[:0], text)
		if !a.queue.push(rec, long) {
			a.dropped.Add(1)
		}
		rec = reuse(rec)
	}
	emitLine := func(text []byte) {
		text = bytes.TrimSuffix(text, []byte{'\r'})
		for len(text) > maxLine {
			long = true
			emit(text[:maxLine])
			text = text[maxLine:]
		}
		emit(text)
		long = false
	}
	r := bufio.NewReaderSize(a.pipe, readBufferBytes)
	var line []byte
	for {
		// ReadSlice, unlike bufio.Scanner, has no line limit: a line longer
		// than the read buffer arrives in several chunks, gathered here.
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		switch {
		case err == nil:
			emitLine(line[:len(line)-1])
			line = reuse(line)
		case errors.Is(err, bufio.ErrBufferFull):
			// A long line, not over yet. Keep one byte beyond the cap: a '\r'
			// there may still turn out to be half of the line's "\r\n".
			emitted := 0
			for len(line)-emitted > maxLine+1 {
				long = true
				emit(line[emitted : emitted+maxLine])
				emitted += maxLine
			}
			line = line[:copy(line, line[emitted:])]
		default:
			// End of file, or Finish gave up: flush a partial last line.
			if len(line) > 0 {
				emitLine(line)
			}
			if err != io.EOF {
				a.readErr = err
			}
			return
		}
	}
}

// writeSink moves records from the queue to the sink until the reader has
// finished. After each batch it reports the records dropped while the sink
// was busy, so that the loss shows where it happened.
func (a *Attachment) writeSink(format formatter) {
	defer close(a.writerDone)
	var spare []byte
	for {
		batch, unreported, last := a.queue.take(spare)
		records := len(batch)
		if unreported.total() > 0 {
			batch = format.notice(batch, a.dropNotice(unreported))
		}
		if len(batch) > 0 {
			if _, err := a.sink.Write(batch); err != nil {
				// Nobody will read these lines (stdout was closed, say), but
				// the count stays honest. Every record ends in one '\n'.
				a.dropped.Add(uint64(bytes.Count(batch[:records], []byte{'\n'})))
				if a.writeErr == nil {
					a.writeErr = err
				}
			}
		}
		if last {
			return
		}
		spare = reuse(batch)
	}
}

// dropNotice says what was lost and why, e.g. "dropped 2 lines: the job
// wrote faster than pilot's stdout took its output, with 1 MiB waiting".
func (a *Attachment) dropNotice(d drops) string {
	var what []string
	if d.lines > 0 {
		what = append(what, plural(d.lines, "line", "lines"))
	}
	if d.pieces > 0 {
		what = append(what, plural(d.pieces, "piece of a line", "pieces of lines")+" over "+byteSize(a.maxLineBytes))
	}
	return fmt.Sprintf("dropped %s: the job wrote faster than pilot's %s took its output, with %s waiting",
		strings.Join(what, " and "), a.stream, byteSize(a.bufferBytes))
}

func plural(n uint64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// byteSize writes n the way users write sizes in the config.
func byteSize(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// reuse empties buf for its next use, or lets it go if it has grown large.
func reuse(buf []byte) []byte {
	if cap(buf) > retainBytes {
		return nil
	}
	return buf[:0]
}
