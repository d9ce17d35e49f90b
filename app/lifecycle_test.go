package app_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/atenex/gateway/config"
	"github.com/atenex/gateway/ingestmock"
)

// TestRollingRestart plays a Kubernetes rollout: a steady stream of
// requests and ten uploads in flight when shutdown starts. /health must
// turn 503 at once while requests are still served for the shutdown delay;
// then the listener closes, the uploads finish whole, and not one request
// that was accepted fails.
func TestRollingRestart(t *testing.T) {
	m := startMock(t)
	const delay = 600 * time.Millisecond
	g := startGateway(t, m.url, func(c *config.Config) {
		c.ShutdownDelay = delay
		c.ShutdownTimeout = 20 * time.Second
	})

	const uploadSize = 6 << 20
	var uploadsStarted sync.WaitGroup
	uploadErrs := make(chan error, 10)
	for i := range 10 {
		uploadsStarted.Add(1)
		go func() {
			uploadErrs <- slowUpload(g.url, int64(uploadSize), &uploadsStarted)
		}()
		_ = i
	}
	uploadsStarted.Wait() // every upload has sent its first bytes

	stop := make(chan struct{})
	var served, refused atomic.Int64
	var failures sync.Map // request ID → what went wrong
	var steady sync.WaitGroup
	for w := range 4 {
		steady.Add(1)
		go func() {
			defer steady.Done()
			client := &http.Client{Timeout: 10 * time.Second}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("steady-%d-%d", w, i)
				req, _ := http.NewRequest("GET", g.url+"/api/v1/ingest/ping", nil)
				req.Header.Set("X-Request-ID", id)
				resp, err := client.Do(req)
				switch {
				case err != nil && isRefused(err):
					refused.Add(1)
					time.Sleep(5 * time.Millisecond)
				case err != nil:
					failures.Store(id, err.Error())
				default:
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == 200 {
						served.Add(1)
					} else {
						failures.Store(id, fmt.Sprintf("status %d", resp.StatusCode))
					}
				}
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)

	g.stop() // SIGTERM
	shutdownAt := time.Now()
	time.Sleep(50 * time.Millisecond)
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Get(g.url + "/health")
	if err != nil {
		t.Fatalf("/health during the shutdown delay: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/health during the shutdown delay: got %d, want 503", resp.StatusCode)
	}
	servedBefore := served.Load()
	time.Sleep(delay / 2)
	if served.Load() == servedBefore {
		t.Errorf("no request was served during the shutdown delay")
	}

	for range 10 {
		if err := <-uploadErrs; err != nil {
			t.Errorf("upload in flight at shutdown: %v", err)
		}
	}
	select {
	case err := <-g.done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
		g.done <- nil // for the cleanup
	case <-time.After(20 * time.Second):
		t.Fatal("Serve did not return after the uploads finished")
	}
	close(stop)
	steady.Wait()
	// A connection the kernel completed but the gateway never accepted is
	// reset when the listener closes; its request never reached the
	// gateway, and counts as refused. A request that did reach it has an
	// access line, and must not have failed.
	accepted := map[any]bool{}
	for _, l := range g.logs.lines(t) {
		if l["logger"] == "gateway.access" {
			accepted[l["request_id"]] = true
		}
	}
	unaccepted := 0
	failures.Range(func(id, what any) bool {
		if accepted[id] || strings.HasPrefix(what.(string), "status") {
			t.Errorf("an accepted request failed: %s: %v", id, what)
		} else {
			unaccepted++
		}
		return true
	})
	t.Logf("steady requests: %d served, %d refused after the listener closed, %d reset before they were accepted; shutdown took %s",
		served.Load(), refused.Load(), unaccepted, time.Since(shutdownAt))
}

// slowUpload sends n bytes of the pattern to /sink in 256 KiB pieces
// 20 ms apart, marking started once the first piece is sent, and checks
// the upstream's count and checksum.
func slowUpload(base string, n int64, started *sync.WaitGroup) error {
	pr, pw := io.Pipe()
	go func() {
		src := ingestmock.Pattern(n)
		buf := make([]byte, 256<<10)
		first := true
		for {
			k, err := src.Read(buf)
			if k > 0 {
				if _, werr := pw.Write(buf[:k]); werr != nil {
					return
				}
				if first {
					started.Done()
					first = false
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err != nil {
				pw.Close()
				return
			}
		}
	}()
	req, _ := http.NewRequest("POST", base+"/api/v1/ingest/sink", pr)
	req.ContentLength = n
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var got struct {
		Bytes  int64  `json:"bytes"`
		SHA256 string `json:"sha256"`
	}
	if err := jsonDecode(resp.Body, &got); err != nil {
		return err
	}
	if resp.StatusCode != 200 || got.Bytes != n || got.SHA256 != patternSHA(n) {
		return fmt.Errorf("got %d, %d bytes, sha256 %s; want 200, %d bytes, %s", resp.StatusCode, got.Bytes, got.SHA256, n, patternSHA(n))
	}
	return nil
}

func isRefused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED)
}

// TestNoLeaksAfterFaults sends 10,000 requests through each kind of fault
// and checks that goroutines, file descriptors and memory come back to
// where they were.
func TestNoLeaksAfterFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 60,000 requests")
	}
	const perKind = 10_000
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String()
	ln.Close()
	kinds := []struct {
		name, upstream string
		timeout        time.Duration
	}{
		{"refused", refused, time.Second},
		{"reset", rawUpstream(t, func(c net.Conn) {
			readRequestHead(c)
			c.(*net.TCPConn).SetLinger(0)
		}), time.Second},
		{"garbage", rawUpstream(t, func(c net.Conn) {
			readRequestHead(c)
			io.WriteString(c, "garbage\r\n\r\n")
		}), time.Second},
		{"timeout", rawUpstream(t, func(c net.Conn) {
			readRequestHead(c)
			time.Sleep(100 * time.Millisecond)
		}), 20 * time.Millisecond},
		{"mid-body", rawUpstream(t, func(c net.Conn) {
			readRequestHead(c)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
			c.Write(make([]byte, 30000))
		}), time.Second},
	}

	// Warm up the runtime and the test's own client before the baseline.
	base := startMock(t)
	warm := startGateway(t, base.url, nil)
	resp := get(t, warm.url+"/api/v1/ingest/ping")
	resp.Body.Close()
	warm.logs.reset()

	goroutines, fds, heap := snapshot()
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			g := startGateway(t, k.upstream, func(c *config.Config) { c.UpstreamTimeout = k.timeout })
			hammer(t, g.url+"/api/v1/ingest/x", perKind)
			g.stop()
			<-g.done
			g.done <- nil
			g.logs.reset() // the test's copy of the logs is not the gateway's memory
		})
	}
	t.Run("client abort", func(t *testing.T) {
		g := startGateway(t, base.url, nil)
		var wg sync.WaitGroup
		sem := make(chan struct{}, 64)
		for range perKind {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				c, err := net.Dial("tcp", g.addr)
				if err != nil {
					return
				}
				io.WriteString(c, "POST /api/v1/ingest/sink HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
				c.Write(make([]byte, 20000))
				c.Close()
			}()
		}
		wg.Wait()
		g.stop()
		<-g.done
		g.done <- nil
		g.logs.reset()
	})

	// Whatever is left must drain: poll, as connections close
	// asynchronously.
	deadline := time.Now().Add(10 * time.Second)
	var g2, f2 int
	var h2 uint64
	for {
		g2, f2, h2 = snapshot()
		if (g2 <= goroutines+10 && f2 <= fds+10) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("goroutines %d → %d, open fds %d → %d, heap in use %.1f → %.1f MiB",
		goroutines, g2, fds, f2, float64(heap)/(1<<20), float64(h2)/(1<<20))
	if g2 > goroutines+10 {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		t.Errorf("goroutines: got %d, want at most %d\n%s", g2, goroutines+10, buf[:n])
	}
	if f2 > fds+10 {
		t.Errorf("open file descriptors: got %d, want at most %d", f2, fds+10)
	}
	if h2 > heap+32<<20 {
		t.Errorf("heap in use grew from %d to %d bytes, want under 32 MiB growth", heap, h2)
	}
}

// hammer sends n GETs to url from 64 workers, reading every answer whole
// or until it breaks.
func hammer(t *testing.T, url string, n int) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	var next atomic.Int64
	var answered atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
				resp, err := client.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					answered.Add(1)
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	if answered.Load() < int64(n)*9/10 {
		t.Errorf("only %d of %d requests got an answer", answered.Load(), n)
	}
}

// snapshot reports the goroutines, open file descriptors and heap in use
// after a garbage collection.
func snapshot() (goroutines, fds int, heap uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	entries, _ := os.ReadDir("/proc/self/fd")
	return runtime.NumGoroutine(), len(entries), ms.HeapInuse
}
