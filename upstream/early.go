package upstream

import (
	"bytes"
	"errors"
	"net"
	"syscall"
	"time"
)

// An upstream may answer before it has read the whole request body, and
// then stop reading and close: a service refusing an upload from its
// headers (415, 401, 413), or a proxy in front of it. fasthttp writes the
// whole body before it reads anything, so the write fails with a reset or
// a broken pipe and the answer, already in the socket's receive queue,
// would be lost: the client would get a 502 instead of the service's
// status and detail. RFC 9112, section 9.3, asks a client sending a body to
// watch for such an answer. So when a write fails that way, the connection
// looks for one; if it finds the head of an HTTP response, the rest of the
// request body is dropped (writes succeed and go nowhere) and reads return
// the answer, marked Connection: close so that fasthttp closes the
// connection after it instead of pooling it.

const (
	// earlyAnswerWait bounds the wait for an answer after the write
	// failed. It is normally in the receive queue already: the upstream
	// sent it before closing.
	earlyAnswerWait = time.Second
	// earlyAnswerHead bounds the answer's head the connection reads to
	// find its end; a longer head is not taken, and the write fails.
	earlyAnswerHead = ReadBufferSize
)

// earlyAnswer is the state of a connection that took an early answer.
type earlyAnswer struct {
	// pending is what reads return before the socket's own bytes: the
	// answer's head, with Connection: close added, and the body bytes
	// read along with it.
	pending []byte
	// reading is set by the first read: the request is over, so a write
	// now would be a new request on a connection that is done.
	reading bool
}

var errAnsweredEarly = errors.New("upstream connection closed after an early answer")

// takeEarlyAnswer reports whether, after a write failed with err, an
// answer of the upstream was found and the connection now serves it.
func (c *idleTimeoutConn) takeEarlyAnswer(err error) bool {
	if c.early != nil || !(errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)) {
		return false
	}
	wait := earlyAnswerWait
	if c.timeout > 0 {
		wait = min(wait, c.timeout)
	}
	if c.Conn.SetReadDeadline(time.Now().Add(wait)) != nil {
		return false
	}
	buf := make([]byte, earlyAnswerHead)
	n, end := 0, -1
	for n < len(buf) && end < 0 {
		k, err := c.Conn.Read(buf[n:])
		n += k
		end = bytes.Index(buf[:n], []byte("\r\n\r\n"))
		if err != nil {
			break
		}
	}
	// Back to the idle deadline last set (zero: none).
	if c.Conn.SetReadDeadline(c.readBy) != nil || end < 0 || !bytes.HasPrefix(buf, []byte("HTTP/1.")) {
		return false
	}
	// Appended last, so it wins over a Connection header of the answer's
	// own (fasthttp keeps the last one).
	pending := make([]byte, 0, n+len("Connection: close\r\n"))
	pending = append(pending, buf[:end+2]...)
	pending = append(pending, "Connection: close\r\n"...)
	pending = append(pending, buf[end+2:n]...)
	c.early = &earlyAnswer{pending: pending}
	return true
}

// readEarly serves reads from the early answer; ok is false when the
// connection has none.
func (c *idleTimeoutConn) readEarly(p []byte) (n int, ok bool) {
	e := c.early
	if e == nil {
		return 0, false
	}
	e.reading = true
	if len(e.pending) == 0 {
		return 0, false
	}
	n = copy(p, e.pending)
	e.pending = e.pending[n:]
	return n, true
}

// writeEarly drops what a connection that took an early answer is asked to
// write: the rest of the request body, or, should fasthttp ever reuse the
// connection, an error.
func (c *idleTimeoutConn) writeEarly(p []byte) (int, error) {
	if c.early.reading {
		return 0, &net.OpError{Op: "write", Net: "tcp", Addr: c.RemoteAddr(), Err: errAnsweredEarly}
	}
	return len(p), nil
}
