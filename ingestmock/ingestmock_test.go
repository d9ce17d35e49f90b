package ingestmock_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atenex/gateway/ingestmock"
)

const prefix = "/api/v1"

// newServer starts the mock on a real loopback socket.
func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(ingestmock.New(prefix))
	t.Cleanup(srv.Close)
	return srv
}

// noRedirectClient returns a client that shows 3xx answers as they are.
func noRedirectClient() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
}

// do sends req and returns the response with its whole body.
func do(t *testing.T, c *http.Client, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	return resp, body
}

// newRequest is http.NewRequest that fails the test on error.
func newRequest(t *testing.T, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// raw sends a hand-written request on a new connection and returns the raw
// response head (status line and header lines) and the parsed response with
// its body read.
func raw(t *testing.T, srv *httptest.Server, request string) (head string, resp *http.Response, body []byte) {
	t.Helper()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var h strings.Builder
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading response head: %v (so far %q)", err, h.String())
		}
		h.WriteString(line)
		if line == "\r\n" {
			break
		}
	}
	method, _, _ := strings.Cut(request, " ")
	resp, err = http.ReadResponse(bufio.NewReader(io.MultiReader(strings.NewReader(h.String()), br)), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("parsing response: %v", err)
	}
	body, err = io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading response body: %v", err)
	}
	return h.String(), resp, body
}

// sha256Hex returns the hex sha256 of everything r yields.
func sha256Hex(t *testing.T, r io.Reader) string {
	t.Helper()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func patternBytes(t *testing.T, n int64) []byte {
	t.Helper()
	b, err := io.ReadAll(ingestmock.Pattern(n))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkJSONReply checks the status, the Content-Type and that body is
// exactly want.
func checkJSONReply(t *testing.T, resp *http.Response, body []byte, wantStatus int, want string) {
	t.Helper()
	if resp.StatusCode != wantStatus {
		t.Errorf("status: got %d, want %d (body %s)", resp.StatusCode, wantStatus, body)
	}
	if got := resp.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type: got %q, want %q", got, "application/json")
	}
	if string(body) != want {
		t.Errorf("body: got %s, want %s", body, want)
	}
}

// ---- Pattern ----

func TestPattern(t *testing.T) {
	const longest = 1<<20 + 3
	ref := patternBytes(t, longest)
	for _, n := range []int64{0, 1, 7, 8, 9, 31, 32, 33, 64<<10 - 1, 64 << 10, 64<<10 + 1, longest} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			// io.ReadAll uses Read; io.Copy uses WriteTo.
			got := patternBytes(t, n)
			if int64(len(got)) != n {
				t.Fatalf("length: got %d, want %d", len(got), n)
			}
			if !bytes.Equal(got, ref[:n]) {
				t.Errorf("Pattern(%d) is not a prefix of Pattern(%d)", n, longest)
			}
			var buf bytes.Buffer
			if k, err := io.Copy(&buf, ingestmock.Pattern(n)); err != nil || k != n {
				t.Fatalf("io.Copy: got (%d, %v), want (%d, nil)", k, err, n)
			}
			if !bytes.Equal(buf.Bytes(), got) {
				t.Errorf("WriteTo and Read disagree")
			}
			// Odd-sized reads exercise unaligned offsets.
			var odd []byte
			r, small := ingestmock.Pattern(n), make([]byte, 5)
			for {
				k, err := r.Read(small)
				odd = append(odd, small[:k]...)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(odd, got) {
				t.Errorf("5-byte reads disagree with one big read")
			}
		})
	}

	t.Run("negative", func(t *testing.T) {
		if got := patternBytes(t, -5); len(got) != 0 {
			t.Errorf("length: got %d, want 0", len(got))
		}
	})
	t.Run("golden", func(t *testing.T) {
		// Pinned so that clients hard-coding digests notice any change.
		if got, want := hex.EncodeToString(patternBytes(t, 16)), "bba5f9d19703f179d150a1bde9c23e5d"; got != want {
			t.Errorf("Pattern(16): got %s, want %s", got, want)
		}
		if got, want := sha256Hex(t, ingestmock.Pattern(1<<20)), "91fe9009c1b470d8fbeebed301582a4e367a656534ced885c0972580821328b0"; got != want {
			t.Errorf("sha256(Pattern(1 MiB)): got %s, want %s", got, want)
		}
	})
	t.Run("not degenerate", func(t *testing.T) {
		var seen [256]bool
		for _, b := range ref {
			seen[b] = true
		}
		if i := slices.Index(seen[:], false); i >= 0 {
			t.Errorf("byte value %d never occurs in %d bytes", i, len(ref))
		}
		for _, period := range []int{8, 4 << 10, 64 << 10} {
			if bytes.Equal(ref[:period], ref[period:2*period]) {
				t.Errorf("pattern repeats with period %d", period)
			}
		}
	})
}

func BenchmarkPattern(b *testing.B) {
	const n = 64 << 20
	b.SetBytes(n)
	for b.Loop() {
		if _, err := io.Copy(io.Discard, ingestmock.Pattern(n)); err != nil {
			b.Fatal(err)
		}
	}
}

// ---- routing ----

func TestRouting(t *testing.T) {
	srv := newServer(t)
	const (
		notFound   = `{"detail":"Not Found"}`
		notAllowed = `{"detail":"Method Not Allowed"}`
	)
	tests := []struct {
		method, target string
		wantStatus     int
		wantBody       string
		wantAllow      string
	}{
		{"GET", "/", 404, notFound, ""},
		{"GET", "/api/v1", 404, notFound, ""},
		{"GET", "/api/v1/nope", 404, notFound, ""},
		{"GET", "/api/v1/ping/", 404, notFound, ""},
		{"GET", "/api/v1/pingx", 404, notFound, ""},
		{"GET", "/api/v1/echox", 404, notFound, ""},
		{"GET", "/api/v2/ping", 404, notFound, ""},
		{"GET", "/ping", 404, notFound, ""},
		{"GET", "/api/v1/status/", 404, notFound, ""},
		{"GET", "/api/v1/status/200/x", 404, notFound, ""},
		// ServeMux would redirect these; the mock answers 404 like the real service.
		{"GET", "/api/v1//ping", 404, notFound, ""},
		{"GET", "/api/v1/./ping", 404, notFound, ""},
		{"GET", "/api/v1/x/../ping", 404, notFound, ""},
		{"POST", "/api/v1/nope", 404, notFound, ""},
		{"GET", "/api/v1/upload", 405, notAllowed, "POST"},
		{"PUT", "/api/v1/upload", 405, notAllowed, "POST"},
		{"POST", "/api/v1/ping", 405, notAllowed, "GET, HEAD"},
		{"DELETE", "/api/v1/ping", 405, notAllowed, "GET, HEAD"},
		{"GET", "/api/v1/sink", 405, notAllowed, "POST, PUT"},
		{"PATCH", "/api/v1/sink", 405, notAllowed, "POST, PUT"},
		{"POST", "/api/v1/blob?size=1", 405, notAllowed, "GET, HEAD"},
		{"POST", "/api/v1/headers", 405, notAllowed, "GET, HEAD"},
		{"POST", "/api/v1/gzip", 405, notAllowed, "GET, HEAD"},
		{"POST", "/api/v1/status/200", 405, notAllowed, "GET, HEAD"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			_, resp, body := raw(t, srv, tt.method+" "+tt.target+" HTTP/1.1\r\nHost: mock\r\nContent-Length: 0\r\n\r\n")
			checkJSONReply(t, resp, body, tt.wantStatus, tt.wantBody)
			if got := resp.Header.Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow: got %q, want %q", got, tt.wantAllow)
			}
		})
	}
}

func TestPrefix(t *testing.T) {
	tests := []struct {
		prefix, target string
		wantStatus     int
	}{
		{"", "/ping", 200},
		{"", "/api/v1/ping", 404},
		{"/other/", "/other/ping", 200},
		{"/other/", "/other/echo/x", 200},
		{"/other/", "/api/v1/ping", 404},
		{"/a/b", "/a/b/status/201", 201},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q %s", tt.prefix, tt.target), func(t *testing.T) {
			srv := httptest.NewServer(ingestmock.New(tt.prefix))
			defer srv.Close()
			resp, body := do(t, nil, newRequest(t, "GET", srv.URL+tt.target, nil))
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status: got %d, want %d (body %s)", resp.StatusCode, tt.wantStatus, body)
			}
		})
	}
	for _, bad := range []string{"api", "/a//b", "/a/../b", "/{x}", "/a b"} {
		t.Run("invalid "+bad, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("New(%q): got no panic, want one", bad)
				}
			}()
			ingestmock.New(bad)
		})
	}
}

// ---- ping ----

func TestPing(t *testing.T) {
	srv := newServer(t)
	for _, method := range []string{"GET", "HEAD"} {
		t.Run(method, func(t *testing.T) {
			resp, body := do(t, nil, newRequest(t, method, srv.URL+prefix+"/ping", nil))
			want := `{"status":"ok"}`
			if method == "HEAD" {
				want = ""
			}
			checkJSONReply(t, resp, body, 200, want)
			if got := resp.Header.Get("Content-Length"); got != "15" {
				t.Errorf("Content-Length: got %q, want %q", got, "15")
			}
		})
	}
}

// ---- upload ----

// formPart is one part of a multipart/form-data test body.
type formPart struct {
	name        string
	filename    *string // nil: no filename parameter.
	contentType string  // "": no Content-Type header.
	body        string
}

func str(s string) *string { return &s }

// filePart is a "file" part with the given file name and Content-Type.
func filePart(filename, contentType, body string) formPart {
	return formPart{name: "file", filename: str(filename), contentType: contentType, body: body}
}

// metadataPart is the metadata_json field the gateway sends along.
var metadataPart = formPart{name: "metadata_json", body: `{"k":"v"}`}

// writeForm writes parts as multipart/form-data to w.
func writeForm(mw *multipart.Writer, parts []formPart) error {
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		cd := fmt.Sprintf("form-data; name=%q", p.name)
		if p.filename != nil {
			cd += fmt.Sprintf("; filename=%q", *p.filename)
		}
		h.Set("Content-Disposition", cd)
		if p.contentType != "" {
			h.Set("Content-Type", p.contentType)
		}
		pw, err := mw.CreatePart(h)
		if err != nil {
			return err
		}
		if _, err := io.WriteString(pw, p.body); err != nil {
			return err
		}
	}
	return mw.Close()
}

// uploadReply mirrors the upload route's 202 body.
type uploadReply struct {
	DocumentID string `json:"document_id"`
	Status     string `json:"status"`
	Message    string `json:"message"`
	FileName   string `json:"file_name"`
	FileSize   int64  `json:"file_size"`
	SHA256     string `json:"sha256"`
	CRC32C     string `json:"crc32c"`
	CompanyID  string `json:"company_id"`
}

var uuid4RE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// checkAccepted checks a 202 upload reply.
func checkAccepted(t *testing.T, resp *http.Response, body []byte, wantName string, wantSize int64, wantSHA, wantCompany string) {
	t.Helper()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status: got %d, want %d (body %s)", resp.StatusCode, http.StatusAccepted, body)
	}
	if got := resp.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type: got %q, want %q", got, "application/json")
	}
	var got uploadReply
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("decoding %s: %v", body, err)
	}
	if !uuid4RE.MatchString(got.DocumentID) {
		t.Errorf("document_id: got %q, want a random (version 4) UUID", got.DocumentID)
	}
	want := uploadReply{
		DocumentID: got.DocumentID,
		Status:     "Event-Sent",
		Message:    "Document upload received and queued for processing.",
		FileName:   wantName,
		FileSize:   wantSize,
		SHA256:     wantSHA,
		CompanyID:  wantCompany,
	}
	if got != want {
		t.Errorf("reply:\ngot  %+v\nwant %+v", got, want)
	}
}

func TestUpload(t *testing.T) {
	srv := newServer(t)
	const (
		missing     = `{"detail":[{"type":"missing","loc":["body","file"],"msg":"Field required","input":null}]}`
		unsupported = `{"detail":"Unsupported file type"}`
	)
	const content = "hello, ingest\n"
	sum := sha256.Sum256([]byte(content))
	contentSHA := hex.EncodeToString(sum[:])

	accepted := []struct {
		name        string
		filename    string
		contentType string
	}{
		{"pdf", "a.pdf", "application/pdf"},
		{"docx", "a.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
		{"doc", "a.doc", "application/msword"},
		{"txt with charset", "a.txt", "text/plain; charset=utf-8"},
		{"md", "a.md", "text/markdown"},
		{"html upper case", "a.html", "Text/HTML"},
		{"xlsx", "a.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
		{"xls", "a.xls", "application/vnd.ms-excel"},
		{"type wins over extension", "a.exe", "application/pdf"},
		{"octet-stream PDF extension", "REPORT.PDF", "application/octet-stream"},
		{"octet-stream htm", "page.htm", "application/octet-stream"},
		{"no type md", "notes.md", ""},
		{"no type xls", "sheet.XLS", ""},
		{"no type docx with directory", `C:\docs\a.docx`, ""},
		{"unicode name", "résumé ñ.txt", "text/plain"},
	}
	for _, tt := range accepted {
		t.Run("202 "+tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			mw := multipart.NewWriter(&buf)
			if err := writeForm(mw, []formPart{metadataPart, filePart(tt.filename, tt.contentType, content), metadataPart}); err != nil {
				t.Fatal(err)
			}
			req := newRequest(t, "POST", srv.URL+prefix+"/upload", &buf)
			req.Header.Set("Content-Type", mw.FormDataContentType())
			req.Header.Set("X-Company-ID", "company-42")
			resp, body := do(t, nil, req)
			checkAccepted(t, resp, body, tt.filename, int64(len(content)), contentSHA, "company-42")
		})
	}

	t.Run("202 no company, empty file, last file part wins", func(t *testing.T) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		if err := writeForm(mw, []formPart{filePart("first.pdf", "application/pdf", content), filePart("second.txt", "text/plain", "")}); err != nil {
			t.Fatal(err)
		}
		req := newRequest(t, "POST", srv.URL+prefix+"/upload", &buf)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		resp, body := do(t, nil, req)
		checkAccepted(t, resp, body, "second.txt", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "")
	})

	t.Run("document ids differ", func(t *testing.T) {
		ids := map[string]bool{}
		for range 3 {
			var buf bytes.Buffer
			mw := multipart.NewWriter(&buf)
			if err := writeForm(mw, []formPart{filePart("a.pdf", "application/pdf", content)}); err != nil {
				t.Fatal(err)
			}
			req := newRequest(t, "POST", srv.URL+prefix+"/upload", &buf)
			req.Header.Set("Content-Type", mw.FormDataContentType())
			_, body := do(t, nil, req)
			var r uploadReply
			if err := json.Unmarshal(body, &r); err != nil {
				t.Fatalf("decoding %s: %v", body, err)
			}
			ids[r.DocumentID] = true
		}
		if len(ids) != 3 {
			t.Errorf("distinct document_ids over 3 uploads: got %d, want 3", len(ids))
		}
	})

	rejected := []struct {
		name       string
		parts      []formPart
		wantStatus int
		wantBody   string
	}{
		{"415 image", []formPart{filePart("a.pdf", "image/png", content)}, 415, unsupported},
		{"415 octet-stream exe", []formPart{filePart("a.exe", "application/octet-stream", content)}, 415, unsupported},
		{"415 no type no extension", []formPart{filePart("README", "", content)}, 415, unsupported},
		{"415 no type empty name", []formPart{filePart("", "", content)}, 415, unsupported},
		{"415 json", []formPart{metadataPart, filePart("a.json", "application/json", content)}, 415, unsupported},
		{"422 only metadata", []formPart{metadataPart}, 422, missing},
		{"422 no parts", nil, 422, missing},
		{"422 file without filename", []formPart{{name: "file", contentType: "application/pdf", body: content}}, 422, missing},
		{"422 wrong field name", []formPart{{name: "upload", filename: str("a.pdf"), contentType: "application/pdf", body: content}}, 422, missing},
	}
	for _, tt := range rejected {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			mw := multipart.NewWriter(&buf)
			if err := writeForm(mw, tt.parts); err != nil {
				t.Fatal(err)
			}
			req := newRequest(t, "POST", srv.URL+prefix+"/upload", &buf)
			req.Header.Set("Content-Type", mw.FormDataContentType())
			resp, body := do(t, nil, req)
			checkJSONReply(t, resp, body, tt.wantStatus, tt.wantBody)
		})
	}

	malformed := []struct {
		name        string
		contentType string // "" : no Content-Type header.
		body        string
		wantStatus  int
		wantBody    string
	}{
		{"422 json body", "application/json", `{"file":"x"}`, 422, missing},
		{"422 no content type", "", "hello", 422, missing},
		{"422 urlencoded", "application/x-www-form-urlencoded", "file=x", 422, missing},
		{"422 multipart without boundary", "multipart/form-data", "--x\r\n", 422, missing},
		{"422 empty multipart body", "multipart/form-data; boundary=xyz", "", 422, missing},
		{"400 truncated multipart", "multipart/form-data; boundary=xyz",
			"--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.pdf\"\r\nContent-Type: application/pdf\r\n\r\nhalf a fi",
			400, `{"detail":"There was an error parsing the body"}`},
		{"400 garbage", "multipart/form-data; boundary=xyz", "this is not multipart at all",
			400, `{"detail":"There was an error parsing the body"}`},
	}
	for _, tt := range malformed {
		t.Run(tt.name, func(t *testing.T) {
			req := newRequest(t, "POST", srv.URL+prefix+"/upload", strings.NewReader(tt.body))
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			resp, body := do(t, nil, req)
			checkJSONReply(t, resp, body, tt.wantStatus, tt.wantBody)
		})
	}
}

// TestUploadStreams uploads a 64 MiB file produced on the fly through an
// io.Pipe and checks that neither the digest nor the memory use betray
// buffering.
func TestUploadStreams(t *testing.T) {
	const size = 64 << 20
	srv := newServer(t)
	wantSHA := sha256Hex(t, ingestmock.Pattern(size))

	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	var mid runtime.MemStats
	go func() {
		err := func() error {
			if err := mw.WriteField("metadata_json", `{"source":"test"}`); err != nil {
				return err
			}
			fw, err := mw.CreatePart(textproto.MIMEHeader{
				"Content-Disposition": {`form-data; name="file"; filename="big.pdf"`},
				"Content-Type":        {"application/pdf"},
			})
			if err != nil {
				return err
			}
			r := ingestmock.Pattern(size)
			if _, err := io.CopyN(fw, r, size/2); err != nil {
				return err
			}
			runtime.ReadMemStats(&mid) // Half the body is in flight or consumed.
			if _, err := io.Copy(fw, r); err != nil {
				return err
			}
			return mw.Close()
		}()
		pw.CloseWithError(err)
	}()

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	req := newRequest(t, "POST", srv.URL+prefix+"/upload", pr)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("X-Company-ID", "acme")
	resp, body := do(t, nil, req)
	runtime.ReadMemStats(&after)

	checkAccepted(t, resp, body, "big.pdf", size, wantSHA, "acme")
	// Client and server together; buffering the body would cost >= 64 MiB.
	const limit = 16 << 20
	if got := after.TotalAlloc - before.TotalAlloc; got > limit {
		t.Errorf("bytes allocated during a %d MiB upload: got %d, want < %d", size>>20, got, limit)
	}
	if got := int64(mid.HeapInuse) - int64(before.HeapInuse); got > limit {
		t.Errorf("heap growth halfway through the upload: got %d, want < %d", got, limit)
	}
}

// ---- echo ----

// echoReply mirrors the echo route's body.
type echoReply struct {
	Method           string      `json:"method"`
	URI              string      `json:"uri"`
	Path             string      `json:"path"`
	RawQuery         string      `json:"raw_query"`
	Host             string      `json:"host"`
	Headers          http.Header `json:"headers"`
	Proto            string      `json:"proto"`
	ContentLength    int64       `json:"content_length"`
	TransferEncoding []string    `json:"transfer_encoding"`
	BodyBytes        int64       `json:"body_bytes"`
	BodySHA256       string      `json:"body_sha256"`
	Trailers         http.Header `json:"trailers"`
}

const emptySHA = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

func TestEcho(t *testing.T) {
	srv := newServer(t)
	abcSHA := "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	tests := []struct {
		name    string
		request string
		want    echoReply
	}{
		{
			name:    "GET exact path",
			request: "GET /api/v1/echo HTTP/1.1\r\nHost: gw.example:8080\r\nConnection: close\r\n\r\n",
			want: echoReply{Method: "GET", URI: "/api/v1/echo", Path: "/api/v1/echo", Host: "gw.example:8080",
				Headers: http.Header{"Connection": {"close"}}, Proto: "HTTP/1.1", TransferEncoding: []string{},
				BodySHA256: emptySHA, Trailers: http.Header{}},
		},
		{
			name: "raw target kept",
			request: "DELETE /api/v1/echo/a%2Fb/../c//d?x=%20&y=1&x=2 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n" +
				"X-Multi: one\r\nx-multi: two\r\nX-Empty: \r\n\r\n",
			want: echoReply{Method: "DELETE", URI: "/api/v1/echo/a%2Fb/../c//d?x=%20&y=1&x=2", Path: "/api/v1/echo/a%2Fb/../c//d",
				RawQuery: "x=%20&y=1&x=2", Host: "h",
				Headers: http.Header{"Connection": {"close"}, "X-Multi": {"one", "two"}, "X-Empty": {""}},
				Proto:   "HTTP/1.1", TransferEncoding: []string{}, BodySHA256: emptySHA, Trailers: http.Header{}},
		},
		{
			name:    "POST with Content-Length",
			request: "POST /api/v1/echo/x HTTP/1.1\r\nHost: h\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nabc",
			want: echoReply{Method: "POST", URI: "/api/v1/echo/x", Path: "/api/v1/echo/x", Host: "h",
				Headers: http.Header{"Connection": {"close"}, "Content-Type": {"text/plain"}, "Content-Length": {"3"}},
				Proto:   "HTTP/1.1", ContentLength: 3, TransferEncoding: []string{}, BodyBytes: 3, BodySHA256: abcSHA, Trailers: http.Header{}},
		},
		{
			name: "chunked with trailer",
			request: "PUT /api/v1/echo/ HTTP/1.1\r\nHost: h\r\nConnection: close\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n" +
				"1\r\na\r\n2\r\nbc\r\n0\r\nX-Sum: 3\r\n\r\n",
			want: echoReply{Method: "PUT", URI: "/api/v1/echo/", Path: "/api/v1/echo/", Host: "h",
				Headers: http.Header{"Connection": {"close"}}, Proto: "HTTP/1.1", ContentLength: -1,
				TransferEncoding: []string{"chunked"}, BodyBytes: 3, BodySHA256: abcSHA, Trailers: http.Header{"X-Sum": {"3"}}},
		},
		{
			name:    "HTTP/1.0 absolute form",
			request: "OPTIONS http://up.example/api/v1/echo/q?a=b HTTP/1.0\r\nHost: ignored\r\n\r\n",
			want: echoReply{Method: "OPTIONS", URI: "http://up.example/api/v1/echo/q?a=b", Path: "/api/v1/echo/q", RawQuery: "a=b",
				Host: "up.example", Headers: http.Header{}, Proto: "HTTP/1.0", TransferEncoding: []string{},
				BodySHA256: emptySHA, Trailers: http.Header{}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, resp, body := raw(t, srv, tt.request)
			if resp.StatusCode != 200 {
				t.Fatalf("status: got %d, want 200 (body %s)", resp.StatusCode, body)
			}
			if got := resp.Header.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type: got %q, want %q", got, "application/json")
			}
			var got echoReply
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&got); err != nil {
				t.Fatalf("decoding %s: %v", body, err)
			}
			gotJSON, _ := json.Marshal(got)
			wantJSON, _ := json.Marshal(tt.want)
			if !bytes.Equal(gotJSON, wantJSON) {
				t.Errorf("echo:\ngot  %s\nwant %s", gotJSON, wantJSON)
			}
		})
	}

	t.Run("bad chunked body", func(t *testing.T) {
		_, resp, body := raw(t, srv, "POST /api/v1/echo HTTP/1.1\r\nHost: h\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
		if resp.StatusCode != 400 {
			t.Errorf("status: got %d, want 400 (body %s)", resp.StatusCode, body)
		}
	})

	t.Run("streamed 8 MiB body", func(t *testing.T) {
		const size = 8 << 20
		// A body of unknown length makes the client send it chunked.
		req := newRequest(t, "POST", srv.URL+prefix+"/echo/big", io.MultiReader(ingestmock.Pattern(size)))
		_, body := do(t, nil, req)
		var got echoReply
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("decoding %s: %v", body, err)
		}
		if want := sha256Hex(t, ingestmock.Pattern(size)); got.BodyBytes != size || got.BodySHA256 != want {
			t.Errorf("body: got (%d, %s), want (%d, %s)", got.BodyBytes, got.BodySHA256, size, want)
		}
		if !slices.Equal(got.TransferEncoding, []string{"chunked"}) || got.ContentLength != -1 {
			t.Errorf("framing: got (%v, %d), want ([chunked], -1)", got.TransferEncoding, got.ContentLength)
		}
	})
}

// ---- sink ----

func TestSink(t *testing.T) {
	srv := newServer(t)
	tests := []struct {
		name   string
		method string
		size   int64
		sized  bool // Send a Content-Length; otherwise the client chunks.
	}{
		{"POST empty", "POST", 0, true},
		{"POST 4 MiB", "POST", 4 << 20, true},
		{"PUT chunked 3 MiB+1", "PUT", 3<<20 + 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader = ingestmock.Pattern(tt.size)
			if !tt.sized {
				body = io.MultiReader(body) // Hide the length.
			}
			req := newRequest(t, tt.method, srv.URL+prefix+"/sink", body)
			if tt.sized {
				req.ContentLength = tt.size
				if tt.size == 0 {
					req.Body = http.NoBody
				}
			}
			resp, got := do(t, nil, req)
			want := fmt.Sprintf(`{"bytes":%d,"sha256":"%s"}`, tt.size, sha256Hex(t, ingestmock.Pattern(tt.size)))
			checkJSONReply(t, resp, got, 200, want)
		})
	}
}

// TestChecksums covers the checksum query parameter of the sink and upload
// routes. The expected CRC-32C values are computed here with hash/crc32,
// not with the mock's NewChecksum.
func TestChecksums(t *testing.T) {
	srv := newServer(t)
	crc32c := func(r io.Reader) string {
		h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
		if _, err := io.Copy(h, r); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%08x", h.Sum32())
	}
	const size = 3<<20 + 1

	t.Run("sink", func(t *testing.T) {
		for _, tt := range []struct{ query, want string }{
			{"?checksum=crc32c", fmt.Sprintf(`{"bytes":%d,"crc32c":"%s"}`, size, crc32c(ingestmock.Pattern(size)))},
			{"?checksum=sha256", fmt.Sprintf(`{"bytes":%d,"sha256":"%s"}`, size, sha256Hex(t, ingestmock.Pattern(size)))},
			{"?checksum=", fmt.Sprintf(`{"bytes":%d,"sha256":"%s"}`, size, sha256Hex(t, ingestmock.Pattern(size)))},
			{"?checksum=md5", `{"detail":"checksum: want sha256 (the default) or crc32c"}`},
		} {
			t.Run(tt.query, func(t *testing.T) {
				req := newRequest(t, "POST", srv.URL+prefix+"/sink"+tt.query, io.MultiReader(ingestmock.Pattern(size)))
				resp, got := do(t, nil, req)
				status := 200
				if strings.Contains(tt.want, "detail") {
					status = 400
				}
				checkJSONReply(t, resp, got, status, tt.want)
			})
		}
	})

	upload := func(t *testing.T, query string) (*http.Response, []byte) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		// Two file parts: the last wins, so the hash must restart for it.
		if err := writeForm(mw, []formPart{filePart("first.pdf", "application/pdf", "not this one"), filePart("a.txt", "text/plain", "hello, ingest\n")}); err != nil {
			t.Fatal(err)
		}
		req := newRequest(t, "POST", srv.URL+prefix+"/upload"+query, &buf)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		return do(t, nil, req)
	}
	t.Run("upload crc32c", func(t *testing.T) {
		resp, body := upload(t, "?checksum=crc32c")
		var got uploadReply
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("decoding %s: %v", body, err)
		}
		if want := crc32c(strings.NewReader("hello, ingest\n")); resp.StatusCode != 202 || got.CRC32C != want || got.SHA256 != "" || got.FileSize != 14 {
			t.Errorf("got %d %s, want 202 with crc32c %s, no sha256, file_size 14", resp.StatusCode, body, want)
		}
	})
	t.Run("upload unknown checksum", func(t *testing.T) {
		resp, body := upload(t, "?checksum=CRC32C")
		checkJSONReply(t, resp, body, 400, `{"detail":"checksum: want sha256 (the default) or crc32c"}`)
	})

	t.Run("known answer", func(t *testing.T) {
		h, ok := ingestmock.NewChecksum(ingestmock.ChecksumCRC32C)
		if !ok {
			t.Fatal("NewChecksum(crc32c): not known")
		}
		h.Write([]byte("123456789")) // The CRC catalogue's check input.
		if got := fmt.Sprintf("%x", h.Sum(nil)); got != "e3069283" {
			t.Errorf("crc32c(123456789): got %s, want e3069283", got)
		}
	})

	// A refused checksum still consumes the whole body, like every answer
	// of these routes, so a client still sending reads the 400.
	for _, route := range []string{"/sink", "/upload"} {
		t.Run("400 consumes the body "+route, func(t *testing.T) {
			body := &countingReader{r: ingestmock.Pattern(size)}
			req := httptest.NewRequest("POST", prefix+route+"?checksum=md5", body)
			rec := httptest.NewRecorder()
			ingestmock.New(prefix).ServeHTTP(rec, req)
			if rec.Code != 400 || body.n != size {
				t.Errorf("got %d after reading %d bytes of the body, want 400 after all %d", rec.Code, body.n, size)
			}
		})
	}
}

// countingReader counts the bytes read from r.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// ---- blob ----

func TestBlob(t *testing.T) {
	srv := newServer(t)
	tests := []struct {
		name        string
		query       string
		size        int64
		wantChunked bool
		minDuration time.Duration
	}{
		{"empty", "size=0", 0, false, 0},
		{"one byte", "size=1", 1, false, 0},
		{"1 MiB+7", "size=1048583", 1<<20 + 7, false, 0},
		{"chunked empty", "size=0&chunked=1", 0, true, 0},
		{"chunked small", "size=5&chunked=1", 5, true, 0},
		{"chunked 300 KB", "size=300001&chunked=true", 300001, true, 0},
		{"chunked=0", "size=10&chunked=0", 10, false, 0},
		{"delayed", "size=10&delay_ms=100", 10, false, 100 * time.Millisecond},
		{"stalled", "size=200000&stall_after=70000&stall_ms=150", 200000, false, 150 * time.Millisecond},
		{"stall at start", "size=10&stall_after=0&stall_ms=50&chunked=1", 10, true, 50 * time.Millisecond},
		// With Content-Length the client would be done before the stall.
		{"stall at end", "size=10&stall_after=10&stall_ms=50&chunked=1", 10, true, 50 * time.Millisecond},
		{"die after the end", "size=1000&die_after=1000", 1000, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			resp, body := do(t, nil, newRequest(t, "GET", srv.URL+prefix+"/blob?"+tt.query, nil))
			elapsed := time.Since(start)
			if resp.StatusCode != 200 {
				t.Fatalf("status: got %d, want 200 (body %s)", resp.StatusCode, body)
			}
			if got := resp.Header.Get("Content-Type"); got != "application/octet-stream" {
				t.Errorf("Content-Type: got %q, want %q", got, "application/octet-stream")
			}
			wantCL, wantTE := tt.size, []string(nil)
			if tt.wantChunked {
				wantCL, wantTE = -1, []string{"chunked"}
			}
			if resp.ContentLength != wantCL || !slices.Equal(resp.TransferEncoding, wantTE) {
				t.Errorf("framing: got (Content-Length %d, Transfer-Encoding %v), want (%d, %v)",
					resp.ContentLength, resp.TransferEncoding, wantCL, wantTE)
			}
			if int64(len(body)) != tt.size || !bytes.Equal(body, patternBytes(t, tt.size)) {
				t.Errorf("body: got %d bytes (equal to Pattern: %v), want Pattern(%d)",
					len(body), bytes.Equal(body, patternBytes(t, int64(len(body)))), tt.size)
			}
			if elapsed < tt.minDuration {
				t.Errorf("duration: got %v, want >= %v", elapsed, tt.minDuration)
			}
		})
	}

	t.Run("HEAD", func(t *testing.T) {
		resp, body := do(t, nil, newRequest(t, "HEAD", srv.URL+prefix+"/blob?size=123456", nil))
		if resp.StatusCode != 200 || resp.ContentLength != 123456 || len(body) != 0 {
			t.Errorf("got (status %d, Content-Length %d, %d body bytes), want (200, 123456, 0)",
				resp.StatusCode, resp.ContentLength, len(body))
		}
	})

	bad := []struct{ query, wantDetail string }{
		{"", "size is required"},
		{"size=", "size must be an integer between 0 and 68719476736"},
		{"size=abc", "size must be an integer between 0 and 68719476736"},
		{"size=-1", "size must be an integer between 0 and 68719476736"},
		{"size=1.5", "size must be an integer between 0 and 68719476736"},
		{"size=68719476737", "size must be an integer between 0 and 68719476736"},
		{"size=10&chunked=maybe", "chunked must be a boolean (1 or 0)"},
		{"size=10&delay_ms=-5", "delay_ms must be an integer between 0 and 600000"},
		{"size=10&delay_ms=600001", "delay_ms must be an integer between 0 and 600000"},
		{"size=10&die_after=11", "die_after must be an integer between 0 and 10"},
		{"size=10&die_after=x", "die_after must be an integer between 0 and 10"},
		{"size=10&stall_after=5", "stall_after and stall_ms must be given together"},
		{"size=10&stall_ms=5", "stall_after and stall_ms must be given together"},
		{"size=10&stall_after=11&stall_ms=5", "stall_after must be an integer between 0 and 10"},
		{"size=10&stall_after=1&stall_ms=x", "stall_ms must be an integer between 0 and 600000"},
	}
	for _, tt := range bad {
		t.Run("400 "+tt.query, func(t *testing.T) {
			resp, body := do(t, nil, newRequest(t, "GET", srv.URL+prefix+"/blob?"+tt.query, nil))
			want, _ := json.Marshal(map[string]string{"detail": tt.wantDetail})
			checkJSONReply(t, resp, body, 400, string(want))
		})
	}
}

func TestBlobDieAfter(t *testing.T) {
	srv := newServer(t)
	tests := []struct {
		name  string
		query string
		want  int64 // Bytes the client gets before the error.
	}{
		{"Content-Length", "size=1048576&die_after=100000", 100000},
		{"chunked", "size=1048576&die_after=70000&chunked=1", 70000},
		{"before the first byte", "size=1000&die_after=0", 0},
		{"chunked at the end", "size=1000&die_after=1000&chunked=1", 1000},
		{"after a stall", "size=1000&stall_after=10&stall_ms=10&die_after=500", 500},
		{"before a stall", "size=1000&stall_after=600&stall_ms=60000&die_after=500", 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.Get(srv.URL + prefix + "/blob?" + tt.query)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status: got %d, want 200", resp.StatusCode)
			}
			body, err := io.ReadAll(resp.Body)
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("read error: got %v, want %v", err, io.ErrUnexpectedEOF)
			}
			if int64(len(body)) != tt.want || !bytes.Equal(body, patternBytes(t, tt.want)) {
				t.Errorf("body: got %d bytes, want the first %d bytes of the pattern", len(body), tt.want)
			}
		})
	}
}

// TestBlobWaitsEndWithClient checks that delays and stalls end when the
// client goes away: httptest.Server.Close waits for running handlers, so it
// would block for the whole minute otherwise.
func TestBlobWaitsEndWithClient(t *testing.T) {
	for _, query := range []string{"size=100&delay_ms=60000", "size=100&stall_after=10&stall_ms=60000"} {
		t.Run(query, func(t *testing.T) {
			srv := httptest.NewServer(ingestmock.New(prefix))
			defer srv.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, "GET", srv.URL+prefix+"/blob?"+query, nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp, err := http.DefaultClient.Do(req); err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				if err == nil {
					t.Fatalf("got a complete body, want the request cut by its timeout")
				}
			}
			cancel()
			http.DefaultClient.CloseIdleConnections()
			start := time.Now()
			srv.Close()
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("server shutdown: got %v, want < 5s (handler kept sleeping)", d)
			}
		})
	}
}

// ---- headers ----

func TestHeaders(t *testing.T) {
	srv := newServer(t)
	t.Run("client view", func(t *testing.T) {
		resp, body := do(t, nil, newRequest(t, "GET", srv.URL+prefix+"/headers", nil))
		checkJSONReply(t, resp, body, 200, `{}`)
		for name, want := range map[string][]string{
			"Set-Cookie": {"a=1; Path=/", "b=2; Path=/"},
			"X-Upstream": {"mock"},
		} {
			if got := resp.Header.Values(name); !slices.Equal(got, want) {
				t.Errorf("%s: got %q, want %q", name, got, want)
			}
		}
	})
}

// TestHeadersOnTheWire pins what net/http really sends for the hop-by-hop
// headers the handler sets: all of them over HTTP/1.1, but it drops the
// handler's Connection header when it closes the connection (HTTP/1.0).
func TestHeadersOnTheWire(t *testing.T) {
	srv := newServer(t)
	common := []string{
		"Set-Cookie: a=1; Path=/", "Set-Cookie: b=2; Path=/", "X-Upstream: mock",
		"X-Hop: secret", "Keep-Alive: timeout=5", "Proxy-Authenticate: Basic", "Upgrade: h2c",
	}
	tests := []struct {
		name, request string
		want, absent  []string
	}{
		{"HTTP/1.1", "GET /api/v1/headers HTTP/1.1\r\nHost: h\r\n\r\n", append([]string{"Connection: X-Hop"}, common...), nil},
		{"HTTP/1.0", "GET /api/v1/headers HTTP/1.0\r\nHost: h\r\n\r\n", common, []string{"Connection:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			head, _, _ := raw(t, srv, tt.request)
			lines := strings.Split(head, "\r\n")
			for _, w := range tt.want {
				if !slices.Contains(lines, w) {
					t.Errorf("header line %q: got absent, want present in\n%s", w, head)
				}
			}
			for _, a := range tt.absent {
				if strings.Contains(head, a) {
					t.Errorf("%q: got present, want absent in\n%s", a, head)
				}
			}
		})
	}
}

// ---- gzip ----

func TestGzip(t *testing.T) {
	srv := newServer(t)
	t.Run("raw", func(t *testing.T) {
		c := &http.Client{Transport: &http.Transport{DisableCompression: true}}
		resp, body := do(t, c, newRequest(t, "GET", srv.URL+prefix+"/gzip", nil))
		if resp.StatusCode != 200 {
			t.Fatalf("status: got %d, want 200", resp.StatusCode)
		}
		if got := resp.Header.Get("Content-Encoding"); got != "gzip" {
			t.Errorf("Content-Encoding: got %q, want %q", got, "gzip")
		}
		if resp.ContentLength != int64(len(body)) || len(body) == 0 {
			t.Errorf("Content-Length: got %d, want %d (the compressed size)", resp.ContentLength, len(body))
		}
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		plain, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		if string(plain) != `{"compressed":true}` {
			t.Errorf("decompressed body: got %s, want %s", plain, `{"compressed":true}`)
		}
	})
	t.Run("transparent", func(t *testing.T) {
		resp, body := do(t, nil, newRequest(t, "GET", srv.URL+prefix+"/gzip", nil))
		if string(body) != `{"compressed":true}` || !resp.Uncompressed {
			t.Errorf("got (%s, uncompressed by transport: %v), want (%s, true)", body, resp.Uncompressed, `{"compressed":true}`)
		}
	})
}

// ---- status ----

func TestStatus(t *testing.T) {
	srv := newServer(t)
	tests := []struct {
		code         string
		wantStatus   int
		wantBody     string
		wantLocation string
	}{
		{"200", 200, `{"code":200}`, ""},
		{"201", 201, `{"code":201}`, ""},
		{"204", 204, ``, ""},
		{"301", 301, `{"code":301}`, "/elsewhere"},
		{"302", 302, `{"code":302}`, "/elsewhere"},
		{"304", 304, ``, "/elsewhere"},
		{"307", 307, `{"code":307}`, "/elsewhere"},
		{"400", 400, `{"code":400}`, ""},
		{"404", 404, `{"code":404}`, ""},
		{"418", 418, `{"code":418}`, ""},
		{"500", 500, `{"code":500}`, ""},
		{"503", 503, `{"code":503}`, ""},
		{"599", 599, `{"code":599}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			resp, body := do(t, noRedirectClient(), newRequest(t, "GET", srv.URL+prefix+"/status/"+tt.code, nil))
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status: got %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if string(body) != tt.wantBody {
				t.Errorf("body: got %q, want %q", body, tt.wantBody)
			}
			if got := resp.Header.Get("Location"); got != tt.wantLocation {
				t.Errorf("Location: got %q, want %q", got, tt.wantLocation)
			}
		})
	}
	for _, code := range []string{"100", "101", "199", "600", "1000", "-200", "abc", "2e2"} {
		t.Run("400 "+code, func(t *testing.T) {
			resp, body := do(t, nil, newRequest(t, "GET", srv.URL+prefix+"/status/"+code, nil))
			checkJSONReply(t, resp, body, 400, `{"detail":"status code must be an integer between 200 and 599"}`)
		})
	}
}
