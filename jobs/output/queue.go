package output

import "sync"

// queue holds formatted records between the pipe reader and the sink
// writer. It is bounded by bytes so that a stalled sink costs a fixed amount
// of memory and never stalls the reader: a record that does not fit is
// dropped whole, and counted.
type queue struct {
	mu         sync.Mutex
	ready      sync.Cond // signalled when there is something to take
	buf        []byte    // whole records, oldest first
	limit      int
	unreported uint64 // records dropped since the writer last took
	closed     bool   // the reader has finished: buf holds its last records
}

func newQueue(limit int) *queue {
	q := &queue{limit: limit}
	q.ready.L = &q.mu
	return q
}

// push appends rec, or drops it and reports false when it does not fit.
func (q *queue) push(rec []byte) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	// An empty queue takes any record, so that a line longer than the limit
	// still reaches a sink that keeps up.
	if len(q.buf) > 0 && len(q.buf)+len(rec) > q.limit {
		q.unreported++
		return false
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
func (q *queue) take(spare []byte) (batch []byte, unreported uint64, last bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.buf) == 0 && q.unreported == 0 && !q.closed {
		q.ready.Wait()
	}
	batch, q.buf = q.buf, spare[:0]
	unreported, q.unreported = q.unreported, 0
	return batch, unreported, q.closed
}
