//go:build linux

package splice

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// socketPair returns the two ends of a TCP connection on 127.0.0.1.
func socketPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	dialed, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	other := <-accepted
	if other == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { dialed.Close(); other.Close() })
	return dialed.(*net.TCPConn), other.(*net.TCPConn)
}

func side(t *testing.T, c syscall.Conn, ready func() error) Side {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return Side{Conn: raw, Ready: ready}
}

// relay is a client → gateway → server chain with Copy in the middle:
// client writes into srcIn, Copy moves srcOut → dstIn, server reads dstOut.
type relay struct {
	client, srcOut, dstIn, server *net.TCPConn
}

func newRelay(t *testing.T) relay {
	client, srcOut := socketPair(t)
	dstIn, server := socketPair(t)
	return relay{client, srcOut, dstIn, server}
}

func TestCopyIsByteExact(t *testing.T) {
	// Through a 1 MiB pipe, and through the kernel's default one.
	for _, large := range []int{1, 0} {
		t.Run(fmt.Sprintf("large=%d", large), func(t *testing.T) {
			r := newRelay(t)
			const size = 16<<20 + 12345 // not a multiple of any buffer
			data := make([]byte, size)
			rand.NewChaCha8([32]byte{byte(large)}).Read(data)
			go func() {
				r.client.Write(data)
				r.client.Write([]byte("next request")) // must stay unread
			}()
			got := make(chan []byte, 1)
			go func() {
				b, _ := io.ReadAll(io.LimitReader(r.server, size))
				got <- b
			}()
			n, err := NewPipes(large).Copy(side(t, r.dstIn, nil), side(t, r.srcOut, nil), size)
			if err != nil || n != size {
				t.Fatalf("Copy: %d bytes, %v; want %d, nil", n, err, size)
			}
			if b := <-got; sha256.Sum256(b) != sha256.Sum256(data) {
				t.Fatalf("the server received %d bytes that differ from the %d sent", len(b), size)
			}
			rest := make([]byte, 64)
			r.srcOut.SetReadDeadline(time.Now().Add(2 * time.Second))
			m, _ := io.ReadAtLeast(r.srcOut, rest, len("next request"))
			if !bytes.Equal(rest[:m], []byte("next request")) {
				t.Errorf("after the body the source held %q, want the bytes past it untouched", rest[:m])
			}
		})
	}
}

func TestCopyTellsTheSidesApart(t *testing.T) {
	t.Run("source ends early", func(t *testing.T) {
		r := newRelay(t)
		go io.Copy(io.Discard, r.server)
		go func() {
			r.client.Write(make([]byte, 100000))
			r.client.Close()
		}()
		n, err := NewPipes(1).Copy(side(t, r.dstIn, nil), side(t, r.srcOut, nil), 1<<20)
		var se *SourceError
		if !errors.As(err, &se) || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("got %v, want a SourceError with io.ErrUnexpectedEOF", err)
		}
		if n != 100000 {
			t.Errorf("moved %d bytes, want the 100000 sent", n)
		}
	})
	t.Run("source stalls past its deadline", func(t *testing.T) {
		r := newRelay(t)
		go io.Copy(io.Discard, r.server)
		r.client.Write(make([]byte, 1000))
		ready := func() error { return r.srcOut.SetReadDeadline(time.Now().Add(200 * time.Millisecond)) }
		start := time.Now()
		_, err := NewPipes(1).Copy(side(t, r.dstIn, nil), side(t, r.srcOut, ready), 1<<20)
		var se *SourceError
		if !errors.As(err, &se) || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("got %v, want a SourceError with a deadline", err)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("took %v, want about 200ms", took)
		}
	})
	t.Run("destination resets", func(t *testing.T) {
		r := newRelay(t)
		r.server.SetLinger(0)
		r.server.Close() // RST on the next segment
		go r.client.Write(make([]byte, 4<<20))
		_, err := NewPipes(1).Copy(side(t, r.dstIn, nil), side(t, r.srcOut, nil), 4<<20)
		var de *DestinationError
		if !errors.As(err, &de) {
			t.Fatalf("got %v, want a DestinationError", err)
		}
	})
	t.Run("destination stops reading past its deadline", func(t *testing.T) {
		r := newRelay(t)
		go r.client.Write(make([]byte, 64<<20)) // far more than the socket buffers hold
		ready := func() error { return r.dstIn.SetWriteDeadline(time.Now().Add(200 * time.Millisecond)) }
		_, err := NewPipes(1).Copy(side(t, r.dstIn, ready), side(t, r.srcOut, nil), 64<<20)
		var de *DestinationError
		if !errors.As(err, &de) || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("got %v, want a DestinationError with a deadline", err)
		}
	})
}
