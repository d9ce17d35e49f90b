//go:build linux

package splice

import (
	"errors"
	"io"
	"syscall"
)

const (
	spliceMove     = 0x1  // SPLICE_F_MOVE
	spliceNonblock = 0x2  // SPLICE_F_NONBLOCK
	setPipeSize    = 1031 // F_SETPIPE_SZ
	getPipeSize    = 1032 // F_GETPIPE_SZ
)

// Copy moves n bytes from src to dst and returns how many reached dst. It
// stops early only with an error: *SourceError (including a source that
// ended before n bytes, as io.ErrUnexpectedEOF) or *DestinationError; or
// ErrUnsupported, with nothing moved, where the kernel refuses splice(2)
// (a seccomp filter, a sandbox): the caller then copies instead. Both
// sockets must be non-blocking and owned by Go's network poller, as those
// of net.TCPConn are; Copy waits on them through it, so their deadlines
// apply.
func (ps *Pipes) Copy(dst, src Side, n int64) (int64, error) {
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		return 0, ErrUnsupported
	}
	defer syscall.Close(p[0])
	defer syscall.Close(p[1])
	select {
	case ps.large <- struct{}{}:
		defer func() { <-ps.large }()
		// Refused past the quota: the pipe keeps its size.
		syscall.Syscall(syscall.SYS_FCNTL, uintptr(p[1]), setPipeSize, largePipeSize)
	default:
	}
	capacity := 4096 // the least a pipe holds
	if got, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(p[1]), getPipeSize, 0); errno == 0 && got > 0 {
		capacity = int(got)
	}

	t := &transfer{pipeIn: p[1], pipeOut: p[0]}
	// Bound once: a closure built per call would be allocated per call.
	t.fillFn, t.drainFn = t.fill, t.drain
	var written int64
	for written < n {
		inPipe, err := t.fillPipe(src, int(min(n-written, int64(capacity))))
		if err != nil {
			if written == 0 && refused(err) {
				return 0, ErrUnsupported // nothing was taken from src
			}
			return written, err
		}
		for inPipe > 0 {
			moved, err := t.drainPipe(dst, inPipe)
			written += int64(moved)
			inPipe -= moved
			if err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

// transfer is the state of one Copy: its pipe, and the last splice's
// result, which the callbacks given to RawConn report through.
type transfer struct {
	pipeIn, pipeOut int // the pipe's write and read ends
	max             int
	n               int64
	err             error
	fillFn, drainFn func(fd uintptr) bool
}

// fill and drain run inside RawConn.Read and Write: true means done,
// false means wait until the socket is ready and call again.
func (t *transfer) fill(fd uintptr) bool {
	t.n, t.err = spliceRetry(int(fd), t.pipeIn, t.max, spliceMove|spliceNonblock)
	return t.err != syscall.EAGAIN
}

func (t *transfer) drain(fd uintptr) bool {
	t.n, t.err = spliceRetry(t.pipeOut, int(fd), t.max, spliceMove|spliceNonblock)
	return t.err != syscall.EAGAIN
}

// fillPipe moves up to max bytes from the source socket into the pipe.
func (t *transfer) fillPipe(src Side, max int) (int, error) {
	if src.Ready != nil {
		if err := src.Ready(); err != nil {
			return 0, &SourceError{err}
		}
	}
	t.max = max
	err := src.Conn.Read(t.fillFn)
	switch {
	case err != nil:
		return 0, &SourceError{err}
	case t.err != nil:
		return 0, &SourceError{t.err}
	case t.n == 0:
		return 0, &SourceError{io.ErrUnexpectedEOF}
	}
	return int(t.n), nil
}

// drainPipe moves up to max bytes from the pipe into the destination
// socket.
func (t *transfer) drainPipe(dst Side, max int) (int, error) {
	if dst.Ready != nil {
		if err := dst.Ready(); err != nil {
			return 0, &DestinationError{err}
		}
	}
	t.max = max
	err := dst.Conn.Write(t.drainFn)
	switch {
	case err != nil:
		return 0, &DestinationError{err}
	case t.err != nil:
		return 0, &DestinationError{t.err}
	case t.n == 0:
		// The pipe holds max bytes; writing none of them and no error
		// means the socket is gone.
		return 0, &DestinationError{io.ErrShortWrite}
	}
	return int(t.n), nil
}

// refused reports whether err means the kernel will not splice these
// descriptors at all, rather than that the source failed.
func refused(err error) bool {
	var se *SourceError
	if !errors.As(err, &se) {
		return false
	}
	switch se.Err {
	case syscall.EINVAL, syscall.ENOSYS, syscall.EPERM, syscall.EOPNOTSUPP:
		return true
	}
	return false
}

// spliceRetry is splice(2), retried when a signal interrupts it.
func spliceRetry(in, out, max, flags int) (int64, error) {
	for {
		n, err := syscall.Splice(in, nil, out, nil, max, flags)
		if err != syscall.EINTR {
			return n, err
		}
	}
}

// Supported says Copy can work here.
const Supported = true
