// Package linger closes connections the way nginx's lingering_close does,
// for connections answered before the client finished sending: closing a
// socket that still has unread data in it makes the kernel send a reset,
// and a client still uploading then often loses the answer it was sent
// (a browser shows a network error instead of the 413). A marked
// connection is closed lingering instead: its write side is shut down, so
// the client sees the end of the answer, and what it still sends is read
// and thrown away for a bounded time and amount before the socket closes.
package linger

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Options bound the work spent on connections closed lingering.
type Options struct {
	// Time is the longest a connection lingers in all (nginx's
	// lingering_time).
	Time time.Duration
	// Timeout is the longest to wait for more data from the client
	// (nginx's lingering_timeout): a client that has stopped sending, or
	// has read the answer and closed, ends the linger sooner.
	Timeout time.Duration
	// MaxBytes is the most read and discarded from one connection.
	MaxBytes int64
	// MaxConns is the most connections lingering at once; past it a marked
	// connection is closed at once, as any other.
	MaxConns int
}

// DefaultOptions are nginx's lingering_time and lingering_timeout, with
// bounds on bytes and connections that a gateway can afford.
func DefaultOptions() Options {
	return Options{Time: 30 * time.Second, Timeout: 5 * time.Second, MaxBytes: 1 << 30, MaxConns: 1024}
}

// Listener hands out connections that can be marked to close lingering.
type Listener struct {
	net.Listener
	opts  Options
	slots chan struct{}
	// Lingering counts connections lingering now; Lingered counts them
	// all since the start.
	lingering atomic.Int64
	lingered  atomic.Int64
	// idle is closed when the last lingering connection closes; a
	// WaitGroup would not do, since connections start lingering while a
	// drain waits for them.
	mu   sync.Mutex
	idle chan struct{}
}

// NewListener wraps ln, a TCP listener. Connections of another kind are
// handed out unwrapped and always close at once.
func NewListener(ln net.Listener, opts Options) *Listener {
	if opts.MaxConns <= 0 {
		opts.MaxConns = 1
	}
	return &Listener{Listener: ln, opts: opts, slots: make(chan struct{}, opts.MaxConns)}
}

// Accept waits for the next connection.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	return &Conn{TCPConn: tc, l: l}, nil
}

// Lingering is how many connections are lingering now.
func (l *Listener) Lingering() int64 { return l.lingering.Load() }

// Lingered is how many connections have lingered since the start.
func (l *Listener) Lingered() int64 { return l.lingered.Load() }

// Wait waits until no connection is lingering, or until done is closed.
// It says whether all of them finished.
func (l *Listener) Wait(done <-chan struct{}) bool {
	for {
		l.mu.Lock()
		idle := l.idle
		l.mu.Unlock()
		if idle == nil {
			return true
		}
		select {
		case <-idle:
		case <-done:
			return false
		}
	}
}

func (l *Listener) started() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lingering.Add(1) == 1 {
		l.idle = make(chan struct{})
	}
	l.lingered.Add(1)
}

func (l *Listener) finished() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lingering.Add(-1) == 0 {
		close(l.idle)
		l.idle = nil
	}
}

// Conn is an accepted TCP connection that can be marked to close
// lingering. It embeds *net.TCPConn, so splice(2), SetLinger and the rest
// of the socket's methods stay available.
type Conn struct {
	*net.TCPConn
	l      *Listener
	marked atomic.Bool
	closed atomic.Bool
}

// Mark makes the next Close of c linger. It is safe to call from any
// goroutine; it reports whether c can linger (it came from a Listener).
func Mark(c net.Conn) bool {
	lc, ok := c.(*Conn)
	if ok {
		lc.marked.Store(true)
	}
	return ok
}

// Close closes the connection: at once, or lingering in the background
// when it was marked and a lingering slot is free.
func (c *Conn) Close() error {
	if c.closed.Swap(true) {
		return net.ErrClosed
	}
	if !c.marked.Load() {
		return c.TCPConn.Close()
	}
	select {
	case c.l.slots <- struct{}{}:
	default:
		return c.TCPConn.Close() // too many lingering already
	}
	// The answer is in the kernel's send buffer already (the server flushed
	// it); the FIN goes after it.
	if err := c.TCPConn.CloseWrite(); err != nil {
		<-c.l.slots
		return c.TCPConn.Close()
	}
	c.l.started()
	go c.linger()
	return nil
}

// discardBuffers hold what lingering connections read; one per connection
// at a time.
var discardBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (c *Conn) linger() {
	defer func() {
		c.TCPConn.Close()
		<-c.l.slots
		c.l.finished()
	}()
	buf := discardBuffers.Get().(*[]byte)
	defer discardBuffers.Put(buf)
	end := time.Now().Add(c.l.opts.Time)
	left := c.l.opts.MaxBytes
	for left > 0 {
		deadline := time.Now().Add(c.l.opts.Timeout)
		if deadline.After(end) {
			deadline = end
		}
		if c.TCPConn.SetReadDeadline(deadline) != nil {
			return
		}
		n, err := c.TCPConn.Read(*buf)
		left -= int64(n)
		if err != nil {
			// EOF: the client read the answer and closed. A timeout: it
			// went quiet, or the time is up. Either way, done.
			return
		}
	}
}
