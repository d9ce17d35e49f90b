package upstream

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
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

// TestConnsListOpenConnections checks that each response's local address
// finds the socket it arrived on while the connection is open, and nothing
// once the pool has closed it: the list does not outgrow the pool.
func TestConnsListOpenConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(100 * time.Millisecond) // two requests at once: two connections
		io.WriteString(w, "ok")
	})}
	go srv.Serve(ln)
	defer srv.Close()

	conns := &Conns{}
	u, _ := url.Parse("http://" + ln.Addr().String())
	hc := NewClient(Options{URL: u, Timeout: time.Second, ConnectTimeout: time.Second,
		IdleConnTimeout: time.Minute, MaxConns: 4, PoolTimeout: time.Second, Conns: conns})
	var locals [2]net.Addr
	var peers [2]string
	errs := make(chan error, 2)
	for i := range locals {
		go func() {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI("http://" + ln.Addr().String() + "/")
			err := hc.Do(req, resp)
			if err == nil {
				io.Copy(io.Discard, resp.BodyStream())
				resp.CloseBodyStream()
				locals[i] = resp.LocalAddr()
			}
			errs <- err
		}()
	}
	for range locals {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for i, local := range locals {
		side, ok := conns.Source(local)
		if !ok || side.Ready == nil {
			t.Fatalf("Source(%v): not found, or without a deadline hook", local)
		}
		// The socket found is the one whose local address this is.
		side.Conn.Control(func(fd uintptr) {
			sa, err := syscall.Getsockname(int(fd))
			if err == nil {
				peers[i] = fmt.Sprint(sa.(*syscall.SockaddrInet4).Port)
			}
		})
		if want := fmt.Sprint(local.(*net.TCPAddr).Port); peers[i] != want {
			t.Errorf("Source(%v) found the socket on port %s", local, peers[i])
		}
	}
	if peers[0] == peers[1] {
		t.Fatalf("both requests on one connection (%s): the test needs two", peers[0])
	}
	hc.CloseIdleConnections()
	n := 0
	conns.byLocal.Range(func(_, _ any) bool { n++; return true })
	if n != 0 {
		t.Errorf("%d connections still listed after the pool closed them all", n)
	}
}
