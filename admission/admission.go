// Package admission decides when a request may start: at once while fewer
// than Limit are in flight, else after waiting its turn in a FIFO queue, as
// HAProxy's maxconn with "timeout queue" and Envoy's max_pending_requests
// do. A burst larger than the limit is served, not refused: it only waits.
//
// Under sustained overload a plain FIFO queue turns every request into a
// wait of the full timeout. The queue is therefore adaptive, as in CoDel
// and Facebook's "controlled delay" RPC queues: once it has not been empty
// for a whole Interval, a standing queue has formed, and a waiter is only
// admitted if it has waited at most Target; the rest are refused at once
// (reason queue_timeout), so the admitted keep a short wait and the
// refused learn quickly to come back later. A burst that drains within
// the Interval never sees this. Refusals empty the queue for a moment
// (the refused come back at once); that does not end a standing queue,
// only an Interval with no refusal does, so the policy does not flicker
// back to long waits under sustained overload.
package admission

import (
	"errors"
	"sync"
	"time"
)

// Reasons a request is refused.
var (
	// ErrQueueFull: MaxQueued requests are waiting already.
	ErrQueueFull = errors.New("queue_full")
	// ErrQueueTimeout: the request waited Timeout, or more than Target in
	// a standing queue.
	ErrQueueTimeout = errors.New("queue_timeout")
)

// Options shape a Limiter.
type Options struct {
	// Limit is how many requests may be in flight at once.
	Limit int
	// MaxQueued is how many may wait for a slot; 0 refuses at once past
	// Limit.
	MaxQueued int
	// Timeout is the longest a request waits.
	Timeout time.Duration
	// Target is the longest wait in a standing queue; 0 turns the adaptive
	// policy off (every waiter may wait Timeout).
	Target time.Duration
	// Interval is how long the queue must stay non-empty to count as
	// standing.
	Interval time.Duration
	// OnQueue, when set, is told every change of the queue's length (+1,
	// -1), for a gauge. It is called with the Limiter's lock held: keep it
	// to an atomic add.
	OnQueue func(delta int)
}

// Limiter is one budget of in-flight requests with its queue. It is safe
// for concurrent use.
type Limiter struct {
	opts Options

	mu       sync.Mutex
	inFlight int
	head     *waiter // oldest
	tail     *waiter
	queued   int
	busy     time.Time // when the queue last became non-empty
	refused  time.Time // when a waiter was last refused for its wait
}

type waiter struct {
	prev, next *waiter
	since      time.Time
	done       bool      // set under the lock when decided
	ready      chan bool // buffered: true admitted, false refused
}

// New returns a Limiter with opts.
func New(opts Options) *Limiter {
	if opts.Limit < 1 {
		opts.Limit = 1
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	return &Limiter{opts: opts}
}

// Acquire waits for a slot and says how long it waited. On nil error the
// caller owns a slot and must Release it; otherwise the error is
// ErrQueueFull or ErrQueueTimeout.
func (l *Limiter) Acquire() (time.Duration, error) {
	l.mu.Lock()
	if l.inFlight < l.opts.Limit && l.queued == 0 {
		l.inFlight++
		l.mu.Unlock()
		return 0, nil
	}
	if l.queued >= l.opts.MaxQueued {
		l.mu.Unlock()
		return 0, ErrQueueFull
	}
	now := time.Now()
	timeout := l.opts.Timeout
	if l.standing(now) {
		timeout = min(timeout, l.opts.Target)
	}
	w := &waiter{since: now, ready: make(chan bool, 1)}
	l.push(w)
	l.mu.Unlock()

	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case ok := <-w.ready:
		return time.Since(now), result(ok)
	case <-timer.C:
	}
	l.mu.Lock()
	if w.done { // decided while the timer fired
		l.mu.Unlock()
		return time.Since(now), result(<-w.ready)
	}
	l.remove(w)
	l.refused = time.Now()
	l.mu.Unlock()
	return time.Since(now), ErrQueueTimeout
}

func result(admitted bool) error {
	if admitted {
		return nil
	}
	return ErrQueueTimeout
}

// TryAcquire takes a slot only if one is free and nobody waits for it.
func (l *Limiter) TryAcquire() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inFlight < l.opts.Limit && l.queued == 0 {
		l.inFlight++
		return true
	}
	return false
}

// Release gives a slot back: to the oldest waiter that may still have it,
// or to the pool.
func (l *Limiter) Release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.head == nil { // the common case, without reading the clock
		l.inFlight--
		return
	}
	now := time.Now()
	standing := l.standing(now)
	for w := l.head; w != nil; w = l.head {
		l.remove(w)
		w.done = true
		if standing && now.Sub(w.since) > l.opts.Target {
			w.ready <- false // waited too long in a standing queue
			l.refused = now
			continue
		}
		w.ready <- true // the slot passes straight to w
		return
	}
	l.inFlight--
}

// Queued is how many requests wait now.
func (l *Limiter) Queued() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.queued
}

// standing says the queue has been non-empty for a whole Interval.
func (l *Limiter) standing(now time.Time) bool {
	return l.opts.Target > 0 && l.queued > 0 && now.Sub(l.busy) >= l.opts.Interval
}

func (l *Limiter) push(w *waiter) {
	if l.queued == 0 && w.since.Sub(l.refused) >= l.opts.Interval {
		l.busy = w.since
	}
	w.prev = l.tail
	if l.tail != nil {
		l.tail.next = w
	} else {
		l.head = w
	}
	l.tail = w
	l.queued++
	if l.opts.OnQueue != nil {
		l.opts.OnQueue(1)
	}
}

func (l *Limiter) remove(w *waiter) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		l.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		l.tail = w.prev
	}
	w.prev, w.next = nil, nil
	l.queued--
	if l.opts.OnQueue != nil {
		l.opts.OnQueue(-1)
	}
}
