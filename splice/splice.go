// Package splice moves bytes from one socket to another inside the kernel,
// through a pipe, with splice(2): a large upload passes the gateway without
// being copied into and out of its memory. Unlike net.TCPConn.ReadFrom,
// which splices too, it keeps the two sides apart: an error says whether
// the source or the destination failed, and each side gets its own idle
// deadline before every wait.
package splice

import (
	"errors"
	"syscall"
)

// Side is one socket of a transfer.
type Side struct {
	// Conn is the socket, from its SyscallConn method.
	Conn syscall.RawConn
	// Ready, if set, runs before each attempt on the side: it is where the
	// caller moves the side's idle deadline.
	Ready func() error
}

// SourceError is a failure of the source side: reading from it failed or
// timed out, or it ended early (io.ErrUnexpectedEOF).
type SourceError struct{ Err error }

func (e *SourceError) Error() string { return "reading the source: " + e.Err.Error() }
func (e *SourceError) Unwrap() error { return e.Err }

// DestinationError is a failure of the destination side.
type DestinationError struct{ Err error }

func (e *DestinationError) Error() string { return "writing the destination: " + e.Err.Error() }
func (e *DestinationError) Unwrap() error { return e.Err }

// ErrUnsupported is returned, before any byte has moved, where splice(2)
// is not available; the caller copies instead.
var ErrUnsupported = errors.ErrUnsupported
