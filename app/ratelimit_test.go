package app_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atenex/gateway/config"
	"github.com/atenex/gateway/ratelimit/redistest"
)

// TestRateLimit: past the burst a client gets 429 with the IETF headers
// and Retry-After; /health is never limited; an Expect: 100-continue
// upload over the limit is refused instead of being told to continue.
func TestRateLimit(t *testing.T) {
	m := startMock(t)
	g := startGateway(t, m.url, func(c *config.Config) {
		c.RateLimitCount, c.RateLimitPeriod, c.RateLimitBurst = 1, time.Minute, 2
	})
	var statuses []int
	for range 3 {
		resp, err := http.Get(g.url + "/api/v1/ingest/echo")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		statuses = append(statuses, resp.StatusCode)
		if resp.StatusCode == http.StatusTooManyRequests {
			for _, h := range []string{"Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} {
				if resp.Header.Get(h) == "" {
					t.Errorf("429 without %s", h)
				}
			}
			if got := resp.Header.Get("RateLimit-Remaining"); got != "0" {
				t.Errorf("RateLimit-Remaining: got %q, want 0", got)
			}
		}
	}
	if statuses[0] != 200 || statuses[1] != 200 || statuses[2] != 429 {
		t.Fatalf("got statuses %v, want 200, 200, 429", statuses)
	}
	resp := rawRequest(t, g.addr, "GET /api/v1/ingest/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	var e struct {
		Detail string `json:"detail"`
	}
	decode(t, resp, &e)
	if e.Detail != "Too many requests." {
		t.Errorf("detail: got %q, want %q", e.Detail, "Too many requests.")
	}
	for range 5 {
		if resp, err := http.Get(g.url + "/health"); err != nil || resp.StatusCode != 200 {
			t.Fatalf("/health under the limit: got %v, %v; want 200", resp, err)
		}
	}

	conn, err := net.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	conn.Write([]byte("POST /api/v1/ingest/sink HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1000000\r\n\r\n"))
	status, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.Contains(status, " 429 ") {
		t.Errorf("Expect: 100-continue over the limit: got %q, %v; want 429 before the body", status, err)
	}
	if hits := m.hits.Load(); hits != 2 {
		t.Errorf("the ingest service saw %d requests, want the 2 allowed", hits)
	}
}

// TestRateLimitNeverLimits: /, /health and CORS preflights pass however
// far over its limit a client is.
func TestRateLimitNeverLimits(t *testing.T) {
	m := startMock(t)
	g := startGateway(t, m.url, func(c *config.Config) {
		c.RateLimitCount, c.RateLimitPeriod, c.RateLimitBurst = 1, time.Hour, 1
	})
	get(t, g.url+"/api/v1/ingest/echo").Body.Close()
	if resp := get(t, g.url+"/api/v1/ingest/echo"); resp.StatusCode != 429 {
		t.Fatalf("second request: got %d, want 429", resp.StatusCode)
	}
	for range 5 {
		for _, path := range []string{"/", "/health"} {
			if resp := get(t, g.url+path); resp.StatusCode != 200 {
				t.Errorf("%s over the limit: got %d, want 200", path, resp.StatusCode)
			}
		}
		req, _ := http.NewRequest(http.MethodOptions, g.url+"/api/v1/ingest/upload", nil)
		req.Header.Set("Origin", "http://localhost:3000")
		req.Header.Set("Access-Control-Request-Method", "POST")
		if resp := do(t, req); resp.StatusCode != 204 {
			t.Errorf("CORS preflight over the limit: got %d, want 204", resp.StatusCode)
		}
	}
}

// TestRateLimitRefusesUploadsBeforeTheirBody: an upload over the limit is
// answered 429 from its headers, with or without Expect: 100-continue, and
// a client that sends its whole body first still reads the answer; the
// ingest service never sees it. Per company, another company is not
// affected.
func TestRateLimitRefusesUploadsBeforeTheirBody(t *testing.T) {
	for _, key := range []string{"client_ip", "company"} {
		t.Run(key, func(t *testing.T) {
			m := startMock(t)
			g := startGateway(t, m.url, func(c *config.Config) {
				c.RateLimitCount, c.RateLimitPeriod, c.RateLimitBurst, c.RateLimitKey = 1, time.Hour, 1, key
			})
			const body = 64 << 20
			head := fmt.Sprintf("POST /api/v1/ingest/upload HTTP/1.1\r\nHost: x\r\nX-Company-ID: acme\r\nContent-Type: application/pdf\r\nContent-Length: %d\r\n", body)
			rawRequest(t, g.addr, "GET /api/v1/ingest/echo HTTP/1.1\r\nHost: x\r\nX-Company-ID: acme\r\nConnection: close\r\n\r\n").Body.Close()

			resp, detail, err := earlyAnswer(t, g.addr, head+"\r\n", body)
			if err != nil {
				t.Fatalf("without Expect: %v", err)
			}
			if resp.StatusCode != 429 || detail != "Too many requests." || resp.Header.Get("Retry-After") == "" {
				t.Errorf("without Expect: got %d %q Retry-After %q, want 429 %q with Retry-After", resp.StatusCode, detail, resp.Header.Get("Retry-After"), "Too many requests.")
			}

			conn := dial(t, g.addr)
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(conn, head+"Expect: 100-continue\r\n\r\n")
			resp, err = http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil || resp.StatusCode != 429 {
				t.Fatalf("with Expect: got %v, %v; want 429 instead of 100 Continue", resp, err)
			}
			if hits := m.hits.Load(); hits != 1 {
				t.Errorf("the ingest service saw %d requests, want the 1 allowed", hits)
			}
			other := rawRequest(t, g.addr, "GET /api/v1/ingest/echo HTTP/1.1\r\nHost: x\r\nX-Company-ID: globex\r\nConnection: close\r\n\r\n")
			if want := map[string]int{"client_ip": 429, "company": 200}[key]; other.StatusCode != want {
				t.Errorf("another company, same address: got %d, want %d", other.StatusCode, want)
			}
			series := `gateway_rate_limited_total{key="` + key + `"}`
			if n := scrape(t, g.admin)[series]; n < 2 {
				t.Errorf("%s: got %v, want at least 2", series, n)
			}
		})
	}
}

// TestRateLimitRedisDown: with the store in Redis and Redis gone, requests
// are let through (fail open) or refused 503 JSON (fail closed) within the
// store timeout, counted in gateway_rate_limit_store_errors_total; once
// Redis is back, the limit holds again without a restart.
func TestRateLimitRedisDown(t *testing.T) {
	for _, failClosed := range []bool{false, true} {
		t.Run(fmt.Sprintf("fail closed %v", failClosed), func(t *testing.T) {
			srv := redistest.Start(t)
			m := startMock(t)
			g := startGateway(t, m.url, func(c *config.Config) {
				c.RateLimitCount, c.RateLimitPeriod, c.RateLimitBurst = 1, time.Hour, 2
				c.RateLimitStore, c.RateLimitFailClosed = srv.URL(), failClosed
			})
			statuses := func(n int) []int {
				var out []int
				for range n {
					resp := get(t, g.url+"/api/v1/ingest/echo")
					resp.Body.Close()
					out = append(out, resp.StatusCode)
				}
				return out
			}
			if got := statuses(3); !slices.Equal(got, []int{200, 200, 429}) {
				t.Fatalf("Redis up: got %v, want 200, 200, 429", got)
			}

			srv.Stop(t)
			const n = 10
			for i := range n {
				start := time.Now()
				resp := get(t, g.url+"/api/v1/ingest/echo")
				took := time.Since(start)
				if took > time.Second {
					t.Errorf("request %d with Redis down took %v, want about the 50 ms store timeout", i, took)
				}
				if failClosed {
					if d := detailOf(t, resp); resp.StatusCode != 503 || d != "Rate limit unavailable, try again shortly." || resp.Header.Get("Retry-After") != "1" {
						t.Fatalf("fail closed, Redis down: got %d %q, want 503 with Retry-After", resp.StatusCode, d)
					}
				} else {
					resp.Body.Close()
					if resp.StatusCode != 200 || resp.Header.Get("RateLimit-Remaining") != "" {
						t.Fatalf("fail open, Redis down: got %d RateLimit-Remaining %q, want 200 and no rate headers", resp.StatusCode, resp.Header.Get("RateLimit-Remaining"))
					}
				}
			}
			if got := scrape(t, g.admin)["gateway_rate_limit_store_errors_total"]; got != n {
				t.Errorf("gateway_rate_limit_store_errors_total: got %v, want %d", got, n)
			}

			srv.Restart(t)
			deadline := time.Now().Add(5 * time.Second)
			for {
				resp := get(t, g.url+"/api/v1/ingest/echo")
				resp.Body.Close()
				if resp.Header.Get("RateLimit-Limit") != "" {
					break // decided by Redis again
				}
				if time.Now().After(deadline) {
					t.Fatal("Redis back, but requests still undecided after 5 s")
				}
				time.Sleep(10 * time.Millisecond) // a poll interval
			}
			if got := statuses(2); !slices.Equal(got, []int{200, 429}) {
				t.Errorf("Redis back: got %v, want 200, 429 (the limit holds again)", got)
			}
			if n := scrape(t, g.admin)["gateway_rate_limit_store_duration_seconds_count"]; n < 10 {
				t.Errorf("gateway_rate_limit_store_duration_seconds_count: got %v, want every decision timed", n)
			}
		})
	}
}

// TestRateLimitCountsTheVerifiedCompany: in jwt mode the company a limit
// counts is the token's, in the middleware and in the Expect check alike;
// a client that claims another company in X-Company-ID is still counted
// as its own, and cannot spend another company's allowance.
func TestRateLimitCountsTheVerifiedCompany(t *testing.T) {
	m := startMock(t)
	g := startGateway(t, m.url, func(c *config.Config) {
		jwtMode(c)
		c.RateLimitCount, c.RateLimitPeriod, c.RateLimitBurst, c.RateLimitKey = 1, time.Hour, 1, "company"
	})
	acme, globex := devToken(t, "acme"), devToken(t, "globex")
	get := func(token, claimed string) int {
		resp := rawRequest(t, g.addr, "GET /api/v1/ingest/echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+token+
			"\r\nX-Company-ID: "+claimed+"\r\nConnection: close\r\n\r\n")
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := get(acme, "acme"); s != 200 {
		t.Fatalf("acme's first request: got %d, want 200", s)
	}
	if s := get(acme, "globex"); s != 429 {
		t.Errorf("acme claiming globex: got %d, want 429 (counted as acme)", s)
	}
	conn := dial(t, g.addr)
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(conn, "POST /api/v1/ingest/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+acme+
		"\r\nX-Company-ID: initech\r\nContent-Length: 1048576\r\nExpect: 100-continue\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != 429 {
		t.Fatalf("acme's upload with Expect, claiming initech: got %v, %v; want 429 instead of 100 Continue", resp, err)
	}
	if s := get(globex, "globex"); s != 200 {
		t.Errorf("globex's first request: got %d, want 200 (acme must not have spent it)", s)
	}
	if hits := m.hits.Load(); hits != 2 {
		t.Errorf("the ingest service saw %d requests, want the 2 allowed", hits)
	}
}
