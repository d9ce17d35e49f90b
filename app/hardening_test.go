package app_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atenex/gateway/config"
)

// completedBodies is an upstream that counts requests whose bodies arrived
// whole, and answers 200.
func completedBodies(t *testing.T) (url string, completed *atomic.Int64) {
	completed = &atomic.Int64{}
	url = serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err == nil {
			completed.Add(1)
		}
	}))
	return url, completed
}

// expectClosed fails unless the server closes c (reading gives EOF or an
// error) within a second, after whatever response it sent.
func expectClosed(t *testing.T, br *bufio.Reader, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := io.Copy(io.Discard, br); err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Errorf("connection still open a second after the response")
		}
	}
}

func TestPathSafety(t *testing.T) {
	m := startMock(t)
	g := startGateway(t, m.url, nil)
	for _, target := range []string{
		"/api/v1/ingest/../../admin",
		"/api/v1/ingest/..",
		"/api/v1/ingest/%2e%2e/%2e%2e/admin",
		"/api/v1/ingest/.%2E/admin",
		"/api/v1/ingest/upload/..%2F..%2Fadmin",
		"/api/v1/ingest/a%2fb",
		"/api/v1/ingest/%252e%252e/admin",
		"/api/v1/ingest/a%252Fb",
		"/api/v1/ingest/..%5C..%5Cadmin",
		`/api/v1/ingest/..\..\admin`,
		"/api/v1/ingest/a%00b",
		"/api/v1/ingest/a%zz",
	} {
		t.Run(target, func(t *testing.T) {
			before := m.hits.Load()
			resp := rawRequest(t, g.addr, "GET "+target+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("status: got %d, want 400", resp.StatusCode)
			}
			if d := detailOf(t, resp); d != "Invalid path." {
				t.Errorf("detail: got %q, want %q", d, "Invalid path.")
			}
			if m.hits.Load() != before {
				t.Errorf("%s reached the upstream", target)
			}
		})
	}
}

func TestFramingIsUnambiguous(t *testing.T) {
	url, completed := completedBodies(t)
	g := startGateway(t, url, nil)
	const head = "POST /api/v1/ingest/sink HTTP/1.1\r\nHost: x\r\n"
	tests := map[string]string{
		"Content-Length with Transfer-Encoding": head + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"Transfer-Encoding with Content-Length": head + "Transfer-Encoding: chunked\r\nContent-Length: 30\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /x HTTP/1.1\r\n\r\n",
		"differing Content-Lengths":             head + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
		"Transfer-Encoding gzip":                head + "Transfer-Encoding: gzip\r\n\r\nhello",
		"Transfer-Encoding gzip, chunked":       head + "Transfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"Transfer-Encoding identity":            head + "Transfer-Encoding: identity\r\nContent-Length: 5\r\n\r\nhello",
		"two Transfer-Encodings":                head + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"obs-folded header":                     head + "X-Folded: a\r\n b\r\nContent-Length: 5\r\n\r\nhello",
		"malformed chunk size":                  head + "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
		"negative chunk size":                   head + "Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
		"overflowing chunk size":                head + "Transfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
		"chunked in HTTP/1.0":                   "POST /api/v1/ingest/sink HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	}
	for name, raw := range tests {
		t.Run(name, func(t *testing.T) {
			before := completed.Load()
			c := dial(t, g.addr)
			io.WriteString(c, raw)
			br := bufio.NewReader(c)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no response: %v", err)
			}
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("status: got %d, want 400", resp.StatusCode)
			}
			detailOf(t, resp)
			expectClosed(t, br, c)
			if completed.Load() != before {
				t.Errorf("the upstream received a complete request")
			}
		})
	}
}

func TestLimits(t *testing.T) {
	url, completed := completedBodies(t)
	g := startGateway(t, url, func(c *config.Config) {
		c.MaxHeaderBytes = 4 << 10
		c.MaxBodySize = 1 << 20
	})

	t.Run("headers over the limit", func(t *testing.T) {
		resp := rawRequest(t, g.addr, "GET /api/v1/ingest/x HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 5<<10)+"\r\n\r\n")
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("status: got %d, want 431", resp.StatusCode)
		}
		detailOf(t, resp)
	})
	t.Run("headers under the limit", func(t *testing.T) {
		resp := rawRequest(t, g.addr, "GET /api/v1/ingest/x HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 3<<10)+"\r\nConnection: close\r\n\r\n")
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("status: got %d, want 200", resp.StatusCode)
		}
	})
	t.Run("body at the limit", func(t *testing.T) {
		req, _ := http.NewRequest("POST", g.url+"/api/v1/ingest/sink", strings.NewReader(strings.Repeat("b", 1<<20)))
		resp := do(t, req)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("status: got %d, want 200", resp.StatusCode)
		}
	})
	t.Run("Content-Length over the limit, refused before the body", func(t *testing.T) {
		before := completed.Load()
		c := dial(t, g.addr)
		fmt.Fprintf(c, "POST /api/v1/ingest/sink HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", 1<<20+1)
		io.WriteString(c, "the start of the body, and no more")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("status: got %d, want 413", resp.StatusCode)
		}
		if d := detailOf(t, resp); d != "Request body too large." {
			t.Errorf("detail: got %q", d)
		}
		if completed.Load() != before {
			t.Errorf("the upstream got the request")
		}
	})
	t.Run("Expect 100-continue over the limit gets 413, not 100", func(t *testing.T) {
		c := dial(t, g.addr)
		fmt.Fprintf(c, "POST /api/v1/ingest/sink HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n", 5<<20)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("status: got %d, want 413", resp.StatusCode)
		}
		if d := detailOf(t, resp); d != "Request body too large." {
			t.Errorf("detail: got %q", d)
		}
	})
	t.Run("chunked body outgrowing the limit is cut off", func(t *testing.T) {
		before := completed.Load()
		c := dial(t, g.addr)
		io.WriteString(c, "POST /api/v1/ingest/sink HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
		chunk := fmt.Sprintf("%x\r\n%s\r\n", 64<<10, strings.Repeat("c", 64<<10))
		go func() {
			for range 32 { // 2 MiB, twice the limit
				if _, err := io.WriteString(c, chunk); err != nil {
					return
				}
			}
			io.WriteString(c, "0\r\n\r\n")
		}()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("no response: %v", err)
		}
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("status: got %d, want 413", resp.StatusCode)
		}
		time.Sleep(100 * time.Millisecond)
		if completed.Load() != before {
			t.Errorf("the upstream saw the oversized body as complete")
		}
	})
}

func TestClientTimeouts(t *testing.T) {
	url, completed := completedBodies(t)
	g := startGateway(t, url, func(c *config.Config) {
		c.ClientHeaderTimeout = 300 * time.Millisecond
		c.ClientBodyIdleTimeout = 300 * time.Millisecond
		c.ClientIdleTimeout = 300 * time.Millisecond
	})

	t.Run("slowloris headers are cut off while others are served", func(t *testing.T) {
		c := dial(t, g.addr)
		start := time.Now()
		go func() {
			io.WriteString(c, "GET /api/v1/ingest/x HTTP/1.1\r\n")
			for range 20 {
				if _, err := io.WriteString(c, "X-Slow: 1\r\n"); err != nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
		resp := get(t, g.url+"/health") // another client, meanwhile
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("other client: got %d, want 200", resp.StatusCode)
		}
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		io.Copy(io.Discard, c)
		if took := time.Since(start); took > 1500*time.Millisecond {
			t.Errorf("slow headers held the connection %s, want about 300ms", took)
		}
	})
	t.Run("stalled upload is aborted", func(t *testing.T) {
		before := completed.Load()
		c := dial(t, g.addr)
		io.WriteString(c, "POST /api/v1/ingest/sink HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
		io.WriteString(c, strings.Repeat("s", 50000))
		// …and nothing more.
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		start := time.Now()
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err == nil {
			if resp.StatusCode != http.StatusRequestTimeout {
				t.Errorf("status: got %d, want 408", resp.StatusCode)
			}
			resp.Body.Close()
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("stalled upload held %s, want about 300ms", took)
		}
		if completed.Load() != before {
			t.Errorf("the upstream saw the stalled upload as complete")
		}
	})
	t.Run("slow upload that keeps moving is never cut", func(t *testing.T) {
		pr, pw := io.Pipe()
		go func() {
			for range 12 { // 1.2s, four times the idle timeout
				pw.Write([]byte(strings.Repeat("m", 1000)))
				time.Sleep(100 * time.Millisecond)
			}
			pw.Close()
		}()
		req, _ := http.NewRequest("POST", g.url+"/api/v1/ingest/sink", pr)
		req.ContentLength = 12000
		resp := do(t, req)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("status: got %d, want 200", resp.StatusCode)
		}
	})
	t.Run("idle keep-alive connection is closed", func(t *testing.T) {
		c := dial(t, g.addr)
		io.WriteString(c, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		start := time.Now()
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, err := br.ReadByte(); err == nil {
			t.Fatalf("unexpected data on an idle connection")
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("idle connection kept %s, want about 300ms", took)
		}
	})
}

// TestClientStopsReadingDownload checks that a client that stops reading
// a download releases the upstream after the body idle timeout.
func TestClientStopsReadingDownload(t *testing.T) {
	released := make(chan struct{})
	up := rawUpstream(t, func(c net.Conn) {
		if _, _, err := readRequestHead(c); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n")
		buf := make([]byte, 64<<10)
		for {
			c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Write(buf); err != nil {
				close(released)
				return
			}
		}
	})
	g := startGateway(t, up, func(c *config.Config) { c.ClientBodyIdleTimeout = 300 * time.Millisecond })
	c := dial(t, g.addr)
	io.WriteString(c, "GET /api/v1/ingest/big HTTP/1.1\r\nHost: x\r\n\r\n")
	// Never read.
	select {
	case <-released:
	case <-time.After(8 * time.Second):
		t.Fatal("the upstream connection was still being read 8s after the client stopped reading")
	}
}

func TestPoolExhausted(t *testing.T) {
	slow := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Second)
	}))
	g := startGateway(t, slow, func(c *config.Config) {
		c.UpstreamMaxConns = 1
		c.UpstreamMaxIdleConns = 1
		c.UpstreamPoolTimeout = 200 * time.Millisecond
	})
	first := make(chan int, 1)
	go func() {
		resp, err := http.Get(g.url + "/api/v1/ingest/slow")
		if err != nil {
			first <- 0
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	time.Sleep(100 * time.Millisecond) // the first request holds the only connection
	start := time.Now()
	resp := get(t, g.url+"/api/v1/ingest/slow")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("status: got %d, want 503", resp.StatusCode)
	}
	if ra := resp.Header.Get("Retry-After"); ra == "" {
		t.Errorf("no Retry-After")
	}
	if d := detailOf(t, resp); d != "Upstream service is busy, try again shortly." {
		t.Errorf("detail: got %q", d)
	}
	if took := time.Since(start); took > 800*time.Millisecond {
		t.Errorf("waited %s, want about the 200ms pool timeout", took)
	}
	if code := <-first; code != 200 {
		t.Errorf("first request: got %d, want 200", code)
	}
}

// TestStaleKeepAliveRetried: an upstream that drops idle keep-alive
// connections without saying so must not turn into client errors for
// requests without a body; uploads are never sent twice.
func TestStaleKeepAliveRetried(t *testing.T) {
	var requests, bodies atomic.Int64
	up := rawUpstream(t, func(c net.Conn) {
		req, br, err := readRequestHead(c)
		if err != nil {
			return
		}
		requests.Add(1)
		if n, _ := io.Copy(io.Discard, req.Body); n > 0 {
			bodies.Add(1)
		}
		_ = br
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		time.Sleep(50 * time.Millisecond) // then close, as if idle too long
	})
	g := startGateway(t, up, nil)
	for i := range 5 {
		resp := get(t, g.url+"/api/v1/ingest/x")
		resp.Body.Close()
		if resp.StatusCode != 200 {
			for _, l := range g.logs.lines(t) {
				if l["level"] == "error" {
					t.Logf("log: %v", l)
				}
			}
			t.Fatalf("GET %d: got %d, want 200", i, resp.StatusCode)
		}
		time.Sleep(100 * time.Millisecond) // the pooled connection dies meanwhile
	}
	req, _ := http.NewRequest("POST", g.url+"/api/v1/ingest/x", strings.NewReader(strings.Repeat("p", 100000)))
	resp := do(t, req)
	resp.Body.Close()
	if got := bodies.Load(); got > 1 {
		t.Errorf("the upload reached the upstream %d times, want at most once", got)
	}
}

// TestBodilessPostNotReplayed: a POST without a body is not streamed, so
// fasthttp could send it again when its connection dies before the answer;
// the upstream may have acted on it already, so the client gets a 502 and
// the upstream sees it once. A GET in the same spot is retried.
func TestBodilessPostNotReplayed(t *testing.T) {
	var posts, gets atomic.Int64
	up := rawUpstream(t, func(c net.Conn) {
		req, _, err := readRequestHead(c)
		if err != nil {
			return
		}
		count := &gets
		if req.Method == "POST" {
			count = &posts
		}
		if count.Add(1) == 1 {
			return // Acts on it, then dies before answering.
		}
		io.WriteString(c, "HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
	})
	g := startGateway(t, up, nil)

	req, _ := http.NewRequest("POST", g.url+"/api/v1/ingest/retry/doc-1", nil)
	resp := do(t, req)
	resp.Body.Close()
	if n := posts.Load(); n != 1 || resp.StatusCode != 502 {
		t.Errorf("POST: the upstream saw it %d times and the client got %d; want once and 502", n, resp.StatusCode)
	}

	resp = get(t, g.url+"/api/v1/ingest/status/doc-1")
	resp.Body.Close()
	if n := gets.Load(); n != 2 || resp.StatusCode != 202 {
		t.Errorf("GET: the upstream saw it %d times and the client got %d; want twice (one retry) and 202", n, resp.StatusCode)
	}
}

// TestOverload drives the gateway, with no queue (GATEWAY_MAX_QUEUED=0),
// far past its in-flight limit: every
// request is served or refused at once with 503 and Retry-After, and the
// gateway serves normally as soon as the load drops.
func TestOverload(t *testing.T) {
	slow := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Second)
	}))
	g := startGateway(t, slow, func(c *config.Config) { c.MaxInFlight, c.MaxQueued = 16, 0 })
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: 256}}
	defer client.CloseIdleConnections()

	var served, refused, other atomic.Int64
	var mu sync.Mutex
	var refusals []time.Duration
	var wg sync.WaitGroup
	for range 256 { // sixteen times the limit
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 4 {
				start := time.Now()
				resp, err := client.Get(g.url + "/api/v1/ingest/x")
				if err != nil {
					other.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch {
				case resp.StatusCode == 200:
					served.Add(1)
				case resp.StatusCode == 503 && resp.Header.Get("Retry-After") != "":
					refused.Add(1)
					mu.Lock()
					refusals = append(refusals, time.Since(start))
					mu.Unlock()
				default:
					other.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	slices.Sort(refusals)
	var median time.Duration
	if len(refusals) > 0 {
		median = refusals[len(refusals)/2]
	}
	t.Logf("served %d, refused %d; refusal latency median %s, max %s (the max includes connecting through a full accept queue)",
		served.Load(), refused.Load(), median, refusals[len(refusals)-1])
	if other.Load() != 0 {
		t.Errorf("%d requests neither served nor refused with 503 + Retry-After", other.Load())
	}
	if served.Load() == 0 || refused.Load() == 0 {
		t.Errorf("want both served and refused requests under overload")
	}
	// Admitted requests take 1s upstream; a refusal must not wait for
	// any of them (the margin is for the race detector on a busy machine).
	if median > 500*time.Millisecond {
		t.Errorf("median refusal took %s, want well under the 1s an admitted request takes", median)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", g.url+"/api/v1/ingest/x", nil)
	resp, err := client.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("after the load: got %v %v, want 200", resp, err)
	}
}
