// Package authtest serves a JWKS on 127.0.0.1 whose keys a test changes
// and can take down, and signs tokens, for the tests of package auth and
// of the gateway's authentication.
package authtest

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// KeyServer is a JWKS endpoint.
type KeyServer struct {
	// URL is the key set's address.
	URL string
	// Down, while set, makes every fetch fail with 503.
	Down atomic.Bool
	// Fetches counts fetches, failed ones included.
	Fetches atomic.Int64

	mu   sync.Mutex
	keys []map[string]string
}

// StartKeyServer serves an empty key set until Set, and stops with the
// test.
func StartKeyServer(t testing.TB) *KeyServer {
	ks := &KeyServer{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ks.Fetches.Add(1)
		if ks.Down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		ks.mu.Lock()
		defer ks.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"keys": ks.keys})
	}))
	t.Cleanup(srv.Close)
	ks.URL = srv.URL
	return ks
}

// Set replaces the served key set by these public keys (RSA for RS256,
// P-256 ECDSA for ES256), by kid.
func (ks *KeyServer) Set(keys map[string]any) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.keys = nil
	for kid, k := range keys {
		switch k := k.(type) {
		case *rsa.PublicKey:
			ks.keys = append(ks.keys, map[string]string{"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
				"n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())})
		case *ecdsa.PublicKey:
			x, y := make([]byte, 32), make([]byte, 32)
			k.X.FillBytes(x)
			k.Y.FillBytes(y)
			ks.keys = append(ks.keys, map[string]string{"kty": "EC", "kid": kid, "alg": "ES256", "use": "sig",
				"crv": "P-256", "x": b64(x), "y": b64(y)})
		default:
			panic("authtest: unsupported key type")
		}
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// Sign returns a token of claims signed with key by m, naming kid in its
// header when not empty.
func Sign(t testing.TB, m jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
