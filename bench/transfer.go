package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/atenex/gateway/config"
	"github.com/atenex/gateway/ingestmock"
)

// transferBufSize is the clients' socket buffer and copy buffer size; net/http's
// 4 KiB default would spend the shared CPU on syscalls.
const transferBufSize = 64 << 10

// checksum is the mock's checksum the transfer tests ask for and check
// against: it runs in hardware, so checking every byte costs the mock and
// the client little of the CPU they share with the proxy under test (see
// ingestmock.ChecksumCRC32C). It is also the key of the sum in the mock's
// replies, spelled out in the reply structs below.
const checksum = ingestmock.ChecksumCRC32C

// transfers runs the big-body tests: concurrency clients at once, each
// moving size bytes of ingestmock.Pattern, every body checked by length
// and checksum against the sum computed once up front. It is safe for
// concurrent use, and never changed after newTransfers.
type transfers struct {
	size        int64
	concurrency int
	timeout     time.Duration // deadline of each transfer
	wantSum     string        // hex checksum of Pattern(size)
	form        ingestmock.Form
}

// newTransfers sums Pattern(size) once and builds the multipart framing.
func newTransfers(size int64, concurrency int, timeout time.Duration) (*transfers, error) {
	h := newChecksum()
	if _, err := io.Copy(h, ingestmock.Pattern(size)); err != nil {
		return nil, err
	}
	form, err := ingestmock.NewForm("doc.pdf", "application/pdf")
	if err != nil {
		return nil, err
	}
	return &transfers{
		size:        size,
		concurrency: concurrency,
		timeout:     timeout,
		wantSum:     hex.EncodeToString(h.Sum(nil)),
		form:        form,
	}, nil
}

// transferOutcome is one batch of concurrent transfers.
type transferOutcome struct {
	verified  int           // transfers that completed and checked out
	errs      []error       // one per failed transfer
	wall      time.Duration // from the first request to the last answer
	clientCPU time.Duration // CPU time of the kit's process meanwhile
}

// mbps is the throughput of the verified transfers, in MB (10⁶ bytes) per
// second of wall time.
func (o transferOutcome) mbps(size int64) float64 {
	if o.wall <= 0 {
		return 0
	}
	return float64(o.verified) * float64(size) / o.wall.Seconds() / 1e6
}

// run starts concurrency transfers with do, each with its own deadline,
// through a fresh connection pool, and waits for all of them.
func (t *transfers) run(ctx context.Context, do func(ctx context.Context, c *http.Client) error) transferOutcome {
	tr := &http.Transport{
		Proxy:               nil, // 127.0.0.1 only, whatever the environment says.
		MaxIdleConnsPerHost: t.concurrency,
		DisableCompression:  true,
		WriteBufferSize:     transferBufSize,
		ReadBufferSize:      transferBufSize,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	errs := make([]error, t.concurrency)
	cpu0 := selfCPU()
	start := time.Now()
	var wg sync.WaitGroup
	for i := range t.concurrency {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, t.timeout)
			defer cancel()
			errs[i] = do(ctx, client)
		})
	}
	wg.Wait()
	out := transferOutcome{wall: time.Since(start), clientCPU: selfCPU() - cpu0}
	for _, err := range errs {
		if err != nil {
			out.errs = append(out.errs, err)
		} else {
			out.verified++
		}
	}
	return out
}

// do runs test, one of the transfer tests, against base: a target's URL
// up to the mock's routes, such as http://127.0.0.1:8080/api/v1/ingest.
func (t *transfers) do(ctx context.Context, test, base string) transferOutcome {
	switch test {
	case testUpload:
		return t.upload(ctx, base+"/sink")
	case testMultipart:
		return t.multipart(ctx, base+"/upload")
	case testDownload:
		return t.download(ctx, base+"/blob")
	}
	panic("bench: not a transfer test: " + test)
}

// bodyLimitEnv returns the gateway setting that lets the largest body of
// these transfers through, and nil if its default limit already does: a
// -size above GATEWAY_MAX_BODY_SIZE's default would otherwise measure 413
// answers, not the proxy.
func (t *transfers) bodyLimitEnv() []string {
	largest := t.form.Len(t.size) // The multipart framing adds to the file.
	if largest <= config.Default().MaxBodySize {
		return nil
	}
	return []string{"GATEWAY_MAX_BODY_SIZE=" + strconv.FormatInt(largest, 10)}
}

// newChecksum returns a fresh hash of the checksum the kit checks with.
func newChecksum() hash.Hash {
	h, _ := ingestmock.NewChecksum(checksum) // A known name: never false.
	return h
}

// upload POSTs Pattern(size) as application/octet-stream with a
// Content-Length to url, the mock's sink, and checks the size and checksum
// the sink reports.
func (t *transfers) upload(ctx context.Context, url string) transferOutcome {
	url += "?checksum=" + checksum
	return t.run(ctx, func(ctx context.Context, c *http.Client) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, ingestmock.Pattern(t.size))
		if err != nil {
			return err
		}
		req.ContentLength = t.size
		req.Header.Set("Content-Type", "application/octet-stream")
		var reply struct {
			Bytes int64  `json:"bytes"`
			Sum   string `json:"crc32c"`
		}
		if err := doJSON(c, req, http.StatusOK, &reply); err != nil {
			return err
		}
		if reply.Bytes != t.size || reply.Sum != t.wantSum {
			return fmt.Errorf("sink got %d bytes with %s %s, want %d bytes with %s %s", reply.Bytes, checksum, reply.Sum, t.size, checksum, t.wantSum)
		}
		return nil
	})
}

// multipart POSTs a multipart/form-data form with one file part,
// doc.pdf of type application/pdf holding Pattern(size), with an exact
// Content-Length, to url, the mock's upload route, and checks the 202
// answer's file size and checksum.
func (t *transfers) multipart(ctx context.Context, url string) transferOutcome {
	url += "?checksum=" + checksum
	length := t.form.Len(t.size)
	return t.run(ctx, func(ctx context.Context, c *http.Client) error {
		body := t.form.Body(ingestmock.Pattern(t.size))
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, body)
		if err != nil {
			return err
		}
		req.ContentLength = length
		req.Header.Set("Content-Type", t.form.ContentType)
		var reply struct {
			FileName string `json:"file_name"`
			FileSize int64  `json:"file_size"`
			Sum      string `json:"crc32c"`
		}
		if err := doJSON(c, req, http.StatusAccepted, &reply); err != nil {
			return err
		}
		if reply.FileSize != t.size || reply.Sum != t.wantSum || reply.FileName != "doc.pdf" {
			return fmt.Errorf("upload got %q of %d bytes with %s %s, want %q of %d bytes with %s %s",
				reply.FileName, reply.FileSize, checksum, reply.Sum, "doc.pdf", t.size, checksum, t.wantSum)
		}
		return nil
	})
}

// download GETs size bytes from url, the mock's blob route without its
// query, streaming each body through the checksum.
func (t *transfers) download(ctx context.Context, url string) transferOutcome {
	url += "?size=" + strconv.FormatInt(t.size, 10)
	return t.run(ctx, func(ctx context.Context, c *http.Client) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: status %d, want 200: %s", url, resp.StatusCode, snippet(resp.Body))
		}
		h := newChecksum()
		n, err := io.CopyBuffer(h, resp.Body, make([]byte, transferBufSize))
		if err != nil {
			return fmt.Errorf("GET %s: reading the body after %d bytes: %w", url, n, err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); n != t.size || got != t.wantSum {
			return fmt.Errorf("GET %s: got %d bytes with %s %s, want %d bytes with %s %s", url, n, checksum, got, t.size, checksum, t.wantSum)
		}
		return nil
	})
}

// doJSON sends req and decodes the JSON answer into v, which must come
// with status want.
func doJSON(c *http.Client, req *http.Request, want int, v any) error {
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: status %d, want %d: %s", req.Method, req.URL, resp.StatusCode, want, snippet(resp.Body))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", req.Method, req.URL, err)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%s %s: decoding the answer %q: %w", req.Method, req.URL, body, err)
	}
	return nil
}

// snippet returns the start of an error answer's body, for messages.
func snippet(r io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(r, 200))
	return strconv.Quote(string(b))
}

// selfCPU is the CPU time the kit's own process has used so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
