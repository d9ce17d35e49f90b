package e2e_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/atenex/gateway/ingestmock"
)

// rssLimit is the most a gateway may hold while bodies many times that size
// stream through it. FIBER-FACTS.md measured ≈ 25 MiB for a streaming
// Fiber proxy and 2–8 GiB for a buffering one.
const rssLimit = 64 * MiB

// transferTimeout bounds each big transfer, generously: a hang fails the
// test instead of blocking it until go test's own timeout.
const transferTimeout = 150 * time.Second

// uploadKind is how a test upload is framed.
type uploadKind string

const (
	// octetStream is a raw application/octet-stream body with a
	// Content-Length, sent to the sink route.
	octetStream uploadKind = "octet-stream"
	// multipartSized is a multipart/form-data body with an exact
	// Content-Length, sent to the upload route as the frontend does.
	multipartSized uploadKind = "multipart"
	// multipartChunked is the same form sent with chunked transfer coding,
	// as a client streaming a form of unknown length does.
	multipartChunked uploadKind = "multipart-chunked"
)

// received is what the mock ingest service says it got.
type received struct {
	status int
	bytes  int64
	sha256 string
	reply  string
}

func (r received) String() string {
	return fmt.Sprintf("status %d, %d bytes, sha256 %.12s…", r.status, r.bytes, r.sha256)
}

// check fails the test unless the mock got exactly n bytes of Pattern(n)
// (whose digest is sum) and answered wantStatus.
func (r received) check(t *testing.T, label string, wantStatus int, n int64, sum string) {
	t.Helper()
	if r.status != wantStatus || r.bytes != n || r.sha256 != sum {
		t.Errorf("%s: got status %d, %d bytes, sha256 %s; want status %d, %d bytes, sha256 %s (reply %.300s)",
			label, r.status, r.bytes, r.sha256, wantStatus, n, sum, r.reply)
	}
}

// wantStatus is the mock's success status for an upload of this kind.
func (k uploadKind) wantStatus() int {
	if k == octetStream {
		return http.StatusOK
	}
	return http.StatusAccepted
}

// sendUpload uploads Pattern(n) through the gateway, framed as kind.
func sendUpload(ctx context.Context, g *gateway, kind uploadKind, n int64) (received, error) {
	switch kind {
	case octetStream:
		return post(ctx, g.client, g.base+"/api/v1/ingest/sink", "application/octet-stream", ingestmock.Pattern(n), n)
	case multipartSized, multipartChunked:
		form, err := ingestmock.NewForm("report.pdf", "application/pdf", "metadata_json", `{"source":"e2e"}`)
		if err != nil {
			return received{}, err
		}
		length := form.Len(n)
		if kind == multipartChunked {
			length = -1
		}
		return post(ctx, g.client, g.base+"/api/v1/ingest/upload", form.ContentType, form.Body(ingestmock.Pattern(n)), length)
	}
	return received{}, fmt.Errorf("unknown upload kind %q", kind)
}

// post sends body to url and decodes the mock's reply, from the sink
// ({"bytes","sha256"}) or the upload route ({"file_size","sha256"}). n is
// the Content-Length, or -1 for a chunked body.
func post(ctx context.Context, c *http.Client, url, contentType string, body io.Reader, n int64) (received, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, body)
	if err != nil {
		return received{}, err
	}
	req.ContentLength = n
	req.Header.Set("Content-Type", contentType)
	resp, err := c.Do(req)
	if err != nil {
		return received{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return received{}, fmt.Errorf("reading the reply: %w", err)
	}
	var reply struct {
		Bytes    *int64 `json:"bytes"`
		FileSize *int64 `json:"file_size"`
		SHA256   string `json:"sha256"`
	}
	got := received{status: resp.StatusCode, reply: string(raw), bytes: -1}
	if json.Unmarshal(raw, &reply) == nil {
		got.sha256 = reply.SHA256
		switch {
		case reply.Bytes != nil:
			got.bytes = *reply.Bytes
		case reply.FileSize != nil:
			got.bytes = *reply.FileSize
		}
	}
	return got, nil
}

// uploadConcurrently sends count uploads of Pattern(n) at once and checks
// each; it returns how long they took together.
func uploadConcurrently(t *testing.T, g *gateway, kind uploadKind, n int64, count int, sum string) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), transferTimeout)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for i := range count {
		wg.Go(func() {
			got, err := sendUpload(ctx, g, kind, n)
			if err != nil {
				t.Errorf("%s upload %d: %v", kind, i, err)
				return
			}
			got.check(t, fmt.Sprintf("%s upload %d", kind, i), kind.wantStatus(), n, sum)
		})
	}
	wg.Wait()
	return time.Since(start)
}

// TestUpload512MiB sends one 512 MiB body of each framing through one
// gateway: the mock must get every byte, and the gateway must not hold the
// body in memory.
func TestUpload512MiB(t *testing.T) {
	const size = 512 * MiB
	sum := patternDigest(t, size)
	in := startIngest(t)
	g := startGateway(t, "", gatewayEnv(in.url))
	t.Logf("gateway RSS after start %.1f MiB", mib(g.peakRSS(t)))

	for _, kind := range []uploadKind{octetStream, multipartSized} {
		t.Run(string(kind), func(t *testing.T) {
			took := uploadConcurrently(t, g, kind, size, 1, sum)
			t.Logf("512 MiB %s upload in %v, %.0f MB/s; gateway peak RSS so far %.1f MiB",
				kind, took.Round(time.Millisecond), mbps(size, took), mib(g.peakRSS(t)))
		})
	}
	peak := g.checkPeakRSS(t, rssLimit)
	t.Logf("gateway peak RSS %.1f MiB after 2 × 512 MiB uploads", mib(peak))
}

// TestConcurrentUploads sends 8 uploads of 256 MiB at once, raw and as
// forms, each through a fresh gateway so its peak RSS is that row's; and a
// form with no Content-Length at all, which arrives chunked.
func TestConcurrentUploads(t *testing.T) {
	const size = 256 * MiB
	sum := patternDigest(t, size)
	in := startIngest(t)
	for _, row := range []struct {
		kind  uploadKind
		count int
	}{
		{octetStream, 8},
		{multipartSized, 8},
		{multipartChunked, 1},
	} {
		t.Run(string(row.kind), func(t *testing.T) {
			g := startGateway(t, "", gatewayEnv(in.url))
			took := uploadConcurrently(t, g, row.kind, size, row.count, sum)
			peak := g.checkPeakRSS(t, rssLimit)
			t.Logf("%d × 256 MiB %s uploads in %v, %.0f MB/s total; gateway peak RSS %.1f MiB",
				row.count, row.kind, took.Round(time.Millisecond), mbps(int64(row.count)*size, took), mib(peak))
		})
	}
}

// TestDownloads fetches 8 blobs of 256 MiB at once through a fresh gateway,
// with and without a Content-Length from the upstream.
func TestDownloads(t *testing.T) {
	const (
		size  = 256 * MiB
		count = 8
	)
	sum := patternDigest(t, size)
	in := startIngest(t)
	for _, row := range []struct {
		name  string
		query string
		// wantLength: the gateway must pass the upstream's Content-Length on.
		wantLength bool
	}{
		{"content-length", "", true},
		{"chunked", "&chunked=1", false},
	} {
		t.Run(row.name, func(t *testing.T) {
			g := startGateway(t, "", gatewayEnv(in.url))
			url := g.base + "/api/v1/ingest/blob?size=" + strconv.Itoa(size) + row.query
			ctx, cancel := context.WithTimeout(t.Context(), transferTimeout)
			defer cancel()
			var wg sync.WaitGroup
			start := time.Now()
			for i := range count {
				wg.Go(func() {
					n, got, resp, err := download(ctx, g.client, url)
					if err != nil {
						t.Errorf("download %d: %v", i, err)
						return
					}
					if resp.StatusCode != http.StatusOK || n != size || got != sum {
						t.Errorf("download %d: got status %d, %d bytes, sha256 %s; want 200, %d bytes, sha256 %s",
							i, resp.StatusCode, n, got, size, sum)
					}
					if row.wantLength && (resp.ContentLength != size || resp.Header.Get("Content-Length") != strconv.Itoa(size)) {
						t.Errorf("download %d: got Content-Length %q (parsed %d, transfer encoding %v), want %d",
							i, resp.Header.Get("Content-Length"), resp.ContentLength, resp.TransferEncoding, size)
					}
					if i == 0 {
						t.Logf("response framing: Content-Length %q, Transfer-Encoding %v", resp.Header.Get("Content-Length"), resp.TransferEncoding)
					}
				})
			}
			wg.Wait()
			took := time.Since(start)
			peak := g.checkPeakRSS(t, rssLimit)
			t.Logf("%d × 256 MiB %s downloads in %v, %.0f MB/s total; gateway peak RSS %.1f MiB",
				count, row.name, took.Round(time.Millisecond), mbps(count*size, took), mib(peak))
		})
	}
}

// download GETs url and streams the body through sha256, returning its
// length and digest; the body is closed.
func download(ctx context.Context, c *http.Client, url string) (int64, string, *http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, resp.Body, make([]byte, 64<<10))
	if err != nil {
		return n, "", resp, fmt.Errorf("reading the body after %d bytes: %w", n, err)
	}
	return n, hex.EncodeToString(h.Sum(nil)), resp, nil
}
