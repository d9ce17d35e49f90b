package main

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// rateWorkers is the fixed number of vegeta workers (and so of keepalive
// connections) of the constant-rate test, the same for every target: an
// open-loop generator that grew workers under a slow target would open
// connections the others never see, and the comparison would not be fair.
const rateWorkers = 16

// rateProcs is the kit's GOMAXPROCS during a constant-rate run: vegeta
// runs in the kit's process and shares the machine's 2 cores with the
// target and the mock; one core's worth of it is plenty for the rates a
// 2-core machine's proxies take, and leaves the same room to every target.
const rateProcs = 1

// rateOutcome is one constant-rate run of small GETs against one target.
type rateOutcome struct {
	offered, achieved  float64 // req/s
	requests           uint64
	success            float64 // ratio of 2xx answers, 0 to 1
	p50, p90, p99, max time.Duration
	errs               []string // vegeta's distinct error messages
}

// runRate offers rate GETs per second to url for d, open loop: vegeta sends
// on schedule whether or not earlier answers have come, so a slow target
// shows up as latency, not as a lower offered rate. Bounded by d and by
// ctx.
func runRate(ctx context.Context, url string, rate int, d time.Duration) rateOutcome {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(rateProcs))
	targeter := vegeta.NewStaticTargeter(vegeta.Target{Method: http.MethodGet, URL: url})
	atk := vegeta.NewAttacker(
		vegeta.Workers(rateWorkers), vegeta.MaxWorkers(rateWorkers),
		vegeta.Connections(rateWorkers), vegeta.MaxConnections(rateWorkers),
		vegeta.KeepAlive(true), vegeta.HTTP2(false), vegeta.Timeout(5*time.Second),
	)
	var m vegeta.Metrics
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			atk.Stop()
		case <-done:
		}
	}()
	for r := range atk.Attack(targeter, vegeta.Rate{Freq: rate, Per: time.Second}, d, "rate") {
		m.Add(r)
	}
	close(done)
	m.Close()
	return rateFromMetrics(float64(rate), &m)
}

// rateFromMetrics turns vegeta's closed metrics into a rateOutcome.
func rateFromMetrics(offered float64, m *vegeta.Metrics) rateOutcome {
	return rateOutcome{
		offered: offered, achieved: m.Throughput, requests: m.Requests, success: m.Success,
		p50: m.Latencies.P50, p90: m.Latencies.P90, p99: m.Latencies.P99, max: m.Latencies.Max,
		errs: m.Errors,
	}
}

// row is the outcome as a markdown table row for target.
func (o rateOutcome) row(target string) string {
	return fmt.Sprintf("| %s | %.0f | %.0f | %.2f %% | %s | %s | %s | %s |",
		target, o.offered, o.achieved, o.success*100, ms(o.p50), ms(o.p90), ms(o.p99), ms(o.max))
}
