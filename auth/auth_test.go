package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/atenex/gateway/auth/authtest"
	"github.com/golang-jwt/jwt/v5"
)

const secret = "0123456789abcdef0123456789abcdef"

func good() jwt.MapClaims {
	return jwt.MapClaims{"sub": "u1", "company_id": "acme", "email": "a@acme.test",
		"iss": "https://issuer.test", "aud": "gateway", "exp": time.Now().Add(time.Hour).Unix()}
}

func with(k string, v any) jwt.MapClaims {
	c := good()
	if v == nil {
		delete(c, k)
	} else {
		c[k] = v
	}
	return c
}

func newVerifier(t testing.TB, url string, edits ...func(*Config)) *Verifier {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	c := Config{Secret: []byte(secret), JWKSURL: url, Algorithms: []string{"HS256", "RS256", "ES256"},
		Issuer: "https://issuer.test", Audience: "gateway", Leeway: 30 * time.Second,
		CompanyClaim: "company_id", UserClaim: "sub", EmailClaim: "email", UnknownKIDEvery: 50 * time.Millisecond}
	for _, e := range edits {
		e(&c)
	}
	v, err := New(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// waitReady polls, bounded, until the first JWKS fetch has landed.
func waitReady(t testing.TB, v *Verifier) {
	deadline := time.Now().Add(5 * time.Second)
	for !v.KeysReady() {
		if time.Now().After(deadline) {
			t.Fatal("JWKS never loaded")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestVerifyTable(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ks := authtest.StartKeyServer(t)
	ks.Set(map[string]any{"r1": &rsaKey.PublicKey, "e1": &ecKey.PublicKey})
	v := newVerifier(t, ks.URL)
	waitReady(t, v)

	pubDER, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	hs := jwt.SigningMethodHS256
	none := authtest.Sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", good())
	huge := "Bearer " + strings.Repeat("a", 64<<10)

	cases := []struct {
		name, header string
		want         Reason
	}{
		{"HS256 good", "Bearer " + authtest.Sign(t, hs, []byte(secret), "", good()), ""},
		{"RS256 good", "Bearer " + authtest.Sign(t, jwt.SigningMethodRS256, rsaKey, "r1", good()), ""},
		{"ES256 good", "Bearer " + authtest.Sign(t, jwt.SigningMethodES256, ecKey, "e1", good()), ""},
		{"lower-case scheme", "bearer " + authtest.Sign(t, hs, []byte(secret), "", good()), ""},
		{"missing", "", ReasonMissing},
		{"basic scheme", "Basic dXNlcjpwYXNz", ReasonMalformed},
		{"bearer without token", "Bearer ", ReasonMalformed},
		{"expired", "Bearer " + authtest.Sign(t, hs, []byte(secret), "", with("exp", time.Now().Add(-time.Minute).Unix())), ReasonExpired},
		{"expired within leeway", "Bearer " + authtest.Sign(t, hs, []byte(secret), "", with("exp", time.Now().Add(-10*time.Second).Unix())), ""},
		{"nbf in future", "Bearer " + authtest.Sign(t, hs, []byte(secret), "", with("nbf", time.Now().Add(time.Minute).Unix())), ReasonNotYetValid},
		{"wrong iss", "Bearer " + authtest.Sign(t, hs, []byte(secret), "", with("iss", "https://evil.test")), ReasonIssuer},
		{"wrong aud", "Bearer " + authtest.Sign(t, hs, []byte(secret), "", with("aud", "other")), ReasonAudience},
		{"alg none", "Bearer " + none, ReasonSignature},
		{"HS256 signed with the RSA public key", "Bearer " + authtest.Sign(t, hs, pubPEM, "r1", good()), ReasonSignature},
		{"wrong secret", "Bearer " + authtest.Sign(t, hs, []byte(strings.Repeat("x", 32)), "", good()), ReasonSignature},
		{"unknown kid", "Bearer " + authtest.Sign(t, jwt.SigningMethodRS256, rsaKey, "nope", good()), ReasonSignature},
		{"bad base64", "Bearer !!!.@@@.###", ReasonMalformed},
		{"64 KiB token", huge, ReasonMalformed},
		{"no company claim", "Bearer " + authtest.Sign(t, hs, []byte(secret), "", with("company_id", nil)), ReasonNoCompany},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, f := v.Verify(context.Background(), tc.header)
			if tc.want == "" {
				if f != nil {
					t.Fatalf("refused: %v", f)
				}
				if id.CompanyID != "acme" || id.UserID != "u1" || id.Email != "a@acme.test" {
					t.Fatalf("identity %+v", id)
				}
				return
			}
			if f == nil || f.Reason != tc.want {
				t.Fatalf("got %v, want %s", f, tc.want)
			}
		})
	}
}

func TestNestedCompanyClaim(t *testing.T) {
	v, err := New(context.Background(), Config{Secret: []byte(secret), Algorithms: []string{"HS256"},
		CompanyClaim: "app_metadata.company_id", UserClaim: "sub", EmailClaim: "email"})
	if err != nil {
		t.Fatal(err)
	}
	c := good()
	c["app_metadata"] = map[string]any{"company_id": "supa"}
	id, f := v.Verify(context.Background(), "Bearer "+authtest.Sign(t, jwt.SigningMethodHS256, []byte(secret), "", c))
	if f != nil || id.CompanyID != "supa" {
		t.Fatalf("%+v %v", id, f)
	}
}

func TestRotationAndServerDown(t *testing.T) {
	k1, _ := rsa.GenerateKey(rand.Reader, 2048)
	k2, _ := rsa.GenerateKey(rand.Reader, 2048)
	ks := authtest.StartKeyServer(t)
	ks.Set(map[string]any{"k1": &k1.PublicKey})
	v := newVerifier(t, ks.URL)
	waitReady(t, v)
	t1 := "Bearer " + authtest.Sign(t, jwt.SigningMethodRS256, k1, "k1", good())
	if _, f := v.Verify(context.Background(), t1); f != nil {
		t.Fatal(f)
	}
	// Rotation: the server now serves k2 only; a token naming k2 makes
	// the verifier refresh (unknown kid), without a restart.
	ks.Set(map[string]any{"k2": &k2.PublicKey})
	t2 := "Bearer " + authtest.Sign(t, jwt.SigningMethodRS256, k2, "k2", good())
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, f := v.Verify(context.Background(), t2)
		if f == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rotation not picked up: %v", f)
		}
		time.Sleep(20 * time.Millisecond) // the unknown-kid refresh is rate limited to 50 ms
	}
	// Server down: cached k2 keeps working, failed refreshes counted by the server.
	ks.Down.Store(true)
	before := ks.Fetches.Load()
	for i := 0; i < 5; i++ {
		v.Verify(context.Background(), "Bearer "+authtest.Sign(t, jwt.SigningMethodRS256, k2, "unknown", good()))
		time.Sleep(60 * time.Millisecond)
	}
	if ks.Fetches.Load() == before {
		t.Fatal("no refresh attempted while down")
	}
	if _, f := v.Verify(context.Background(), t2); f != nil {
		t.Fatalf("cached key lost while server down: %v", f)
	}
}

func TestKeysUnavailableAtStart(t *testing.T) {
	k1, _ := rsa.GenerateKey(rand.Reader, 2048)
	ks := authtest.StartKeyServer(t)
	ks.Down.Store(true)
	ks.Set(map[string]any{"k1": &k1.PublicKey})
	v := newVerifier(t, ks.URL)
	tok := "Bearer " + authtest.Sign(t, jwt.SigningMethodRS256, k1, "k1", good())
	if _, f := v.Verify(context.Background(), tok); f == nil || f.Reason != ReasonKeysUnavailable {
		t.Fatalf("want keys_unavailable, got %v", f)
	}
	// HMAC tokens do not depend on the key server.
	if _, f := v.Verify(context.Background(), "Bearer "+authtest.Sign(t, jwt.SigningMethodHS256, []byte(secret), "", good())); f != nil {
		t.Fatal(f)
	}
	ks.Down.Store(false)
	waitReady(t, v)
	if _, f := v.Verify(context.Background(), tok); f != nil {
		t.Fatal(f)
	}
}

func FuzzVerify(f *testing.F) {
	f.Add("Bearer " + authtest.Sign(f, jwt.SigningMethodHS256, []byte(secret), "", good()))
	f.Add("Bearer a.b.c")
	f.Add("")
	f.Add("Bearer eyJhbGciOiJub25lIn0.e30.")
	v, err := New(context.Background(), Config{Secret: []byte(secret), Algorithms: []string{"HS256"},
		CompanyClaim: "a.b.c", UserClaim: "sub", EmailClaim: "email"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, h string) {
		_, fl := v.Verify(context.Background(), h)
		if fl != nil && fl.Reason == ReasonKeysUnavailable {
			t.Fatal("keys_unavailable without JWKS")
		}
	})
}
