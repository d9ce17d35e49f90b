package app_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atenex/gateway/config"
	"github.com/atenex/gateway/ingestmock"
)

// shortTimeout keeps the timeout tests quick: the upstream may stay silent
// this long, no longer.
func shortTimeout(c *config.Config) { c.UpstreamTimeout = 300 * time.Millisecond }

func TestUpstreamFailures(t *testing.T) {
	// A port that was just free: connecting to it is refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String()
	ln.Close()

	silent := rawUpstream(t, func(c net.Conn) {
		readRequestHead(c)
		time.Sleep(2 * time.Second) // never answers within the timeout
	})
	garbage := rawUpstream(t, func(c net.Conn) {
		readRequestHead(c)
		io.WriteString(c, "SSH-2.0-OpenSSH_9.6\r\n\r\n")
	})
	reset := rawUpstream(t, func(c net.Conn) {
		readRequestHead(c)
		c.(*net.TCPConn).SetLinger(0) // close with RST
	})
	closedEarly := rawUpstream(t, func(c net.Conn) {
		readRequestHead(c)
	})
	tests := []struct {
		name, upstream string
		status         int
		detail         string
	}{
		{"connection refused", refused, 503, "Upstream service is unavailable."},
		{"upstream silent past the timeout", silent, 504, "Upstream service timed out."},
		{"upstream answers garbage", garbage, 502, "Upstream service failed to answer properly."},
		{"upstream resets", reset, 502, "Upstream service failed to answer properly."},
		{"upstream closes without answering", closedEarly, 502, "Upstream service failed to answer properly."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := startGateway(t, tt.upstream, shortTimeout)
			for _, method := range []string{"GET", "POST"} {
				req, _ := http.NewRequest(method, g.url+"/api/v1/ingest/upload", strings.NewReader("x"))
				start := time.Now()
				resp := do(t, req)
				if resp.StatusCode != tt.status {
					t.Errorf("%s status: got %d, want %d", method, resp.StatusCode, tt.status)
				}
				if d := detailOf(t, resp); d != tt.detail {
					t.Errorf("%s detail: got %q, want %q", method, d, tt.detail)
				}
				if took := time.Since(start); took > 1500*time.Millisecond {
					t.Errorf("%s took %s, want about the 300ms timeout at most", method, took)
				}
			}
		})
	}
}

// TestConnectTimeout points the gateway at a listener whose accept queue
// is full, so the connection attempt hangs until the connect timeout.
func TestConnectTimeout(t *testing.T) {
	addr := fullBacklogListener(t)
	g := startGateway(t, "http://"+addr, func(c *config.Config) {
		c.UpstreamConnectTimeout = 200 * time.Millisecond
		c.UpstreamTimeout = 10 * time.Second
	})
	start := time.Now()
	resp := get(t, g.url+"/api/v1/ingest/ping")
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("status: got %d, want 504", resp.StatusCode)
	}
	detailOf(t, resp)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %s, want about the 200ms connect timeout", took)
	}
}

// TestUpstreamDiesMidBody checks that a response cut short upstream is cut
// short for the client too, never turned into a complete-looking one.
func TestUpstreamDiesMidBody(t *testing.T) {
	m := startMock(t)
	g := startGateway(t, m.url, nil)
	for _, chunked := range []string{"0", "1"} {
		t.Run("chunked="+chunked, func(t *testing.T) {
			resp := get(t, g.url+"/api/v1/ingest/blob?size=4194304&die_after=1048576&chunked="+chunked)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status: got %d, want 200 (the headers were fine)", resp.StatusCode)
			}
			n, err := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err == nil {
				t.Fatalf("read %d bytes and a clean end, want a broken body", n)
			}
			if !isBrokenBody(err) {
				t.Errorf("error: got %v, want unexpected EOF", err)
			}
			if n > 1<<20 {
				t.Errorf("read %d bytes, more than the upstream sent", n)
			}
		})
	}
	t.Run("small body is answered 502", func(t *testing.T) {
		resp := get(t, g.url+"/api/v1/ingest/blob?size=8192&die_after=100")
		if resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("status: got %d, want 502", resp.StatusCode)
		}
		detailOf(t, resp)
	})
}

// TestInactivityTimeout checks that the upstream timeout is one of
// inactivity: transfers that keep moving outlast it many times over, and a
// transfer that stops moving is cut at it.
func TestInactivityTimeout(t *testing.T) {
	trickle := rawUpstream(t, func(c net.Conn) {
		if _, _, err := readRequestHead(c); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 300000\r\n\r\n")
		chunk := strings.Repeat("z", 20000)
		for range 15 { // 15 × 100ms = 1.5s, five times the timeout
			if _, err := io.WriteString(c, chunk); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	t.Run("slow download that keeps moving", func(t *testing.T) {
		g := startGateway(t, trickle, shortTimeout)
		resp := get(t, g.url+"/api/v1/ingest/x")
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != 300000 {
			t.Errorf("got %d bytes, err %v; want all 300000", n, err)
		}
	})
	t.Run("download that stalls past the timeout", func(t *testing.T) {
		m := startMock(t)
		g := startGateway(t, m.url, shortTimeout)
		resp := get(t, g.url+"/api/v1/ingest/blob?size=1048576&stall_after=65536&stall_ms=1500")
		_, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if !isBrokenBody(err) {
			t.Errorf("error: got %v, want a broken body", err)
		}
	})
	t.Run("slow upload that keeps moving", func(t *testing.T) {
		m := startMock(t)
		g := startGateway(t, m.url, shortTimeout)
		pr, pw := io.Pipe()
		go func() {
			for range 15 {
				pw.Write([]byte(strings.Repeat("u", 1000)))
				time.Sleep(100 * time.Millisecond)
			}
			pw.Close()
		}()
		req, _ := http.NewRequest("POST", g.url+"/api/v1/ingest/sink", pr)
		req.ContentLength = 15000
		resp := do(t, req)
		var got struct {
			Bytes int64 `json:"bytes"`
		}
		decode(t, resp, &got)
		if resp.StatusCode != 200 || got.Bytes != 15000 {
			t.Errorf("got %d with %d bytes, want 200 with 15000", resp.StatusCode, got.Bytes)
		}
	})
}

// TestExpectContinue checks that a client that waits for 100 Continue
// before sending its body gets it, and the upload arrives whole.
func TestExpectContinue(t *testing.T) {
	m := startMock(t)
	g := startGateway(t, m.url, nil)
	const size = 3 << 20
	c := dial(t, g.addr)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "PUT /api/v1/ingest/sink HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n", size)
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("before the body: got %q (%v), want 100 Continue", line, err)
	}
	if _, err := br.ReadString('\n'); err != nil { // blank line ending the interim response
		t.Fatal(err)
	}
	if _, err := io.Copy(c, ingestmock.Pattern(size)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Bytes  int64  `json:"bytes"`
		SHA256 string `json:"sha256"`
	}
	decode(t, resp, &got)
	if got.Bytes != size || got.SHA256 != patternSHA(size) {
		t.Errorf("upstream got %d bytes %s, want %d bytes %s", got.Bytes, got.SHA256, size, patternSHA(size))
	}
}

func patternSHA(n int64) string {
	h := sha256.New()
	io.Copy(h, ingestmock.Pattern(n))
	return hex.EncodeToString(h.Sum(nil))
}

// TestClientAbortsUpload checks that an upload the client breaks off is
// not delivered upstream as if complete, and the gateway carries on.
func TestClientAbortsUpload(t *testing.T) {
	completed := make(chan int64, 4)
	upstreamURL := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err == nil {
			completed <- n
		}
	}))
	g := startGateway(t, upstreamURL, nil)
	for _, framing := range []string{"Content-Length: 10000000", "Transfer-Encoding: chunked"} {
		t.Run(framing, func(t *testing.T) {
			c, err := net.Dial("tcp", g.addr)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(c, "POST /api/v1/ingest/sink HTTP/1.1\r\nHost: x\r\n%s\r\n\r\n", framing)
			body := strings.Repeat("b", 1<<20)
			if strings.Contains(framing, "chunked") {
				body = fmt.Sprintf("%x\r\n%s\r\n", len(body), body)
			}
			io.WriteString(c, body)
			time.Sleep(100 * time.Millisecond) // let the gateway start forwarding
			c.Close()
			select {
			case n := <-completed:
				t.Errorf("the upstream saw a complete %d-byte body from an aborted upload", n)
			case <-time.After(500 * time.Millisecond):
			}
		})
	}
	resp := get(t, g.url+"/health")
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("after aborted uploads, /health: got %d, want 200", resp.StatusCode)
	}
}

// TestEarlyUpstreamAnswer: an ingest service (or a proxy in front of it)
// that refuses an upload from its headers answers at once and closes
// without reading the body. The client, which reads while it sends, as
// curl and browsers do, must get that answer, not a 502, whether the body
// is spliced or copied; and the upstream connection is not reused, even
// when the answer does not say Connection: close. (A body small enough to
// fit in the sockets' buffers is sent whole before the answer is read: no
// write fails, and only the answer's own Connection: close keeps the dead
// connection out of the pool.)
func TestEarlyUpstreamAnswer(t *testing.T) {
	const answer = `{"detail":"Unsupported file type."}`
	const closing = "Connection: close\r\n"
	for _, tc := range []struct {
		name         string
		size         int
		splice       bool
		upstreamConn string // the answer's own Connection header, if any
		interim      string // an interim answer sent first, if any
	}{
		{"spliced", 24 << 20, true, closing, ""},
		{"copied", 24 << 20, false, closing, ""},
		{"copied, small", 200 << 10, false, closing, ""},
		{"spliced, no Connection: close", 24 << 20, true, "", ""},
		{"copied, no Connection: close", 24 << 20, false, "", ""},
		{"spliced, keep-alive claimed", 24 << 20, true, "Connection: keep-alive\r\n", ""},
		{"spliced, after 100 Continue", 24 << 20, true, "", "HTTP/1.1 100 Continue\r\n\r\n"},
		{"copied, after 103 Early Hints", 24 << 20, false, "", "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var conns atomic.Int64
			up := rawUpstream(t, func(c net.Conn) {
				conns.Add(1)
				if _, _, err := readRequestHead(c); err != nil {
					return
				}
				fmt.Fprintf(c, "%sHTTP/1.1 415 Unsupported Media Type\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s", tc.interim, tc.upstreamConn, len(answer), answer)
				time.Sleep(50 * time.Millisecond) // Then close, the body unread: a reset.
			})
			g := startGateway(t, up, func(c *config.Config) { c.Splice = tc.splice })
			for i := range 2 {
				code, body, err := uploadWhileReading(t, g.addr, tc.size)
				if err != nil || code != 415 || body != answer {
					for _, l := range g.logs.lines(t) {
						if l["level"] != "info" {
							t.Logf("log: %v", l)
						}
					}
					t.Fatalf("upload %d: got %d %q (error %v), want the service's 415 %q", i, code, body, err, answer)
				}
			}
			if n := conns.Load(); n != 2 {
				t.Errorf("the upstream saw %d connections for 2 uploads, want 2: one that answered early was reused", n)
			}
		})
	}
}

// uploadWhileReading POSTs size bytes with a Content-Length to addr,
// writing the body in the background while it reads the answer, and
// returns the answer's status and body.
func uploadWhileReading(t *testing.T, addr string, size int) (int, string, error) {
	c := dial(t, addr)
	c.SetDeadline(time.Now().Add(20 * time.Second))
	go func() {
		fmt.Fprintf(c, "POST /api/v1/ingest/upload HTTP/1.1\r\nHost: x\r\nContent-Type: application/pdf\r\nContent-Length: %d\r\n\r\n", size)
		buf := make([]byte, 64<<10)
		for sent := 0; sent < size; sent += len(buf) {
			if _, err := c.Write(buf[:min(len(buf), size-sent)]); err != nil {
				return // The gateway closed the connection after answering.
			}
		}
	}()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}
