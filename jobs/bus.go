package jobs

import (
	"slices"
	"sync"
)

// Bus fans StateChanges out to subscribers and remembers the latest change
// of every job, so that a subscriber that comes late (a job added by a
// reload) learns where every job stands before it hears what changes next.
//
// Publish never blocks: each subscription has its own unbounded queue, so a
// slow subscriber can neither stall a job's loop nor lose an event.
// Subscribe takes the snapshot and registers the subscription under the
// same lock under which Publish records a change and reads the
// subscribers, so each change reaches a new subscriber exactly once: in its
// snapshot or after it, never both, never neither.
type Bus struct {
	mu sync.Mutex
	// subs is copied on write: Publish iterates the slice it read under mu
	// after letting mu go, so nothing may change an element once published.
	subs []*Subscription
	// latest holds each job's latest change, in the order of each job's
	// first publish; Forget drops one.
	latest []StateChange
}

func NewBus() *Bus { return &Bus{} }

// Subscribe returns a subscription whose queue already holds the latest
// change of every job the bus remembers, one per job, in the order the jobs
// first published and marked Replayed, followed by every change published
// after this call.
func (b *Bus) Subscribe() *Subscription {
	s := &Subscription{ready: make(chan struct{}, 1)}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.latest {
		c.Replayed = true
		s.queue = append(s.queue, c)
	}
	if len(s.queue) > 0 {
		s.ready <- struct{}{}
	}
	b.subs = append(b.subs, s)
	return s
}

// Unsubscribe stops delivery to s.
func (b *Bus) Unsubscribe(s *Subscription) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, sub := range b.subs {
		if sub == s {
			b.subs = slices.Delete(slices.Clone(b.subs), i, i+1)
			return
		}
	}
}

// Forget drops what the bus remembers of job, so that later subscribers no
// longer hear of it. The supervisor calls it once a removed or replaced job
// has stopped and before its replacement is created: the new job's
// dependents must not take the old one's final state for the new one's.
// Subscribers that already have the old changes keep them.
func (b *Bus) Forget(job string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.latest = slices.DeleteFunc(b.latest, func(c StateChange) bool { return c.Job == job })
}

// Publish records c as its job's latest change and queues it for every
// subscriber.
func (b *Bus) Publish(c StateChange) {
	b.mu.Lock()
	if i := slices.IndexFunc(b.latest, func(l StateChange) bool { return l.Job == c.Job }); i >= 0 {
		b.latest[i] = c
	} else {
		b.latest = append(b.latest, c)
	}
	subs := b.subs
	b.mu.Unlock()
	for _, s := range subs {
		s.push(c)
	}
}

// Subscription is one subscriber's queue.
type Subscription struct {
	mu    sync.Mutex
	queue []StateChange
	ready chan struct{}
}

func (s *Subscription) push(c StateChange) {
	s.mu.Lock()
	s.queue = append(s.queue, c)
	s.mu.Unlock()
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// Ready is signalled whenever changes are waiting (at once after Subscribe
// when the bus remembered any); call Drain after it fires.
func (s *Subscription) Ready() <-chan struct{} { return s.ready }

// Drain returns and clears the waiting changes, oldest first.
func (s *Subscription) Drain() []StateChange {
	s.mu.Lock()
	q := s.queue
	s.queue = nil
	s.mu.Unlock()
	return q
}
