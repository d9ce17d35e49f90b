package app_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/atenex/gateway/app"
	"github.com/atenex/gateway/config"
	"github.com/atenex/gateway/ingestmock"
	"github.com/atenex/gateway/logging"
)

// gateway is a gateway served in-process on 127.0.0.1:0 for one test.
type gateway struct {
	addr  string // host:port
	url   string // http://host:port
	admin string // http://host:port of the admin listener
	logs  *syncBuffer
	stop  context.CancelFunc
	done  chan error
}

// startGateway serves a gateway in front of upstreamURL with the default
// configuration, changed by edit when it is not nil. It is shut down when
// the test ends.
func startGateway(t *testing.T, upstreamURL string, edit func(*config.Config)) *gateway {
	t.Helper()
	cfg := config.Default()
	u, err := url.Parse(upstreamURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.IngestURL = u
	cfg.Host, cfg.Port, cfg.AdminPort = "127.0.0.1", 0, 0
	cfg.ShutdownTimeout = 5 * time.Second
	if edit != nil {
		edit(&cfg)
	}
	logs := &syncBuffer{}
	a := app.New(cfg, logging.New(logs, slog.LevelDebug))
	ls, err := app.Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr := ls.Public.Addr().String()
	g := &gateway{addr: addr, url: "http://" + addr, admin: "http://" + ls.Admin.Addr().String(), logs: logs, stop: cancel, done: make(chan error, 1)}
	go func() { g.done <- a.Serve(ctx, ls) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-g.done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("gateway did not shut down within 10s")
		}
	})
	waitHealthy(t, g.url)
	return g
}

// waitHealthy polls /health until it answers 200.
func waitHealthy(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("gateway at %s never became healthy", base)
}

// mock is the repo's mock ingest service on 127.0.0.1:0, counting hits.
type mock struct {
	url  string
	hits atomic.Int64
}

func startMock(t *testing.T) *mock {
	t.Helper()
	m := &mock{}
	h := ingestmock.New("/api/v1")
	m.url = serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.hits.Add(1)
		h.ServeHTTP(w, r)
	}))
	return m
}

// serveHTTP serves h on 127.0.0.1:0 until the test ends.
func serveHTTP(t testing.TB, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// rawUpstream accepts connections on 127.0.0.1:0 and hands each to handle,
// for upstreams that misbehave below HTTP.
func rawUpstream(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// readRequestHead reads an HTTP request's line and headers from c.
func readRequestHead(c net.Conn) (*http.Request, *bufio.Reader, error) {
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	return req, br, err
}

// dial connects to addr, closing the connection when the test ends.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// rawRequest writes raw, an HTTP/1.1 request as text, to addr and reads the
// response. It is for what net/http's client would normalise away.
func rawRequest(t *testing.T, addr, raw string) *http.Response {
	t.Helper()
	c := dial(t, addr)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading response to %q: %v", raw, err)
	}
	return resp
}

// echoed is what the mock's /echo route reports.
type echoed struct {
	Method           string              `json:"method"`
	URI              string              `json:"uri"`
	Host             string              `json:"host"`
	Headers          map[string][]string `json:"headers"`
	ContentLength    int64               `json:"content_length"`
	TransferEncoding []string            `json:"transfer_encoding"`
	BodyBytes        int64               `json:"body_bytes"`
	BodySHA256       string              `json:"body_sha256"`
}

// decode reads resp's JSON body into v and closes it.
func decode(t *testing.T, resp *http.Response, v any) {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decoding %q: %v", b, err)
	}
}

// detailOf returns the detail of a gateway error body, failing the test if
// the body is not {"detail": "..."}.
func detailOf(t *testing.T, resp *http.Response) string {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type: got %q, want application/json", ct)
	}
	var body map[string]any
	decode(t, resp, &body)
	d, ok := body["detail"].(string)
	if !ok || len(body) != 1 {
		t.Fatalf("body: got %v, want {\"detail\": string}", body)
	}
	return d
}

// do sends req with a client that never follows redirects nor reuses
// connections across tests.
func do(t *testing.T, req *http.Request) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(req.Context(), 30*time.Second)
	t.Cleanup(cancel)
	client := &http.Client{
		Transport:     &http.Transport{DisableCompression: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	t.Cleanup(client.CloseIdleConnections)
	resp, err := client.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	return resp
}

func get(t *testing.T, url string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, req)
}

// syncBuffer is a bytes.Buffer safe for the logger and the test to share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// reset forgets what was written, for tests that log a lot.
func (b *syncBuffer) reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = bytes.Buffer{}
}

// lines returns the JSON log lines written so far.
func (b *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(b.buf.Bytes()), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// waitLine waits up to within for a log line that match accepts and
// returns it; the test fails if none comes.
func (b *syncBuffer) waitLine(t *testing.T, within time.Duration, match func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		for _, l := range b.lines(t) {
			if match(l) {
				return l
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no such log line")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// isBrokenBody reports whether err is how a client sees a response cut
// short: a body that ends before its length, or a chunked one without its
// last chunk.
func isBrokenBody(err error) bool {
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		strings.Contains(fmtErr(err), "connection reset")
}

func fmtErr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// fullBacklogListener returns the address of a socket that listens with
// the smallest accept queue and never accepts, with that queue already
// full: the kernel then drops new connection attempts, which hang until
// the dialer gives up, as when the upstream's host is unreachable.
func fullBacklogListener(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	for range 8 {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			return addr // the queue is full
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Skip("could not fill the accept queue; this kernel accepts beyond the backlog")
	return ""
}

func jsonDecode(r io.Reader, v any) error {
	return json.NewDecoder(r).Decode(v)
}
