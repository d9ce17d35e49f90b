package upstream

import (
	"net"
	"time"
)

// idleTimeoutConn turns per-operation deadlines into an inactivity timeout.
// fasthttp's ReadTimeout and WriteTimeout bound a whole response or request,
// which would cut a long upload or download that is still moving; here each
// Read and Write gets the full timeout from the moment it starts.
type idleTimeoutConn struct {
	net.Conn
	timeout time.Duration
}

func (c *idleTimeoutConn) Read(p []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *idleTimeoutConn) Write(p []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}
