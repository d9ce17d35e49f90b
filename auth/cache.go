package auth

import (
	"crypto/sha256"
	"sync"
	"time"

	"github.com/atenex/gateway/genmap"
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
// It holds at most size entries, in two generations (package genmap).
type tokenCache struct {
	mu      sync.Mutex
	entries *genmap.Map[[sha256.Size]byte, cached]
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
	return &tokenCache{entries: genmap.New[[sha256.Size]byte, cached](size / 2)}
}

// get returns the identity tok verified as, if it did so recently and
// has not expired since.
func (c *tokenCache) get(key [sha256.Size]byte, now time.Time) (Identity, bool) {
	c.mu.Lock()
	e, ok := c.entries.Get(key)
	c.mu.Unlock()
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
	c.entries.Put(key, cached{id: id, until: until})
}

// len is the number of entries held, for tests.
func (c *tokenCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries.Len()
}
