package upstream

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestIdleTimeoutConn checks the inactivity timeout's two promises: reads
// that keep arriving outlast it many times over, even though the deadline
// is only moved now and then, and a read that waits longer than it fails
// after at least the timeout and not much more than timeout+slack.
func TestIdleTimeoutConn(t *testing.T) {
	const timeout = 200 * time.Millisecond
	client, server := net.Pipe()
	defer server.Close()
	c := newIdleTimeoutConn(client, timeout)
	defer c.Close()

	go func() {
		for range 10 { // 10 × 100 ms: five times the timeout
			if _, err := server.Write([]byte("x")); err != nil {
				return
			}
			time.Sleep(timeout / 2)
		}
	}()
	buf := make([]byte, 1)
	for i := range 10 {
		if _, err := c.Read(buf); err != nil {
			t.Fatalf("read %d of a moving stream: %v", i, err)
		}
	}

	start := time.Now()
	_, err := c.Read(buf)
	waited := time.Since(start)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("stalled read: got %v, want a deadline error", err)
	}
	if waited < timeout || waited > timeout+c.slack+time.Second {
		t.Errorf("stalled read failed after %v, want between %v and %v (+ scheduling)", waited, timeout, timeout+c.slack)
	}
}

// TestIdleTimeoutConnReadFromCopies checks that ReadFrom, there for
// splicing, still copies any other reader whole.
func TestIdleTimeoutConnReadFromCopies(t *testing.T) {
	client, server := net.Pipe()
	c := newIdleTimeoutConn(client, time.Second)
	want := strings.Repeat("copied ", 20000)
	got := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(server)
		got <- string(b)
	}()
	n, err := c.ReadFrom(&io.LimitedReader{R: strings.NewReader(want), N: int64(len(want))})
	c.Close()
	if err != nil || n != int64(len(want)) {
		t.Fatalf("ReadFrom: %d, %v; want %d, nil", n, err, len(want))
	}
	if g := <-got; g != want {
		t.Errorf("the other end got %d bytes, want the %d sent", len(g), len(want))
	}
}

// TestConnsListOpenConnections checks that a response's local address
// finds the socket it arrived on while the connection is open, and nothing
// once the pool has closed it: the list does not outgrow the pool.
func TestConnsListOpenConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })}
	go srv.Serve(ln)
	defer srv.Close()

	conns := &Conns{}
	u, _ := url.Parse("http://" + ln.Addr().String())
	hc := NewClient(Options{URL: u, Timeout: time.Second, ConnectTimeout: time.Second,
		IdleConnTimeout: time.Minute, MaxConns: 4, PoolTimeout: time.Second, Conns: conns})
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + ln.Addr().String() + "/")
	if err := hc.Do(req, resp); err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.BodyStream())
	resp.CloseBodyStream()

	side, ok := conns.Source(resp.LocalAddr())
	if !ok || side.Conn == nil || side.Ready == nil {
		t.Fatalf("Source(%v): got %v, %v; want the open connection", resp.LocalAddr(), side, ok)
	}
	hc.CloseIdleConnections()
	if _, ok := conns.Source(resp.LocalAddr()); ok {
		t.Error("Source still finds a connection the pool has closed")
	}
	n := 0
	conns.byLocal.Range(func(_, _ any) bool { n++; return true })
	if n != 0 {
		t.Errorf("%d connections still listed after the pool closed them all", n)
	}
}
