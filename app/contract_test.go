package app_test

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/atenex/gateway/config"
)

// TestPathMapping checks that {prefix}/ingest/{path} reaches the upstream as
// {prefix}/{path}, with the path and the raw query byte for byte.
func TestPathMapping(t *testing.T) {
	m := startMock(t)
	g := startGateway(t, m.url, nil)
	tests := []struct {
		name, target, want string
	}{
		{"upload route", "/api/v1/ingest/echo", "/api/v1/echo"},
		{"nested", "/api/v1/ingest/echo/a/b/c", "/api/v1/echo/a/b/c"},
		{"double slash", "/api/v1/ingest/echo//x//y", "/api/v1/echo//x//y"},
		{"percent-encoded segments", "/api/v1/ingest/echo/a%20b/%C3%A9/%2e%2E", "/api/v1/echo/a%20b/%C3%A9/%2e%2E"},
		{"encoded characters kept", "/api/v1/ingest/echo/a%3Fb%23c", "/api/v1/echo/a%3Fb%23c"},
		{"dot segments that stay inside", "/api/v1/ingest/echo/a/../b/./c", "/api/v1/echo/a/../b/./c"},
		{"raw query", "/api/v1/ingest/echo?a=1&a=2&b=&c=%41+d&e&f=x%2By", "/api/v1/echo?a=1&a=2&b=&c=%41+d&e&f=x%2By"},
		{"query with unusual bytes", "/api/v1/ingest/echo?q=a/b?c=d;e", "/api/v1/echo?q=a/b?c=d;e"},
		{"trailing slash", "/api/v1/ingest/echo/", "/api/v1/echo/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := rawRequest(t, g.addr, "GET "+tt.target+" HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status: got %d, want 200", resp.StatusCode)
			}
			var e echoed
			decode(t, resp, &e)
			if e.URI != tt.want {
				t.Errorf("upstream request target: got %q, want %q", e.URI, tt.want)
			}
		})
	}
}

func TestMethods(t *testing.T) {
	m := startMock(t)
	g := startGateway(t, m.url, nil)
	for _, method := range []string{"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"} {
		t.Run(method+" proxied", func(t *testing.T) {
			req, _ := http.NewRequest(method, g.url+"/api/v1/ingest/echo", strings.NewReader("body"))
			resp := do(t, req)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status: got %d, want 200", resp.StatusCode)
			}
			var e echoed
			decode(t, resp, &e)
			if e.Method != method {
				t.Errorf("upstream method: got %s, want %s", e.Method, method)
			}
			if e.BodyBytes != 4 {
				t.Errorf("upstream body: got %d bytes, want 4", e.BodyBytes)
			}
		})
	}
	for _, method := range []string{"HEAD", "TRACE", "PROPFIND"} {
		t.Run(method+" refused", func(t *testing.T) {
			before := m.hits.Load()
			req, _ := http.NewRequest(method, g.url+"/api/v1/ingest/echo", nil)
			resp := do(t, req)
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusMethodNotAllowed {
				t.Fatalf("status: got %d, want 405", resp.StatusCode)
			}
			if got, want := resp.Header.Get("Allow"), "GET, POST, PUT, DELETE, PATCH, OPTIONS"; got != want {
				t.Errorf("Allow: got %q, want %q", got, want)
			}
			if method != "HEAD" {
				if d := detailOf(t, resp); d != "Method Not Allowed" {
					t.Errorf("detail: got %q, want %q", d, "Method Not Allowed")
				}
			}
			if m.hits.Load() != before {
				t.Errorf("a %s request reached the upstream", method)
			}
		})
	}
}

func TestRedirectAndNotFound(t *testing.T) {
	m := startMock(t)
	g := startGateway(t, m.url, nil)

	t.Run("ingest without slash redirects", func(t *testing.T) {
		resp := get(t, g.url+"/api/v1/ingest?x=1&y")
		resp.Body.Close()
		if resp.StatusCode != http.StatusTemporaryRedirect {
			t.Fatalf("status: got %d, want 307", resp.StatusCode)
		}
		if got, want := resp.Header.Get("Location"), "/api/v1/ingest/?x=1&y"; got != want {
			t.Errorf("Location: got %q, want %q", got, want)
		}
	})
	for _, path := range []string{"/nope", "/api/v1/other", "/api/v1/", "/API/V1/INGEST/echo", "/api/v1/ingestx/echo", "/api/v2/ingest/echo"} {
		t.Run("404 "+path, func(t *testing.T) {
			before := m.hits.Load()
			resp := get(t, g.url+path)
			if resp.StatusCode != http.StatusNotFound {
				t.Fatalf("status: got %d, want 404", resp.StatusCode)
			}
			if d := detailOf(t, resp); d != "Not Found" {
				t.Errorf("detail: got %q, want %q", d, "Not Found")
			}
			if m.hits.Load() != before {
				t.Errorf("%s reached the upstream", path)
			}
		})
	}
}

func TestRequestHeaders(t *testing.T) {
	m := startMock(t)
	g := startGateway(t, m.url, nil)
	resp := rawRequest(t, g.addr, "POST /api/v1/ingest/echo HTTP/1.1\r\n"+
		"Host: frontend.example:8443\r\n"+
		"Connection: keep-alive, X-Per-Hop\r\n"+
		"X-Per-Hop: secret\r\n"+
		"Keep-Alive: timeout=5\r\n"+
		"TE: trailers\r\n"+
		"Trailer: X-T\r\n"+
		"Upgrade: h2c\r\n"+
		"Proxy-Authorization: Basic Zm9vOmJhcg==\r\n"+
		"Proxy-Connection: keep-alive\r\n"+
		"X-Multi: one\r\n"+
		"X-Company-ID: company-42\r\n"+
		"X-Multi: two\r\n"+
		"Authorization: Bearer token\r\n"+
		"X-Forwarded-For: 6.6.6.6\r\n"+
		"X-Forwarded-Host: evil.example\r\n"+
		"X-Request-ID: first-id\r\n"+
		"X-Request-ID: second-id\r\n"+
		"X-Multi: three\r\n"+
		"Content-Length: 5\r\n"+
		"\r\nhello")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status: got %d, want 200", resp.StatusCode)
	}
	var e echoed
	decode(t, resp, &e)

	if e.Host != "frontend.example:8443" {
		t.Errorf("Host: got %q, want the client's %q", e.Host, "frontend.example:8443")
	}
	for _, hop := range []string{"Connection", "X-Per-Hop", "Keep-Alive", "Te", "Trailer", "Upgrade", "Proxy-Authorization", "Proxy-Connection"} {
		if v, ok := e.Headers[hop]; ok {
			t.Errorf("hop-by-hop header %s reached the upstream: %q", hop, v)
		}
	}
	want := map[string][]string{
		"X-Multi":           {"one", "two", "three"},
		"X-Company-Id":      {"company-42"},
		"Authorization":     {"Bearer token"},
		"X-Request-Id":      {"first-id"},
		"X-Forwarded-For":   {"127.0.0.1"},
		"X-Forwarded-Proto": {"http"},
		"X-Forwarded-Host":  {"frontend.example:8443"},
	}
	for name, values := range want {
		if got := e.Headers[name]; !slices.Equal(got, values) {
			t.Errorf("%s: got %q, want %q", name, got, values)
		}
	}
	if e.BodyBytes != 5 {
		t.Errorf("body: got %d bytes, want 5", e.BodyBytes)
	}
}

var uuid4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// TestConnectionCannotDropHost: a Host named in the client's Connection
// header still goes upstream; without it, fasthttp would refuse to send the
// request and the client would get a 502 for an upstream never asked.
func TestConnectionCannotDropHost(t *testing.T) {
	m := startMock(t)
	g := startGateway(t, m.url, nil)
	resp := rawRequest(t, g.addr, "GET /api/v1/ingest/echo HTTP/1.1\r\nHost: frontend.example\r\nConnection: Host, close\r\n\r\n")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	var e echoed
	decode(t, resp, &e)
	if e.Host != "frontend.example" {
		t.Errorf("the upstream got Host %q, want the client's %q", e.Host, "frontend.example")
	}
}
func TestRequestID(t *testing.T) {
	m := startMock(t)
	g := startGateway(t, m.url, nil)

	t.Run("client ID is kept and sent upstream", func(t *testing.T) {
		req, _ := http.NewRequest("GET", g.url+"/api/v1/ingest/echo", nil)
		req.Header.Set("X-Request-ID", "trace-abc.123")
		resp := do(t, req)
		var e echoed
		decode(t, resp, &e)
		if got := resp.Header.Get("X-Request-ID"); got != "trace-abc.123" {
			t.Errorf("response X-Request-ID: got %q, want %q", got, "trace-abc.123")
		}
		if got := e.Headers["X-Request-Id"]; !slices.Equal(got, []string{"trace-abc.123"}) {
			t.Errorf("upstream X-Request-ID: got %q, want exactly one trace-abc.123", got)
		}
	})
	t.Run("generated when absent", func(t *testing.T) {
		resp := get(t, g.url+"/api/v1/ingest/echo")
		var e echoed
		decode(t, resp, &e)
		id := resp.Header.Get("X-Request-ID")
		if !uuid4.MatchString(id) {
			t.Errorf("generated X-Request-ID: got %q, want a UUIDv4", id)
		}
		if got := e.Headers["X-Request-Id"]; !slices.Equal(got, []string{id}) {
			t.Errorf("upstream X-Request-ID: got %q, want [%s]", got, id)
		}
		if other := get(t, g.url+"/health").Header.Get("X-Request-ID"); other == id {
			t.Errorf("two requests got the same ID %q", id)
		}
	})
	for name, bad := range map[string]string{
		"too long":    strings.Repeat("a", 129),
		"with spaces": "a b",
		"non-ASCII":   "caf\xc3\xa9",
	} {
		t.Run("replaced when "+name, func(t *testing.T) {
			resp := rawRequest(t, g.addr, "GET /api/v1/ingest/echo HTTP/1.1\r\nHost: x\r\nX-Request-ID: "+bad+"\r\nConnection: close\r\n\r\n")
			resp.Body.Close()
			if id := resp.Header.Get("X-Request-ID"); !uuid4.MatchString(id) {
				t.Errorf("X-Request-ID: got %q, want a fresh UUIDv4", id)
			}
		})
	}
}

// TestEveryResponseIsStamped checks that X-Request-ID and X-Process-Time
// are on answers the gateway makes itself, not only on proxied ones.
func TestEveryResponseIsStamped(t *testing.T) {
	m := startMock(t)
	g := startGateway(t, m.url, nil)
	closed := startGateway(t, "http://127.0.0.1:1", nil) // nothing listens on port 1
	processTime := regexp.MustCompile(`^\d+\.\d\dms$`)
	preflight, _ := http.NewRequest("OPTIONS", g.url+"/api/v1/ingest/upload", nil)
	preflight.Header.Set("Origin", "http://localhost:3000")
	preflight.Header.Set("Access-Control-Request-Method", "POST")
	head, _ := http.NewRequest("HEAD", g.url+"/api/v1/ingest/echo", nil)
	cases := map[string]*http.Request{
		"proxied":     mustRequest("GET", g.url+"/api/v1/ingest/ping"),
		"health":      mustRequest("GET", g.url+"/health"),
		"root":        mustRequest("GET", g.url+"/"),
		"404":         mustRequest("GET", g.url+"/nope"),
		"405":         head,
		"307":         mustRequest("GET", g.url+"/api/v1/ingest"),
		"preflight":   preflight,
		"503 refused": mustRequest("GET", closed.url+"/api/v1/ingest/ping"),
	}
	for name, req := range cases {
		t.Run(name, func(t *testing.T) {
			resp := do(t, req)
			resp.Body.Close()
			if id := resp.Header.Get("X-Request-ID"); id == "" {
				t.Errorf("no X-Request-ID on a %d", resp.StatusCode)
			}
			if pt := resp.Header.Get("X-Process-Time"); !processTime.MatchString(pt) {
				t.Errorf("X-Process-Time: got %q, want like 12.34ms", pt)
			}
		})
	}
}

func mustRequest(method, url string) *http.Request {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		panic(err)
	}
	return req
}

func TestCORS(t *testing.T) {
	m := startMock(t)
	g := startGateway(t, m.url, func(c *config.Config) { c.FrontendURL = "https://app.vercel.example" })
	tests := []struct {
		name, origin string
		allowed      bool
	}{
		{"dev localhost", "http://localhost:3000", true},
		{"dev 127.0.0.1", "http://127.0.0.1:3000", true},
		{"deployed frontend", "https://app.vercel.example", true},
		{"unknown origin", "https://evil.example", false},
		{"scheme differs", "http://app.vercel.example", false},
	}
	for _, tt := range tests {
		t.Run(tt.name+" preflight", func(t *testing.T) {
			before := m.hits.Load()
			req, _ := http.NewRequest("OPTIONS", g.url+"/api/v1/ingest/upload", nil)
			req.Header.Set("Origin", tt.origin)
			req.Header.Set("Access-Control-Request-Method", "POST")
			req.Header.Set("Access-Control-Request-Headers", "x-company-id, content-type")
			resp := do(t, req)
			resp.Body.Close()
			if m.hits.Load() != before {
				t.Errorf("the preflight was proxied")
			}
			acao := resp.Header.Get("Access-Control-Allow-Origin")
			if tt.allowed {
				if acao != tt.origin {
					t.Errorf("Access-Control-Allow-Origin: got %q, want %q", acao, tt.origin)
				}
				if got := resp.Header.Get("Access-Control-Allow-Credentials"); got != "true" {
					t.Errorf("Access-Control-Allow-Credentials: got %q, want true", got)
				}
				if got := strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers")); !strings.Contains(got, "x-company-id") {
					t.Errorf("Access-Control-Allow-Headers: got %q, want the requested headers", got)
				}
				if got := resp.Header.Get("Access-Control-Allow-Methods"); !strings.Contains(got, "POST") || !strings.Contains(got, "DELETE") {
					t.Errorf("Access-Control-Allow-Methods: got %q, want every method", got)
				}
			} else if acao != "" {
				t.Errorf("Access-Control-Allow-Origin: got %q for an unknown origin, want none", acao)
			}
		})
		t.Run(tt.name+" request", func(t *testing.T) {
			req, _ := http.NewRequest("GET", g.url+"/api/v1/ingest/ping", nil)
			req.Header.Set("Origin", tt.origin)
			resp := do(t, req)
			resp.Body.Close()
			acao := resp.Header.Get("Access-Control-Allow-Origin")
			if tt.allowed != (acao == tt.origin) {
				t.Errorf("Access-Control-Allow-Origin: got %q, want allowed=%v", acao, tt.allowed)
			}
			if tt.allowed {
				if got := resp.Header.Get("Access-Control-Expose-Headers"); !strings.Contains(got, "X-Request-ID") || !strings.Contains(got, "X-Process-Time") {
					t.Errorf("Access-Control-Expose-Headers: got %q", got)
				}
			}
		})
	}
	t.Run("plain OPTIONS is proxied", func(t *testing.T) {
		req, _ := http.NewRequest("OPTIONS", g.url+"/api/v1/ingest/echo", nil)
		req.Header.Set("Origin", "http://localhost:3000")
		resp := do(t, req)
		var e echoed
		decode(t, resp, &e)
		if e.Method != "OPTIONS" {
			t.Errorf("upstream saw %q, want the OPTIONS request", e.Method)
		}
	})
}

func TestRootAndHealth(t *testing.T) {
	m := startMock(t)
	g := startGateway(t, m.url, func(c *config.Config) { c.ProjectName = "Gateway Under Test" })
	before := m.hits.Load()
	var root, health map[string]any
	decode(t, get(t, g.url+"/"), &root)
	if got, want := root["message"], "Gateway Under Test is running!"; got != want {
		t.Errorf("GET /: got %v, want message %q", root, want)
	}
	resp := get(t, g.url+"/health")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /health: got %d, want 200", resp.StatusCode)
	}
	decode(t, resp, &health)
	if health["status"] != "healthy" || health["service"] != "Gateway Under Test" {
		t.Errorf("GET /health: got %v", health)
	}
	if m.hits.Load() != before {
		t.Errorf("/ or /health called the upstream")
	}
}

func TestResponseHeaders(t *testing.T) {
	m := startMock(t)
	g := startGateway(t, m.url, nil)

	t.Run("hop-by-hop stripped, cookies kept apart", func(t *testing.T) {
		resp := get(t, g.url+"/api/v1/ingest/headers")
		resp.Body.Close()
		if got := resp.Header.Values("Set-Cookie"); !slices.Equal(got, []string{"a=1; Path=/", "b=2; Path=/"}) {
			t.Errorf("Set-Cookie: got %q, want two separate headers", got)
		}
		if got := resp.Header.Get("X-Upstream"); got != "mock" {
			t.Errorf("X-Upstream: got %q, want mock", got)
		}
		for _, hop := range []string{"X-Hop", "Keep-Alive", "Proxy-Authenticate", "Upgrade"} {
			if v := resp.Header.Get(hop); v != "" {
				t.Errorf("hop-by-hop %s reached the client: %q", hop, v)
			}
		}
	})
	t.Run("gzip body and its length kept", func(t *testing.T) {
		resp := get(t, g.url+"/api/v1/ingest/gzip")
		defer resp.Body.Close()
		if got := resp.Header.Get("Content-Encoding"); got != "gzip" {
			t.Fatalf("Content-Encoding: got %q, want gzip", got)
		}
		if resp.ContentLength <= 0 {
			t.Errorf("Content-Length: got %d, want the compressed length", resp.ContentLength)
		}
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(zr)
		if err != nil || string(b) != `{"compressed":true}` {
			t.Errorf("decoded body: got %q (%v), want {\"compressed\":true}", b, err)
		}
	})
	t.Run("redirects passed through, not followed", func(t *testing.T) {
		resp := get(t, g.url+"/api/v1/ingest/status/302")
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/elsewhere" {
			t.Errorf("got %d Location %q, want 302 /elsewhere", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
	for _, code := range []int{201, 204, 400, 404, 415, 422, 500, 503} {
		t.Run("status "+http.StatusText(code), func(t *testing.T) {
			resp := get(t, g.url+"/api/v1/ingest/status/"+strconv.Itoa(code))
			resp.Body.Close()
			if resp.StatusCode != code {
				t.Errorf("status: got %d, want %d", resp.StatusCode, code)
			}
		})
	}
	t.Run("no Content-Type invented", func(t *testing.T) {
		resp := get(t, g.url+"/api/v1/ingest/status/204")
		resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); ct != "" {
			t.Errorf("Content-Type: got %q on a 204 without one, want none", ct)
		}
	})
}

// TestTrustedProxyHeaders: behind a trusted proxy (here the test client on
// 127.0.0.1), the chain is extended and the proxy's proto and host passed
// on; a client address the proxy did not vouch for is not the client.
func TestTrustedProxyHeaders(t *testing.T) {
	m := startMock(t)
	g := startGateway(t, m.url, func(c *config.Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	resp := rawRequest(t, g.addr, "GET /api/v1/ingest/echo HTTP/1.1\r\n"+
		"Host: gateway.internal\r\n"+
		"X-Forwarded-For: 6.6.6.6, 198.51.100.7\r\n"+
		"X-Forwarded-For: 127.0.0.2\r\n"+
		"X-Forwarded-Proto: https\r\n"+
		"X-Forwarded-Host: app.example.com\r\n"+
		"Connection: close\r\n\r\n")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status: got %d, want 200", resp.StatusCode)
	}
	var e echoed
	decode(t, resp, &e)
	want := map[string][]string{
		"X-Forwarded-For":   {"6.6.6.6, 198.51.100.7, 127.0.0.2, 127.0.0.1"},
		"X-Forwarded-Proto": {"https"},
		"X-Forwarded-Host":  {"app.example.com"},
	}
	for name, values := range want {
		if got := e.Headers[name]; !slices.Equal(got, values) {
			t.Errorf("%s: got %q, want %q", name, got, values)
		}
	}
	line := g.logs.waitLine(t, 2*time.Second, func(l map[string]any) bool {
		return l["event"] == "Request completed" && l["path"] == "/api/v1/ingest/echo"
	})
	if line["client_ip"] != "198.51.100.7" {
		t.Errorf("access log client_ip: got %v, want 198.51.100.7", line["client_ip"])
	}
}
