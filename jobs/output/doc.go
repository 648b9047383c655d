// Package output owns the path from a job's stdout and stderr to pilot's
// (RELIABILITY 39).
//
// In raw mode, the default, it owns nothing at run time: the child inherits
// pilot's own descriptor, so bytes pass through untouched with no copy, no
// pipe and no goroutine. In prefixed and JSON modes each stream of each run
// gets a pipe, a reader goroutine and a writer goroutine (see Attachment):
//
//   - The reader drains the pipe continuously into a queue bounded by bytes,
//     so a slow or stalled sink never blocks the child. The record the sink
//     is about to take does not count against the bound, so a long line's
//     piece never fills the queue alone. When the output waiting behind it
//     passes the bound, records are dropped whole and counted
//     (Attachment.Dropped), and once the sink catches up a notice says what
//     was lost: "pilot: dropped 2 lines: the job wrote faster than pilot's
//     stdout took its output, with 1 MiB waiting" (pieces of long lines are
//     counted apart). Nothing is dropped while the sink keeps up.
//   - Lines are not split at 64 KiB: a line is one record up to a cap (1 MiB
//     by default), and only a longer line is emitted in cap-sized pieces,
//     each with its own prefix. A trailing '\r' is stripped, and a partial
//     last line is flushed, with a newline, when the pipe ends.
//
// Memory per stream is bounded: the queue and the batch in flight to the
// sink hold at most the buffer plus two records each, and the line being
// gathered at most the cap plus one read, so about twice the buffer plus
// five times the line cap (more in JSON mode, where escaping can make a
// record up to six times its line). Buffers grown by a burst are let go
// afterwards.
//
// AttachLines is the same machinery with a function in place of a Sink:
// each line goes, in order, to the function (a sensor job's stdout is data
// for pilot, not output). Drops are counted by Dropped, not announced.
//
// Concurrency contract: a Sink may be shared by any number of Attachments and
// other writers (pilot's own logger, say). Each write through it is one call
// under one lock, and Attachments write only whole lines, so their lines
// never interleave mid-line with anything written through the same Sink.
// Raw children are outside that promise: they write to the descriptor
// directly. An Attachment is driven by one goroutine (Attach, Started, then
// Finish or Abort, once each); Dropped may be called from anywhere. Finish
// is bounded by its timeout even when a grandchild keeps the pipe open, and
// the reader goroutine is gone when it returns.
package output
