package auth

import (
	"crypto/sha256"
	"sync"
	"time"
)

// cacheMaxAge bounds how long a verified token is taken on trust without
// checking its signature again, whatever its exp: a key removed from the
// JWKS (a revoked key) stops being honoured through the cache within it,
// the same lag as the scheduled key set refresh's default.
const cacheMaxAge = 5 * time.Minute

// tokenCache remembers tokens that verified, by their SHA-256, until
// their expiry (at most cacheMaxAge), so that a client sending the same
// token on every request pays for one signature check, not one per
// request: RS256 and ES256 verification cost about as much CPU as
// proxying the request itself (see BenchmarkVerify). Only successes are
// kept, so a refused token is always checked anew.
//
// It is two generations of at most size/2 entries each: when the current
// one fills, it becomes the previous and the oldest is dropped whole, so
// memory stays bounded and a hit in the previous generation moves the
// entry forward. This is an approximate LRU at O(1) per operation, with
// no per-entry bookkeeping.
type tokenCache struct {
	mu       sync.Mutex
	half     int
	cur, old map[[sha256.Size]byte]cached
}

type cached struct {
	id    Identity
	until time.Time
}

// newTokenCache returns a cache of at most size entries, or nil (no
// caching) when size is 0.
func newTokenCache(size int) *tokenCache {
	if size <= 0 {
		return nil
	}
	half := max(size/2, 1)
	return &tokenCache{half: half, cur: make(map[[sha256.Size]byte]cached), old: map[[sha256.Size]byte]cached{}}
}

// get returns the identity tok verified as, if it did so recently and
// has not expired since.
func (c *tokenCache) get(key [sha256.Size]byte, now time.Time) (Identity, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.cur[key]
	if !ok {
		if e, ok = c.old[key]; ok {
			delete(c.old, key)
			c.putLocked(key, e)
		}
	}
	if !ok || !now.Before(e.until) {
		return Identity{}, false
	}
	return e.id, true
}

// put remembers a verified identity until its expiry, at most
// cacheMaxAge from now.
func (c *tokenCache) put(key [sha256.Size]byte, id Identity, now time.Time) {
	until := now.Add(cacheMaxAge)
	if !id.Expires.IsZero() && id.Expires.Before(until) {
		until = id.Expires
	}
	if !now.Before(until) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(key, cached{id: id, until: until})
}

func (c *tokenCache) putLocked(key [sha256.Size]byte, e cached) {
	if len(c.cur) >= c.half {
		c.old, c.cur = c.cur, make(map[[sha256.Size]byte]cached, c.half)
	}
	c.cur[key] = e
}

// len is the number of entries held, for tests.
func (c *tokenCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.cur) + len(c.old)
}
