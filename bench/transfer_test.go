package main

import (
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/atenex/gateway/config"
	"github.com/atenex/gateway/ingestmock"
)

// transferTests are the tests transfers.do runs: all but wrk's.
func transferTests() []string {
	return slices.DeleteFunc(allTests(), isRequestTest)
}

// TestTransfersAgainstMock runs every transfer client against the real
// mock: bodies verify, and the multipart Content-Length is exact (the mock
// would answer 400 to a truncated form, and net/http refuses to send more
// than the declared length).
func TestTransfersAgainstMock(t *testing.T) {
	srv := httptest.NewServer(ingestmock.New(mockPrefix))
	t.Cleanup(srv.Close)
	xfer, err := newTransfers(3<<20+5, 3, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, test := range transferTests() {
		t.Run(test, func(t *testing.T) {
			o := xfer.do(t.Context(), test, srv.URL+mockPrefix)
			if len(o.errs) > 0 || o.verified != 3 {
				t.Fatalf("got %d verified and errors %v, want 3 and none", o.verified, o.errs)
			}
			if o.mbps(xfer.size) <= 0 {
				t.Errorf("got %v MB/s, want a positive rate", o.mbps(xfer.size))
			}
		})
	}
}

// TestTransfersCountEveryError checks that failures are counted, one per
// transfer, with the reason.
func TestTransfersCountEveryError(t *testing.T) {
	mock := ingestmock.New(mockPrefix)
	// A proxy that drops the last byte of every download and answers 502
	// to every upload.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			http.Error(w, `{"detail":"bad gateway"}`, http.StatusBadGateway)
			return
		}
		q := r.URL.Query()
		q.Set("size", "99")
		r.URL.RawQuery = q.Encode()
		mock.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	xfer, err := newTransfers(100, 2, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	wantErr := map[string]string{
		testUpload:    "status 502, want 200",
		testMultipart: "status 502, want 202",
		testDownload:  "got 99 bytes",
	}
	for _, test := range transferTests() {
		t.Run(test, func(t *testing.T) {
			o := xfer.do(t.Context(), test, srv.URL+mockPrefix)
			if o.verified != 0 || len(o.errs) != 2 {
				t.Fatalf("got %d verified and %d errors, want 0 and 2", o.verified, len(o.errs))
			}
			if !strings.Contains(o.errs[0].Error(), wantErr[test]) {
				t.Errorf("got error %q, want one containing %q", o.errs[0], wantErr[test])
			}
		})
	}
}

// TestTransfersCatchCorruption checks that a body of the right length with
// one byte changed fails its transfer: the checksum, not only the length,
// is compared, in both directions.
func TestTransfersCatchCorruption(t *testing.T) {
	mock := ingestmock.New(mockPrefix)
	const size, at = 1<<20 + 3, 777_777
	// A proxy that flips one bit of every body, on its way in or out.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			r.Body = io.NopCloser(&flipReader{r: r.Body, at: at})
			mock.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		mock.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		if rec.Code == http.StatusOK && len(body) > at {
			body[at] ^= 1
		}
		maps.Copy(w.Header(), rec.Header())
		w.WriteHeader(rec.Code)
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	xfer, err := newTransfers(size, 1, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, test := range transferTests() {
		t.Run(test, func(t *testing.T) {
			o := xfer.do(t.Context(), test, srv.URL+mockPrefix)
			if o.verified != 0 || len(o.errs) != 1 {
				t.Fatalf("got %d verified and %d errors, want 0 and 1", o.verified, len(o.errs))
			}
			// The length checks out; the sum the far end got differs from
			// the expected one, and both are CRC-32Cs.
			m := mismatch.FindStringSubmatch(o.errs[0].Error())
			if m == nil || m[1] != m[3] || m[1] != strconv.Itoa(size) || m[2] == m[4] {
				t.Errorf("got error %q, want one for %d bytes with a wrong crc32c", o.errs[0], size)
			}
		})
	}
}

// mismatch matches the transfers' error for a body that arrived with the
// wrong size or checksum: got size, got sum, want size, want sum.
var mismatch = regexp.MustCompile(`got (?:"[^"]*" of )?(\d+) bytes with crc32c ([0-9a-f]{8}), want (?:"[^"]*" of )?(\d+) bytes with crc32c ([0-9a-f]{8})$`)

// flipReader flips the lowest bit of byte at of r's stream.
type flipReader struct {
	r       io.Reader
	off, at int64
}

func (f *flipReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if i := f.at - f.off; i >= 0 && i < int64(n) {
		p[i] ^= 1
	}
	f.off += int64(n)
	return n, err
}

// TestBodyLimitEnv checks that the kit raises the gateway's body limit only
// for bodies over its default, and then to exactly what the largest body
// (a multipart form around -size bytes) needs, in a form the gateway's
// configuration accepts.
func TestBodyLimitEnv(t *testing.T) {
	form, err := ingestmock.NewForm("doc.pdf", "application/pdf")
	if err != nil {
		t.Fatal(err)
	}
	limit := config.Default().MaxBodySize
	for _, size := range []int64{256 << 20, limit - form.Len(0)} {
		if env := (&transfers{size: size, form: form}).bodyLimitEnv(); env != nil {
			t.Errorf("size %d: got %q, want nil (the default limit lets %d bytes through)", size, env, form.Len(size))
		}
	}
	for _, size := range []int64{limit - form.Len(0) + 1, 2 * limit} {
		env := (&transfers{size: size, form: form}).bodyLimitEnv()
		cfg, err := config.Load(append(env, "GATEWAY_INGEST_SERVICE_URL=http://127.0.0.1:1"))
		if err != nil {
			t.Fatalf("size %d: the gateway refuses %q: %v", size, env, err)
		}
		if cfg.MaxBodySize != form.Len(size) {
			t.Errorf("size %d: got a limit of %d, want %d, the multipart body's length", size, cfg.MaxBodySize, form.Len(size))
		}
	}
}
