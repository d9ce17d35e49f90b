package main

import (
	"fmt"
	"iter"
	"slices"
	"strconv"
	"strings"
	"time"
)

// result is one test against one target in one round.
type result struct {
	round        int
	target, test string
	value        float64       // req/s (wrk tests) or MB/s (transfers)
	requests     int64         // requests wrk completed (wrk tests)
	p50, p99     time.Duration // request tests only
	p90, max     time.Duration // rate tests only
	offered      float64       // req/s, rate tests only
	success      float64       // ratio of 2xx answers, rate tests only
	peakRSS      int64         // bytes, proxies only; 0 when not measured
	errors       int64         // failed requests and failed measurements
	samples      []string      // the first maxSamples error messages
	cpu          cpuUse
}

// cpuUse is the CPU time each party used during a test, in percent of one
// core over the test's wall time (200% is both cores of a 2-core machine).
type cpuUse struct {
	client float64 // wrk, or the kit's own transfer clients
	proxy  float64 // -1 for direct
	mock   float64
	others float64 // every other process on the machine, plus steal
}

// proxyCost is the proxy's CPU time per unit of work: µs per request for
// wrk tests, ms per MB for transfers. Unlike throughput, it does not
// depend on what the client and the mock, sharing the machine, cost: it
// estimates what a proxy with a machine of its own would pay. False for
// direct, or with no work done.
func (r *result) proxyCost() (float64, bool) {
	if r.cpu.proxy < 0 || r.value <= 0 {
		return 0, false
	}
	perUnit := r.cpu.proxy / 100 / r.value // CPU seconds per request or per MB
	if isRequestTest(r.test) {
		return perUnit * 1e6, true
	}
	return perUnit * 1e3, true
}

// proxyCostCell formats a proxyCost with its unit.
func proxyCostCell(test string, cost float64) string {
	if isRequestTest(test) {
		return fmt.Sprintf("%.1f µs/req", cost)
	}
	return fmt.Sprintf("%.2f ms/MB", cost)
}

// addError counts err and keeps its message if there is room.
func (r *result) addError(err error) {
	r.errors++
	if len(r.samples) < maxSamples {
		r.samples = append(r.samples, err.Error())
	}
}

// throughput formats the result's main figure with its unit.
func (r *result) throughput() string {
	if isRequestTest(r.test) {
		return thousands(r.value) + " req/s"
	}
	return thousands(r.value) + " MB/s"
}

// progress is the result's one-line summary for stderr.
func (r *result) progress() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-9s %-7s %14s", r.test, r.target, r.throughput())
	if isRequestTest(r.test) {
		fmt.Fprintf(&b, "  p50 %s p99 %s", ms(r.p50), ms(r.p99))
	}
	if r.peakRSS > 0 {
		fmt.Fprintf(&b, "  peak RSS %.1f MiB", mib(r.peakRSS))
	}
	fmt.Fprintf(&b, "  errors %d  cpu: client %.0f%%", r.errors, r.cpu.client)
	if r.cpu.proxy >= 0 {
		fmt.Fprintf(&b, " proxy %.0f%%", r.cpu.proxy)
	}
	fmt.Fprintf(&b, " mock %.0f%% others %.0f%%", r.cpu.mock, r.cpu.others)
	return b.String()
}

// runInfo is one target's start in one round.
type runInfo struct {
	round   int
	target  string
	ready   time.Duration // from exec to the first 200
	idleRSS int64         // bytes after start, before load; proxies only
}

// report gathers everything the kit measured and renders it as markdown.
type report struct {
	machine machine
	peers   peers
	opts    options
	command string
	// gatewayVersion is the version the gateway logs at start, stamped
	// by make build from git describe.
	gatewayVersion string
	results        []result
	runs           []runInfo
	problems       []string // failures besides request errors: processes that would not start, crashed, or would not stop
	notes          []string // skips and observations
	elapsed        time.Duration
	maxRate        float64 // req/s the rate tests took as 100 %; 0 if none ran
}

// problem records a failure that makes the run fail.
func (rep *report) problem(format string, args ...any) {
	rep.problems = append(rep.problems, fmt.Sprintf(format, args...))
}

// note records an observation for the report.
func (rep *report) note(format string, args ...any) {
	rep.notes = append(rep.notes, fmt.Sprintf(format, args...))
}

// failures counts failed requests, failed measurements and problems.
func (rep *report) failures() int64 {
	n := int64(len(rep.problems))
	for _, r := range rep.results {
		n += r.errors
	}
	return n
}

// find returns the result of test against target in round, if any.
func (rep *report) find(test, target string, round int) (result, bool) {
	for _, r := range rep.results {
		if r.test == test && r.target == target && r.round == round {
			return r, true
		}
	}
	return result{}, false
}

// measured yields, in the report's order of tests and targets, each pair's
// results over the rounds (series), skipping pairs with none.
func (rep *report) measured() iter.Seq2[string, []result] {
	return func(yield func(string, []result) bool) {
		for _, test := range rep.opts.tests {
			for _, target := range rep.opts.targets {
				if rs := rep.series(test, target); len(rs) > 0 && !yield(test, rs) {
					return
				}
			}
		}
	}
}

// series returns the results of test against target, in round order.
func (rep *report) series(test, target string) []result {
	var rs []result
	for round := 1; round <= rep.opts.rounds; round++ {
		if r, ok := rep.find(test, target, round); ok {
			rs = append(rs, r)
		}
	}
	return rs
}

// ratio is the median, over the rounds that have both, of test's
// throughput against target divided by its throughput against base in the
// same round. Comparing within a round cancels drift between rounds.
func (rep *report) ratio(test, target, base string) (float64, bool) {
	var ratios []float64
	for round := 1; round <= rep.opts.rounds; round++ {
		r, ok1 := rep.find(test, target, round)
		b, ok2 := rep.find(test, base, round)
		if ok1 && ok2 && b.value > 0 {
			ratios = append(ratios, r.value/b.value)
		}
	}
	if len(ratios) == 0 {
		return 0, false
	}
	return median(ratios), true
}

// markdown renders the report.
func (rep *report) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	o := rep.opts
	m := rep.machine

	p("# Load test: direct vs nginx vs gateway\n\n")
	p("- date: %s\n", m.date)
	p("- machine: `uname -m` %s, nproc %d, %s\n", m.arch, m.nproc, m.cpu)
	p("- gateway: version %s (from its start-up log), built with %s (bench: %s)\n", orNone(rep.gatewayVersion), m.goGateway, m.goBench)
	p("- nginx: %s\n", orNone(rep.peers.nginxVersion))
	p("- wrk: %s\n", orNone(rep.peers.wrkVersion))
	p("- command: `%s`\n", rep.command)
	p("- load: %d interleaved rounds; wrk -t%d -c%d -d%s --latency; transfers: %d at once × %s each\n",
		o.rounds, wrkThreads, wrkConnections, o.duration, o.concurrency, (*byteSize)(&o.size))
	if rep.elapsed > 0 {
		p("- took: %s\n", rep.elapsed.Round(time.Second))
	}
	p("\n")

	p("Medians over the rounds. Throughput is req/s for wrk tests and MB/s (10⁶ bytes/s) of verified bodies for transfers. ")
	p("\"vs direct\" and \"vs nginx\" divide the row's throughput by the other target's, within each round, then take the median. ")
	p("Peak RSS is the proxy's VmHWM during the test (nginx: master + workers). Errors are summed over rounds.\n\n")
	p("| test | target | throughput | p99 | peak RSS | errors | vs direct | vs nginx |\n")
	p("|---|---|---:|---:|---:|---:|---:|---:|\n")
	for test, rs := range rep.measured() {
		target, mr := rs[0].target, medianResult(rs)
		p99, rss := "—", "—"
		if isRequestTest(test) {
			p99 = ms(mr.p99)
		}
		if mr.peakRSS > 0 {
			rss = fmt.Sprintf("%.1f MiB", mib(mr.peakRSS))
		}
		p("| %s | %s | %s | %s | %s | %d | %s | %s |\n", test, target, mr.throughput(), p99, rss, mr.errors,
			rep.ratioCell(test, target, targetDirect), rep.ratioCell(test, target, targetNginx))
	}

	p("\n### CPU use\n\nMedian CPU time over wall time, in %% of one core (the machine has %d, so %d%% is all of it): who was busy. ", m.nproc, 100*m.nproc)
	p("The client is wrk or the kit's transfer clients; \"others\" is CPU time of every other process on the machine (plus steal): load that the kit does not control, and noise in the figures. ")
	p("\"proxy per unit\" is the proxy's CPU time per request or per MB (median over the rounds): an estimate of what it would cost with a machine of its own, whatever the client and the mock cost here.\n\n")
	rep.rateTable(p)
	p("| test | target | client | proxy | mock | others | proxy per unit |\n|---|---|---:|---:|---:|---:|---:|\n")
	for test, rs := range rep.measured() {
		c := medianResult(rs).cpu
		proxy, perUnit := "—", "—"
		if c.proxy >= 0 {
			proxy = fmt.Sprintf("%.0f%%", c.proxy)
		}
		var costs []float64
		for _, r := range rs {
			if cost, ok := r.proxyCost(); ok {
				costs = append(costs, cost)
			}
		}
		if len(costs) > 0 {
			perUnit = proxyCostCell(test, median(costs))
		}
		p("| %s | %s | %.0f%% | %s | %.0f%% | %.0f%% | %s |\n", test, rs[0].target, c.client, proxy, c.mock, c.others, perUnit)
	}

	p("\n### Start-up\n\nTime from exec to the first 200 (gateway: `/health`; nginx: a proxied `/ping`), and resident memory once ready, before any load.\n\n")
	p("| |")
	for round := 1; round <= o.rounds; round++ {
		p(" round %d |", round)
	}
	p("\n|---|%s\n", strings.Repeat("---:|", o.rounds))
	for _, target := range []string{targetGateway, targetNginx} {
		if !slices.Contains(o.targets, target) {
			continue
		}
		ready, idle := "| "+target+" ready |", "| "+target+" idle RSS |"
		for round := 1; round <= o.rounds; round++ {
			cellReady, cellIdle := " — |", " — |"
			for _, ri := range rep.runs {
				if ri.round == round && ri.target == target {
					cellReady = " " + ms(ri.ready) + " |"
					cellIdle = fmt.Sprintf(" %.1f MiB |", mib(ri.idleRSS))
				}
			}
			ready += cellReady
			idle += cellIdle
		}
		p("%s\n%s\n", ready, idle)
	}

	p("\n### Raw figures per round\n\nThroughput, p50/p99 (wrk tests), the proxy's peak RSS, errors.\n\n")
	p("| test | target |")
	for round := 1; round <= o.rounds; round++ {
		p(" round %d |", round)
	}
	p("\n|---|---|%s\n", strings.Repeat("---|", o.rounds))
	for test, rs := range rep.measured() {
		target := rs[0].target
		p("| %s | %s |", test, target)
		for round := 1; round <= o.rounds; round++ {
			r, ok := rep.find(test, target, round)
			if !ok {
				p(" — |")
				continue
			}
			p(" %s", r.throughput())
			if isRequestTest(test) {
				p(", %s / %s", ms(r.p50), ms(r.p99))
			}
			if r.peakRSS > 0 {
				p(", %.1f MiB", mib(r.peakRSS))
			}
			if r.errors > 0 {
				p(", **%d errors**", r.errors)
			}
			p(" |")
		}
		p("\n")
	}

	var errs []string
	for _, r := range rep.results {
		if r.errors > 0 {
			errs = append(errs, fmt.Sprintf("round %d, %s, %s: %d errors; first: %s", r.round, r.target, r.test, r.errors, strings.Join(r.samples, " | ")))
		}
	}
	section := func(title string, items []string) {
		if len(items) == 0 {
			return
		}
		p("\n### %s\n\n", title)
		for _, it := range items {
			p("- %s\n", strings.ReplaceAll(it, "\n", " "))
		}
	}
	section("Errors", errs)
	section("Problems", rep.problems)
	section("Notes", append(slices.Clone(rep.peers.notes), rep.notes...))
	if n := rep.failures(); n > 0 {
		p("\n**FAILED: %d failures (errors and problems above).**\n", n)
	} else {
		p("\nNo errors.\n")
	}
	return b.String()
}

// ratioCell formats rep.ratio for the summary table: "—" against itself,
// "n/a" without figures for base.
func (rep *report) ratioCell(test, target, base string) string {
	if target == base {
		return "—"
	}
	r, ok := rep.ratio(test, target, base)
	if !ok {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", r)
}

// medianResult combines a series: the median of each figure taken
// separately, the sum of errors.
func medianResult(rs []result) result {
	m := rs[0]
	m.round = 0
	m.samples = nil
	pick := func(f func(result) float64) float64 {
		vs := make([]float64, len(rs))
		for i, r := range rs {
			vs[i] = f(r)
		}
		return median(vs)
	}
	m.value = pick(func(r result) float64 { return r.value })
	m.p50 = time.Duration(pick(func(r result) float64 { return float64(r.p50) }))
	m.p99 = time.Duration(pick(func(r result) float64 { return float64(r.p99) }))
	m.p90 = time.Duration(pick(func(r result) float64 { return float64(r.p90) }))
	m.max = time.Duration(pick(func(r result) float64 { return float64(r.max) }))
	m.success = pick(func(r result) float64 { return r.success })
	m.peakRSS = int64(pick(func(r result) float64 { return float64(r.peakRSS) }))
	m.cpu.client = pick(func(r result) float64 { return r.cpu.client })
	m.cpu.proxy = pick(func(r result) float64 { return r.cpu.proxy })
	m.cpu.mock = pick(func(r result) float64 { return r.cpu.mock })
	m.cpu.others = pick(func(r result) float64 { return r.cpu.others })
	m.errors = 0
	for _, r := range rs {
		m.errors += r.errors
	}
	return m
}

// median is the middle value of vs, or the mean of the two middle ones;
// 0 for none.
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(vs))
	mid := len(s) / 2
	if len(s)%2 == 1 {
		return s[mid]
	}
	return (s[mid-1] + s[mid]) / 2
}

// thousands formats v rounded to a whole number, with thousands separated
// by commas.
func thousands(v float64) string {
	s := strconv.FormatFloat(v, 'f', 0, 64)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// ms formats d in milliseconds with two decimals.
func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64) + " ms"
}

// mib converts bytes to MiB.
func mib(n int64) float64 { return float64(n) / MiB }

// orNone is s, or "none" if empty.
func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// rateTable writes the constant-rate tests' latency table, if they ran:
// the target is the gateway's p99 at most nginx's at each rate.
func (rep *report) rateTable(p func(format string, args ...any)) {
	var rows []result
	for test, rs := range rep.measured() {
		if isRateTest(test) {
			rows = append(rows, medianResult(rs))
		}
	}
	if len(rows) == 0 {
		return
	}
	p("Constant rate, open loop (vegeta): the same rate of GET /ping to every target, %s req/s taken as 100 %%. ", thousands(rep.maxRate))
	p("Medians over the rounds; the proxy's CPU per request is its CPU time during the run over the requests answered.\n\n")
	p("| test | target | offered | achieved | success | p50 | p90 | p99 | max | proxy CPU | p99 vs nginx |\n")
	p("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, m := range rows {
		cost := "—"
		if c, ok := m.proxyCost(); ok {
			cost = proxyCostCell(m.test, c)
		}
		vs := "—"
		if ns := rep.series(m.test, targetNginx); len(ns) > 0 && m.target != targetNginx {
			if n := medianResult(ns); n.p99 > 0 {
				vs = fmt.Sprintf("%.2f×", float64(m.p99)/float64(n.p99))
			}
		}
		p("| %s | %s | %s | %s | %.2f %% | %s | %s | %s | %s | %s | %s |\n", m.test, m.target, thousands(m.offered), thousands(m.value),
			m.success*100, ms(m.p50), ms(m.p90), ms(m.p99), ms(m.max), cost, vs)
	}
	p("\n")
}
