package e2e_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/atenex/gateway/ingestmock"
)

// TestLogLines checks the log format from outside: every stdout line is a
// JSON object with the keys log queries rely on, and every request gets
// exactly one access line carrying the X-Request-ID the client saw.
func TestLogLines(t *testing.T) {
	t.Parallel()
	in := startIngest(t)
	g := startGateway(t, "", gatewayEnv(in.url))
	// A second gateway in front of a closed port answers 503.
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + closed.Addr().String()
	closed.Close()
	down := startGateway(t, "", gatewayEnv(closedURL))

	longID := strings.Repeat("x", 200)
	type sent struct {
		gw     *gateway
		method string
		path   string
		status int
		id     string
	}
	var done []sent
	for _, row := range []struct {
		name       string
		gw         *gateway
		method     string
		target     string
		body       int64  // bytes of Pattern to send
		sendID     string // X-Request-ID to send, if any
		wantStatus int
		wantBody   int64 // bytes of Pattern expected back, or -1 for any
	}{
		{"proxied", g, http.MethodGet, "/api/v1/ingest/ping", 0, "", http.StatusOK, -1},
		{"not found", g, http.MethodGet, "/nope", 0, "", http.StatusNotFound, -1},
		{"upstream 500", g, http.MethodGet, "/api/v1/ingest/status/500", 0, "", http.StatusInternalServerError, -1},
		{"streamed download", g, http.MethodGet, "/api/v1/ingest/blob?size=1048576", 0, "", http.StatusOK, MiB},
		{"upload", g, http.MethodPost, "/api/v1/ingest/sink", 100 << 10, "", http.StatusOK, -1},
		{"client request ID", g, http.MethodGet, "/api/v1/ingest/ping", 0, "e2e-chosen-id", http.StatusOK, -1},
		{"oversized request ID", g, http.MethodGet, "/api/v1/ingest/ping", 0, longID, http.StatusOK, -1},
		{"upstream down", down, http.MethodGet, "/api/v1/ingest/ping", 0, "", http.StatusServiceUnavailable, -1},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		var body io.Reader
		if row.body > 0 {
			body = ingestmock.Pattern(row.body)
		}
		req, err := http.NewRequestWithContext(ctx, row.method, row.gw.base+row.target, body)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = row.body
		if row.sendID != "" {
			req.Header.Set("X-Request-ID", row.sendID)
		}
		resp, err := row.gw.client.Do(req)
		if err != nil {
			cancel()
			t.Fatalf("%s: %s %s: %v", row.name, row.method, row.target, err)
		}
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		resp.Body.Close()
		cancel()
		if err != nil {
			t.Errorf("%s: reading the body: %v", row.name, err)
		}
		if resp.StatusCode != row.wantStatus {
			t.Errorf("%s: got status %d, want %d", row.name, resp.StatusCode, row.wantStatus)
		}
		if row.wantBody >= 0 {
			if sum := hex.EncodeToString(h.Sum(nil)); n != row.wantBody || sum != patternDigest(t, row.wantBody) {
				t.Errorf("%s: got %d bytes, sha256 %s; want %d bytes of the pattern", row.name, n, sum, row.wantBody)
			}
		}
		id := resp.Header.Get("X-Request-ID")
		switch {
		case row.sendID == "e2e-chosen-id" && id != row.sendID:
			t.Errorf("%s: got X-Request-ID %q, want the client's %q", row.name, id, row.sendID)
		case id == "" || id == longID:
			t.Errorf("%s: got X-Request-ID %.40q, want a fresh ID", row.name, id)
		}
		u, _ := url.Parse(row.target)
		done = append(done, sent{row.gw, row.method, u.Path, resp.StatusCode, id})
	}

	g.stop(t, 10*time.Second)
	down.stop(t, 10*time.Second)
	lines := map[*gateway][]map[string]any{g: logLines(t, g), down: logLines(t, down)}
	t.Logf("%d + %d stdout lines, all JSON with timestamp, level, logger and event", len(lines[g]), len(lines[down]))

	for _, s := range done {
		var access []map[string]any
		for _, m := range lines[s.gw] {
			if m["event"] == "Request completed" && m["request_id"] == s.id {
				access = append(access, m)
			}
		}
		if len(access) != 1 {
			t.Errorf("%s %s (%s): got %d access lines with its request ID, want 1: %v", s.method, s.path, s.id, len(access), access)
			continue
		}
		m := access[0]
		for key, want := range map[string]string{"method": s.method, "path": s.path, "client_ip": "127.0.0.1"} {
			if got, ok := m[key].(string); !ok || got != want {
				t.Errorf("%s %s: access line %s: got %#v, want %q", s.method, s.path, key, m[key], want)
			}
		}
		if got, ok := m["status_code"].(float64); !ok || got != float64(s.status) {
			t.Errorf("%s %s: access line status_code: got %#v, want the number %d", s.method, s.path, m["status_code"], s.status)
		}
		if got, ok := m["duration_ms"].(float64); !ok || got < 0 {
			t.Errorf("%s %s: access line duration_ms: got %#v, want a number ≥ 0", s.method, s.path, m["duration_ms"])
		}
	}
}
