package e2e_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// oneRequestPerConnection opens n connections at once, each sending one
// GET for path and reading the answer, and returns the status of each (0:
// no answer) and the latency of each.
func oneRequestPerConnection(addr, path string, n int) ([]int, []time.Duration) {
	statuses := make([]int, n)
	took := make([]time.Duration, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			began := time.Now()
			defer func() { took[i] = time.Since(began) }()
			c, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n", path); err != nil {
				return
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		}()
	}
	close(start)
	wg.Wait()
	return statuses, took
}

// TestBurstsOfConnectionsAreAllServed: 1,000 and then 3,000 clients, one
// connection and one small GET each, all at once (issue 11: 437 of 1,000
// used to get an instant 503). Beyond GATEWAY_MAX_IN_FLIGHT they wait in
// the queue, and every one is answered 200.
func TestBurstsOfConnectionsAreAllServed(t *testing.T) {
	in := startIngest(t)
	g := startGateway(t, "", gatewayEnv(in.url))
	for _, n := range []int{1000, 3000} {
		statuses, took := oneRequestPerConnection(g.addr, "/api/v1/ingest/ping", n)
		counts := map[int]int{}
		for _, s := range statuses {
			counts[s]++
		}
		slices.Sort(took)
		t.Logf("%d connections: statuses %v, latency p50 %v, max %v", n, counts, took[n/2], took[n-1])
		if counts[200] != n {
			t.Errorf("%d connections at once: %v (0 = no answer); want all %d answered 200", n, counts, n)
		}
	}
}

// TestSlowUploadsDoNotStarveSmallRequests: 600 uploads trickling in (more
// than the 512 transfer slots, so some queue), and meanwhile 2,000 small
// requests: the uploads have a budget of their own, so every small request
// is answered 200, each within 1 s.
func TestSlowUploadsDoNotStarveSmallRequests(t *testing.T) {
	in := startIngest(t)
	// The upstream pool must hold both budgets for them to be independent.
	g := startGateway(t, "", gatewayEnv(in.url, "GATEWAY_HTTP_CLIENT_MAX_CONNECTIONS=1100"))
	const uploads, small = 600, 2000
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for range uploads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", g.addr)
			if err != nil {
				return
			}
			defer c.Close()
			fmt.Fprintf(c, "POST /api/v1/ingest/sink HTTP/1.1\r\nHost: gw\r\nContent-Type: application/pdf\r\nContent-Length: %d\r\n\r\n", 8<<20)
			chunk := make([]byte, 1024)
			tick := time.NewTicker(100 * time.Millisecond) // 10 KB/s: minutes for 8 MiB
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
					if _, err := c.Write(chunk); err != nil {
						return
					}
				}
			}
		}()
	}
	waitUntil(t, 20*time.Second, "512 uploads in flight at the ingest service", func() bool { return in.sinks.Load() >= 512 })

	var slow, failed atomic.Int64
	var mu sync.Mutex
	var worst time.Duration
	var swg sync.WaitGroup
	for range 50 {
		swg.Add(1)
		go func() {
			defer swg.Done()
			for range small / 50 {
				began := time.Now()
				resp, err := g.client.Get(g.base + "/api/v1/ingest/ping")
				took := time.Since(began)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
				}
				if took > time.Second {
					slow.Add(1)
				}
				mu.Lock()
				worst = max(worst, took)
				mu.Unlock()
			}
		}()
	}
	swg.Wait()
	t.Logf("%d small requests beside %d trickling uploads: %d failed, %d over 1 s, slowest %v",
		small, uploads, failed.Load(), slow.Load(), worst)
	if failed.Load() != 0 || slow.Load() != 0 {
		t.Errorf("%d small requests failed and %d took over 1 s; want every one 200 within 1 s", failed.Load(), slow.Load())
	}
	if n := in.sinks.Load(); n > 512 {
		t.Errorf("the ingest service saw %d uploads; the transfer budget is 512", n)
	}
}
