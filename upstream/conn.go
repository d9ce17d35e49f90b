package upstream

import (
	"net"
	"time"
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
}

// newIdleTimeoutConn wraps c; the slack is an eighth of the timeout.
func newIdleTimeoutConn(c net.Conn, timeout time.Duration) *idleTimeoutConn {
	return &idleTimeoutConn{Conn: c, timeout: timeout, slack: timeout / 8}
}

func (c *idleTimeoutConn) Read(p []byte) (int, error) {
	if now := time.Now(); c.readBy.Sub(now) < c.timeout {
		c.readBy = now.Add(c.timeout + c.slack)
		if err := c.Conn.SetReadDeadline(c.readBy); err != nil {
			return 0, err
		}
	}
	return c.Conn.Read(p)
}

func (c *idleTimeoutConn) Write(p []byte) (int, error) {
	if now := time.Now(); c.writeBy.Sub(now) < c.timeout {
		c.writeBy = now.Add(c.timeout + c.slack)
		if err := c.Conn.SetWriteDeadline(c.writeBy); err != nil {
			return 0, err
		}
	}
	return c.Conn.Write(p)
}
