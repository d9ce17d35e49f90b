package linger_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/atenex/gateway/linger"
)

const answer = "HTTP/1.1 413 Request Entity Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"

// serveEarlyAnswers accepts on a lingering listener and, for every
// connection, reads one byte, answers at once and closes, marked or not.
func serveEarlyAnswers(t *testing.T, opts linger.Options, mark bool) (*linger.Listener, string) {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := linger.NewListener(inner, opts)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				c.Read(make([]byte, 1))
				io.WriteString(c, answer)
				if mark && !linger.Mark(c) {
					t.Error("an accepted TCP connection could not be marked")
				}
				c.Close()
			}()
		}
	}()
	return ln, inner.Addr().String()
}

// sendAllThenRead is the least patient client: it writes a whole body of
// n bytes before it reads any of the answer.
func sendAllThenRead(addr string, n int) (string, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	chunk := bytes.Repeat([]byte("x"), 1<<20)
	for sent := 0; sent < n; sent += len(chunk) {
		if _, err := c.Write(chunk); err != nil {
			return "", err
		}
	}
	got, err := io.ReadAll(c)
	return string(got), err
}

func TestMarkedConnectionDeliversTheAnswerToAClientStillSending(t *testing.T) {
	ln, addr := serveEarlyAnswers(t, linger.DefaultOptions(), true)
	got, err := sendAllThenRead(addr, 64<<20)
	if err != nil || got != answer {
		t.Fatalf("client read %q, %v; want the answer and a clean end", got, err)
	}
	if ln.Lingered() != 1 {
		t.Errorf("lingered %d connections, want 1", ln.Lingered())
	}
}

// The control: without the mark the kernel resets the connection and the
// same client loses the answer. If this ever passes, the test above
// proves nothing.
func TestUnmarkedConnectionResetsAClientStillSending(t *testing.T) {
	_, addr := serveEarlyAnswers(t, linger.DefaultOptions(), false)
	got, err := sendAllThenRead(addr, 64<<20)
	if err == nil && got == answer {
		t.Fatal("the answer arrived without lingering; the lingering test cannot tell")
	}
}

func TestLingeringEndsWhenTheClientGoesQuiet(t *testing.T) {
	opts := linger.DefaultOptions()
	opts.Timeout = 100 * time.Millisecond
	ln, addr := serveEarlyAnswers(t, opts, true)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("GET"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c) // ends at the write side's shutdown
	if err != nil || string(got) != answer {
		t.Fatalf("read %q, %v", got, err)
	}
	// The client stays open and silent: the gateway's side must close by
	// itself, soon after the timeout.
	deadline := time.Now().Add(5 * time.Second)
	for ln.Lingering() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("a quiet client kept the connection lingering past its timeout")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !ln.Wait(nil) {
		t.Fatal("Wait with nothing lingering did not return true")
	}
}

func TestLingeringIsBoundedInTimeAndBytes(t *testing.T) {
	for name, opts := range map[string]linger.Options{
		"time":  {Time: 200 * time.Millisecond, Timeout: time.Second, MaxBytes: 1 << 40, MaxConns: 4},
		"bytes": {Time: time.Minute, Timeout: time.Minute, MaxBytes: 1 << 20, MaxConns: 4},
	} {
		t.Run(name, func(t *testing.T) {
			ln, addr := serveEarlyAnswers(t, opts, true)
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// A client that never stops sending.
			start := time.Now()
			chunk := make([]byte, 64<<10)
			c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			for {
				if _, err := c.Write(chunk); err != nil {
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						t.Fatal("lingering was never cut off")
					}
					break // reset once the bound was reached
				}
				time.Sleep(time.Millisecond) // ~64 MB/s: the time bound comes first
			}
			if took := time.Since(start); name == "time" && took > 3*time.Second {
				t.Errorf("lingered %v, bounded at %v", took, opts.Time)
			}
			if ln.Lingered() != 1 {
				t.Errorf("lingered %d connections, want 1", ln.Lingered())
			}
		})
	}
}

func TestLingeringConnectionsAreCapped(t *testing.T) {
	opts := linger.DefaultOptions()
	opts.MaxConns = 1
	ln, addr := serveEarlyAnswers(t, opts, true)
	var clients []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("GET"))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if got, _ := io.ReadAll(c); string(got) != answer {
			t.Fatalf("read %q", got)
		}
		clients = append(clients, c) // silent and open: the first lingers
	}
	if ln.Lingered() != 1 || ln.Lingering() != 1 {
		t.Errorf("lingered %d, lingering %d; want 1 and 1 with room for one", ln.Lingered(), ln.Lingering())
	}
}

// A drain waits for lingering connections while others are still being
// answered and start lingering; under the race detector this is the
// case that a WaitGroup got wrong.
func TestWaitWhileConnectionsStartLingering(t *testing.T) {
	opts := linger.DefaultOptions()
	opts.Timeout = 50 * time.Millisecond
	ln, addr := serveEarlyAnswers(t, opts, true)
	clients := make(chan error, 20)
	for range 20 {
		go func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				clients <- err
				return
			}
			defer c.Close()
			c.Write([]byte("POST"))
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = io.ReadAll(c)
			clients <- err
		}()
	}
	for done := 0; done < 20; {
		select {
		case err := <-clients:
			if err != nil {
				t.Error(err)
			}
			done++
		default:
			ln.Wait(nil)
		}
	}
	// A client may see the answer's end before its connection counts as
	// lingering (the count follows the shutdown of the write side).
	for deadline := time.Now().Add(5 * time.Second); ln.Lingered() < 20 && time.Now().Before(deadline); {
		ln.Wait(nil)
		time.Sleep(time.Millisecond)
	}
	timeout := make(chan struct{})
	time.AfterFunc(5*time.Second, func() { close(timeout) })
	if !ln.Wait(timeout) {
		t.Fatal("lingering connections did not finish")
	}
	if ln.Lingering() != 0 || ln.Lingered() != 20 {
		t.Errorf("lingering %d, lingered %d; want 0 and 20", ln.Lingering(), ln.Lingered())
	}
}
