package e2e_test

import (
	"context"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestOverloadMemoryIsBounded drives the real binary at many times what it
// may serve at once: 1,024 connections against GATEWAY_MAX_IN_FLIGHT=64
// and a slow upstream (1 s a request). Every request must be served or
// refused quickly with 503 + Retry-After, the gateway's peak RSS must stay
// under 64 MiB, and it must serve normally as soon as the load drops.
func TestOverloadMemoryIsBounded(t *testing.T) {
	in := startIngest(t)
	g := startGateway(t, "", gatewayEnv(in.url, "GATEWAY_MAX_IN_FLIGHT=64"))
	const conns, perConn = 1024, 4
	const limit = 64 * MiB

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}}
	defer client.CloseIdleConnections()
	var served, refused, failed atomic.Int64
	var mu sync.Mutex
	var refusals []time.Duration
	var wg sync.WaitGroup
	start := time.Now()
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perConn {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				req, _ := http.NewRequestWithContext(ctx, "GET", g.base+"/api/v1/ingest/blob?size=1024&delay_ms=1000", nil)
				began := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					cancel()
					continue
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				cancel()
				switch {
				case err == nil && resp.StatusCode == 200:
					served.Add(1)
				case err == nil && resp.StatusCode == 503 && resp.Header.Get("Retry-After") != "":
					refused.Add(1)
					mu.Lock()
					refusals = append(refusals, time.Since(began))
					mu.Unlock()
				default:
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	peak := g.checkPeakRSS(t, limit)
	slices.Sort(refusals)
	var median time.Duration
	if len(refusals) > 0 {
		median = refusals[len(refusals)/2]
	}
	t.Logf("%d requests over %d connections in %s: %d served, %d refused (median refusal %s), %d failed; gateway peak RSS %.1f MiB",
		conns*perConn, conns, time.Since(start).Round(time.Millisecond), served.Load(), refused.Load(), median, failed.Load(), mib(peak))
	if failed.Load() != 0 {
		t.Errorf("%d requests were neither served nor refused with 503 + Retry-After", failed.Load())
	}
	if served.Load() == 0 || refused.Load() == 0 {
		t.Errorf("want both served and refused requests at 16× the in-flight limit")
	}
	if median > 500*time.Millisecond {
		t.Errorf("median refusal %s, want well under the 1 s an admitted request takes", median)
	}

	resp, err := http.Get(g.base + "/api/v1/ingest/ping")
	if err != nil {
		t.Fatalf("after the load: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("after the load: got %d, want 200", resp.StatusCode)
	}
}
