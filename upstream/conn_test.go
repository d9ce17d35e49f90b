package upstream

import (
	"errors"
	"net"
	"os"
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
