package logging_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atenex/gateway/logging"
)

// batchLimit is the most a Buffer may hold before it must write: 64 KiB.
const batchLimit = 64 << 10

// never is an interval long enough that no periodic flush happens during a
// test, so every write the test sees was caused by the test.
const never = time.Hour

// waitFor polls cond until it holds, failing the test after a generous
// deadline instead of guessing how long a timer takes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// closeBuffer closes b at the end of the test, so its goroutine never
// outlives it.
func closeBuffer(t *testing.T, b *logging.Buffer) {
	t.Cleanup(func() { _ = b.Close() })
}

func mustWrite(t *testing.T, w interface{ Write([]byte) (int, error) }, s string) {
	t.Helper()
	n, err := w.Write([]byte(s))
	if err != nil || n != len(s) {
		t.Fatalf("Write(%q): got (%d, %v), want (%d, nil)", s, n, err, len(s))
	}
}

func TestBufferHoldsLinesUntilReleased(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		release func(b *logging.Buffer) error
	}{
		{"Flush", (*logging.Buffer).Flush},
		{"Close", (*logging.Buffer).Close},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var rec recorder
			b := logging.NewBuffer(&rec, never)
			closeBuffer(t, b)
			lines := []string{"{\"event\":\"one\"}\n", "{\"event\":\"two\"}\n", "{\"event\":\"three\"}\n"}
			for _, l := range lines {
				mustWrite(t, b, l)
			}
			if got := rec.Writes(); len(got) != 0 {
				t.Fatalf("before %s: got writes %q, want none", tt.name, got)
			}
			if err := tt.release(b); err != nil {
				t.Fatalf("%s: got error %v, want nil", tt.name, err)
			}
			got := rec.Writes()
			want := strings.Join(lines, "")
			if len(got) != 1 || string(got[0]) != want {
				t.Errorf("after %s: got writes %q, want one write %q", tt.name, got, want)
			}
		})
	}
}

func TestBufferFlushWithNothingQueued(t *testing.T) {
	t.Parallel()
	var rec recorder
	b := logging.NewBuffer(&rec, never)
	closeBuffer(t, b)
	if err := b.Flush(); err != nil {
		t.Fatalf("Flush: got error %v, want nil", err)
	}
	if got := rec.Writes(); len(got) != 0 {
		t.Errorf("Flush of an empty buffer: got writes %q, want none", got)
	}
}

func TestBufferFlushesPeriodically(t *testing.T) {
	t.Parallel()
	var rec recorder
	b := logging.NewBuffer(&rec, 5*time.Millisecond)
	closeBuffer(t, b)
	mustWrite(t, b, "first\n")
	waitFor(t, "the first periodic flush", func() bool { return rec.String() == "first\n" })

	// The ticker keeps running: a second line goes out on its own too.
	mustWrite(t, b, "second\n")
	waitFor(t, "the second periodic flush", func() bool { return rec.String() == "first\nsecond\n" })
	if got := rec.Writes(); len(got) != 2 {
		t.Errorf("got writes %q, want 2", got)
	}
}

func TestBufferClose(t *testing.T) {
	t.Parallel()
	var rec recorder
	b := logging.NewBuffer(&rec, never)
	mustWrite(t, b, "before 1\n")
	mustWrite(t, b, "before 2\n")
	if err := b.Close(); err != nil {
		t.Fatalf("Close: got error %v, want nil", err)
	}
	if got, want := rec.String(), "before 1\nbefore 2\n"; got != want {
		t.Fatalf("after Close: got %q, want %q", got, want)
	}

	// After Close a write goes straight through, in its own Write call.
	mustWrite(t, b, "after\n")
	got := rec.Writes()
	if len(got) != 2 || string(got[1]) != "after\n" {
		t.Errorf("write after Close: got writes %q, want a second write %q", got, "after\n")
	}

	// Closing again and flushing are harmless and write nothing more.
	if err := b.Close(); err != nil {
		t.Errorf("second Close: got error %v, want nil", err)
	}
	if err := b.Flush(); err != nil {
		t.Errorf("Flush after Close: got error %v, want nil", err)
	}
	if got := rec.Writes(); len(got) != 2 {
		t.Errorf("after second Close and Flush: got writes %q, want 2", got)
	}
}

// slog hands the writer a buffer it reuses, so Buffer must copy.
func TestBufferCopiesWrites(t *testing.T) {
	t.Parallel()
	var rec recorder
	b := logging.NewBuffer(&rec, never)
	closeBuffer(t, b)
	p := []byte("original\n")
	if _, err := b.Write(p); err != nil {
		t.Fatalf("Write: got error %v, want nil", err)
	}
	copy(p, "XXXXXXXX\n")
	if err := b.Flush(); err != nil {
		t.Fatalf("Flush: got error %v, want nil", err)
	}
	if got, want := rec.String(), "original\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestBufferWithLogger(t *testing.T) {
	t.Parallel()
	var rec recorder
	b := logging.NewBuffer(&rec, never)
	l := logging.Named(logging.New(b, slog.LevelInfo), "gateway.access")
	for i := range 100 {
		l.Info("Request completed", "i", i)
	}
	if got := rec.Writes(); len(got) != 0 {
		t.Fatalf("before Close: got %d writes, want none", len(got))
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: got error %v, want nil", err)
	}
	records := decodeLines(t, rec.String())
	if len(records) != 100 {
		t.Fatalf("got %d records, want 100", len(records))
	}
	for i, r := range records {
		if r["i"] != float64(i) || r["event"] != "Request completed" || r["logger"] != "gateway.access" {
			t.Errorf("record %d: got %v, want i=%d, the event and the logger", i, r, i)
		}
	}
}

func TestBufferLineLargerThanBatch(t *testing.T) {
	t.Parallel()
	var rec recorder
	b := logging.NewBuffer(&rec, never)
	closeBuffer(t, b)
	big := strings.Repeat("b", batchLimit+100) + "\n"
	mustWrite(t, b, "small 1\n")
	mustWrite(t, b, big)

	// The queued line goes first, then the big one, whole, without waiting.
	got := rec.Writes()
	if len(got) != 2 || string(got[0]) != "small 1\n" || string(got[1]) != big {
		t.Fatalf("got %d writes, want the queued line then the %d-byte line in its own write", len(got), len(big))
	}
	mustWrite(t, b, "small 2\n")
	if got := rec.Writes(); len(got) != 2 {
		t.Errorf("a small line after the big one: got %d writes, want it queued (2)", len(got))
	}
	if err := b.Flush(); err != nil {
		t.Fatalf("Flush: got error %v, want nil", err)
	}
	if got := rec.Writes(); len(got) != 3 || string(got[2]) != "small 2\n" {
		t.Errorf("after Flush: got %d writes, want a third write %q", len(got), "small 2\n")
	}
}

func TestBufferBatchesWholeLinesUnderLimit(t *testing.T) {
	t.Parallel()
	const (
		writers = 8
		perG    = 400
	)
	var rec recorder
	b := logging.NewBuffer(&rec, never)

	line := func(g, i int) string {
		// Lengths from about 12 to about 1,500 bytes, different per writer.
		return fmt.Sprintf("g%d i%04d %s\n", g, i, strings.Repeat("x", (i*97+g*131)%1500))
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for g := range writers {
		wg.Go(func() {
			for i := range perG {
				s := line(g, i)
				if n, err := b.Write([]byte(s)); err != nil || n != len(s) {
					errs <- fmt.Errorf("writer %d line %d: got (%d, %v), want (%d, nil)", g, i, n, err, len(s))
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	forced := len(rec.Writes())
	if err := b.Close(); err != nil {
		t.Fatalf("Close: got error %v, want nil", err)
	}

	writes := rec.Writes()
	if forced < 2 {
		t.Errorf("got %d writes before Close for %d lines, want the 64 KiB limit to force several", forced, writers*perG)
	}
	next := make([]int, writers) // next line index expected from each writer
	for k, w := range writes {
		if len(w) > batchLimit {
			t.Errorf("write %d: got %d bytes, want at most %d", k, len(w), batchLimit)
		}
		if len(w) == 0 || w[len(w)-1] != '\n' {
			t.Fatalf("write %d: does not end with a whole line: ...%q", k, w[max(0, len(w)-40):])
		}
		// A batch is written only when the next line would not fit.
		if k+1 < len(writes) {
			first, _, _ := bytes.Cut(writes[k+1], []byte("\n"))
			if len(w)+len(first)+1 <= batchLimit {
				t.Errorf("write %d: got %d bytes written early, the next line (%d bytes) still fitted", k, len(w), len(first)+1)
			}
		}
		for _, l := range strings.SplitAfter(string(w[:len(w)-1]), "\n") {
			var g, i int
			if _, err := fmt.Sscanf(l, "g%d i%d", &g, &i); err != nil || g < 0 || g >= writers {
				t.Fatalf("write %d: got a broken line %q", k, l)
			}
			if want := strings.TrimSuffix(line(g, i), "\n"); strings.TrimSuffix(l, "\n") != want {
				t.Fatalf("write %d: got line %q, want %q", k, l, want)
			}
			if i != next[g] {
				t.Fatalf("writer %d: got line %d, want line %d (each line once, in order)", g, i, next[g])
			}
			next[g]++
		}
	}
	for g, n := range next {
		if n != perG {
			t.Errorf("writer %d: got %d lines, want %d", g, n, perG)
		}
	}
}

func TestBufferReportsWriteError(t *testing.T) {
	t.Parallel()
	errBroken := errors.New("broken pipe")
	tests := []struct {
		name string
		// provoke makes the Buffer write to the failing writer and returns
		// the error the caller sees.
		provoke func(t *testing.T, b *logging.Buffer, rec *recorder) error
	}{
		{
			name: "Flush",
			provoke: func(t *testing.T, b *logging.Buffer, rec *recorder) error {
				mustWrite(t, b, "line\n")
				return b.Flush()
			},
		},
		{
			name: "Write that fills a batch",
			provoke: func(t *testing.T, b *logging.Buffer, rec *recorder) error {
				half := strings.Repeat("h", batchLimit/2) + "\n"
				mustWrite(t, b, half)
				_, err := b.Write([]byte(half)) // does not fit: the first is written
				return err
			},
		},
		{
			name: "Close",
			provoke: func(t *testing.T, b *logging.Buffer, rec *recorder) error {
				mustWrite(t, b, "line\n")
				return b.Close()
			},
		},
		{
			name: "Write after a periodic flush",
			provoke: func(t *testing.T, b *logging.Buffer, rec *recorder) error {
				mustWrite(t, b, "line\n")
				var err error
				waitFor(t, "a periodic flush to fail", func() bool {
					_, err = b.Write(nil)
					return err != nil
				})
				return err
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := &recorder{err: errBroken}
			interval := never
			if strings.Contains(tt.name, "periodic") {
				interval = 5 * time.Millisecond
			}
			b := logging.NewBuffer(rec, interval)
			closeBuffer(t, b)
			if err := tt.provoke(t, b, rec); !errors.Is(err, errBroken) {
				t.Errorf("got error %v, want %v", err, errBroken)
			}
		})
	}
}
