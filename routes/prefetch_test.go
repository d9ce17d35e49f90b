package routes

import (
	"bytes"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestFasthttpPrefetchIsBounded pins what splicing uploads relies on: the
// first read of a streamed request body returns fasthttp's prefetched start
// alone, and that is never more than maxPrefetch, even when the server's
// body limit would allow more. If a fasthttp upgrade changes this, bytes
// still in its read buffer could be skipped: this test fails first.
func TestFasthttpPrefetchIsBounded(t *testing.T) {
	firstRead := make(chan int, 1)
	srv := &fasthttp.Server{
		StreamRequestBody:  true,
		MaxRequestBodySize: 1 << 20, // allows far more than maxPrefetch
		ReadBufferSize:     16 << 10,
		Handler: func(ctx *fasthttp.RequestCtx) {
			n, _ := ctx.RequestBodyStream().Read(make([]byte, chunkSize))
			firstRead <- n
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Shutdown()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	body := bytes.Repeat([]byte("p"), 100<<10)
	// Head and body in one write: the body is in the read buffer at once.
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	select {
	case n := <-firstRead:
		if n < 1 || n > maxPrefetch {
			t.Errorf("first body read returned %d bytes, want 1..%d (the prefetch alone)", n, maxPrefetch)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handler never ran")
	}
}
