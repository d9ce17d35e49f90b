package app_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/atenex/gateway/config"
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
