package jobs

import (
	"slices"
	"sync"
)

// Bus fans StateChanges out to subscribers. Publish never blocks: each
// subscription has its own unbounded queue, so a slow subscriber can neither
// stall a job's loop nor lose an event.
type Bus struct {
	mu sync.Mutex
	// subs is copied on write: Publish iterates the slice it read under mu
	// after letting mu go, so nothing may change an element once published.
	subs []*Subscription
}

func NewBus() *Bus { return &Bus{} }

// Subscribe returns a subscription that receives every change published
// after this call. Subscribe everything before starting jobs so that no
// early change is missed.
func (b *Bus) Subscribe() *Subscription {
	s := &Subscription{ready: make(chan struct{}, 1)}
	b.mu.Lock()
	b.subs = append(b.subs, s)
	b.mu.Unlock()
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

func (b *Bus) Publish(c StateChange) {
	b.mu.Lock()
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

// Ready is signalled whenever changes are waiting; call Drain after it fires.
func (s *Subscription) Ready() <-chan struct{} { return s.ready }

// Drain returns and clears the waiting changes, oldest first.
func (s *Subscription) Drain() []StateChange {
	s.mu.Lock()
	q := s.queue
	s.queue = nil
	s.mu.Unlock()
	return q
}
