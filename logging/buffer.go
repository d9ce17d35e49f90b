package logging

import (
	"io"
	"sync"
	"time"
)

// bufferLimit is how many bytes of log lines are held before a write is
// forced; 64 KiB is a few hundred access-log lines.
const bufferLimit = 64 << 10

// Buffer batches log lines in memory and writes them out every interval, or
// sooner when a batch fills. At tens of thousands of requests per second a
// write(2) per access-log line would cost more than proxying the request.
// Lines are never split: each Write call is kept whole. Close writes what
// is left, so a clean shutdown loses nothing; a SIGKILL loses at most one
// interval of lines.
type Buffer struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
	err error
	// closed sends writes straight through once Close has run.
	closed    bool
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// NewBuffer starts a Buffer that flushes to w every interval (200 ms if
// interval is not positive).
func NewBuffer(w io.Writer, interval time.Duration) *Buffer {
	if interval <= 0 {
		interval = 200 * time.Millisecond
	}
	b := &Buffer{
		w:    w,
		buf:  make([]byte, 0, bufferLimit),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go b.flushEvery(interval)
	return b
}

// Write queues p, writing the batch first if p would overflow it. It
// returns the last write error, if any, so a broken stdout is noticed.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.buf)+len(p) > bufferLimit {
		b.flushLocked()
	}
	if b.closed || len(p) > bufferLimit {
		_, err := b.w.Write(p)
		return len(p), err
	}
	b.buf = append(b.buf, p...)
	return len(p), b.takeErr()
}

// Flush writes out whatever is queued.
func (b *Buffer) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushLocked()
	return b.takeErr()
}

// Close stops the periodic flush and writes out whatever is queued. Writes
// after Close go straight through.
func (b *Buffer) Close() error {
	b.closeOnce.Do(func() {
		close(b.stop)
		<-b.done
	})
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushLocked()
	b.closed = true
	return b.err
}

// takeErr returns the last write error once, so one failed write does not
// fail every later one.
func (b *Buffer) takeErr() error {
	err := b.err
	b.err = nil
	return err
}

func (b *Buffer) flushLocked() {
	if len(b.buf) == 0 {
		return
	}
	if _, err := b.w.Write(b.buf); err != nil {
		b.err = err
	}
	b.buf = b.buf[:0]
}

func (b *Buffer) flushEvery(interval time.Duration) {
	defer close(b.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			b.mu.Lock()
			b.flushLocked() // an error waits for the next caller
			b.mu.Unlock()
		case <-b.stop:
			return
		}
	}
}
