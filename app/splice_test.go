package app_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atenex/gateway/config"
	"github.com/atenex/gateway/ingestmock"
	"github.com/atenex/gateway/routes"
	"github.com/atenex/gateway/upstream"
	"github.com/gofiber/fiber/v2"
)

// upload sends body to the gateway's /sink on a connection of its own and
// returns the response, with the body read.
func upload(t *testing.T, addr string, body []byte) (*http.Response, string) {
	t.Helper()
	c := dial(t, addr)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	go func() {
		fmt.Fprintf(c, "POST /api/v1/ingest/sink HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", len(body))
		c.Write(body)
	}()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// TestLargeUploadsAreSpliced checks the kernel-to-kernel path for uploads
// of known length: byte-exact at the upstream, whatever the sizes of the
// pieces the client sends, and the connection closed after the answer
// (fasthttp has lost count of the body); smaller uploads keep theirs.
func TestLargeUploadsAreSpliced(t *testing.T) {
	m := startMock(t)
	g := startGateway(t, m.url, nil)
	for _, size := range []int{100 << 10, 1<<20 + 8<<10 + 1, 3<<20 + 1, 24 << 20} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			body := make([]byte, size)
			rand.NewChaCha8([32]byte{byte(size)}).Read(body)
			sum := sha256.Sum256(body)
			resp, got := upload(t, g.addr, body)
			want := fmt.Sprintf(`{"bytes":%d,"sha256":"%s"}`, size, hex.EncodeToString(sum[:]))
			if resp.StatusCode != 200 || !strings.Contains(got, want) {
				t.Fatalf("got %d %s, want 200 %s", resp.StatusCode, got, want)
			}
			// Under 1 MiB is never spliced; over 2 MiB always is (at most
			// two 64 KiB reads come first); in between, it depends on them.
			if size < 1<<20 && resp.Close {
				t.Errorf("an upload too small to splice closed its connection")
			}
			if size > 2<<20 && !resp.Close {
				t.Errorf("a spliced upload kept its connection open")
			}
		})
	}
	// The access log counts spliced bytes like copied ones.
	var logged bool
	for _, l := range g.logs.lines(t) {
		if l["path"] == "/api/v1/ingest/sink" && l["bytes_in"] == float64(24<<20) && l["status_code"] == float64(200) {
			logged = true
		}
	}
	if !logged {
		t.Errorf("no access line with bytes_in %d", 24<<20)
	}
}

// TestSplicedUploadSentInPieces checks that bytes fasthttp has buffered are
// not skipped when the splice starts: the client sends the start of its
// body in small pieces, so the gateway's first reads are short.
func TestSplicedUploadSentInPieces(t *testing.T) {
	m := startMock(t)
	g := startGateway(t, m.url, nil)
	const size = 4 << 20
	body := make([]byte, size)
	rand.NewChaCha8([32]byte{7}).Read(body)
	sum := sha256.Sum256(body)
	c := dial(t, g.addr)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	go func() {
		head := fmt.Sprintf("POST /api/v1/ingest/sink HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", size)
		// The head and the first bytes in one segment, as browsers send them.
		c.Write(append([]byte(head), body[:3000]...))
		for off := 3000; off < 40000; off += 1000 {
			time.Sleep(2 * time.Millisecond)
			c.Write(body[off : off+1000])
		}
		c.Write(body[40000:])
	}()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	want := fmt.Sprintf(`{"bytes":%d,"sha256":"%s"}`, size, hex.EncodeToString(sum[:]))
	if resp.StatusCode != 200 || !strings.Contains(string(got), want) {
		t.Fatalf("got %d %s, want 200 %s", resp.StatusCode, got, want)
	}
}

// TestSplicedUploadFailures checks that a spliced upload fails the way a
// copied one does, each side blamed for its own failure.
func TestSplicedUploadFailures(t *testing.T) {
	t.Run("client stalls: 408, and the upstream never sees a whole body", func(t *testing.T) {
		completed := make(chan int64, 1)
		up := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if n, err := io.Copy(io.Discard, r.Body); err == nil {
				completed <- n
			}
		}))
		g := startGateway(t, up, func(c *config.Config) { c.ClientBodyIdleTimeout = 300 * time.Millisecond })
		c := dial(t, g.addr)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "POST /api/v1/ingest/sink HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", 16<<20)
		c.Write(make([]byte, 4<<20)) // well into the splice, then nothing
		start := time.Now()
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Errorf("status: got %d, want 408", resp.StatusCode)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("answered after %v, want about the 300ms idle timeout", took)
		}
		select {
		case n := <-completed:
			t.Errorf("the upstream saw a complete %d-byte body", n)
		case <-time.After(300 * time.Millisecond):
		}
	})
	t.Run("client hangs up: the upstream never sees a whole body", func(t *testing.T) {
		completed := make(chan int64, 1)
		up := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if n, err := io.Copy(io.Discard, r.Body); err == nil {
				completed <- n
			}
		}))
		g := startGateway(t, up, nil)
		c := dial(t, g.addr)
		fmt.Fprintf(c, "POST /api/v1/ingest/sink HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", 16<<20)
		c.Write(make([]byte, 4<<20))
		time.Sleep(100 * time.Millisecond)
		c.Close()
		select {
		case n := <-completed:
			t.Errorf("the upstream saw a complete %d-byte body", n)
		case <-time.After(500 * time.Millisecond):
		}
		waitLogged(t, g, "client_abort")
	})
	t.Run("upstream stops reading: 504", func(t *testing.T) {
		up := rawUpstream(t, func(c net.Conn) {
			readRequestHead(c)
			time.Sleep(3 * time.Second) // reads nothing of the body
		})
		g := startGateway(t, up, shortTimeout)
		start := time.Now()
		resp, got := upload(t, g.addr, make([]byte, 64<<20))
		if resp.StatusCode != http.StatusGatewayTimeout {
			t.Errorf("got %d %s, want 504", resp.StatusCode, got)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("answered after %v, want about the 300ms upstream timeout", took)
		}
	})
	t.Run("upstream resets: 502", func(t *testing.T) {
		up := rawUpstream(t, func(c net.Conn) {
			_, br, _ := readRequestHead(c)
			io.CopyN(io.Discard, br, 2<<20)
			c.(*net.TCPConn).SetLinger(0)
		})
		g := startGateway(t, up, nil)
		resp, got := upload(t, g.addr, make([]byte, 32<<20))
		if resp.StatusCode != http.StatusBadGateway {
			t.Errorf("got %d %s, want 502", resp.StatusCode, got)
		}
	})
}

// waitLogged waits for an access line whose error kind (the upstream
// errors metric's label) appears in the logs, for up to two seconds.
func waitLogged(t *testing.T, g *gateway, want string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		resp := get(t, g.admin+"/metrics")
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), `kind="`+want+`"`) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("no %q upstream error counted in /metrics", want)
}

// blobSum is the length and hex sha256 of the mock's /blob body of size n.
func blobSum(t *testing.T, n int64) string {
	t.Helper()
	h := sha256.New()
	if _, err := io.Copy(h, ingestmock.Pattern(n)); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d %x", n, h.Sum(nil))
}

// TestLargeDownloadsAreSpliced checks the kernel-to-kernel path for
// downloads of known length from 16 MiB: byte-exact at the client, on one
// keep-alive client connection throughout, and each spliced download
// costing its upstream connection (fasthttp has lost count of the body),
// where a smaller one returns it to the pool.
func TestLargeDownloadsAreSpliced(t *testing.T) {
	up, opened := countingMock(t)
	g := startGateway(t, up, nil)
	downloadOnOneConnection(t, g, 3<<20, 16<<20+64<<10+1, 20<<20+1, 24<<20)
	// The 3 MiB download's connection serves the first spliced one and is
	// closed after it; the two later ones open one each.
	if got := opened.Load(); got != 3 {
		t.Errorf("upstream connections opened: got %d, want 3 (one per spliced download)", got)
	}
	var logged bool
	for _, l := range g.logs.lines(t) {
		if l["path"] == "/api/v1/ingest/blob" && l["bytes_out"] == float64(24<<20) && l["event"] == "Request completed" {
			logged = true
		}
	}
	if !logged {
		t.Errorf("no completed access line with bytes_out %d", 24<<20)
	}
}

// countingMock starts the mock ingest service and counts the connections
// made to it.
func countingMock(t *testing.T) (string, *atomic.Int32) {
	t.Helper()
	var opened atomic.Int32
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := &http.Server{Handler: ingestmock.New("/api/v1"), ConnState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}}
	go up.Serve(ln)
	t.Cleanup(func() { up.Close() })
	return "http://" + ln.Addr().String(), &opened
}

// downloadOnOneConnection downloads the mock's /blob of each size in turn
// on one client connection, checking every byte and that the connection
// stays open.
func downloadOnOneConnection(t *testing.T, g *gateway, sizes ...int64) {
	t.Helper()
	c := dial(t, g.addr)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	for _, size := range sizes {
		fmt.Fprintf(c, "GET /api/v1/ingest/blob?size=%d HTTP/1.1\r\nHost: x\r\n\r\n", size)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%d bytes: %v", size, err)
		}
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%d bytes: body broke after %d: %v", size, n, err)
		}
		if got, want := fmt.Sprintf("%d %x", n, h.Sum(nil)), blobSum(t, size); got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
		if resp.Close {
			t.Fatalf("%d bytes: the client connection was closed", size)
		}
	}
}

// TestSpliceOff checks GATEWAY_SPLICE=false: large bodies are copied, so
// the upstream connection serves download after download and a large
// upload keeps its client connection.
func TestSpliceOff(t *testing.T) {
	up, opened := countingMock(t)
	g := startGateway(t, up, func(c *config.Config) { c.Splice = false })
	downloadOnOneConnection(t, g, 20<<20, 24<<20)
	if got := opened.Load(); got != 1 {
		t.Errorf("upstream connections opened: got %d, want 1 (copied downloads keep it)", got)
	}
	body := make([]byte, 8<<20)
	resp, got := upload(t, g.addr, body)
	if resp.StatusCode != 200 || !strings.Contains(got, `"bytes":8388608`) {
		t.Fatalf("upload: got %d %s", resp.StatusCode, got)
	}
	if resp.Close {
		t.Error("a copied upload closed its client connection")
	}
}

// TestSplicedDownloadSentInPieces checks that bytes fasthttp has buffered
// for the upstream connection are not skipped when the splice starts: the
// upstream sends its head with the start of the body, then small pieces.
func TestSplicedDownloadSentInPieces(t *testing.T) {
	const size = 20 << 20
	body := make([]byte, size)
	rand.NewChaCha8([32]byte{9}).Read(body)
	sum := sha256.Sum256(body)
	up := rawUpstream(t, func(c net.Conn) {
		if _, _, err := readRequestHead(c); err != nil {
			return
		}
		c.Write(append([]byte(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", size)), body[:3000]...))
		for off := 3000; off < 40000; off += 1000 {
			time.Sleep(2 * time.Millisecond)
			c.Write(body[off : off+1000])
		}
		c.Write(body[40000:])
	})
	g := startGateway(t, up, nil)
	resp := get(t, g.url+"/api/v1/ingest/file")
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("body broke after %d bytes: %v", len(got), err)
	}
	if sha256.Sum256(got) != sum {
		t.Fatalf("got %d bytes, not the %d sent", len(got), size)
	}
}

// TestSplicedDownloadFailures checks that a spliced download breaks the
// way a copied one does: the client sees a short body on a closed
// connection, and the access log blames the side that failed.
func TestSplicedDownloadFailures(t *testing.T) {
	for _, tt := range []struct {
		name, query string
		edit        func(*config.Config)
		wantErr     string // in the access line's error
	}{
		{"upstream dies", "size=33554432&die_after=4194304", nil, "unexpected EOF"},
		{"upstream stalls", "size=33554432&stall_after=4194304&stall_ms=5000", shortTimeout, "timeout"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := startMock(t)
			g := startGateway(t, m.url, tt.edit)
			start := time.Now()
			resp := get(t, g.url+"/api/v1/ingest/blob?"+tt.query)
			n, err := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err == nil || n >= 32<<20 {
				t.Fatalf("got %d bytes, err %v; want a body broken off", n, err)
			}
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("broke off after %v", took)
			}
			l := g.logs.waitLine(t, 2*time.Second, func(l map[string]any) bool {
				return l["logger"] == "gateway.access" && l["path"] == "/api/v1/ingest/blob"
			})
			errText, _ := l["error"].(string)
			if l["broken_by"] != "upstream" || !strings.Contains(errText, tt.wantErr) {
				t.Fatalf("access line: got %v, want broken_by upstream with %q", l, tt.wantErr)
			}
		})
	}
}

// TestSplicedDownloadWithETag checks that a download is spliced only when
// fasthttp's server writes it to the connection: with Fiber's ETag on,
// Fiber reads the whole body through the stream first (Response.Body),
// and the client must still get the head, then the body.
func TestSplicedDownloadWithETag(t *testing.T) {
	const size = 20 << 20
	u, _ := url.Parse(serveHTTP(t, ingestmock.New("/api/v1")))
	conns := &upstream.Conns{}
	hc := upstream.NewClient(upstream.Options{URL: u, Timeout: 5 * time.Second, ConnectTimeout: time.Second,
		IdleConnTimeout: time.Minute, MaxConns: 8, PoolTimeout: time.Second, Conns: conns})
	f := fiber.New(fiber.Config{ETag: true, StreamRequestBody: true, DisablePreParseMultipartForm: true,
		DisableStartupMessage: true, ReadBufferSize: 8192})
	routes.Register(f, routes.Deps{ProjectName: "x", APIPrefix: "/api/v1", Upstream: hc, UpstreamHost: u.Host,
		UpstreamConns: conns, Health: func() string { return "" }, Logger: slog.New(slog.DiscardHandler),
		ClientBodyIdleTimeout: 5 * time.Second})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go f.Listener(ln)
	t.Cleanup(func() { f.Shutdown() })

	c := dial(t, ln.Addr().String())
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET /api/v1/ingest/blob?size=%d HTTP/1.1\r\nHost: x\r\n\r\n", size)
	br := bufio.NewReader(c)
	head, _ := br.Peek(12)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("response starting %q: %v", head, err)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		t.Fatalf("body broke after %d bytes: %v", n, err)
	}
	if got, want := fmt.Sprintf("%d %x", n, h.Sum(nil)), blobSum(t, size); got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	if resp.Header.Get("ETag") == "" {
		t.Error("no ETag: the test no longer exercises a body read before the response is written")
	}
}
