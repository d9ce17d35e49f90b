package app_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/atenex/gateway/app"
	"github.com/atenex/gateway/config"
	"github.com/atenex/gateway/logging"
	"log/slog"
)

// Regression tests for defects found in review.

func TestGatewayHeadersWinOverUpstreams(t *testing.T) {
	up := rawUpstream(t, func(c net.Conn) {
		if _, _, err := readRequestHead(c); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Request-ID: upstream-id\r\nAccess-Control-Allow-Origin: *\r\n"+
			"Access-Control-Allow-Credentials: false\r\nVary: Accept-Encoding\r\nContent-Length: 2\r\n\r\nok")
	})
	g := startGateway(t, up, nil)
	req, _ := http.NewRequest("GET", g.url+"/api/v1/ingest/x", nil)
	req.Header.Set("Origin", "http://localhost:3000")
	req.Header.Set("X-Request-ID", "client-id")
	resp := do(t, req)
	resp.Body.Close()
	for name, want := range map[string][]string{
		"X-Request-Id":                     {"client-id"},
		"Access-Control-Allow-Origin":      {"http://localhost:3000"},
		"Access-Control-Allow-Credentials": {"true"},
	} {
		if got := resp.Header.Values(name); !slices.Equal(got, want) {
			t.Errorf("%s: got %q, want %q", name, got, want)
		}
	}
	if vary := strings.Join(resp.Header.Values("Vary"), ","); !strings.Contains(vary, "Origin") || !strings.Contains(vary, "Accept-Encoding") {
		t.Errorf("Vary: got %q, want both the gateway's Origin and the upstream's Accept-Encoding", vary)
	}
}

func TestClientCannotChooseForwardedProto(t *testing.T) {
	m := startMock(t)
	g := startGateway(t, m.url, nil)
	resp := rawRequest(t, g.addr, "GET /api/v1/ingest/echo HTTP/1.1\r\nHost: x\r\nX-Forwarded-Proto: https\r\n"+
		"X-Url-Scheme: gopher\r\nX-Forwarded-Ssl: on\r\nConnection: close\r\n\r\n")
	var e echoed
	decode(t, resp, &e)
	if got := e.Headers["X-Forwarded-Proto"]; !slices.Equal(got, []string{"http"}) {
		t.Errorf("X-Forwarded-Proto upstream: got %q, want [http]", got)
	}
}

func TestNoInventedContentTypeAndHostless10(t *testing.T) {
	m := startMock(t)
	g := startGateway(t, m.url, nil)
	resp := rawRequest(t, g.addr, "POST /api/v1/ingest/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
	var e echoed
	decode(t, resp, &e)
	if ct, ok := e.Headers["Content-Type"]; ok {
		t.Errorf("upstream Content-Type: got %q for a body sent without one, want none", ct)
	}

	resp = rawRequest(t, g.addr, "GET /api/v1/ingest/echo HTTP/1.0\r\n\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("HTTP/1.0 without Host: got %d, want 200", resp.StatusCode)
	}
	decode(t, resp, &e)
	if want := strings.TrimPrefix(m.url, "http://"); e.Host != want {
		t.Errorf("upstream Host: got %q, want the upstream's own %q", e.Host, want)
	}
}

// TestUpstreamPauseIsNotChargedToTheClient: the client's write deadline
// starts when a chunk is ready, so an upstream pause within the upstream
// timeout does not eat the client's idle budget.
func TestUpstreamPauseIsNotChargedToTheClient(t *testing.T) {
	up := rawUpstream(t, func(c net.Conn) {
		if _, _, err := readRequestHead(c); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1049600\r\n\r\n")
		c.Write(make([]byte, 1024))
		time.Sleep(700 * time.Millisecond)
		c.Write(make([]byte, 1<<20))
	})
	g := startGateway(t, up, func(c *config.Config) {
		c.ClientBodyIdleTimeout = 300 * time.Millisecond
		c.UpstreamTimeout = 5 * time.Second
	})
	resp := get(t, g.url+"/api/v1/ingest/x")
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != 1049600 {
		t.Errorf("got %d bytes, %v; want all 1049600", n, err)
	}
}

// TestClientAbortedDownloadIsLoggedAsBroken: a client that goes away
// mid-download is not a completed request.
func TestClientAbortedDownloadIsLoggedAsBroken(t *testing.T) {
	m := startMock(t)
	g := startGateway(t, m.url, nil)
	c, err := net.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET /api/v1/ingest/blob?size=1073741824 HTTP/1.1\r\nHost: x\r\nX-Request-ID: walks-away\r\n\r\n")
	br := bufio.NewReader(c)
	if _, err := io.CopyN(io.Discard, br, 1<<20); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).SetLinger(0)
	c.Close()

	l := g.logs.waitLine(t, 10*time.Second, func(l map[string]any) bool {
		return l["request_id"] == "walks-away" && l["logger"] == "gateway.access"
	})
	if l["event"] != "Response body broken off" || l["broken_by"] != "client" || l["level"] != "error" {
		t.Fatalf("log line: got %v, want an error-level broken-off line blaming the client", l)
	}
	if out, _ := l["bytes_out"].(float64); out >= 1<<30 {
		t.Errorf("bytes_out: got %v, want what was sent before the client left", out)
	}
}

// TestStreamedDownloadHoldsItsInFlightSlot: a streamed response holds a
// slot until its last byte, not just until its headers: the transfer
// budget's while one is free, and its own request slot when none is. A
// download moved to the transfer budget leaves small requests served.
func TestStreamedDownloadHoldsItsInFlightSlot(t *testing.T) {
	m := startMock(t)
	g := startGateway(t, m.url, func(c *config.Config) {
		c.MaxInFlight, c.MaxInFlightTransfers, c.MaxQueued = 1, 1, 0
	})
	const slowBlob = "/api/v1/ingest/blob?size=1048576&stall_after=65536&stall_ms=800"
	first := get(t, g.url+slowBlob) // moves to the one transfer slot
	defer first.Body.Close()
	resp := get(t, g.url+"/api/v1/ingest/ping")
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("while a download holds the transfer slot: got %d, want 200", resp.StatusCode)
	}
	second := get(t, g.url+slowBlob) // no transfer slot: keeps its request slot
	defer second.Body.Close()
	resp = get(t, g.url+"/api/v1/ingest/ping")
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("while two downloads hold both slots: got %d, want 503", resp.StatusCode)
	}
	for _, body := range []io.ReadCloser{first.Body, second.Body} {
		if _, err := io.Copy(io.Discard, body); err != nil {
			t.Fatal(err)
		}
		body.Close()
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		resp := get(t, g.url+"/api/v1/ingest/ping")
		resp.Body.Close()
		if resp.StatusCode == 200 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the downloads: got %d, want 200 (slot never freed)", resp.StatusCode)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestBareAnswersAreSaneAndDiscreet: answers made before Fiber runs report
// a real latency, and their log lines do not quote the request.
func TestBareAnswersAreSaneAndDiscreet(t *testing.T) {
	m := startMock(t)
	g := startGateway(t, m.url, nil)
	for _, raw := range []string{
		"PROPFIND /api/v1/ingest/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"GET /api/v1/ingest/x HTTP/1.1\r\nAuthorization: Bearer SECRET-TOKEN\r\nCookie: s=SECRET-COOKIE\r\n\r\n",
	} {
		resp := rawRequest(t, g.addr, raw)
		resp.Body.Close()
		pt := strings.TrimSuffix(resp.Header.Get("X-Process-Time"), "ms")
		if ms, err := strconv.ParseFloat(pt, 64); err != nil || ms > 1000 {
			t.Errorf("%d: X-Process-Time %q, want a few ms at most", resp.StatusCode, resp.Header.Get("X-Process-Time"))
		}
	}
	time.Sleep(50 * time.Millisecond)
	g.logs.mu.Lock()
	logged := g.logs.buf.String()
	g.logs.mu.Unlock()
	for _, line := range strings.Split(logged, "\n") {
		if strings.Contains(line, "SECRET") {
			t.Errorf("a log line quotes the request's credentials: %s", line)
		}
	}
}

// TestServeStopsWhenCancelledBeforeStart: a signal that lands before the
// server has started must still end Serve.
func TestServeStopsWhenCancelledBeforeStart(t *testing.T) {
	cfg := config.Default()
	cfg.Host, cfg.Port, cfg.AdminPort = "127.0.0.1", 0, 0
	for range 5 {
		a := app.New(cfg, logging.New(io.Discard, slog.LevelInfo))
		ls, err := app.Listen(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		done := make(chan error, 1)
		go func() { done <- a.Serve(ctx, ls) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Serve with a cancelled context did not return")
		}
	}
}

// TestHTTP10ClientGetsCloseDelimitedBody: HTTP/1.0 has no chunked coding,
// so a body of unknown length (chunked from the ingest service, larger
// than what is read whole) goes to an HTTP/1.0 client as it is, ended by
// the connection's close, with neither Content-Length nor
// Transfer-Encoding; if the service breaks off, the client sees a reset,
// not an end. HTTP/1.1 clients still get it chunked on a kept-alive
// connection.
func TestHTTP10ClientGetsCloseDelimitedBody(t *testing.T) {
	doc := strings.Repeat("0123456789", 10_000)
	up := rawUpstream(t, func(c net.Conn) {
		req, _, err := readRequestHead(c)
		if err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n")
		for i := 0; i < len(doc); i += 30_000 {
			part := doc[i:min(i+30_000, len(doc))]
			fmt.Fprintf(c, "%x\r\n%s\r\n", len(part), part)
			if req.URL.Path == "/api/v1/broken" {
				return // Dies after the first chunk.
			}
		}
		io.WriteString(c, "0\r\n\r\n")
	})
	g := startGateway(t, up, nil)

	exchange := func(path, proto string) (head string, body []byte, err error) {
		c := dial(t, g.addr)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "GET %s %s\r\nHost: h\r\n\r\n", path, proto)
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return head, nil, err
			}
			if line == "\r\n" {
				break
			}
			head += line
		}
		body, err = io.ReadAll(br) // To the close.
		return head, body, err
	}

	head, body, err := exchange("/api/v1/ingest/doc", "HTTP/1.0")
	lower := strings.ToLower(head)
	if err != nil || string(body) != doc || strings.Contains(lower, "transfer-encoding") ||
		strings.Contains(lower, "content-length") || !strings.Contains(lower, "connection: close") ||
		!strings.HasPrefix(head, "HTTP/1.1 200 ") || !strings.Contains(lower, "x-process-time") {
		t.Errorf("HTTP/1.0: got %d body bytes (want the %d of the document, to the close; error %v), head:\n%s", len(body), len(doc), err, head)
	}

	if _, _, err := exchange("/api/v1/ingest/broken", "HTTP/1.0"); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("HTTP/1.0, upstream broke off: got error %v, want a reset, so the cut shows", err)
	}

	resp := get(t, g.url+"/api/v1/ingest/doc")
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(got) != doc || len(resp.TransferEncoding) != 1 || resp.Close {
		t.Errorf("HTTP/1.1: got %d bytes, error %v, transfer encoding %v, close %v; want the document chunked, kept alive", len(got), err, resp.TransferEncoding, resp.Close)
	}

	var access int
	for _, l := range g.logs.lines(t) {
		if l["logger"] == "gateway.access" && strings.HasPrefix(fmt.Sprint(l["path"]), "/api/v1/ingest/") {
			access++
		}
	}
	if access != 3 {
		t.Errorf("got %d access lines for the 3 proxied requests, want 3", access)
	}
}

// TestHTTP10CloseDelimitedBodyDrains: fasthttp's shutdown does not wait for
// a connection it handed over, so the gateway does: a SIGTERM in the middle
// of an HTTP/1.0 client's close-delimited body lets it finish (a close
// would otherwise read as its end), within the shutdown timeout.
func TestHTTP10CloseDelimitedBodyDrains(t *testing.T) {
	part := strings.Repeat("x", 20_000)
	const parts = 6
	up := rawUpstream(t, func(c net.Conn) {
		if _, _, err := readRequestHead(c); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
		for range parts {
			fmt.Fprintf(c, "%x\r\n%s\r\n", len(part), part)
			time.Sleep(100 * time.Millisecond)
		}
		io.WriteString(c, "0\r\n\r\n")
	})
	g := startGateway(t, up, func(c *config.Config) { c.ShutdownDelay = 0 })

	c := dial(t, g.addr)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /api/v1/ingest/doc HTTP/1.0\r\nHost: h\r\n\r\n")
	br := bufio.NewReader(c)
	if _, err := br.Peek(1); err != nil {
		t.Fatal(err)
	}
	g.stop() // As SIGTERM does, with the body under way.
	served := make(chan time.Time, 1)
	go func() {
		err := <-g.done
		served <- time.Now()
		g.done <- err // For the cleanup's check.
	}()
	resp, err := http.ReadResponse(br, &http.Request{Method: "GET", ProtoMajor: 1, ProtoMinor: 0})
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	ended := time.Now()
	if err != nil || len(body) != parts*len(part) {
		t.Errorf("got %d body bytes (error %v), want all %d", len(body), err, parts*len(part))
	}
	select {
	case at := <-served:
		// The body takes 600 ms; Serve returning well before its end
		// means the drain did not wait for it.
		if early := ended.Sub(at); early > 200*time.Millisecond {
			t.Errorf("Serve returned %v before the body's end, want after it", early)
		}
	case <-time.After(5 * time.Second):
		t.Error("Serve did not return after the body was sent")
	}
}

// TestHTTP10KeepAliveGetsOneConnectionHeader: an HTTP/1.0 client asking for
// keep-alive gets a close-delimited body with Connection: close alone, not
// also the keep-alive fasthttp would offer it.
func TestHTTP10KeepAliveGetsOneConnectionHeader(t *testing.T) {
	up := rawUpstream(t, func(c net.Conn) {
		if _, _, err := readRequestHead(c); err != nil {
			return
		}
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", 40_000, strings.Repeat("k", 40_000))
	})
	g := startGateway(t, up, nil)
	c := dial(t, g.addr)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /api/v1/ingest/doc HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n")
	out, err := io.ReadAll(c)
	head, body, _ := strings.Cut(string(out), "\r\n\r\n")
	if n := strings.Count(strings.ToLower(head), "\r\nconnection:"); err != nil || n != 1 ||
		!strings.Contains(strings.ToLower(head), "\r\nconnection: close") || len(body) != 40_000 {
		t.Errorf("got %d Connection headers, %d body bytes (error %v), want one, close, and all 40000; head:\n%s", n, len(body), err, head)
	}
}

// TestHTTP10BodyNotHandedOverIsClosed: when the client goes away before
// fasthttp hands its connection over (here, behind a pipelined response
// still held back), the close-delimited body is closed all the same: its
// upstream connection and in-flight slot are freed, and its access line
// written.
func TestHTTP10BodyNotHandedOverIsClosed(t *testing.T) {
	upClosed := make(chan error, 4)
	up := rawUpstream(t, func(c net.Conn) {
		req, _, err := readRequestHead(c)
		if err != nil {
			return
		}
		slow := req.URL.Path == "/api/v1/slow"
		if slow {
			time.Sleep(300 * time.Millisecond) // Meanwhile the client resets.
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
		if !slow {
			io.WriteString(c, "0\r\n\r\n")
			return
		}
		c.SetReadDeadline(time.Now().Add(4 * time.Second))
		_, err = c.Read(make([]byte, 1))
		upClosed <- err // EOF once the gateway closes it; a timeout if it leaked.
	})
	g := startGateway(t, up, func(c *config.Config) { c.MaxInFlight, c.MaxQueued = 1, 0 })

	c := dial(t, g.addr)
	io.WriteString(c, "GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /api/v1/ingest/slow HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	time.Sleep(100 * time.Millisecond)
	c.(*net.TCPConn).SetLinger(0)
	c.Close()

	select {
	case err := <-upClosed:
		if !errors.Is(err, io.EOF) {
			t.Errorf("the upstream connection of the request never sent: got %v, want it closed (EOF)", err)
		}
	case <-time.After(6 * time.Second):
		t.Fatal("the upstream never got the slow request")
	}
	// With one in-flight slot, the next proxied request must be served.
	resp := get(t, g.url+"/api/v1/ingest/other")
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("next proxied request: got %d, want 200 (the in-flight slot leaked)", resp.StatusCode)
	}
	n := 0
	for _, l := range g.logs.lines(t) {
		if l["logger"] == "gateway.access" && l["path"] == "/api/v1/ingest/slow" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("got %d access lines for the request never sent, want 1", n)
	}
}
