package app_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/atenex/gateway/auth"
	"github.com/atenex/gateway/auth/authtest"
	"github.com/atenex/gateway/config"
	"github.com/golang-jwt/jwt/v5"
)

const testSecret = "0123456789abcdef0123456789abcdef"

func jwtMode(c *config.Config) {
	c.AuthMode = "jwt"
	c.JWTSecret = testSecret
	c.JWTAlgorithms = "HS256"
}

func devToken(t *testing.T, company string) string {
	t.Helper()
	tok, err := auth.DevToken([]byte(testSecret), "company_id", company, "u-1", "u1@acme.test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// The challenges of RFC 6750 §3: bare when credentials are missing,
// with an error attribute otherwise.
const (
	challengeMissing = `Bearer realm="gateway"`
	challengeInvalid = `Bearer realm="gateway", error="invalid_token"`
	challengeScope   = `Bearer realm="gateway", error="insufficient_scope", error_description="token carries no company"`
)

// jwksMode turns on jwt mode with the test secret and the key server,
// issuer and audience checked.
func jwksMode(url string) func(*config.Config) {
	return func(c *config.Config) {
		c.AuthMode = "jwt"
		c.JWTSecret = testSecret
		c.JWKSURL = url
		c.JWTAlgorithms = "HS256,RS256,ES256"
		c.JWTIssuer = "https://issuer.test"
		c.JWTAudience = "gateway"
	}
}

func claims(edit func(jwt.MapClaims)) jwt.MapClaims {
	c := jwt.MapClaims{"sub": "u-1", "company_id": "acme", "email": "u1@acme.test",
		"iss": "https://issuer.test", "aud": "gateway", "exp": time.Now().Add(time.Hour).Unix()}
	if edit != nil {
		edit(c)
	}
	return c
}

// ingest sends GET /api/v1/ingest/echo with this Authorization (none
// when empty).
func ingest(t *testing.T, g *gateway, authorization string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, g.url+"/api/v1/ingest/echo", nil)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	return do(t, req)
}

// metric reads one sample from the admin listener's /metrics.
func metric(t *testing.T, g *gateway, series string) float64 {
	t.Helper()
	resp := get(t, g.admin+"/metrics")
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("metrics lack %s", series)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// eventually polls cond, bounded, every 10 ms.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAuthTokens is the table of tokens, good and bad, against a gateway
// with a secret and a JWKS server: each bad one gets its status, its
// RFC 6750 challenge and a {"detail": ...} body, and none reaches the
// ingest service.
func TestAuthTokens(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ks := authtest.StartKeyServer(t)
	ks.Set(map[string]any{"r1": &rsaKey.PublicKey, "e1": &ecKey.PublicKey})
	m := startMock(t)
	g := startGateway(t, m.url, func(c *config.Config) {
		jwksMode(ks.URL)(c)
		c.MaxHeaderBytes = 128 << 10 // so that the 64 KiB token reaches the verifier, not the 431
	})
	hs := func(edit func(jwt.MapClaims)) string {
		return "Bearer " + authtest.Sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", claims(edit))
	}
	pubDER, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	good := []struct{ name, authz string }{
		{"HS256", hs(nil)},
		{"RS256 from the JWKS", "Bearer " + authtest.Sign(t, jwt.SigningMethodRS256, rsaKey, "r1", claims(nil))},
		{"ES256 from the JWKS", "Bearer " + authtest.Sign(t, jwt.SigningMethodES256, ecKey, "e1", claims(nil))},
		{"expired within the leeway", hs(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-10 * time.Second).Unix() })},
	}
	for _, tc := range good {
		t.Run("good "+tc.name, func(t *testing.T) {
			resp := ingest(t, g, tc.authz)
			if resp.StatusCode != 200 {
				t.Fatalf("got %d %q, want 200", resp.StatusCode, detailOf(t, resp))
			}
			var e echoed
			decode(t, resp, &e)
			if got := e.Headers["X-Company-Id"]; len(got) != 1 || got[0] != "acme" {
				t.Errorf("X-Company-ID upstream: got %q, want [acme]", got)
			}
		})
	}
	hitsBefore := m.hits.Load()
	bad := []struct {
		name, authz string
		status      int
		challenge   string
		reason      string
	}{
		{"missing", "", 401, challengeMissing, "missing"},
		{"Basic scheme", "Basic dXNlcjpwYXNz", 401, challengeInvalid, "malformed"},
		{"Bearer without a token", "Bearer ", 401, challengeInvalid, "malformed"},
		{"expired", hs(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() }), 401, challengeInvalid, "expired"},
		{"nbf in the future", hs(func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(time.Minute).Unix() }), 401, challengeInvalid, "not_yet_valid"},
		{"wrong iss", hs(func(c jwt.MapClaims) { c["iss"] = "https://evil.test" }), 401, challengeInvalid, "issuer"},
		{"wrong aud", hs(func(c jwt.MapClaims) { c["aud"] = "other" }), 401, challengeInvalid, "audience"},
		{"alg none", "Bearer " + authtest.Sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", claims(nil)), 401, challengeInvalid, "signature"},
		{"HS256 keyed with the RSA public key", "Bearer " + authtest.Sign(t, jwt.SigningMethodHS256, pubPEM, "r1", claims(nil)), 401, challengeInvalid, "signature"},
		{"wrong secret", "Bearer " + authtest.Sign(t, jwt.SigningMethodHS256, []byte(strings.Repeat("x", 32)), "", claims(nil)), 401, challengeInvalid, "signature"},
		{"unknown kid", "Bearer " + authtest.Sign(t, jwt.SigningMethodRS256, rsaKey, "nope", claims(nil)), 401, challengeInvalid, "signature"},
		{"bad base64", "Bearer !!!.@@@.###", 401, challengeInvalid, "malformed"},
		{"64 KiB token", "Bearer " + strings.Repeat("a", 64<<10), 401, challengeInvalid, "malformed"},
		{"no company claim", hs(func(c jwt.MapClaims) { delete(c, "company_id") }), 403, challengeScope, "no_company"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			series := `gateway_auth_failures_total{reason="` + tc.reason + `"}`
			before := metric(t, g, series)
			resp := ingest(t, g, tc.authz)
			if resp.StatusCode != tc.status {
				t.Errorf("status: got %d, want %d", resp.StatusCode, tc.status)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != tc.challenge {
				t.Errorf("WWW-Authenticate: got %q, want %q", got, tc.challenge)
			}
			if d := detailOf(t, resp); d == "" {
				t.Error("empty detail")
			}
			if after := metric(t, g, series); after != before+1 {
				t.Errorf("%s: got %v, want %v", series, after, before+1)
			}
		})
	}
	if n := m.hits.Load() - hitsBefore; n != 0 {
		t.Errorf("refused requests reached the ingest service %d times", n)
	}
}

// TestAuthDefaultHeaderLimit: with the default 16 KiB header limit a
// 64 KiB token is refused by the limit (431) before it is parsed.
func TestAuthDefaultHeaderLimit(t *testing.T) {
	m := startMock(t)
	g := startGateway(t, m.url, jwtMode)
	resp := ingest(t, g, "Bearer "+strings.Repeat("a", 64<<10))
	if resp.StatusCode != 431 {
		t.Errorf("status: got %d, want 431", resp.StatusCode)
	}
	detailOf(t, resp)
}

// TestAuthOpenRoutes: what is not proxied is not behind auth: /,
// /health, CORS preflights (browsers send them without credentials) and
// the gateway's own 404 and 405.
func TestAuthOpenRoutes(t *testing.T) {
	m := startMock(t)
	g := startGateway(t, m.url, jwtMode)
	for _, p := range []string{"/", "/health"} {
		if resp := get(t, g.url+p); resp.StatusCode != 200 {
			t.Errorf("GET %s: got %d, want 200", p, resp.StatusCode)
		}
	}
	req, _ := http.NewRequest(http.MethodOptions, g.url+"/api/v1/ingest/upload", nil)
	req.Header.Set("Origin", "http://localhost:3000")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
	resp := do(t, req)
	resp.Body.Close()
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "http://localhost:3000" {
		t.Errorf("preflight: got %d, Access-Control-Allow-Origin %q; want 204 and the origin",
			resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	resp = get(t, g.url+"/api/v2/elsewhere")
	if resp.StatusCode != 404 || resp.Header.Get("WWW-Authenticate") != "" {
		t.Errorf("unknown path: got %d, WWW-Authenticate %q; want the gateway's 404", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	detailOf(t, resp)
	if resp := get(t, g.url+"/api/v1/ingest"); resp.StatusCode != 307 {
		t.Errorf("GET /api/v1/ingest: got %d, want the gateway's 307", resp.StatusCode)
	}
	req, _ = http.NewRequest(http.MethodHead, g.url+"/api/v1/ingest/echo", nil)
	if resp := do(t, req); resp.StatusCode != 405 || resp.Header.Get("WWW-Authenticate") != "" {
		t.Errorf("HEAD: got %d, want the gateway's own 405", resp.StatusCode)
	}
	if n := m.hits.Load(); n != 0 {
		t.Errorf("the ingest service was called %d times", n)
	}
	// Every reason's series exists from the start, at 0.
	for _, r := range auth.Reasons {
		if v := metric(t, g, `gateway_auth_failures_total{reason="`+string(r)+`"}`); v != 0 {
			t.Errorf("reason %s: got %v, want 0", r, v)
		}
	}
}

// TestAuthKeyRotation: a key the JWKS server starts serving is picked up
// without a restart when a token names it, and the old one is dropped.
// A flood of unknown kids then costs the key server at most one fetch
// (the refresh is rate limited), and every such token gets its 401.
func TestAuthKeyRotation(t *testing.T) {
	k1, _ := rsa.GenerateKey(rand.Reader, 2048)
	k2, _ := rsa.GenerateKey(rand.Reader, 2048)
	ks := authtest.StartKeyServer(t)
	ks.Set(map[string]any{"k1": &k1.PublicKey})
	m := startMock(t)
	g := startGateway(t, m.url, jwksMode(ks.URL))
	old := "Bearer " + authtest.Sign(t, jwt.SigningMethodRS256, k1, "k1", claims(nil))
	eventually(t, 5*time.Second, "first key set", func() bool {
		resp := ingest(t, g, old)
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	ks.Set(map[string]any{"k2": &k2.PublicKey})
	resp := ingest(t, g, "Bearer "+authtest.Sign(t, jwt.SigningMethodRS256, k2, "k2", claims(nil)))
	if resp.StatusCode != 200 {
		t.Fatalf("token of the rotated-in key: got %d %q, want 200", resp.StatusCode, detailOf(t, resp))
	}
	resp.Body.Close()
	// A token of the old key not seen before is refused (one already
	// verified may be honoured from the token cache for up to 5 minutes).
	fresh := "Bearer " + authtest.Sign(t, jwt.SigningMethodRS256, k1, "k1", claims(func(c jwt.MapClaims) { c["jti"] = "fresh" }))
	if resp := ingest(t, g, fresh); resp.StatusCode != 401 {
		t.Errorf("token of the rotated-out key: got %d, want 401", resp.StatusCode)
	}
	before := ks.Fetches.Load()
	for i := range 50 {
		resp := ingest(t, g, "Bearer "+authtest.Sign(t, jwt.SigningMethodRS256, k2, fmt.Sprintf("random-%d", i), claims(nil)))
		if resp.StatusCode != 401 {
			t.Fatalf("unknown kid %d: got %d, want 401", i, resp.StatusCode)
		}
		resp.Body.Close()
	}
	if n := ks.Fetches.Load() - before; n > 1 {
		t.Errorf("50 unknown kids made %d key set fetches, want at most 1", n)
	}
}

// TestAuthKeyServerDown: once keys are cached, a key server that goes
// down costs nothing but a logged, counted failure.
func TestAuthKeyServerDown(t *testing.T) {
	k1, _ := rsa.GenerateKey(rand.Reader, 2048)
	ks := authtest.StartKeyServer(t)
	ks.Set(map[string]any{"k1": &k1.PublicKey})
	m := startMock(t)
	g := startGateway(t, m.url, func(c *config.Config) {
		jwksMode(ks.URL)(c)
		c.JWKSRefresh = 50 * time.Millisecond
	})
	tok := "Bearer " + authtest.Sign(t, jwt.SigningMethodRS256, k1, "k1", claims(nil))
	eventually(t, 5*time.Second, "first key set", func() bool {
		resp := ingest(t, g, tok)
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	ks.Down.Store(true)
	failed := `gateway_jwks_refreshes_total{result="error"}`
	eventually(t, 5*time.Second, "a failed refresh counted", func() bool { return metric(t, g, failed) >= 1 })
	if resp := ingest(t, g, tok); resp.StatusCode != 200 {
		t.Errorf("cached key with the key server down: got %d, want 200", resp.StatusCode)
	}
	g.logs.waitLine(t, 5*time.Second, func(l map[string]any) bool {
		return strings.HasPrefix(fmt.Sprint(l["event"]), "JWKS fetch failed")
	})
	if v := metric(t, g, `gateway_jwks_refreshes_total{result="ok"}`); v < 1 {
		t.Errorf("successful fetches: got %v, want at least 1", v)
	}
}

// TestAuthKeyServerDownAtStart: until the first key set arrives, tokens
// that need it get 503 with a detail and Retry-After (not 500, not 401);
// HMAC tokens do not wait for it; once the server is up, keys arrive
// without a restart.
func TestAuthKeyServerDownAtStart(t *testing.T) {
	k1, _ := rsa.GenerateKey(rand.Reader, 2048)
	ks := authtest.StartKeyServer(t)
	ks.Set(map[string]any{"k1": &k1.PublicKey})
	ks.Down.Store(true)
	m := startMock(t)
	g := startGateway(t, m.url, func(c *config.Config) {
		jwksMode(ks.URL)(c)
		c.JWKSRefresh = 50 * time.Millisecond
	})
	tok := "Bearer " + authtest.Sign(t, jwt.SigningMethodRS256, k1, "k1", claims(nil))
	resp := ingest(t, g, tok)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || resp.Header.Get("WWW-Authenticate") != "" {
		t.Errorf("got %d, Retry-After %q, WWW-Authenticate %q; want 503, a Retry-After and no challenge",
			resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("WWW-Authenticate"))
	}
	detailOf(t, resp)
	if resp := ingest(t, g, "Bearer "+authtest.Sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", claims(nil))); resp.StatusCode != 200 {
		t.Errorf("HS256 while the key server is down: got %d, want 200", resp.StatusCode)
	}
	if v := metric(t, g, `gateway_auth_failures_total{reason="keys_unavailable"}`); v != 1 {
		t.Errorf("keys_unavailable: got %v, want 1", v)
	}
	ks.Down.Store(false)
	eventually(t, 5*time.Second, "keys after the key server came up", func() bool {
		resp := ingest(t, g, tok)
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

func TestAuthReplacesTenantHeaders(t *testing.T) {
	m := startMock(t)
	g := startGateway(t, m.url, jwtMode)
	tok := devToken(t, "acme")
	raw := "GET /api/v1/ingest/echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok +
		"\r\nX-Company-ID: evil\r\nx-company-id: evil2\r\nX-COMPANY-ID: evil3\r\nx-user-id: mallory\r\nX-User-Email: m@evil.test\r\n\r\n"
	resp := rawRequest(t, g.addr, raw)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var e echoed
	decode(t, resp, &e)
	get := func(name string) []string {
		for k, v := range e.Headers {
			if strings.EqualFold(k, name) {
				return v
			}
		}
		return nil
	}
	if got := get("X-Company-ID"); len(got) != 1 || got[0] != "acme" {
		t.Errorf("X-Company-ID upstream: %q", got)
	}
	if got := get("X-User-ID"); len(got) != 1 || got[0] != "u-1" {
		t.Errorf("X-User-ID upstream: %q", got)
	}
	if got := get("X-User-Email"); len(got) != 1 || got[0] != "u1@acme.test" {
		t.Errorf("X-User-Email upstream: %q", got)
	}
	if got := get("Authorization"); len(got) != 1 {
		t.Errorf("Authorization not forwarded by default: %q", got)
	}
	line := g.logs.waitLine(t, 5*time.Second, func(l map[string]any) bool {
		return l["path"] == "/api/v1/ingest/echo" && l["logger"] == "gateway.access"
	})
	if line["user_id"] != "u-1" || line["company_id"] != "acme" {
		t.Errorf("access line: %v", line)
	}
	for _, l := range g.logs.lines(t) {
		if strings.Contains(fmt.Sprint(l), tok) {
			t.Errorf("the token is in the log: %v", l)
		}
	}
}

func TestAuthStripsAuthorizationWhenAsked(t *testing.T) {
	m := startMock(t)
	g := startGateway(t, m.url, func(c *config.Config) { jwtMode(c); c.ForwardAuthorization = false })
	req, _ := http.NewRequest(http.MethodGet, g.url+"/api/v1/ingest/echo", nil)
	req.Header.Set("Authorization", "Bearer "+devToken(t, "acme"))
	var e echoed
	decode(t, do(t, req), &e)
	for k := range e.Headers {
		if strings.EqualFold(k, "Authorization") {
			t.Errorf("Authorization forwarded")
		}
	}
}

// TestAuthRefusesBeforeBody sends a 256 MiB upload with a bad token. With
// Expect: 100-continue the 401 comes instead of 100 Continue and no body
// is sent; without, the client sends all of it and still reads the 401
// (the connection closes lingering), and nothing reaches the ingest
// service.
func TestAuthRefusesBeforeBody(t *testing.T) {
	m := startMock(t)
	g := startGateway(t, m.url, jwtMode)
	const size = 256 << 20
	head := fmt.Sprintf("POST /api/v1/ingest/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer bad.token.here\r\n"+
		"Content-Type: application/octet-stream\r\nContent-Length: %d\r\n", size)
	for _, tc := range []struct {
		name, head string
		send       int
	}{
		{"Expect: 100-continue", head + "Expect: 100-continue\r\n\r\n", 0},
		{"body sent at once", head + "\r\n", size},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, detail, err := earlyAnswer(t, g.addr, tc.head, tc.send)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 401 || detail == "" || !resp.Close {
				t.Fatalf("got %d %q close=%v, want 401 (not 100 Continue), a detail and the connection closed",
					resp.StatusCode, detail, resp.Close)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != challengeInvalid {
				t.Errorf("WWW-Authenticate: got %q, want %q", got, challengeInvalid)
			}
		})
	}
	if n := m.hits.Load(); n != 0 {
		t.Errorf("refused uploads reached the ingest service %d times", n)
	}
}
