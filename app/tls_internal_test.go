package app

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/atenex/gateway/config"
	"github.com/atenex/gateway/ingestmock"
	"github.com/atenex/gateway/logging"
)

// TestHTTPSUpstream checks an https ingest URL end to end: requests reach
// the service (fasthttp's TLS client refuses an http:// request), and a
// large upload arrives whole, copied rather than spliced, on a connection
// that stays open.
func TestHTTPSUpstream(t *testing.T) {
	up := httptest.NewTLSServer(ingestmock.New("/api/v1"))
	defer up.Close()
	cfg := config.Default()
	cfg.IngestURL, _ = url.Parse(up.URL)
	cfg.Host, cfg.Port, cfg.AdminPort = "127.0.0.1", 0, 0
	a := New(cfg, logging.New(io.Discard, slog.LevelError))
	// The test server's certificate is its own; trust it here only.
	a.upstream.TLSConfig = &tls.Config{RootCAs: up.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}
	ls, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ls) }()
	defer func() { cancel(); <-done }()

	c, err := net.DialTimeout("tcp", ls.Public.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	for _, size := range []int{0, 4 << 20} {
		body := bytes.Repeat([]byte{7}, size)
		sum := sha256.Sum256(body)
		go fmt.Fprintf(c, "POST /api/v1/ingest/sink HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", size, body)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !bytes.Contains(got, []byte(hex.EncodeToString(sum[:]))) {
			t.Fatalf("%d-byte upload: got %d %s, want 200 with its SHA-256", size, resp.StatusCode, got)
		}
		if resp.Close {
			t.Errorf("%d-byte upload over https closed the client's connection", size)
		}
	}
}
