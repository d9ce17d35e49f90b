// Command bench is the gateway's load-test kit. It compares, side by side
// on this machine, three ways for clients to reach the same upstream, the
// mock ingest service (cmd/ingestmock):
//
//	direct   clients talk to the mock itself:        /api/v1/<x>
//	nginx    nginx as a streaming reverse proxy:     /api/v1/ingest/<x>
//	gateway  the gateway binary, production defaults: /api/v1/ingest/<x>
//
// Usage:
//
//	go run ./bench -gateway bin/gateway -mock bin/ingestmock [-rounds 3]
//	    [-duration 5s] [-size 256MiB] [-concurrency 8]
//	    [-only get,post1k,upload,multipart,download] [-out results.md]
//
// (make bench builds both binaries and runs it.) Rounds are interleaved, so
// that drift on the machine hits every target alike: each round starts, for
// each target in turn, a fresh mock and a fresh proxy on free 127.0.0.1
// ports, runs every test, and stops both. The tests are two request-rate
// runs of wrk (GET /ping, POST of 1 KiB of JSON to /sink) and three
// big-transfer runs (-concurrency concurrent uploads, multipart uploads and
// downloads of -size bytes each, every body checked by length and CRC-32C).
// For the proxies, the kit also reads their peak RSS per test and their CPU
// time, and for the gateway its start-up time and idle RSS.
//
// The report, a markdown table of medians over the rounds with each
// proxy's throughput relative to direct and to nginx (ratios taken within a
// round, then their median), followed by every round's raw figures, goes to
// stdout and to -out; progress goes to stderr. The kit exits non-zero if
// any request failed or any process misbehaved.
//
// wrk and nginx are installed with apt-get when missing (as root); a peer
// that cannot be had is skipped, and the report says so. No traffic leaves
// 127.0.0.1.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, a second one gets the default action: exit now.
	go func() { <-ctx.Done(); stop() }()
	if err := run(ctx, os.Args, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
