package logging_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atenex/gateway/logging"
)

const timestampLayout = "2006-01-02T15:04:05.000000Z"

// recorder is an io.Writer that keeps a copy of every Write call, so tests
// can see how output was split into writes. It may fail every write with
// err.
type recorder struct {
	mu     sync.Mutex
	writes [][]byte
	err    error
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return 0, r.err
	}
	r.writes = append(r.writes, bytes.Clone(p))
	return len(p), nil
}

// Writes returns copies of the writes so far.
func (r *recorder) Writes() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([][]byte, len(r.writes))
	copy(out, r.writes)
	return out
}

// String returns everything written so far.
func (r *recorder) String() string {
	return string(bytes.Join(r.Writes(), nil))
}

// decodeLines parses each line of out as one JSON object.
func decodeLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	if out == "" {
		return nil
	}
	if !strings.HasSuffix(out, "\n") {
		t.Errorf("output %q: does not end with a newline", out)
	}
	var records []map[string]any
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q: not a JSON object: %v", line, err)
		}
		records = append(records, m)
	}
	return records
}

func TestNewWritesJSONLines(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		log       func(l *slog.Logger)
		wantLevel string
	}{
		{"debug", func(l *slog.Logger) { l.Debug("an event") }, "debug"},
		{"info", func(l *slog.Logger) { l.Info("an event") }, "info"},
		{"warning", func(l *slog.Logger) { l.Warn("an event") }, "warning"},
		{"warning constant", func(l *slog.Logger) { l.Log(context.Background(), logging.LevelWarning, "an event") }, "warning"},
		{"error", func(l *slog.Logger) { l.Error("an event") }, "error"},
		{"critical", func(l *slog.Logger) { l.Log(context.Background(), logging.LevelCritical, "an event") }, "critical"},
		{"above critical", func(l *slog.Logger) { l.Log(context.Background(), logging.LevelCritical+4, "an event") }, "critical"},
		{"between error and critical", func(l *slog.Logger) { l.Log(context.Background(), slog.LevelError+2, "an event") }, "error"},
		{"below debug", func(l *slog.Logger) { l.Log(context.Background(), slog.LevelDebug-4, "an event") }, "debug"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			before := time.Now().UTC().Truncate(time.Microsecond)
			tt.log(logging.New(&out, slog.LevelDebug-8))
			after := time.Now().UTC()

			records := decodeLines(t, out.String())
			if len(records) != 1 {
				t.Fatalf("got %d lines %q, want 1", len(records), out.String())
			}
			r := records[0]
			if got := r["level"]; got != tt.wantLevel {
				t.Errorf("level: got %v, want %q", got, tt.wantLevel)
			}
			if got := r["event"]; got != "an event" {
				t.Errorf("event: got %v, want %q", got, "an event")
			}
			ts, ok := r["timestamp"].(string)
			if !ok {
				t.Fatalf("timestamp: got %v, want a string", r["timestamp"])
			}
			when, err := time.Parse(timestampLayout, ts)
			if err != nil {
				t.Fatalf("timestamp %q: got parse error %v, want layout %s", ts, err, timestampLayout)
			}
			if when.Before(before) || when.After(after) {
				t.Errorf("timestamp: got %s, want between %s and %s", when, before, after)
			}
			for _, key := range []string{"time", "msg", "logger"} {
				if v, ok := r[key]; ok {
					t.Errorf("key %q: got %v, want absent", key, v)
				}
			}
			if len(r) != 3 {
				t.Errorf("got keys %v, want only timestamp, level, event", r)
			}
		})
	}
}

func TestNewKeyOrderAndAttrs(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	l := logging.New(&out, slog.LevelInfo)
	l.Info("Request completed", slog.String("request_id", "abc"), slog.Int("status_code", 200),
		slog.Group("upstream", slog.String("level", "deep"), slog.String("time", "later")))

	line := out.String()
	for _, prefix := range []string{`{"timestamp":"`, `","level":"info","event":"Request completed",`} {
		if !strings.Contains(line, prefix) {
			t.Errorf("line %q: does not contain %q", line, prefix)
		}
	}
	if !strings.HasPrefix(line, `{"timestamp":"`) {
		t.Errorf("line %q: does not start with the timestamp", line)
	}
	r := decodeLines(t, line)[0]
	if got := r["request_id"]; got != "abc" {
		t.Errorf("request_id: got %v, want %q", got, "abc")
	}
	if got := r["status_code"]; got != float64(200) {
		t.Errorf("status_code: got %v, want 200", got)
	}
	// Keys inside a group are not the built-ins and keep their names.
	group, _ := r["upstream"].(map[string]any)
	if got := group["level"]; got != "deep" {
		t.Errorf("upstream.level: got %v, want %q", got, "deep")
	}
	if got := group["time"]; got != "later" {
		t.Errorf("upstream.time: got %v, want %q", got, "later")
	}
}

func TestNamed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		log  func(l *slog.Logger)
	}{
		{"info", func(l *slog.Logger) { l.Info("Starting") }},
		{"critical", func(l *slog.Logger) { l.Log(context.Background(), logging.LevelCritical, "Starting") }},
		{"with attrs", func(l *slog.Logger) { l.With("port", 8080).Info("Starting") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			base := logging.New(&out, slog.LevelInfo)
			tt.log(logging.Named(base, "gateway.config"))
			base.Info("unnamed")

			records := decodeLines(t, out.String())
			if len(records) != 2 {
				t.Fatalf("got %d lines %q, want 2", len(records), out.String())
			}
			if got := records[0]["logger"]; got != "gateway.config" {
				t.Errorf("named logger: got logger %v, want %q", got, "gateway.config")
			}
			if got := records[0]["event"]; got != "Starting" {
				t.Errorf("named logger: got event %v, want %q", got, "Starting")
			}
			if v, ok := records[1]["logger"]; ok {
				t.Errorf("parent logger: got logger %v, want absent (Named must not change its parent)", v)
			}
		})
	}
}

// Each record must reach the writer in one Write call, or a Buffer could
// flush half a line.
func TestNewOneWritePerRecord(t *testing.T) {
	t.Parallel()
	var rec recorder
	l := logging.Named(logging.New(&rec, slog.LevelDebug), "gateway.access")
	for i := range 20 {
		l.Info("Request completed", "i", i, "path", strings.Repeat("/x", i*50))
	}
	writes := rec.Writes()
	if len(writes) != 20 {
		t.Fatalf("got %d writes, want 20", len(writes))
	}
	for i, w := range writes {
		if n := bytes.Count(w, []byte("\n")); n != 1 || w[len(w)-1] != '\n' {
			t.Errorf("write %d: got %q, want exactly one whole line", i, w)
		}
	}
}

func TestParseLevel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		want slog.Level
	}{
		{"DEBUG", slog.LevelDebug},
		{"debug", slog.LevelDebug},
		{"INFO", slog.LevelInfo},
		{"info", slog.LevelInfo},
		{"WARNING", logging.LevelWarning},
		{"warning", logging.LevelWarning},
		{"Warning", logging.LevelWarning},
		{"ERROR", slog.LevelError},
		{"eRRoR", slog.LevelError},
		{"CRITICAL", logging.LevelCritical},
		{"critical", logging.LevelCritical},
		{"", slog.LevelInfo},
		{"verbose", slog.LevelInfo},
		{"WARN", slog.LevelInfo},
		{"FATAL", slog.LevelInfo},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := logging.ParseLevel(tt.name); got != tt.want {
				t.Errorf("ParseLevel(%q): got %v, want %v", tt.name, got, tt.want)
			}
		})
	}
}

func TestLevelOrder(t *testing.T) {
	t.Parallel()
	levels := []slog.Level{slog.LevelDebug, slog.LevelInfo, logging.LevelWarning, slog.LevelError, logging.LevelCritical}
	for i := 1; i < len(levels); i++ {
		if levels[i-1] >= levels[i] {
			t.Errorf("level %d: got %v >= %v, want increasing", i, levels[i-1], levels[i])
		}
	}
}

func TestNewFiltersByLevel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		min     string // LOG_LEVEL the logger is made with
		at      slog.Level
		written bool
	}{
		{"debug dropped at info", "INFO", slog.LevelDebug, false},
		{"info kept at info", "INFO", slog.LevelInfo, true},
		{"warning kept at info", "INFO", logging.LevelWarning, true},
		{"debug kept at debug", "DEBUG", slog.LevelDebug, true},
		{"info dropped at warning", "WARNING", slog.LevelInfo, false},
		{"warning kept at warning", "WARNING", logging.LevelWarning, true},
		{"warning dropped at error", "ERROR", logging.LevelWarning, false},
		{"error kept at error", "ERROR", slog.LevelError, true},
		{"critical kept at error", "ERROR", logging.LevelCritical, true},
		{"error dropped at critical", "CRITICAL", slog.LevelError, false},
		{"critical kept at critical", "CRITICAL", logging.LevelCritical, true},
		{"debug dropped at unknown level", "verbose", slog.LevelDebug, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			l := logging.New(&out, logging.ParseLevel(tt.min))
			l.Log(context.Background(), tt.at, "an event")
			if got := out.Len() > 0; got != tt.written {
				t.Errorf("%v line at %s: got written=%t (%q), want %t", tt.at, tt.min, got, out.String(), tt.written)
			}
			if got := l.Enabled(context.Background(), tt.at); got != tt.written {
				t.Errorf("Enabled(%v) at %s: got %t, want %t", tt.at, tt.min, got, tt.written)
			}
		})
	}
}

// A caller's own top-level attribute that happens to be called "level" or
// "time" is passed to the same ReplaceAttr hook as the built-ins; it must be
// written, not crash the request that logs it.
func TestNewAttrsNamedLikeBuiltins(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		log  func(l *slog.Logger)
	}{
		{"string level", func(l *slog.Logger) { l.Info("an event", "level", "high") }},
		{"int level", func(l *slog.Logger) { l.Info("an event", slog.Int("level", 3)) }},
		{"string time", func(l *slog.Logger) { l.Info("an event", "time", "yesterday") }},
		{"int time", func(l *slog.Logger) { l.Info("an event", slog.Int64("time", 1700000000)) }},
		{"level through With", func(l *slog.Logger) { l.With("level", "high").Info("an event") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Errorf("logging panicked: %v; want a line written", p)
					}
				}()
				tt.log(logging.New(&out, slog.LevelInfo))
			}()
			if !json.Valid(out.Bytes()) || !strings.Contains(out.String(), `"event":"an event"`) {
				t.Errorf("got output %q, want one JSON line with the event", out.String())
			}
		})
	}
}

// TestLogAttrsWritesWhatHandleWrites holds that the access log's shortcut
// writes, byte for byte, the line the handler writes for the same record,
// through this package's handler and through any other, and honours the
// level.
func TestLogAttrsWritesWhatHandleWrites(t *testing.T) {
	at := time.Date(2026, 12, 4, 21, 30, 15, 123456789, time.FixedZone("CET", 3600))
	attrs := []slog.Attr{
		slog.String("request_id", "id-1"), slog.String("path", "/a\"b"), slog.Int("status_code", 200),
		slog.Float64("duration_ms", 1.25), slog.Int64("bytes_in", 7), slog.Any("err", errors.New("broke")),
	}
	tests := []struct {
		name string
		new  func(w *recorder) *slog.Logger
	}{
		{"this package's handler", func(w *recorder) *slog.Logger {
			return logging.Named(logging.New(w, slog.LevelInfo), "gateway.access")
		}},
		{"slog's JSON handler", func(w *recorder) *slog.Logger {
			return slog.New(slog.NewJSONHandler(w, nil)).With("logger", "gateway.access")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got, want recorder
			if err := logging.LogAttrs(tt.new(&got), at, slog.LevelWarn, "Request completed", attrs...); err != nil {
				t.Fatal(err)
			}
			r := slog.NewRecord(at, slog.LevelWarn, "Request completed", 0)
			r.AddAttrs(attrs...)
			if err := tt.new(&want).Handler().Handle(context.Background(), r); err != nil {
				t.Fatal(err)
			}
			if got.String() != want.String() {
				t.Errorf("got %s, want %s", got.String(), want.String())
			}

			var quiet recorder
			if err := logging.LogAttrs(tt.new(&quiet), at, slog.LevelDebug, "hidden", attrs...); err != nil || quiet.String() != "" {
				t.Errorf("below the level: got %q, %v; want nothing", quiet.String(), err)
			}
		})
	}
}

// TestTimestampAcrossSeconds holds that the timestamp, whose date and time
// of day are kept from one line to the next, changes with every second,
// forwards and backwards (a clock set back), and reads as the layout does.
func TestTimestampAcrossSeconds(t *testing.T) {
	base := time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC)
	times := []time.Time{
		base.Add(999999999), // the fraction truncated, not rounded
		base.Add(1 * time.Second),
		base.Add(1*time.Second + 1000),
		base,
		time.Date(1969, 12, 31, 23, 59, 59, 500000000, time.UTC), // before 1970
		time.Date(2026, 6, 1, 2, 3, 4, 5000, time.FixedZone("X", -7*3600)),
		time.Date(2026, 6, 1, 2, 3, 4, 5000, time.FixedZone("X", -7*3600)), // same second, again
		{}, // zero: the handler's own clock
	}
	var w recorder
	log := logging.New(&w, slog.LevelInfo)
	for _, at := range times {
		before := time.Now()
		if err := logging.LogAttrs(log, at, slog.LevelInfo, "x"); err != nil {
			t.Fatal(err)
		}
		lines := decodeLines(t, w.String())
		got := lines[len(lines)-1]["timestamp"]
		if at.IsZero() {
			stamp, err := time.Parse(timestampLayout, got.(string))
			if err != nil || stamp.Before(before.Truncate(time.Microsecond)) || stamp.After(time.Now()) {
				t.Errorf("zero time: got %v (%v), want the time of writing", got, err)
			}
			continue
		}
		if want := at.UTC().Format(timestampLayout); got != want {
			t.Errorf("%v: got %v, want %s", at, got, want)
		}
	}
}
