package routes

import (
	"net/url"
	"path"
	"strings"
	"testing"
)

func TestSafeSubpath(t *testing.T) {
	tests := []struct {
		rest string
		want bool
	}{
		{"upload", true},
		{"a/b/c", true},
		{"", true},
		{"a//b", true},
		{"a/./b", true},
		{"a/../b", true},
		{"a/b/../../c", true},
		{"a%20b/%C3%A9", true},
		{"file.v1.pdf", true},
		{"...", true},
		{"a/%2e%2e", true},
		{"..", false},
		{"../admin", false},
		{"../../admin", false},
		{"a/../../admin", false},
		{"%2e%2e/admin", false},
		{"%2E%2E/admin", false},
		{".%2e/admin", false},
		{"a/%2e%2e/%2e%2e/x", false},
		{"a%2Fb", false},
		{"a%2fb", false},
		{"..%2Fadmin", false},
		{"a%5Cb", false},
		{"a%5cb", false},
		{`a\b`, false},
		{`..\admin`, false},
		{"a%252Fb", false},
		{"a%252fb", false},
		{"a%255Cb", false},
		{"%252e%252e/admin", false},
		{"a%00b", false},
		{"a%0Ab", false},
		{"a%zz", false},
		{"a%2", false},
		{"a%", false},
		{"//..", false},
		{"%252%65.", false}, // "%2e." after one decoding, ".." after two (found by the fuzzer)
		{"%25%32%65%25%32%65", false},
		{"100%25.pdf", true},
	}
	for _, tt := range tests {
		t.Run(tt.rest, func(t *testing.T) {
			if got := safeSubpath([]byte(tt.rest)); got != tt.want {
				t.Errorf("safeSubpath(%q): got %v, want %v", tt.rest, got, tt.want)
			}
		})
	}
}

// FuzzSafeSubpath holds the invariant the check exists for: whatever the
// client sends, a path it lets through stays inside "/api/v1/" for an
// upstream that decodes the path once, or even twice, and then resolves
// dot segments, treating backslashes as slashes as some servers do.
func FuzzSafeSubpath(f *testing.F) {
	for _, seed := range []string{
		"upload", "a/b/../c", "../x", "%2e%2e/x", "a%2Fb", "a%252F", `a\b`, "%25%32%65", "a/%2e/b",
		"....//", "%2e%2e%2f", "%%32%65", ".%252e/", "a/..%2f..", "x/%2E%2e/%2e%2E/y",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, rest string) {
		if !safeSubpath([]byte(rest)) {
			return
		}
		const prefix = "/api/v1/"
		once, err := url.PathUnescape(rest)
		if err != nil {
			t.Fatalf("let through %q, which does not decode: %v", rest, err)
		}
		for _, decoded := range []string{once, twice(once)} {
			resolved := path.Clean(prefix + strings.ReplaceAll(decoded, `\`, "/"))
			if !strings.HasPrefix(resolved+"/", prefix) {
				t.Fatalf("let through %q, which resolves to %q upstream, outside %s", rest, resolved, prefix)
			}
		}
	})
}

// twice decodes s a second time where it can.
func twice(s string) string {
	if d, err := url.PathUnescape(s); err == nil {
		return d
	}
	return s
}

func FuzzAmbiguousFraming(f *testing.F) {
	for _, seed := range []string{
		"Host: x\r\nContent-Length: 5\r\n",
		"Host: x\r\nTransfer-Encoding: chunked\r\n",
		"Host: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n",
		"Host: x\r\nX-A: 1\r\n 2\r\n",
		"Transfer-Encoding: gzip, chunked\r\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got := ambiguousFraming([]byte(raw))
		lower := strings.ToLower(raw)
		if strings.Contains(lower, "transfer-encoding") && strings.Contains(lower, "content-length") &&
			strings.Count(lower, "\n") > 0 && !got && framingHeaderCount(raw, "transfer-encoding") > 0 && framingHeaderCount(raw, "content-length") > 0 {
			t.Fatalf("%q has both Content-Length and Transfer-Encoding, not refused", raw)
		}
	})
}

// framingHeaderCount counts header lines named name.
func framingHeaderCount(raw, name string) int {
	n := 0
	for _, line := range strings.Split(raw, "\n") {
		k, _, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(k, name) {
			n++
		}
	}
	return n
}
