// Package genmap is a map bounded by generations, for state keyed by what
// clients send (tokens, addresses, company IDs), which a flood of distinct
// keys must not grow without bound. Entries live in two generations: when
// the current one fills, it becomes the old one and the previous old one
// is dropped whole; a hit in the old generation moves forward. That is an
// approximate LRU at O(1) per operation, with no per-entry bookkeeping.
package genmap

// Map holds at most twice its generation size of entries. It is not safe
// for concurrent use: its users keep it under their own lock.
type Map[K comparable, V any] struct {
	perGen    int
	cur, old  map[K]V
	rotations uint64
}

// New returns a Map of at most perGen entries per generation (at least 1).
func New[K comparable, V any](perGen int) *Map[K, V] {
	perGen = max(perGen, 1)
	return &Map[K, V]{perGen: perGen, cur: make(map[K]V), old: make(map[K]V)}
}

// Get returns k's value; a hit in the old generation moves to the
// current one, so that what is in use survives the next rotation.
func (m *Map[K, V]) Get(k K) (V, bool) {
	if v, ok := m.cur[k]; ok {
		return v, true
	}
	v, ok := m.old[k]
	if ok {
		delete(m.old, k)
		m.Put(k, v)
	}
	return v, ok
}

// Put sets k's value in the current generation, first rotating if it is
// full. Call it after Get, which takes k out of the old generation.
func (m *Map[K, V]) Put(k K, v V) {
	if len(m.cur) >= m.perGen {
		if _, ok := m.cur[k]; !ok {
			m.Rotate()
		}
	}
	m.cur[k] = v
}

// Rotate drops the old generation and starts a new current one, for
// users that also age entries out by time.
func (m *Map[K, V]) Rotate() {
	m.old, m.cur = m.cur, make(map[K]V, len(m.cur))
	m.rotations++
}

// Rotations counts rotations, by size or by Rotate, so a user aging
// entries by time can tell when a generation began.
func (m *Map[K, V]) Rotations() uint64 { return m.rotations }

// Len is the number of entries held.
func (m *Map[K, V]) Len() int { return len(m.cur) + len(m.old) }
