package app_test

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/atenex/gateway/config"
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
