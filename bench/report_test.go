package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want float64
	}{
		{"none", nil, 0},
		{"one", []float64{7}, 7},
		{"odd", []float64{3, 1, 2}, 2},
		{"even", []float64{4, 1, 3, 2}, 2.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := median(tt.in); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestThousands(t *testing.T) {
	tests := map[float64]string{0: "0", 999.4: "999", 1000: "1,000", 1234567.8: "1,234,568", -1234: "-1,234"}
	for in, want := range tests {
		if got := thousands(in); got != want {
			t.Errorf("thousands(%v): got %q, want %q", in, got, want)
		}
	}
}

// TestRatioWithinRounds checks that ratios pair each round with itself:
// the median of per-round ratios, not the ratio of medians.
func TestRatioWithinRounds(t *testing.T) {
	rep := &report{opts: options{rounds: 3, tests: []string{testGet}, targets: allTargets()}}
	add := func(target string, values ...float64) {
		for i, v := range values {
			rep.results = append(rep.results, result{round: i + 1, target: target, test: testGet, value: v, p99: time.Millisecond})
		}
	}
	// Round 2 is slow for everyone; within each round the gateway does
	// half of direct.
	add(targetDirect, 100, 10, 90)
	add(targetGateway, 50, 5, 45)
	add(targetNginx, 80, 8, 90)

	if got, ok := rep.ratio(testGet, targetGateway, targetDirect); !ok || got != 0.5 {
		t.Errorf("gateway vs direct: got %v (%v), want 0.5", got, ok)
	}
	if got, ok := rep.ratio(testGet, targetGateway, targetNginx); !ok || got != 0.625 {
		t.Errorf("gateway vs nginx: got %v (%v), want 0.625 (the median of 0.625, 0.625, 0.5)", got, ok)
	}
	if _, ok := rep.ratio(testUpload, targetGateway, targetDirect); ok {
		t.Errorf("got a ratio for a test without results")
	}

	md := rep.markdown()
	for _, want := range []string{
		"| get | gateway | 45 req/s | 1.00 ms | — | 0 | 0.50 | 0.62 |",
		"| get | direct | 90 req/s | 1.00 ms | — | 0 | — | 1.25 |",
		"No errors.",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

func TestFailuresCountErrorsAndProblems(t *testing.T) {
	rep := &report{opts: options{rounds: 3, tests: []string{testUpload}, targets: []string{targetGateway}}}
	r := result{round: 1, target: targetGateway, test: testUpload}
	r.addError(errString("status 502"))
	r.addError(errString("status 502"))
	rep.results = append(rep.results, r)
	rep.problem("round %d gateway: %s", 1, "exited early")
	if got := rep.failures(); got != 3 {
		t.Errorf("got %d failures, want 3", got)
	}
	md := rep.markdown()
	for _, want := range []string{"**2 errors**", "round 1 gateway: exited early", "**FAILED: 3 failures"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

// TestProxyCost checks the CPU table's per-unit column: the proxy's CPU
// per request for wrk tests, per MB for transfers, median over rounds,
// and none for direct.
func TestProxyCost(t *testing.T) {
	rep := &report{opts: options{rounds: 3, tests: []string{testGet, testUpload}, targets: []string{targetDirect, targetGateway}}}
	for round, v := range []float64{10000, 20000, 12500} {
		// 50% of a core at 10,000 req/s is 50 µs a request.
		rep.results = append(rep.results,
			result{round: round + 1, target: targetGateway, test: testGet, value: v, cpu: cpuUse{proxy: 50}},
			result{round: round + 1, target: targetDirect, test: testGet, value: 2 * v, cpu: cpuUse{proxy: -1}},
			// 25% of a core at 500 MB/s is 0.5 ms a MB.
			result{round: round + 1, target: targetGateway, test: testUpload, value: 500, cpu: cpuUse{proxy: 25}})
	}
	md := rep.markdown()
	for _, want := range []string{
		"| get | gateway | 0% | 50% | 0% | 0% | 40.0 µs/req |", // the median of 50, 25 and 40
		"| get | direct | 0% | — | 0% | 0% | — |",
		"| upload | gateway | 0% | 25% | 0% | 0% | 0.50 ms/MB |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

// errString is an error with a fixed message.
type errString string

func (e errString) Error() string { return string(e) }

// TestRateTable checks the constant-rate table: medians over rounds, the
// proxy's CPU per request, and the p99 against nginx's median p99.
func TestRateTable(t *testing.T) {
	rep := &report{opts: options{rounds: 3, tests: []string{testRate50}, targets: allTargets()}, maxRate: 10000}
	add := func(target string, proxyCPU float64, p99s ...time.Duration) {
		for i, p99 := range p99s {
			rep.results = append(rep.results, result{round: i + 1, target: target, test: testRate50,
				offered: 5000, value: 5000, success: 1, p99: p99, cpu: cpuUse{proxy: proxyCPU}})
		}
	}
	add(targetDirect, -1, time.Millisecond, time.Millisecond, time.Millisecond)
	add(targetNginx, 25, 2*time.Millisecond, 9*time.Millisecond, 2*time.Millisecond)
	add(targetGateway, 50, 3*time.Millisecond, 3*time.Millisecond, 1*time.Millisecond)

	var b strings.Builder
	rep.rateTable(func(format string, args ...any) { fmt.Fprintf(&b, format, args...) })
	got := b.String()
	for _, want := range []string{
		"10,000 req/s taken as 100 %",
		"| rate50 | direct | 5,000 | 5,000 | 100.00 % |",
		"| 2.00 ms | 0.00 ms | 50.0 µs/req | — |\n",      // nginx: 25 % of a core over 5000 req/s
		"| 3.00 ms | 0.00 ms | 100.0 µs/req | 1.50× |\n", // gateway: median p99 3 ms vs nginx's 2 ms
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	wrote := false
	(&report{}).rateTable(func(string, ...any) { wrote = true })
	if wrote {
		t.Errorf("wrote a table without rate results")
	}
}
