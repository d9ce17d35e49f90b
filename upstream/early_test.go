package upstream

import (
	"strings"
	"testing"
)

func TestFinalHeadEnd(t *testing.T) {
	const final = "HTTP/1.1 415 Unsupported Media Type\r\nContent-Length: 4\r\n"
	tests := []struct {
		name, in string
		want     int
	}{
		{"CRLF", final + "\r\nbody", len(final)},
		{"bare LF, a blank CRLF line in the body", "HTTP/1.1 415 No\nA: b\n\nx\r\n\r\ny", len("HTTP/1.1 415 No\nA: b\n")},
		{"after 100 Continue", "HTTP/1.1 100 Continue\r\n\r\n" + final + "\r\nbody", len("HTTP/1.1 100 Continue\r\n\r\n" + final)},
		{"after 103 Early Hints", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + final + "\r\n", len("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + final)},
		{"101 is final", "HTTP/1.1 101 Switching Protocols\r\n\r\n", len("HTTP/1.1 101 Switching Protocols\r\n")},
		{"two spaces before the code", "HTTP/1.1  415 X\r\n\r\n", len("HTTP/1.1  415 X\r\n")},
		{"a code under 100 is final", "HTTP/1.1 099 X\r\n\r\n", len("HTTP/1.1 099 X\r\n")},
		{"100 without a reason", "HTTP/1.1 100\r\n\r\n" + final + "\r\n", len("HTTP/1.1 100\r\n\r\n" + final)},
		{"head not complete", final, -1},
		{"interim only", "HTTP/1.1 100 Continue\r\n\r\n", -1},
		{"interim, final started", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1", -1},
		{"not HTTP", "\x16\x03\x03\x00\x02\x02\x28\r\n\r\n", -1},
		{"empty", "", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := finalHeadEnd([]byte(tt.in)); got != tt.want {
				t.Errorf("finalHeadEnd(%q): got %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

// FuzzFinalHeadEnd: whatever an upstream sends, finalHeadEnd does not
// panic, and what it finds is a blank line ending a head that starts as an
// HTTP/1.x answer, so that a header inserted there lands in a head.
func FuzzFinalHeadEnd(f *testing.F) {
	f.Add([]byte("HTTP/1.1 415 No\r\nA: b\r\n\r\nbody"))
	f.Add([]byte("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\n\n"))
	f.Add([]byte("HTTP/1.0 200 OK\nX: \r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		at := finalHeadEnd(b)
		if at < 0 {
			return
		}
		rest := string(b[at:])
		if !strings.HasPrefix(string(b), "HTTP/1.") || at == 0 || b[at-1] != '\n' ||
			!(strings.HasPrefix(rest, "\r\n") || strings.HasPrefix(rest, "\n")) {
			t.Errorf("finalHeadEnd(%q) = %d: not the start of a blank line after a head", b, at)
		}
	})
}
