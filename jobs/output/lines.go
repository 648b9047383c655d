package output

import "bytes"

// AttachLines prepares one output stream of one run of a job whose lines go
// to fn instead of to a Sink: a sensor job's stdout, say, which pilot reads
// as data. It has the same machinery and contract as a prefixed or JSON
// Attachment (a pipe, a bounded queue, a reader and a writer goroutine;
// Started, then Finish or Abort), so a slow fn never blocks the child and
// lines are dropped and counted (Dropped) when the queue is full.
//
// fn is called from one goroutine, in order, once per line, without the
// line's '\n' (nor a trailing '\r'); a line over the line cap arrives in
// cap-sized pieces, each a call. fn must not keep the slice after it
// returns. stream names the stream in errors ("stdout").
func AttachLines(job, stream string, fn func(line []byte), opts ...Option) (*Attachment, error) {
	return attachPipe(NewSink(lineWriter(fn)), lineFormat{}, job, stream, opts)
}

// lineFormat passes each line through as it is; pilot has no notice to
// add to data (drops are counted by Dropped instead).
type lineFormat struct{}

func (lineFormat) line(dst, text []byte) []byte {
	dst = append(dst, text...)
	return append(dst, '\n')
}

func (lineFormat) notice(dst []byte, _ string) []byte { return dst }

// lineWriter hands each whole record of a batch to fn. Records end in one
// '\n' and hold no other, so splitting at '\n' gives back the lines.
type lineWriter func(line []byte)

func (fn lineWriter) Write(p []byte) (int, error) {
	for rest := p; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			fn(rest)
			break
		}
		fn(rest[:i])
		rest = rest[i+1:]
	}
	return len(p), nil
}
