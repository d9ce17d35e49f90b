package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The load shape of the request-rate tests: two client threads, as many as
// the machine has cores, and enough connections to keep a proxy busy.
const (
	wrkThreads     = 2
	wrkConnections = 64
	// wrkGrace is how long a wrk run may outlast its -d before it is killed.
	wrkGrace = 30 * time.Second
)

// wrkResult is what the kit reads from wrk's report.
type wrkResult struct {
	requests     int64
	rps          float64                  // "Requests/sec"
	latency      map[string]time.Duration // "50%" → p50, from --latency
	socketErrors int64                    // connect + read + write + timeout
	non2xx       int64                    // "Non-2xx or 3xx responses" (status ≥ 400)
}

// failed is every failed request wrk counted.
func (r wrkResult) failed() int64 { return r.socketErrors + r.non2xx }

// runWrk runs wrk against url for d (with the Lua script, if not ""), and
// returns its report and the CPU time wrk used.
func runWrk(ctx context.Context, bin string, d time.Duration, url, script string) (wrkResult, time.Duration, error) {
	args := []string{
		"-t" + strconv.Itoa(wrkThreads),
		"-c" + strconv.Itoa(wrkConnections),
		"-d" + strconv.Itoa(int(d/time.Second)) + "s",
		"--latency",
	}
	if script != "" {
		args = append(args, "-s", script)
	}
	args = append(args, url)
	ctx, cancel := context.WithTimeout(ctx, d+wrkGrace)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var cpu time.Duration
	if st := cmd.ProcessState; st != nil {
		cpu = st.UserTime() + st.SystemTime()
	}
	if err != nil {
		return wrkResult{}, cpu, fmt.Errorf("wrk %s: %w: %s", strings.Join(args, " "), err, lastLines(stderr.String()+stdout.String(), 5))
	}
	res, err := parseWrk(stdout.String())
	if err != nil {
		return res, cpu, fmt.Errorf("%w in:\n%s", err, stdout.String())
	}
	return res, cpu, nil
}

// parseWrk reads wrk 4's report, such as:
//
//	  Latency Distribution
//	     50%  537.00us
//	     99%    1.94ms
//	  520731 requests in 5.00s, 62.08MB read
//	  Socket errors: connect 0, read 0, write 0, timeout 0
//	  Non-2xx or 3xx responses: 12
//	Requests/sec: 104146.67
//
// The error lines appear only when there were errors.
func parseWrk(out string) (wrkResult, error) {
	r := wrkResult{latency: make(map[string]time.Duration)}
	var haveRPS bool
	inDistribution := false
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if inDistribution && len(f) == 2 && strings.HasSuffix(f[0], "%") {
			d, err := parseWrkDuration(f[1])
			if err != nil {
				return r, fmt.Errorf("latency %s: %w", f[0], err)
			}
			r.latency[f[0]] = d
			continue
		}
		inDistribution = false
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "Latency Distribution":
			inDistribution = true
		case strings.HasPrefix(trimmed, "Requests/sec:") && len(f) == 2:
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return r, fmt.Errorf("parsing %q: %w", trimmed, err)
			}
			r.rps, haveRPS = v, true
		case len(f) >= 3 && f[1] == "requests" && f[2] == "in":
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return r, fmt.Errorf("parsing %q: %w", trimmed, err)
			}
			r.requests = n
		case strings.HasPrefix(trimmed, "Socket errors:"):
			// "Socket errors: connect 0, read 0, write 0, timeout 0"
			rest := strings.ReplaceAll(strings.TrimPrefix(trimmed, "Socket errors:"), ",", " ")
			g := strings.Fields(rest)
			for i := 1; i < len(g); i += 2 {
				n, err := strconv.ParseInt(g[i], 10, 64)
				if err != nil {
					return r, fmt.Errorf("parsing %q: %w", trimmed, err)
				}
				r.socketErrors += n
			}
		case strings.HasPrefix(trimmed, "Non-2xx or 3xx responses:"):
			n, err := strconv.ParseInt(f[len(f)-1], 10, 64)
			if err != nil {
				return r, fmt.Errorf("parsing %q: %w", trimmed, err)
			}
			r.non2xx = n
		}
	}
	var missing []string
	if !haveRPS {
		missing = append(missing, "Requests/sec")
	}
	for _, p := range []string{"50%", "99%"} {
		if _, ok := r.latency[p]; !ok {
			missing = append(missing, "latency "+p)
		}
	}
	if len(missing) > 0 {
		return r, fmt.Errorf("no %s in wrk's report", strings.Join(missing, ", "))
	}
	return r, nil
}

// parseWrkDuration parses wrk's latency figures: a number with one of the
// units us, ms, s, m or h.
func parseWrkDuration(s string) (time.Duration, error) {
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i <= 0 {
		return 0, fmt.Errorf("%q is not a wrk duration", s)
	}
	v, err := strconv.ParseFloat(s[:i], 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a wrk duration", s)
	}
	units := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second, "m": time.Minute, "h": time.Hour}
	unit, ok := units[s[i:]]
	if !ok {
		return 0, fmt.Errorf("%q is not a wrk duration", s)
	}
	return time.Duration(v * float64(unit)), nil
}

// postBodySize is the size of the post1k test's JSON body.
const postBodySize = 1 << 10

// jsonBody returns a JSON object of exactly n bytes (n ≥ 64), the shape of
// a small API call, made of characters that need no escaping in JSON or in
// a Lua string.
func jsonBody(n int) ([]byte, error) {
	const head, tail = `{"company_id":"bench","document_id":"0000","note":"`, `"}`
	pad := n - len(head) - len(tail)
	if pad < 0 {
		return nil, errors.New("json body too small")
	}
	return []byte(head + strings.Repeat("x", pad) + tail), nil
}

// writePostScript writes the post1k test's wrk script into dir: every
// request is a POST of 1 KiB of JSON.
func writePostScript(dir string) (string, error) {
	body, err := jsonBody(postBodySize)
	if err != nil {
		return "", err
	}
	script := "-- POST of a 1 KiB JSON body; written by the gateway's load-test kit.\n" +
		"wrk.method = \"POST\"\n" +
		"wrk.headers[\"Content-Type\"] = \"application/json\"\n" +
		"wrk.body = '" + string(body) + "'\n"
	path := filepath.Join(dir, "post1k.lua")
	return path, os.WriteFile(path, []byte(script), 0o644)
}
