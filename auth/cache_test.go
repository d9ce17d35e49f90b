package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atenex/gateway/auth/authtest"
	"github.com/golang-jwt/jwt/v5"
)

func TestTokenCacheExpiry(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	key := sha256.Sum256([]byte("t"))
	cases := []struct {
		name    string
		expires time.Time
		at      time.Duration
		hit     bool
	}{
		{"before exp", now.Add(time.Minute), 30 * time.Second, true},
		{"at exp", now.Add(time.Minute), time.Minute, false},
		{"after exp", now.Add(time.Minute), 2 * time.Minute, false},
		{"no exp, within the cap", time.Time{}, cacheMaxAge - time.Second, true},
		{"no exp, past the cap", time.Time{}, cacheMaxAge, false},
		{"far exp, past the cap", now.Add(24 * time.Hour), cacheMaxAge + time.Second, false},
		{"already expired: not kept", now.Add(-time.Second), 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newTokenCache(8)
			c.put(key, Identity{CompanyID: "acme", Expires: tc.expires}, now)
			id, ok := c.get(key, now.Add(tc.at))
			if ok != tc.hit || (ok && id.CompanyID != "acme") {
				t.Fatalf("got %+v %v, want hit %v", id, ok, tc.hit)
			}
		})
	}
}

// TestTokenCacheBounded: however many tokens verify, the cache holds at
// most its size, and the most recently used survive.
func TestTokenCacheBounded(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	c := newTokenCache(100)
	hot := sha256.Sum256([]byte("hot"))
	c.put(hot, Identity{CompanyID: "hot"}, now)
	for i := range 10_000 {
		c.put(sha256.Sum256(fmt.Appendf(nil, "t%d", i)), Identity{CompanyID: "x"}, now)
		if _, ok := c.get(hot, now); !ok {
			t.Fatalf("after %d other tokens the one in use was dropped", i+1)
		}
		if n := c.len(); n > 100 {
			t.Fatalf("after %d tokens the cache holds %d, want at most 100", i+1, n)
		}
	}
	if newTokenCache(0) != nil {
		t.Error("size 0 made a cache")
	}
}

// TestVerifyCache: a repeated token is answered from the cache (its key
// is not asked for again); a refused token never is; and a key withdrawn
// from the JWKS stops being honoured through the cache after cacheMaxAge.
func TestVerifyCache(t *testing.T) {
	k1, _ := rsa.GenerateKey(rand.Reader, 2048)
	k2, _ := rsa.GenerateKey(rand.Reader, 2048)
	ks := authtest.StartKeyServer(t)
	ks.Set(map[string]any{"k1": &k1.PublicKey})
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	v, err := New(ctx, Config{Secret: []byte(secret), JWKSURL: ks.URL, Algorithms: []string{"HS256", "RS256"},
		CompanyClaim: "company_id", UserClaim: "sub", EmailClaim: "email", UnknownKIDEvery: 50 * time.Millisecond,
		CacheSize: 16, Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	waitReady(t, v)
	c := good()
	c["exp"] = time.Now().Add(24 * time.Hour).Unix()
	tok := "Bearer " + authtest.Sign(t, jwt.SigningMethodRS256, k1, "k1", c)
	if _, f := v.Verify(context.Background(), tok); f != nil {
		t.Fatal(f)
	}
	if n := v.cache.len(); n != 1 {
		t.Fatalf("cache holds %d after one good token, want 1", n)
	}
	bad := "Bearer " + authtest.Sign(t, jwt.SigningMethodHS256, []byte("wrong-wrong-wrong-wrong-wrong-wrong"), "", c)
	for range 2 {
		if _, f := v.Verify(context.Background(), bad); f == nil || f.Reason != ReasonSignature {
			t.Fatalf("bad token: got %v, want signature", f)
		}
	}
	if n := v.cache.len(); n != 1 {
		t.Fatalf("cache holds %d after refused tokens, want 1", n)
	}
	// Withdraw k1: the next unknown kid refreshes the key set to k2 only.
	ks.Set(map[string]any{"k2": &k2.PublicKey})
	t2 := "Bearer " + authtest.Sign(t, jwt.SigningMethodRS256, k2, "k2", c)
	deadline := time.Now().Add(5 * time.Second)
	for _, f := v.Verify(context.Background(), t2); f != nil; _, f = v.Verify(context.Background(), t2) {
		if time.Now().After(deadline) {
			t.Fatalf("rotation not picked up: %v", f)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, f := v.Verify(context.Background(), tok); f != nil {
		t.Fatalf("cached token within cacheMaxAge: %v", f)
	}
	clock.Add(int64(cacheMaxAge))
	if _, f := v.Verify(context.Background(), tok); f == nil || f.Reason != ReasonSignature {
		t.Fatalf("token of a withdrawn key after cacheMaxAge: got %v, want signature", f)
	}
}
