package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"
)

// kit is what every run needs. run builds it once; it is never changed
// afterwards.
type kit struct {
	opts       options
	peers      peers
	work       string     // directory of the runs' directories
	xfer       *transfers // nil when no transfer test runs
	nginxConf  *template.Template
	gatewayEnv []string // settings the gateway gets beyond its defaults
	postScript string   // the post1k test's wrk script
	maxRate    float64  // req/s the rate tests take as 100 %
	log        io.Writer
}

// maxSamples is how many error messages a result keeps; all errors are
// counted.
const maxSamples = 3

// runRounds runs every round: within a round, every target in turn, each
// with a fresh mock and a fresh proxy. It stops early only if ctx is done.
func (k *kit) runRounds(ctx context.Context, rep *report) {
	for round := 1; round <= k.opts.rounds; round++ {
		for _, name := range k.opts.targets {
			if ctx.Err() != nil {
				return
			}
			k.runTarget(ctx, rep, round, name)
		}
	}
}

// runTarget starts the mock and the target in a directory of their own,
// runs every test, stops both and reads their logs. The directory is
// removed unless something failed or -keep is set.
func (k *kit) runTarget(ctx context.Context, rep *report, round int, name string) {
	label := fmt.Sprintf("round %d %s", round, name)
	fmt.Fprintf(k.log, "== %s\n", label)
	dir, err := os.MkdirTemp(k.work, fmt.Sprintf("round%d-%s-", round, name))
	if err != nil {
		rep.problem("%s: %v", label, err)
		return
	}
	failed := false
	defer func() {
		if failed || k.opts.keep {
			rep.note("%s: logs kept in %s", label, dir)
			return
		}
		_ = os.RemoveAll(dir)
	}()
	problem := func(format string, args ...any) {
		failed = true
		rep.problem(label+": "+format, args...)
	}

	mock, mockPort, err := startMock(ctx, dir, k.opts.mock)
	if err != nil {
		problem("starting the mock: %v", err)
		return
	}
	defer func() {
		if err := mock.stop(); err != nil {
			problem("%v", err)
		}
	}()

	var t *target
	switch name {
	case targetDirect:
		t = directTarget(mockPort)
	case targetNginx:
		t, err = startNginx(ctx, dir, k.peers.nginx, k.nginxConf, mockPort)
	case targetGateway:
		t, err = startGateway(ctx, dir, k.opts.gateway, mockPort, k.gatewayEnv)
	}
	if err != nil {
		problem("starting %s: %v", name, err)
		return
	}
	info := runInfo{round: round, target: name, ready: t.ready}
	if t.proxy != nil {
		pids := t.pids()
		if info.idleRSS, err = currentRSS(pids); err != nil {
			problem("reading the idle RSS: %v", err)
		}
		fmt.Fprintf(k.log, "   %s (pid %s) ready in %s, idle RSS %.1f MiB\n",
			name, processNames(pids), t.ready.Round(100*time.Microsecond), mib(info.idleRSS))
	}
	rep.runs = append(rep.runs, info)

	for _, test := range k.opts.tests {
		if ctx.Err() != nil {
			break
		}
		res := k.measure(ctx, t, mock, test)
		res.round = round
		if res.errors > 0 {
			failed = true
		}
		fmt.Fprintf(k.log, "   %s\n", res.progress())
		for _, s := range res.samples {
			fmt.Fprintf(k.log, "     error: %s\n", s)
		}
		rep.results = append(rep.results, res)
	}

	if t.proxy != nil {
		if err := t.proxy.stop(); err != nil {
			problem("%v", err)
		}
	}
	switch name {
	case targetGateway:
		s, version := scanGatewayLog(filepath.Join(dir, "gateway.log"))
		if s != "" {
			rep.note("%s: gateway log: %s", label, s)
		}
		if rep.gatewayVersion == "" {
			rep.gatewayVersion = version
		}
	case targetNginx:
		if s := scanNginxErrorLog(filepath.Join(dir, "error.log")); s != "" {
			rep.note("%s: nginx error log: %s", label, s)
		}
	}
}

// measure runs one test against t and reads the proxy's peak RSS and the
// CPU time of every party over the test.
func (k *kit) measure(ctx context.Context, t *target, mock *proc, test string) result {
	res := result{target: t.name, test: test}
	var pids []int
	if t.pids != nil {
		pids = t.pids()
		if err := resetPeakRSS(pids); err != nil {
			res.addError(err)
		}
	}
	mockPIDs := []int{mock.pid()}
	proxyCPU, mockCPU := cpuTime(pids), cpuTime(mockPIDs)
	kitCPU, busy := selfCPU(), machineBusy()
	start := time.Now()
	var clientCPU time.Duration

	if isWrkTest(test) {
		route, script := "/ping", ""
		if test == testPost1k {
			route, script = "/sink", k.postScript
		}
		w, cpu, err := runWrk(ctx, k.peers.wrk, k.opts.duration, t.url(route), script)
		clientCPU = cpu
		if err != nil {
			res.addError(err)
		} else {
			res.value, res.p50, res.p99 = w.rps, w.latency["50%"], w.latency["99%"]
			res.requests = w.requests
			if n := w.failed(); n > 0 {
				res.errors += n
				res.samples = append(res.samples, fmt.Sprintf("wrk counted %d socket errors and %d answers with status ≥ 400", w.socketErrors, w.non2xx))
			}
		}
	} else if isRateTest(test) {
		o := runRate(ctx, t.url("/ping"), k.rate(test), k.opts.rateTime)
		res.value, res.offered, res.requests, res.success = o.achieved, o.offered, int64(o.requests), o.success
		res.p50, res.p90, res.p99, res.max = o.p50, o.p90, o.p99, o.max
		if failed := int64(o.requests) - int64(float64(o.requests)*o.success+0.5); failed > 0 {
			res.errors += failed
			res.samples = append(res.samples, fmt.Sprintf("vegeta counted %d failed requests: %s", failed, strings.Join(o.errs, " | ")))
		}
	} else {
		o := k.xfer.do(ctx, test, t.url(""))
		clientCPU = o.clientCPU
		res.value = o.mbps(k.opts.size)
		for _, err := range o.errs {
			res.addError(err)
		}
	}
	wall := time.Since(start)

	// ours is the CPU time of the client (wrk plus the kit's own polling,
	// or the kit's transfer clients), the proxy and the mock; whatever
	// else the machine did is someone else's load.
	ours := cpuTime(mockPIDs) - mockCPU + clientCPU
	if isRequestTest(test) {
		ours += selfCPU() - kitCPU
	}
	if isRateTest(test) {
		// vegeta runs inside the kit: its CPU, counted in ours above, is
		// the kit's.
		clientCPU = selfCPU() - kitCPU
	}
	res.cpu = cpuUse{client: percent(clientCPU, wall), mock: percent(cpuTime(mockPIDs)-mockCPU, wall), proxy: -1}
	if t.pids != nil {
		proxy := cpuTime(pids) - proxyCPU
		ours += proxy
		res.cpu.proxy = percent(proxy, wall)
		after := t.pids()
		if len(after) != len(pids) {
			res.addError(fmt.Errorf("%s's processes changed during the test: %v, then %v", t.name, pids, after))
		}
		peak, err := peakRSS(after)
		if err != nil {
			res.addError(fmt.Errorf("reading the peak RSS: %w", err))
		}
		res.peakRSS = peak
	}
	res.cpu.others = max(0, percent(machineBusy()-busy-ours, wall))
	return res
}

// percent is cpu as a percentage of one core over wall.
func percent(cpu, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return 100 * cpu.Seconds() / wall.Seconds()
}

// scanGatewayLog reads the gateway's JSON log. If it has warnings or
// errors, summary says how many, with the first one, next to the count of
// lines and access lines; otherwise it is "". version is the one the
// gateway logged at start.
func scanGatewayLog(path string) (summary, version string) {
	f, err := os.Open(path)
	if err != nil {
		return "", ""
	}
	defer f.Close()
	var lines, access, bad int
	var first string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		lines++
		if strings.Contains(line, `"event":"Request completed"`) {
			access++
		} else if version == "" && strings.Contains(line, `"event":"Starting gateway"`) {
			var start struct {
				Version string `json:"version"`
			}
			if json.Unmarshal([]byte(line), &start) == nil {
				version = start.Version
			}
		}
		if strings.Contains(line, `"level":"warning"`) || strings.Contains(line, `"level":"error"`) || strings.Contains(line, `"level":"critical"`) {
			bad++
			if first == "" {
				first = line
			}
		}
	}
	s := fmt.Sprintf("%d lines, %d access lines, %d warnings or errors", lines, access, bad)
	if first != "" {
		s += "; first: " + truncate(first, 300)
	}
	if err := sc.Err(); err != nil {
		s += "; reading it: " + err.Error()
	}
	if bad == 0 && sc.Err() == nil {
		return "", version // Nothing to say: the access lines are as expected.
	}
	return s, version
}

// scanNginxErrorLog summarizes nginx's error log: lines at level error or
// worse, with the first one. It returns "" if there are none.
func scanNginxErrorLog(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var bad int
	var first string
	for line := range strings.Lines(string(b)) {
		for _, level := range []string{"[error]", "[crit]", "[alert]", "[emerg]"} {
			if strings.Contains(line, level) {
				bad++
				if first == "" {
					first = strings.TrimSpace(line)
				}
				break
			}
		}
	}
	if bad == 0 {
		return ""
	}
	return fmt.Sprintf("%d lines at level error or worse; first: %s", bad, truncate(first, 300))
}

// truncate shortens s to at most n bytes for a message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// rate is the constant rate test offers, the same to every target.
func (k *kit) rate(test string) int {
	return max(1, int(k.maxRate*rateShare(test)+0.5))
}

// calibrate measures nginx's maximum rate of small GETs with a short
// closed-loop wrk run (the get test's settings) against a mock and an
// nginx of its own, for the rate tests to take as 100 %.
func (k *kit) calibrate(ctx context.Context) (float64, error) {
	dir, err := os.MkdirTemp(k.work, "calibrate-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	mock, mockPort, err := startMock(ctx, dir, k.opts.mock)
	if err != nil {
		return 0, fmt.Errorf("starting the mock: %w", err)
	}
	defer mock.stop()
	t, err := startNginx(ctx, dir, k.peers.nginx, k.nginxConf, mockPort)
	if err != nil {
		return 0, fmt.Errorf("starting nginx: %w", err)
	}
	defer t.proxy.stop()
	w, _, err := runWrk(ctx, k.peers.wrk, calibrationTime, t.url("/ping"), "")
	if err != nil {
		return 0, err
	}
	if w.failed() > 0 || w.rps <= 0 {
		return 0, fmt.Errorf("wrk counted %d failures and %.0f req/s", w.failed(), w.rps)
	}
	return w.rps, nil
}

// calibrationTime is the length of calibrate's wrk run.
const calibrationTime = 3 * time.Second
