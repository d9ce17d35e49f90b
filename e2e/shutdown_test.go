package e2e_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/atenex/gateway/ingestmock"
)

// throttledReader passes on r in bursts, pausing after each, like a client
// on a slow link, and counts what has been read so a test can tell how far
// an upload has got.
type throttledReader struct {
	r     io.Reader
	burst int64
	pause time.Duration
	// inBurst is what the current burst has read; only Read touches it.
	inBurst int64
	read    atomic.Int64
}

func newThrottledReader(r io.Reader, burst int64, pause time.Duration) *throttledReader {
	return &throttledReader{r: r, burst: burst, pause: pause}
}

func (t *throttledReader) Read(p []byte) (int, error) {
	if t.inBurst >= t.burst {
		time.Sleep(t.pause)
		t.inBurst = 0
	}
	if rest := t.burst - t.inBurst; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := t.r.Read(p)
	t.inBurst += int64(n)
	t.read.Add(int64(n))
	return n, err
}

// TestSIGTERMDrainsInFlightUploads checks the drain on SIGTERM: uploads
// under way finish intact, new connections are not served, and the process
// exits 0; and when the drain outlasts GATEWAY_SHUTDOWN_TIMEOUT, the
// gateway exits anyway, on time, and the cut-off client sees a failure.
func TestSIGTERMDrainsInFlightUploads(t *testing.T) {
	t.Parallel()

	t.Run("drains", func(t *testing.T) {
		t.Parallel()
		const (
			size  = 24 * MiB
			count = 4
		)
		sum := patternDigest(t, size)
		in := startIngest(t)
		g := startGateway(t, "", gatewayEnv(in.url, "GATEWAY_SHUTDOWN_TIMEOUT=30"))

		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		bodies := make([]*throttledReader, count)
		results := make([]received, count)
		errs := make([]error, count)
		var wg sync.WaitGroup
		for i := range count {
			// 1 MiB per 40 ms: about a second per upload.
			bodies[i] = newThrottledReader(ingestmock.Pattern(size), MiB, 40*time.Millisecond)
			wg.Go(func() {
				results[i], errs[i] = post(ctx, g.client, g.base+"/api/v1/ingest/sink", "application/octet-stream", bodies[i], size)
			})
		}
		waitUntil(t, 10*time.Second, "every upload has sent 2 MiB and reached the mock", func() bool {
			for _, b := range bodies {
				if b.read.Load() < 2*MiB {
					return false
				}
			}
			return in.sinks.Load() >= count
		})
		sent, most := int64(size), int64(0)
		for _, b := range bodies {
			sent, most = min(sent, b.read.Load()), max(most, b.read.Load())
		}
		if most >= size {
			t.Fatal("an upload had finished before SIGTERM; nothing was in flight")
		}
		g.signal(t, syscall.SIGTERM)
		signalled := time.Now()

		// Once the gateway says it is draining, its listener is closed: a
		// new connection must not be proxied.
		if _, err := g.waitEvent("Shutting down: draining in-flight requests", 5*time.Second); err != nil {
			t.Fatal(err)
		}
		status, err := probeOnNewConnection(g.base + "/api/v1/ingest/ping")
		switch {
		case err != nil:
			t.Logf("new request after SIGTERM refused: %v", err)
		case status == http.StatusServiceUnavailable:
			t.Logf("new request after SIGTERM answered 503")
		default:
			t.Errorf("new request after SIGTERM: got status %d, want the connection refused or 503", status)
		}

		wg.Wait()
		finished := time.Since(signalled)
		for i := range count {
			if errs[i] != nil {
				t.Errorf("upload %d: got error %v, want it to finish during the drain", i, errs[i])
				continue
			}
			results[i].check(t, fmt.Sprintf("upload %d", i), http.StatusOK, size, sum)
		}

		code, took, ok := g.waitExit(35 * time.Second)
		if !ok {
			t.Fatal("gateway still running 35 s after the uploads finished")
		}
		if code != 0 {
			t.Errorf("got exit code %d, want 0", code)
		}
		if !hasEvent(logLines(t, g), "Shutdown complete") {
			t.Error(`no "Shutdown complete" line on stdout`)
		}
		t.Logf("SIGTERM with ≥ %.1f of %d MiB sent per upload; the %d uploads finished intact %v later; exit %v after the last",
			mib(sent), size/MiB, count, finished.Round(time.Millisecond), took.Round(time.Millisecond))
	})

	t.Run("drains downloads", func(t *testing.T) {
		t.Parallel()
		const (
			size  = 64 * MiB
			count = 2
		)
		sum := patternDigest(t, size)
		in := startIngest(t)
		g := startGateway(t, "", gatewayEnv(in.url, "GATEWAY_SHUTDOWN_TIMEOUT=30"))

		// On a fatal failure, cancel the downloads, then wait for them:
		// they report through t.
		var wg sync.WaitGroup
		defer wg.Wait()
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		bodies := make([]*throttledReader, count)
		for i := range count {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.base+"/api/v1/ingest/blob?size=67108864", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := g.client.Do(req)
			if err != nil {
				t.Fatalf("download %d: %v", i, err)
			}
			// 4 MiB per 40 ms: well over half a second per download, far
			// more than socket buffers hold.
			bodies[i] = newThrottledReader(resp.Body, 4*MiB, 40*time.Millisecond)
			wg.Go(func() {
				defer resp.Body.Close()
				h := sha256.New()
				n, err := io.Copy(h, bodies[i])
				if got := hex.EncodeToString(h.Sum(nil)); err != nil || n != size || got != sum {
					t.Errorf("download %d: got %d bytes, sha256 %s, error %v; want %d bytes, sha256 %s",
						i, n, got, err, size, sum)
				}
			})
		}
		waitUntil(t, 10*time.Second, "every download has read 2 MiB", func() bool {
			for _, b := range bodies {
				if b.read.Load() < 2*MiB {
					return false
				}
			}
			return true
		})
		g.signal(t, syscall.SIGTERM)
		signalled := time.Now()
		wg.Wait()
		finished := time.Since(signalled)
		code, took, ok := g.waitExit(35 * time.Second)
		if !ok {
			t.Fatal("gateway still running 35 s after the downloads finished")
		}
		if code != 0 {
			t.Errorf("got exit code %d, want 0", code)
		}
		t.Logf("the %d downloads finished intact %v after SIGTERM; exit %v after the last",
			count, finished.Round(time.Millisecond), took.Round(time.Millisecond))
	})

	t.Run("timeout cuts off", func(t *testing.T) {
		t.Parallel()
		const size = 64 * MiB
		in := startIngest(t)
		g := startGateway(t, "", gatewayEnv(in.url, "GATEWAY_SHUTDOWN_TIMEOUT=1"))

		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		// 256 KiB per 500 ms: two minutes for the whole body.
		body := newThrottledReader(ingestmock.Pattern(size), 256<<10, 500*time.Millisecond)
		type result struct {
			got received
			err error
		}
		done := make(chan result, 1)
		go func() {
			got, err := post(ctx, g.client, g.base+"/api/v1/ingest/sink", "application/octet-stream", body, size)
			done <- result{got, err}
		}()
		waitUntil(t, 10*time.Second, "the upload has reached the mock", func() bool {
			return body.read.Load() > 0 && in.sinks.Load() >= 1
		})

		g.signal(t, syscall.SIGTERM)
		code, took, ok := g.waitExit(5 * time.Second)
		if !ok {
			t.Fatal("gateway still running 5 s after SIGTERM with GATEWAY_SHUTDOWN_TIMEOUT=1")
		}
		if code != 0 {
			t.Errorf("got exit code %d, want 0", code)
		}
		// It must have waited for the upload, but not much longer than the
		// timeout: 200 ms of log flushing and process exit are the margin.
		if took < 900*time.Millisecond || took > 3*time.Second {
			t.Errorf("gateway exited %v after SIGTERM, want about 1 s (0.9 s to 3 s)", took.Round(time.Millisecond))
		}
		lines := logLines(t, g)
		if !hasEvent(lines, "Shutdown complete") {
			t.Error(`no "Shutdown complete" line on stdout`)
		}
		warned := false
		for _, m := range lines {
			warned = warned || m["level"] == "warning"
		}
		if !warned {
			t.Error("no warning line about the cut-off request on stdout")
		}

		var r result
		select {
		case r = <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("the cut-off upload still had no outcome 20 s after the gateway exited")
		}
		if r.err == nil && r.got.status < 300 {
			t.Errorf("cut-off upload: got %v, want an error or a failure status", r.got)
		}
		t.Logf("exit %v after SIGTERM (timeout 1 s) with %.2f of %d MiB sent; the client saw: %v %v",
			took.Round(time.Millisecond), mib(body.read.Load()), size/MiB, r.err, r.got.reply)
	})
}

// probeOnNewConnection GETs url on a connection of its own and returns the
// status, or the error if there is no answer.
func probeOnNewConnection(url string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}
