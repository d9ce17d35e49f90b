package upstream

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestClassify(t *testing.T) {
	dial := func(err error) error { return &net.OpError{Op: "dial", Net: "tcp", Err: err} }
	read := func(err error) error { return &net.OpError{Op: "read", Net: "tcp", Err: err} }
	tests := []struct {
		name string
		err  error
		want Kind
	}{
		{"connection refused", dial(syscall.ECONNREFUSED), KindRefused},
		{"no such host", &net.DNSError{Err: "no such host", Name: "ingest"}, KindRefused},
		{"dial timeout", dial(os.ErrDeadlineExceeded), KindTimeout},
		{"read deadline", read(os.ErrDeadlineExceeded), KindTimeout},
		{"fasthttp timeout", fasthttp.ErrTimeout, KindTimeout},
		{"wrapped timeout", fmt.Errorf("reading response: %w", read(os.ErrDeadlineExceeded)), KindTimeout},
		{"pool exhausted", fasthttp.ErrNoFreeConns, KindPoolExhausted},
		{"closed before answering", fasthttp.ErrConnectionClosed, KindReset},
		{"reset", read(syscall.ECONNRESET), KindReset},
		{"broken pipe", &net.OpError{Op: "write", Err: syscall.EPIPE}, KindReset},
		{"cut short", io.ErrUnexpectedEOF, KindReset},
		{"garbage", errors.New("error when reading response headers: cannot find whitespace in the first line of response"), KindBadResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.err); got != tt.want {
				t.Errorf("Classify(%v): got %s, want %s", tt.err, got, tt.want)
			}
		})
	}
}

func TestIsStaleConn(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"EOF before the first byte", io.EOF, true},
		{"closed", fasthttp.ErrConnectionClosed, true},
		{"reset", &net.OpError{Op: "read", Err: syscall.ECONNRESET}, true},
		{"timeout: retrying would double the wait", &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, false},
		{"refused", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, false},
		{"garbage", errors.New("cannot parse response"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isStaleConn(tt.err); got != tt.want {
				t.Errorf("isStaleConn(%v): got %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestIsIdempotent(t *testing.T) {
	for method, want := range map[string]bool{
		"GET": true, "HEAD": true, "OPTIONS": true, "TRACE": true, "PUT": true, "DELETE": true,
		"POST": false, "PATCH": false, "CONNECT": false, "get": false, "": false,
	} {
		if got := isIdempotent([]byte(method)); got != want {
			t.Errorf("isIdempotent(%q): got %v, want %v", method, got, want)
		}
	}
}
