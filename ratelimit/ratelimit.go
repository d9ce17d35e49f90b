// Package ratelimit decides whether a client or a company may send one more
// request, by the generic cell rate algorithm (GCRA): each key keeps one
// number, the theoretical arrival time of its next request, so a limit
// costs one small entry per active key and no timers. It knows nothing of
// HTTP: routes/ asks Allow and maps the Decision to a status.
//
// Two stores keep the numbers: Memory, in this process, bounded; and
// Redis, shared by every replica, where the algorithm runs as a Lua
// script so that one request is one atomic round trip.
package ratelimit

import (
	"hash/maphash"
	"sync"
	"time"

	"github.com/atenex/gateway/genmap"
)

// Limit is a rate with a burst: Count requests per Period on average, up
// to Burst of them at once.
type Limit struct {
	Count  int
	Period time.Duration
	Burst  int
}

// interval is the time one request costs: Period/Count, at least 1 ns
// (a billion a second is no limit anyway, and 0 would divide by zero).
func (l Limit) interval() time.Duration { return max(1, l.Period/time.Duration(l.Count)) }

// Decision is the answer for one request.
type Decision struct {
	// Allowed says the request may go.
	Allowed bool
	// Limit is the burst, the most requests that may go at once.
	Limit int
	// Remaining is how many more may go right now.
	Remaining int
	// RetryAfter is how long a refused request should wait; 0 if allowed.
	RetryAfter time.Duration
	// Reset is how long until the full burst is available again.
	Reset time.Duration
	// Undecided says the store could not decide (Redis down or slow):
	// Allowed is then the fail-open or fail-closed policy, and Remaining,
	// RetryAfter and Reset say nothing.
	Undecided bool
}

// gcra applies one request to a key whose theoretical arrival time is tat
// (0 for a new key) at now, and returns the decision and the new tat.
func gcra(l Limit, tat, now int64) (Decision, int64) {
	t := int64(l.interval())
	tolerance := t * int64(l.Burst)
	if tat < now {
		tat = now
	}
	next := tat + t
	d := Decision{Limit: l.Burst}
	if next-now > tolerance {
		d.RetryAfter = time.Duration(next - now - tolerance)
		d.Reset = time.Duration(tat - now)
		return d, tat
	}
	d.Allowed = true
	d.Remaining = int((tolerance - (next - now)) / t)
	d.Reset = time.Duration(next - now)
	return d, next
}

// Memory is a Limiter in this process's memory, for one replica or for
// tests. It holds at most MaxKeys keys: entries live in two generations
// per shard (package genmap); the older one is dropped when the newer
// fills, or once it is older than the burst's window (its entries then
// all allow a full burst again, as a missing key does). Under a flood of more distinct keys than
// MaxKeys, a key can be forgotten early and get a fresh burst; memory
// stays bounded either way.
type Memory struct {
	limit  Limit
	seed   maphash.Seed
	shards [shardCount]shard
	window int64
	now    func() int64
}

const shardCount = 64

type shard struct {
	mu   sync.Mutex
	tats *genmap.Map[string, int64] // theoretical arrival times
	// rotated is when the current generation began, the generation
	// being the rotations-th.
	rotated   int64
	rotations uint64
}

// NewMemory returns a memory store for l holding at most maxKeys keys.
func NewMemory(l Limit, maxKeys int) *Memory {
	m := &Memory{limit: l, seed: maphash.MakeSeed(),
		window: int64(l.interval()) * int64(l.Burst), now: func() int64 { return time.Now().UnixNano() }}
	for i := range m.shards {
		m.shards[i].tats = genmap.New[string, int64](maxKeys / 2 / shardCount)
	}
	return m
}

// Allow charges one request to key.
func (m *Memory) Allow(key string) Decision {
	s := &m.shards[maphash.String(m.seed, key)%shardCount]
	now := m.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if now-s.rotated > m.window {
		s.tats.Rotate()
	}
	tat, known := s.tats.Get(key)
	d, next := gcra(m.limit, tat, now)
	if known || d.Allowed {
		s.tats.Put(key, next)
	}
	if r := s.tats.Rotations(); r != s.rotations {
		s.rotations, s.rotated = r, now
	}
	return d
}

// Len is the number of keys held.
func (m *Memory) Len() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		n += s.tats.Len()
		s.mu.Unlock()
	}
	return n
}

// MaxKeyLen bounds a key: longer keys (a company ID a client chose) are
// cut, so that no key costs more memory than this.
const MaxKeyLen = 64

// Key returns k cut to MaxKeyLen bytes, copied so it may outlive the
// request buffer it came from.
func Key(k []byte) string {
	return string(k[:min(len(k), MaxKeyLen)])
}
