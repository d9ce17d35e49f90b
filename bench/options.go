package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// MiB is a mebibyte, the unit of body sizes and memory figures.
const MiB = 1 << 20

// Test names, in the order they run and are reported.
const (
	testGet       = "get"
	testPost1k    = "post1k"
	testUpload    = "upload"
	testMultipart = "multipart"
	testDownload  = "download"
	testRate50    = "rate50" // constant rate, 50 % of nginx's maximum
	testRate80    = "rate80" // constant rate, 80 % of nginx's maximum
)

// Target names, in the order they run within a round and are reported.
const (
	targetDirect  = "direct"
	targetNginx   = "nginx"
	targetGateway = "gateway"
)

// allTests lists every test, in order.
func allTests() []string {
	return []string{testGet, testPost1k, testRate50, testRate80, testUpload, testMultipart, testDownload}
}

// allTargets lists every target, in order.
func allTargets() []string {
	return []string{targetDirect, targetNginx, targetGateway}
}

// isWrkTest reports whether test measures a request rate with wrk, rather
// than a transfer rate with the kit's own clients.
func isWrkTest(test string) bool {
	return test == testGet || test == testPost1k
}

// isRateTest reports whether test offers a constant rate of small GETs
// with vegeta (open loop), rather than as many as a target takes.
func isRateTest(test string) bool {
	return test == testRate50 || test == testRate80
}

// isRequestTest reports whether test's unit is the request (req/s,
// µs/req), rather than the megabyte.
func isRequestTest(test string) bool {
	return isWrkTest(test) || isRateTest(test)
}

// rateShare is the share of the maximum rate a rate test offers.
func rateShare(test string) float64 {
	if test == testRate50 {
		return 0.5
	}
	return 0.8
}

// minRounds is the fewest rounds whose median means anything.
const minRounds = 3

// options are the kit's settings, from the command line. Paths are absolute.
type options struct {
	gateway     string        // gateway binary
	mock        string        // ingestmock binary
	rounds      int           // rounds of every target, at least minRounds
	duration    time.Duration // of each wrk run, whole seconds
	size        int64         // bytes per transfer
	concurrency int           // transfers at once
	timeout     time.Duration // deadline of each transfer
	tests       []string      // subset of allTests, in that order
	targets     []string      // subset of allTargets, in that order
	out         string        // file for the markdown report; "" for none
	install     bool          // apt-get install wrk and nginx when missing
	keep        bool          // keep every run's logs, not only failed runs'
	maxRate     int           // req/s the rate tests take as 100 %; 0: measure nginx's
	rateTime    time.Duration // of each constant-rate run; 0 skips the rate tests
}

// parseOptions reads the command line (without the program name) and
// reports every invalid value at once.
func parseOptions(args []string, stderr io.Writer) (options, error) {
	o := options{size: 256 * MiB}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.gateway, "gateway", "bin/gateway", "gateway `binary` (make build)")
	fs.StringVar(&o.mock, "mock", "bin/ingestmock", "mock ingest service `binary` (make build)")
	fs.IntVar(&o.rounds, "rounds", 3, "interleaved `rounds` of every target (at least 3)")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "`duration` of each wrk run (whole seconds)")
	fs.Var((*byteSize)(&o.size), "size", "`bytes` per transfer, such as 256MiB, 1GiB or 1000000")
	fs.IntVar(&o.concurrency, "concurrency", 8, "concurrent transfers in the upload, multipart and download tests")
	fs.DurationVar(&o.timeout, "transfer-timeout", 120*time.Second, "deadline of each transfer")
	only := fs.String("only", strings.Join(allTests(), ","), "comma-separated `tests` to run")
	targets := fs.String("targets", strings.Join(allTargets(), ","), "comma-separated `targets` to compare")
	fs.StringVar(&o.out, "out", "", "also write the markdown report to `file`")
	fs.BoolVar(&o.install, "install", true, "apt-get install wrk and nginx when missing (needs root)")
	fs.BoolVar(&o.keep, "keep", false, "keep the logs of every run (failed runs' logs are always kept)")
	fs.IntVar(&o.maxRate, "max-rate", 0, "`req/s` the rate50 and rate80 tests take as 100 % (0: measure nginx's maximum with wrk first)")
	fs.DurationVar(&o.rateTime, "rate-duration", 5*time.Second, "`duration` of each constant-rate run (0 skips rate50 and rate80)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}

	var errs []error
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments: %q", fs.Args()))
	}
	if o.rounds < minRounds {
		errs = append(errs, fmt.Errorf("-rounds: must be at least %d, got %d", minRounds, o.rounds))
	}
	if o.duration < time.Second || o.duration%time.Second != 0 {
		errs = append(errs, fmt.Errorf("-duration: must be a whole number of seconds, at least 1s, got %s", o.duration))
	}
	if o.maxRate < 0 || o.maxRate > 1_000_000 {
		errs = append(errs, fmt.Errorf("-max-rate: must be from 0 to 1000000, got %d", o.maxRate))
	}
	if o.rateTime < 0 || o.rateTime > 10*time.Minute {
		errs = append(errs, fmt.Errorf("-rate-duration: must be from 0 to 10m, got %s", o.rateTime))
	}
	if o.size < 1 {
		errs = append(errs, fmt.Errorf("-size: must be at least 1 byte, got %d", o.size))
	}
	if o.concurrency < 1 || o.concurrency > 1024 {
		errs = append(errs, fmt.Errorf("-concurrency: must be from 1 to 1024, got %d", o.concurrency))
	}
	if o.timeout <= 0 {
		errs = append(errs, fmt.Errorf("-transfer-timeout: must be positive, got %s", o.timeout))
	}
	var err error
	if o.tests, err = pickNames("-only", *only, allTests()); err != nil {
		errs = append(errs, err)
	}
	if o.targets, err = pickNames("-targets", *targets, allTargets()); err != nil {
		errs = append(errs, err)
	}
	for _, p := range []*string{&o.gateway, &o.mock} {
		if *p, err = filepath.Abs(*p); err != nil {
			errs = append(errs, err)
		}
	}
	return o, errors.Join(errs...)
}

// pickNames parses a comma-separated subset of known and returns it in
// known's order.
func pickNames(flagName, list string, known []string) ([]string, error) {
	var picked []string
	for name := range strings.SplitSeq(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if !slices.Contains(known, name) {
			return nil, fmt.Errorf("%s: unknown name %q, want some of %s", flagName, name, strings.Join(known, ","))
		}
		picked = append(picked, name)
	}
	if len(picked) == 0 {
		return nil, fmt.Errorf("%s: must name at least one of %s", flagName, strings.Join(known, ","))
	}
	var ordered []string
	for _, name := range known {
		if slices.Contains(picked, name) {
			ordered = append(ordered, name)
		}
	}
	return ordered, nil
}

// byteSize is a flag.Value for a number of bytes with an optional unit:
// B, KiB, MiB, GiB (powers of 1024) or KB, MB, GB (powers of 1000).
type byteSize int64

// String implements flag.Value.
func (b *byteSize) String() string {
	n := int64(*b)
	for _, u := range []struct {
		name string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", MiB}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}

// Set implements flag.Value.
func (b *byteSize) Set(s string) error {
	units := []struct {
		suffix string
		size   int64
	}{
		{"GiB", 1 << 30}, {"MiB", MiB}, {"KiB", 1 << 10},
		{"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1},
	}
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range units {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(rest), u.size
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return errors.New("must be a whole number of bytes with an optional unit (KiB, MiB, GiB, KB, MB, GB)")
	}
	*b = byteSize(n * mult)
	return nil
}
