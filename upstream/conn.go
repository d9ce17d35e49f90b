package upstream

import (
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/atenex/gateway/splice"
)

// idleTimeoutConn turns per-operation deadlines into an inactivity timeout.
// fasthttp's ReadTimeout and WriteTimeout bound a whole response or request,
// which would cut a long upload or download that is still moving; here each
// Read and Write has at least the full timeout from the moment it starts.
//
// Moving a deadline costs a runtime timer update, and a small proxied
// request does four operations: so a deadline is only moved once less than
// the timeout is left, and then to timeout+slack ahead. A stall is cut
// after at least the timeout and at most timeout+slack.
type idleTimeoutConn struct {
	net.Conn
	timeout, slack time.Duration
	// readBy and writeBy are the deadlines last set; zero: none yet.
	readBy, writeBy time.Time
	// conns, if set, lists the connection while it is open.
	conns *Conns
	// early, once set, is an answer the upstream sent before it stopped
	// reading the request body (see takeEarlyAnswer).
	early *earlyAnswer
}

// newIdleTimeoutConn wraps c; the slack is an eighth of the timeout.
func newIdleTimeoutConn(c net.Conn, timeout time.Duration) *idleTimeoutConn {
	return &idleTimeoutConn{Conn: c, timeout: timeout, slack: timeout / 8}
}

func (c *idleTimeoutConn) Read(p []byte) (int, error) {
	if n, ok := c.readEarly(p); ok {
		return n, nil
	}
	if err := c.extendRead(); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *idleTimeoutConn) Write(p []byte) (int, error) {
	if c.early != nil {
		return c.writeEarly(p)
	}
	if err := c.extendWrite(); err != nil {
		return 0, err
	}
	n, err := c.Conn.Write(p)
	if err != nil && c.takeEarlyAnswer(err) {
		return len(p), nil
	}
	return n, err
}

// Close takes the connection off its list before closing it.
func (c *idleTimeoutConn) Close() error {
	if c.conns != nil {
		c.conns.byLocal.Delete(c.Conn.LocalAddr())
	}
	return c.Conn.Close()
}

func (c *idleTimeoutConn) extendRead() error {
	if now := time.Now(); c.readBy.Sub(now) < c.timeout {
		c.readBy = now.Add(c.timeout + c.slack)
		return c.Conn.SetReadDeadline(c.readBy)
	}
	return nil
}

func (c *idleTimeoutConn) extendWrite() error {
	if now := time.Now(); c.writeBy.Sub(now) < c.timeout {
		c.writeBy = now.Add(c.timeout + c.slack)
		return c.Conn.SetWriteDeadline(c.writeBy)
	}
	return nil
}

// Splicer is a request body that can move n bytes of itself into a socket
// inside the kernel (package splice). fasthttp hands the body to the
// connection's ReadFrom, bounded by an io.LimitedReader, once its write
// buffer is empty. A failure to write into the socket must come back as a
// *splice.DestinationError, for the connection to look for an early answer
// (see takeEarlyAnswer); splice.ErrUnsupported, before any byte moved,
// makes the connection copy instead.
type Splicer interface {
	SpliceTo(dst splice.Side, n int64) (int64, error)
	// DropRest says the upstream answered early and stopped reading: the
	// rest of the body is not sent, and the body must read as ended.
	DropRest()
}

// ReadFrom splices a Splicer's bytes into the connection, with the write
// idle timeout before each wait; any other reader is copied.
func (c *idleTimeoutConn) ReadFrom(r io.Reader) (int64, error) {
	if lr, ok := r.(*io.LimitedReader); ok {
		if s, ok := lr.R.(Splicer); ok {
			if sc, ok := c.Conn.(syscall.Conn); ok {
				if raw, err := sc.SyscallConn(); err == nil {
					n, err := s.SpliceTo(splice.Side{Conn: raw, Ready: c.extendWrite}, lr.N)
					lr.N -= n
					var dstErr *splice.DestinationError
					if errors.As(err, &dstErr) && c.takeEarlyAnswer(dstErr.Err) {
						// The rest of the body is not sent: fasthttp is told
						// it was, and the body that it ended.
						s.DropRest()
						n, lr.N = n+lr.N, 0
						return n, nil
					}
					if n > 0 || err != splice.ErrUnsupported {
						return n, err
					}
				}
			}
		}
	}
	return io.Copy(writerOnly{c}, r)
}

// writerOnly hides ReadFrom, so io.Copy does not call it back.
type writerOnly struct{ io.Writer }

// Conns finds the upstream connection a response arrived on, so that a
// large download can be spliced straight from its socket. fasthttp does
// not hand the connection out, only its local address
// (fasthttp.Response.LocalAddr, the very net.Addr value the connection
// returns): so each connection the client dials is listed under that
// address while it is open. The key is the *net.TCPAddr a TCP connection
// returns every time, distinct for each open connection.
type Conns struct {
	byLocal sync.Map // net.Addr → *idleTimeoutConn
}

// Source returns the socket of the open connection whose local address is
// local, with the read idle timeout moved before each wait, or false.
//
// The caller must own the connection's reads, as the handler reading a
// response body does, and must first empty fasthttp's read buffer for it:
// one read of at least ReadBufferSize bytes through the body stream does,
// because a bufio.Reader read returns all it holds or, holding nothing,
// reads the socket straight into the caller's slice. What is taken from
// the socket directly is lost to fasthttp's count of the body, so the
// caller must also mark the response Connection: close, for fasthttp to
// close the connection rather than pool it.
func (cs *Conns) Source(local net.Addr) (splice.Side, bool) {
	v, ok := cs.byLocal.Load(local)
	if !ok {
		return splice.Side{}, false
	}
	c := v.(*idleTimeoutConn)
	sc, ok := c.Conn.(syscall.Conn)
	if !ok || c.early != nil {
		// An early answer's bytes may still wait in c, not in the socket.
		return splice.Side{}, false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return splice.Side{}, false
	}
	return splice.Side{Conn: raw, Ready: c.extendRead}, true
}
