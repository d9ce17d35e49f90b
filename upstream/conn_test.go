package upstream

import (
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
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
