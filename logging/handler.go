package logging

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// handler is a slog.Handler that writes one JSON object per record with
// structlog's key names. It exists because slog's JSONHandler, asked to
// rename its keys, calls the renaming hook for every attribute of every
// record: on the access log that was a tenth of the gateway's CPU per
// request. This one writes the built-in keys under their final names and
// encodes the common kinds directly into a pooled buffer.
type handler struct {
	shared *handlerShared
	level  slog.Level
	// attrs are the preformatted `,"key":value` pairs from With.
	attrs []byte
	// prefix is the dotted group path from WithGroup, "" or ending in ".".
	prefix string
}

type handlerShared struct {
	mu   sync.Mutex
	w    io.Writer
	bufs sync.Pool // of *[]byte
	// second is the timestamp text of the last second a line was written
	// in: formatting a date costs more than the rest of an access line's
	// header, and at thousands of lines a second it rarely changes.
	second atomic.Pointer[stampedSecond]
}

// stampedSecond is one second's timestamp text, up to the fraction:
// "2006-01-02T15:04:05.".
type stampedSecond struct {
	unix int64
	text []byte
}

func newHandler(w io.Writer, level slog.Level) *handler {
	sh := &handlerShared{w: w}
	sh.bufs.New = func() any { b := make([]byte, 0, 1024); return &b }
	return &handler{shared: sh, level: level}
}

func (h *handler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *handler) Handle(_ context.Context, r slog.Record) error {
	bp, b := h.begin(r.Time, r.Level, r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b = appendAttr(b, h.prefix, a)
		return true
	})
	return h.end(bp, b)
}

// handleAttrs writes what Handle would for a record of attrs, without
// building the record (see LogAttrs).
func (h *handler) handleAttrs(t time.Time, level slog.Level, msg string, attrs []slog.Attr) error {
	bp, b := h.begin(t, level, msg)
	for _, a := range attrs {
		b = appendAttr(b, h.prefix, a)
	}
	return h.end(bp, b)
}

// begin takes a pooled buffer and writes a line's built-in keys and the
// attributes from With into it.
func (h *handler) begin(t time.Time, level slog.Level, msg string) (*[]byte, []byte) {
	bp := h.shared.bufs.Get().(*[]byte)
	b := (*bp)[:0]
	b = append(b, `{"timestamp":"`...)
	if t.IsZero() {
		t = time.Now()
	}
	b = h.shared.appendTimestamp(b, t)
	b = append(b, `","level":"`...)
	b = append(b, levelName(level)...)
	b = append(b, `","event":`...)
	b = appendString(b, msg)
	return bp, append(b, h.attrs...)
}

// end closes the line, writes it with one Write and returns the buffer.
func (h *handler) end(bp *[]byte, b []byte) error {
	b = append(b, "}\n"...)
	h.shared.mu.Lock()
	_, err := h.shared.w.Write(b)
	h.shared.mu.Unlock()
	if cap(b) <= 64<<10 { // don't keep a rare huge line's buffer
		*bp = b
		h.shared.bufs.Put(bp)
	}
	return err
}

// appendTimestamp appends t as "2006-01-02T15:04:05.000000Z" in UTC,
// the fraction truncated, as time.Time.AppendFormat would.
func (sh *handlerShared) appendTimestamp(b []byte, t time.Time) []byte {
	t = t.UTC()
	sec := sh.second.Load()
	if unix := t.Unix(); sec == nil || sec.unix != unix {
		sec = &stampedSecond{unix: unix, text: t.AppendFormat(nil, "2006-01-02T15:04:05.")}
		sh.second.Store(sec)
	}
	b = append(b, sec.text...)
	us := t.Nanosecond() / 1000
	var frac [6]byte
	for i := len(frac) - 1; i >= 0; i-- {
		frac[i] = byte('0' + us%10)
		us /= 10
	}
	b = append(b, frac[:]...)
	return append(b, 'Z')
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	h2 := *h
	h2.attrs = append([]byte(nil), h.attrs...)
	for _, a := range attrs {
		h2.attrs = appendAttr(h2.attrs, h.prefix, a)
	}
	return &h2
}

func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.prefix = h.prefix + name + "."
	return &h2
}

// appendAttr appends `,"key":value`. A group attribute becomes a nested
// object (an unnamed one is inlined); WithGroup's groups are flattened to
// dotted keys, which the gateway never uses.
func appendAttr(b []byte, prefix string, a slog.Attr) []byte {
	v := a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return b
	}
	if v.Kind() == slog.KindGroup {
		if a.Key == "" {
			for _, ga := range v.Group() {
				b = appendAttr(b, prefix, ga)
			}
			return b
		}
		b = append(b, ',')
		b = appendString(b, prefix+a.Key)
		b = append(b, ':', '{')
		open := len(b)
		for _, ga := range v.Group() {
			b = appendAttr(b, "", ga)
		}
		if len(b) > open { // drop the first member's leading comma
			b = append(b[:open], b[open+1:]...)
		}
		return append(b, '}')
	}
	b = append(b, ',')
	b = appendString(b, prefix+a.Key)
	b = append(b, ':')
	switch v.Kind() {
	case slog.KindString:
		b = appendString(b, v.String())
	case slog.KindInt64:
		b = strconv.AppendInt(b, v.Int64(), 10)
	case slog.KindUint64:
		b = strconv.AppendUint(b, v.Uint64(), 10)
	case slog.KindFloat64:
		f := v.Float64()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			b = appendString(b, strconv.FormatFloat(f, 'g', -1, 64))
		} else {
			b = strconv.AppendFloat(b, f, 'f', -1, 64)
		}
	case slog.KindBool:
		b = strconv.AppendBool(b, v.Bool())
	case slog.KindDuration:
		b = strconv.AppendInt(b, int64(v.Duration()), 10)
	case slog.KindTime:
		b = append(b, '"')
		b = v.Time().UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	default:
		b = appendAny(b, v.Any())
	}
	return b
}

func appendAny(b []byte, v any) []byte {
	switch x := v.(type) {
	case error:
		return appendString(b, x.Error())
	case slog.Level:
		return appendString(b, levelName(x))
	}
	j, err := json.Marshal(v)
	if err != nil {
		return appendString(b, "!ERROR "+err.Error())
	}
	return append(b, j...)
}

// appendString appends s as a JSON string: quotes, backslashes and control
// characters escaped, invalid UTF-8 replaced.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != 0x7f {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
