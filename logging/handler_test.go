package logging

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzAppendString holds that any string, however hostile (log lines carry
// client-chosen paths and headers), is encoded as valid JSON that decodes
// back to the string, with invalid UTF-8 replaced.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", `quo"te`, `back\slash`, "new\nline", "\x00\x1f\x7f", "caf\xc3\xa9", "bad\xff\xfeutf8", "\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := appendString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("appendString(%q) = %s: not JSON: %v", s, b, err)
		}
		if want := strings.ToValidUTF8(s, "\ufffd"); got != want && utf8.ValidString(s) {
			t.Fatalf("appendString(%q) decodes to %q", s, got)
		}
	})
}
