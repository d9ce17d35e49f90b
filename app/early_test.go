package app_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/atenex/gateway/config"
)

// earlyAnswer sends head, then n bytes of body, all of it before reading
// anything, as the least patient client does, and then reads the answer.
// A gateway that closes with the body unread makes the kernel reset the
// connection, and this client then never sees the answer.
func earlyAnswer(t *testing.T, addr, head string, n int) (*http.Response, string, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, head); err != nil {
		return nil, "", fmt.Errorf("writing the head: %w", err)
	}
	chunk := bytes.Repeat([]byte("x"), 1<<20)
	for sent := 0; sent < n; sent += len(chunk) {
		if _, err := c.Write(chunk[:min(len(chunk), n-sent)]); err != nil {
			return nil, "", fmt.Errorf("after %d MiB of body: %w", sent>>20, err)
		}
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil, "", fmt.Errorf("reading the answer: %w", err)
	}
	defer resp.Body.Close()
	var v struct{ Detail string }
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return resp, "", fmt.Errorf("decoding the answer: %w", err)
	}
	return resp, v.Detail, nil
}

// TestEarlyAnswersReachAClientStillSending: answers the gateway gives from
// a request's headers alone, before its body, reach a client that keeps
// sending (issue 11 item 7: nginx's lingering close).
func TestEarlyAnswersReachAClientStillSending(t *testing.T) {
	m := startMock(t)
	g := startGateway(t, m.url, func(c *config.Config) {
		c.MaxBodySize = 1 << 20
		c.MaxHeaderBytes = 16 << 10
	})
	const body = 256 << 20
	cases := []struct {
		name   string
		head   string
		n      int
		tries  int
		status int
		detail string
	}{
		{"413 from Content-Length, 256 MiB sent anyway",
			fmt.Sprintf("POST /api/v1/ingest/upload HTTP/1.1\r\nHost: x\r\nContent-Type: application/pdf\r\nContent-Length: %d\r\n\r\n", body),
			body, 1, 413, "Request body too large."},
		{"413 from a chunked body past the limit",
			"POST /api/v1/ingest/upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4000000\r\n",
			64 << 20, 1, 413, "Request body too large."},
		{"431 for a 1 MiB header",
			"GET /api/v1/ingest/status HTTP/1.1\r\nHost: x\r\nX-Big: ",
			1 << 20, 8, 431, "Request headers too large."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for try := range tc.tries {
				resp, detail, err := earlyAnswer(t, g.addr, tc.head, tc.n)
				if err != nil {
					t.Fatalf("try %d: %v", try+1, err)
				}
				if resp.StatusCode != tc.status || detail != tc.detail || !resp.Close {
					t.Fatalf("try %d: %d %q close=%v; want %d %q and the connection closed",
						try+1, resp.StatusCode, detail, resp.Close, tc.status, tc.detail)
				}
			}
		})
	}
}
