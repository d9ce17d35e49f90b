package app_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/atenex/gateway/auth"
	"github.com/atenex/gateway/config"
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

func TestAuthStatuses(t *testing.T) {
	m := startMock(t)
	g := startGateway(t, m.url, jwtMode)
	noCompany, _ := auth.DevToken([]byte(testSecret), "other", "x", "u-1", "", time.Hour)
	cases := []struct {
		name, authz string
		status      int
		challenge   string
	}{
		{"missing", "", 401, `Bearer realm="gateway"`},
		{"garbage", "Bearer abc", 401, `Bearer realm="gateway", error="invalid_token"`},
		{"wrong scheme", "Basic dXNlcjpwYXNz", 401, `Bearer realm="gateway", error="invalid_token"`},
		{"no company", "Bearer " + noCompany, 403, `Bearer realm="gateway", error="insufficient_scope", error_description="token carries no company"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, g.url+"/api/v1/ingest/echo", nil)
			if tc.authz != "" {
				req.Header.Set("Authorization", tc.authz)
			}
			resp := do(t, req)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != tc.challenge {
				t.Errorf("WWW-Authenticate %q, want %q", got, tc.challenge)
			}
			detailOf(t, resp)
		})
	}
	if n := m.hits.Load(); n != 0 {
		t.Errorf("refused requests reached the ingest service %d times", n)
	}
	// Not behind auth: /, /health, the gateway's own 405.
	for _, p := range []string{"/", "/health"} {
		if resp := get(t, g.url+p); resp.StatusCode != 200 {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
	}
	req, _ := http.NewRequest(http.MethodHead, g.url+"/api/v1/ingest/echo", nil)
	if resp := do(t, req); resp.StatusCode != 405 {
		t.Errorf("HEAD: %d, want the gateway's own 405", resp.StatusCode)
	}
	// The metric is pre-created and counted.
	resp := get(t, g.admin+"/metrics")
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{`gateway_auth_failures_total{reason="missing"} 1`, `gateway_auth_failures_total{reason="expired"} 0`, `gateway_auth_failures_total{reason="no_company"} 1`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
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

// TestAuthRefusesBeforeBody sends a 256 MiB upload with a bad token: the
// 401 must arrive after the head alone, with and without Expect, and the
// upload never reach the ingest service.
func TestAuthRefusesBeforeBody(t *testing.T) {
	m := startMock(t)
	g := startGateway(t, m.url, jwtMode)
	for _, expect := range []bool{false, true} {
		t.Run(fmt.Sprintf("expect=%v", expect), func(t *testing.T) {
			c := dial(t, g.addr)
			c.SetDeadline(time.Now().Add(10 * time.Second))
			head := fmt.Sprintf("POST /api/v1/ingest/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer bad.token.here\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n", 256<<20)
			if expect {
				head += "Expect: 100-continue\r\n"
			}
			if _, err := io.WriteString(c, head+"\r\n"); err != nil {
				t.Fatal(err)
			}
			if !expect {
				// The start of the body, as a client would send it at once.
				c.Write(make([]byte, 64<<10))
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 401 {
				t.Fatalf("status %d, want 401 (not 100 Continue)", resp.StatusCode)
			}
			if !resp.Close {
				t.Error("connection not closed after refusing a request with a body coming")
			}
			if !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Errorf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
			}
			detailOf(t, resp)
		})
	}
	if n := m.hits.Load(); n != 0 {
		t.Errorf("refused uploads reached the ingest service %d times", n)
	}
}
