package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"testing"

	"github.com/atenex/gateway/auth/authtest"
	"github.com/golang-jwt/jwt/v5"
)

// BenchmarkVerify measures one Verify, the whole per-request cost of
// authentication, for each algorithm family (keys from a JWKS server on
// 127.0.0.1, already cached), verifying every request in full and, with
// the token cache, a client that sends the same token again.
func BenchmarkVerify(b *testing.B) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ks := authtest.StartKeyServer(b)
	ks.Set(map[string]any{"r1": &rsaKey.PublicKey, "e1": &ecKey.PublicKey})
	v := newVerifier(b, ks.URL)
	cachedV := newVerifier(b, ks.URL, func(c *Config) { c.CacheSize = 10000 })
	waitReady(b, v)
	waitReady(b, cachedV)
	for _, bc := range []struct {
		name string
		tok  string
	}{
		{"HS256", authtest.Sign(b, jwt.SigningMethodHS256, []byte(secret), "", good())},
		{"RS256", authtest.Sign(b, jwt.SigningMethodRS256, rsaKey, "r1", good())},
		{"ES256", authtest.Sign(b, jwt.SigningMethodES256, ecKey, "e1", good())},
	} {
		for _, vc := range []struct {
			name string
			v    *Verifier
		}{{"full", v}, {"cached", cachedV}} {
			b.Run(bc.name+"/"+vc.name, func(b *testing.B) {
				h := "Bearer " + bc.tok
				b.ReportAllocs()
				for b.Loop() {
					if _, f := vc.v.Verify(context.Background(), h); f != nil {
						b.Fatal(f)
					}
				}
			})
		}
	}
}
