package output

import "sync"

// queue holds formatted records between the pipe reader and the sink
// writer. It is bounded by bytes so that a stalled sink costs a fixed amount
// of memory and never stalls the reader: a record that does not fit is
// dropped whole, and counted.
//
// The head record — the first one queued since the writer last took, which
// the sink is about to get — does not count against the limit, and a record
// is always taken while nothing waits behind the head. So one long record
// (a piece of a line over the cap can be as big as the whole buffer) never
// fills the queue by itself: the lines after it are dropped only when the
// sink really falls behind.
type queue struct {
	mu         sync.Mutex
	ready      sync.Cond // signalled when there is something to take
	buf        []byte    // whole records, oldest first
	headLen    int       // length of buf's first record, 0 when buf is empty
	limit      int
	unreported drops // records dropped since the writer last took
	closed     bool  // the reader has finished: buf holds its last records
}

// drops counts dropped records by kind, for a notice that says what was lost.
type drops struct {
	lines  uint64 // whole lines
	pieces uint64 // pieces of lines longer than the line cap
}

func (d drops) total() uint64 { return d.lines + d.pieces }

func newQueue(limit int) *queue {
	q := &queue{limit: limit}
	q.ready.L = &q.mu
	return q
}

// push appends rec, or drops it and reports false when the bytes waiting
// behind the head are already at the limit. piece says that rec is part of
// a line split at the cap.
func (q *queue) push(rec []byte, piece bool) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if waiting := len(q.buf) - q.headLen; waiting > 0 && waiting+len(rec) > q.limit {
		if piece {
			q.unreported.pieces++
		} else {
			q.unreported.lines++
		}
		return false
	}
	if len(q.buf) == 0 {
		q.headLen = len(rec)
	}
	q.buf = append(q.buf, rec...)
	q.ready.Signal()
	return true
}

// close tells the writer that nothing more will be pushed.
func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.ready.Signal()
	q.mu.Unlock()
}

// take waits until there are records, unreported drops or the end, then
// hands over all queued records at once and keeps spare to fill next, so
// that the reader and the writer swap two buffers instead of allocating.
// last is true when the reader has finished and nothing will follow.
func (q *queue) take(spare []byte) (batch []byte, unreported drops, last bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.buf) == 0 && q.unreported.total() == 0 && !q.closed {
		q.ready.Wait()
	}
	batch, q.buf, q.headLen = q.buf, spare[:0], 0
	unreported, q.unreported = q.unreported, drops{}
	return batch, unreported, q.closed
}
