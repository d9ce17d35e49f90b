package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/template"
	"time"
)

// nginxConfText is the nginx configuration template; see nginxConf.
//
//go:embed nginx.conf.tmpl
var nginxConfText string

// parseNginxConf parses nginxConfText; a key the data lacks is an error,
// not an empty string in nginx's configuration.
func parseNginxConf() (*template.Template, error) {
	conf, err := template.New("nginx.conf").Option("missingkey=error").Parse(nginxConfText)
	if err != nil {
		return nil, fmt.Errorf("parsing nginx.conf.tmpl: %w", err)
	}
	return conf, nil
}

// run is the whole kit, given its inputs: it parses args (args[0] is the
// program), finds the peers, runs the rounds, and writes the report to
// stdout and -out. It returns an error if anything failed, after the
// report.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	began := time.Now()
	opts, err := parseOptions(args[1:], stderr)
	if err != nil {
		return err
	}
	for _, bin := range []string{opts.gateway, opts.mock} {
		if _, err := os.Stat(bin); err != nil {
			return fmt.Errorf("%w (make build builds it)", err)
		}
	}
	conf, err := parseNginxConf()
	if err != nil {
		return err
	}

	p := findPeers(ctx, opts.install, stderr)
	for _, n := range p.notes {
		fmt.Fprintln(stderr, "note:", n)
	}
	if p.wrk == "" {
		opts.tests = slices.DeleteFunc(opts.tests, isWrkTest)
	}
	if p.nginx == "" {
		opts.targets = slices.DeleteFunc(opts.targets, func(t string) bool { return t == targetNginx })
	}
	if opts.rateTime == 0 || (opts.maxRate == 0 && (p.wrk == "" || p.nginx == "")) {
		opts.tests = slices.DeleteFunc(opts.tests, isRateTest)
	}
	if len(opts.tests) == 0 || len(opts.targets) == 0 {
		return errors.New("nothing left to run: see the notes above")
	}

	work, err := os.MkdirTemp("", "gateway-bench-")
	if err != nil {
		return err
	}
	// Runs that failed keep their directory inside work; the rest is
	// removed. os.Remove fails, harmlessly, on a directory not empty.
	defer os.Remove(work)
	postScript, err := writePostScript(work)
	if err != nil {
		return err
	}
	defer os.Remove(postScript)

	var xfer *transfers
	if slices.ContainsFunc(opts.tests, func(t string) bool { return !isRequestTest(t) }) {
		fmt.Fprintf(stderr, "hashing %s of the test pattern\n", (*byteSize)(&opts.size))
		if xfer, err = newTransfers(opts.size, opts.concurrency, opts.timeout); err != nil {
			return err
		}
	}
	k := &kit{opts: opts, peers: p, work: work, xfer: xfer, nginxConf: conf, postScript: postScript, log: stderr}
	rep := &report{
		machine: describeMachine(ctx, opts.gateway),
		peers:   p,
		opts:    opts,
		command: commandLine(args),
	}
	if xfer != nil {
		if k.gatewayEnv = xfer.bodyLimitEnv(); k.gatewayEnv != nil {
			rep.note("the gateway runs with %s: its default body limit would answer 413 to -size %s", strings.Join(k.gatewayEnv, " "), (*byteSize)(&opts.size))
		}
	}
	if slices.ContainsFunc(opts.tests, isRateTest) {
		k.maxRate = float64(opts.maxRate)
		if k.maxRate == 0 {
			fmt.Fprintf(stderr, "measuring nginx's maximum rate for the rate tests (%s of wrk)\n", calibrationTime)
			if k.maxRate, err = k.calibrate(ctx); err != nil {
				rep.problem("measuring nginx's maximum rate: %v", err)
			}
		}
		if k.maxRate > 0 {
			rep.maxRate = k.maxRate
			rep.note("rate50 and rate80 offer %d and %d req/s (50 %% and 80 %% of %s req/s) to every target, open loop: vegeta v12.13.0 in the kit's process, GOMAXPROCS %d, %d workers on %d keepalive connections, HTTP/1.1", k.rate(testRate50), k.rate(testRate80), thousands(k.maxRate), rateProcs, rateWorkers, rateWorkers)
		} else {
			k.opts.tests = slices.DeleteFunc(slices.Clone(k.opts.tests), isRateTest)
		}
	}
	k.runRounds(ctx, rep)
	rep.elapsed = time.Since(began)

	md := rep.markdown()
	fmt.Fprint(stdout, "\n"+md)
	if opts.out != "" {
		if err := os.MkdirAll(filepath.Dir(opts.out), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(opts.out, []byte(md), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "report written to %s\n", opts.out)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("interrupted: %w", err)
	}
	if n := rep.failures(); n > 0 {
		return fmt.Errorf("%d failures: see the report", n)
	}
	return nil
}

// commandLine renders args as a shell command. A binary built by go run
// lives in a temporary directory, so it is shown as "go run ./bench".
func commandLine(args []string) string {
	parts := make([]string, len(args))
	for i, a := range args {
		parts[i] = shellQuote(a)
	}
	if strings.Contains(args[0], "go-build") {
		parts[0] = "go run ./bench"
	}
	return strings.Join(parts, " ")
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"\\$`*?[]{}()<>|&;#~!") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
