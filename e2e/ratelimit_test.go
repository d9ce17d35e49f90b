package e2e_test

import (
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/atenex/gateway/ratelimit/redistest"
)

// TestRateLimitSharedAcrossReplicas: two gateway processes sharing one
// Redis hold one client to the limit together, within 10 % over 10 s, as
// the replicas of a Deployment do; in memory each would allow it once.
func TestRateLimitSharedAcrossReplicas(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	in := startIngest(t)
	const (
		limit   = 100 // per second
		burst   = 10
		run     = 10 * time.Second
		workers = 4                     // per gateway
		every   = 20 * time.Millisecond // per worker: 400/s offered in all, 4× the limit
	)
	env := gatewayEnv(in.url, "GATEWAY_RATE_LIMIT=100/s", "GATEWAY_RATE_LIMIT_BURST=10",
		"GATEWAY_RATE_LIMIT_STORE="+srv.URL())
	replicas := []*gateway{startGateway(t, "", env), startGateway(t, "", env)}

	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	start := time.Now()
	for _, g := range replicas {
		for range workers {
			wg.Go(func() {
				tick := time.NewTicker(every)
				defer tick.Stop()
				for time.Since(start) < run {
					<-tick.C
					status := 0
					if resp, err := g.client.Get(g.base + "/api/v1/ingest/echo"); err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						status = resp.StatusCode
					}
					mu.Lock()
					statuses[status]++
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	took := time.Since(start).Seconds()
	want := burst + limit*took
	got := float64(statuses[http.StatusOK])
	t.Logf("%.1f s: %v (200s: %.0f, want %.0f)", took, statuses, got, want)
	if got < 0.9*want || got > 1.1*want {
		t.Errorf("two replicas allowed %.0f requests in %.1f s, want %.0f ± 10 %% (the limit once, not per replica)", got, took, want)
	}
	if n := len(statuses) - 2; statuses[http.StatusTooManyRequests] == 0 || n > 0 {
		t.Errorf("got statuses %v, want only 200 and 429", statuses)
	}
}
