// Package ingestmock is a stand-in for the Atenex ingest service, the
// upstream that the API gateway in this repository proxies uploads to.
//
// It exists so that the gateway can be run locally (make run), integration
// tested (tests start it on 127.0.0.1:0) and load tested without the real
// Python service and its queue. Besides an upload route that behaves like the
// real one (same status codes, same JSON shapes), it offers diagnostic routes
// for the gateway's contract tests: an echo of exactly what arrived, a sink
// and a blob source for multi-hundred-MiB streaming checks (with delays,
// stalls and aborted connections), hop-by-hop headers, a pre-gzipped body and
// arbitrary status codes.
//
// It is deliberately built on net/http rather than fasthttp, the gateway's
// HTTP implementation, so that both sides of the proxy are not the same code
// and cannot hide each other's protocol bugs. Every route streams: no request
// or response body is ever held in memory, whatever its size.
package ingestmock

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash"
	"io"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Limits on the blob route's parameters.
const (
	maxBlobSize = 64 << 30 // bytes
	maxDelayMS  = 600_000  // 10 minutes, for delay_ms and stall_ms
)

// copyBufSize is the buffer size used when streaming request bodies.
const copyBufSize = 64 << 10

// mock is the handler returned by New. All its fields are set in New and
// never written afterwards, so it is safe for concurrent use.
type mock struct {
	mux      *http.ServeMux
	echoPath string // prefix + "/echo"

	// Precomputed response bodies.
	pingBody     []byte
	notFound     []byte
	notAllowed   []byte
	missingFile  []byte
	unsupported  []byte
	parseError   []byte
	badChecksum  []byte
	headersBody  []byte
	gzipBody     []byte
	gzipBodySize string

	bufs *sync.Pool // of *[]byte, copyBufSize long
}

// New returns the mock's http.Handler. prefix is the ingest service's API
// prefix, normally "/api/v1"; "" serves the routes at the root, and a
// trailing slash is ignored. It panics if prefix is not a clean absolute path
// or contains ServeMux wildcards or blanks, as that is a programming error.
//
// Routes (shown with prefix "/api/v1"):
//
//	POST     /api/v1/upload          multipart upload, like the real service (202, 415, 422, 400), plus the file's size and sha256
//	GET      /api/v1/ping            {"status":"ok"}
//	any      /api/v1/echo[/...]      JSON description of the request as it arrived
//	POST|PUT /api/v1/sink            {"bytes":n,"sha256":"..."} of the body
//	GET      /api/v1/blob?size=N     N bytes of Pattern(N); options chunked, delay_ms, die_after, stall_after+stall_ms
//	GET      /api/v1/headers         Set-Cookie twice, X-Upstream and hop-by-hop headers
//	GET      /api/v1/gzip            pre-compressed {"compressed":true}
//	GET      /api/v1/status/{code}   that status code
//
// The sink and upload routes take ?checksum=crc32c to answer a CRC-32C
// instead of the sha256 (see ChecksumCRC32C); another name is a 400.
// GET routes also answer HEAD. Anything else is 404 {"detail":"Not Found"};
// a known path with the wrong method is 405 {"detail":"Method Not Allowed"}
// with an Allow header. Paths that are not clean (for example "//", "/./"
// or "/../" segments) are 404 rather than redirected as http.ServeMux would,
// except under the echo route, which reports them as they arrived.
func New(prefix string) http.Handler {
	prefix = strings.TrimSuffix(prefix, "/")
	if prefix != "" && (prefix[0] != '/' || path.Clean(prefix) != prefix || strings.ContainsAny(prefix, "{} \t")) {
		panic("ingestmock: invalid prefix " + strconv.Quote(prefix))
	}

	m := &mock{
		bufs:        &sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }},
		mux:         http.NewServeMux(),
		echoPath:    prefix + "/echo",
		pingBody:    []byte(`{"status":"ok"}`),
		notFound:    detailJSON("Not Found"),
		notAllowed:  detailJSON("Method Not Allowed"),
		unsupported: detailJSON("Unsupported file type"),
		// FastAPI's answer when a required form field is absent.
		missingFile: []byte(`{"detail":[{"type":"missing","loc":["body","file"],"msg":"Field required","input":null}]}`),
		// Starlette's answer when the multipart body cannot be parsed.
		parseError:  detailJSON("There was an error parsing the body"),
		badChecksum: detailJSON("checksum: want " + ChecksumSHA256 + " (the default) or " + ChecksumCRC32C),
		headersBody: []byte(`{}`),
		gzipBody:    gzipped([]byte(`{"compressed":true}`)),
	}
	m.gzipBodySize = strconv.Itoa(len(m.gzipBody))

	mux := m.mux
	route := func(methods []string, p string, h http.HandlerFunc) {
		for _, method := range methods {
			mux.HandleFunc(method+" "+prefix+p, h)
		}
		allow := strings.Join(methods, ", ")
		if methods[0] == http.MethodGet {
			allow += ", " + http.MethodHead // ServeMux routes HEAD to GET patterns.
		}
		mux.HandleFunc(prefix+p, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Allow", allow)
			writeJSON(w, http.StatusMethodNotAllowed, m.notAllowed)
		})
	}
	get := []string{http.MethodGet}
	route([]string{http.MethodPost}, "/upload", m.upload)
	route(get, "/ping", m.ping)
	route([]string{http.MethodPost, http.MethodPut}, "/sink", m.sink)
	route(get, "/blob", m.blob)
	route(get, "/headers", m.headers)
	route(get, "/gzip", m.gzip)
	route(get, "/status/{code}", m.status)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusNotFound, m.notFound)
	})
	return m
}

// ServeHTTP routes echo requests before http.ServeMux sees them (ServeMux
// would redirect unclean paths, and echo must report them as they arrived)
// and turns ServeMux's redirects for unclean paths into 404s, as the real
// service answers.
func (m *mock) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if p == m.echoPath || strings.HasPrefix(p, m.echoPath+"/") {
		m.echo(w, r)
		return
	}
	if !isCleanPath(p) {
		writeJSON(w, http.StatusNotFound, m.notFound)
		return
	}
	m.mux.ServeHTTP(w, r)
}

// isCleanPath reports whether ServeMux would route p without redirecting.
func isCleanPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	c := path.Clean(p)
	if p[len(p)-1] == '/' && c != "/" {
		c += "/"
	}
	return c == p
}

// ---- upload ----

// uploadReply is the 202 body of the upload route. The first three fields
// are what the real service answers; the rest let tests check that the
// gateway forwarded the file intact.
type uploadReply struct {
	DocumentID string `json:"document_id"`
	Status     string `json:"status"`
	Message    string `json:"message"`
	FileName   string `json:"file_name"`
	FileSize   int64  `json:"file_size"`
	sums              // Of the file, as the checksum query parameter asks.
	CompanyID  string `json:"company_id"`
}

// upload mimics the real service's POST /upload. Like FastAPI, which parses
// the whole form before validating it, it always consumes the entire request
// body before answering (so a client still sending a big body reads the
// answer instead of a reset connection), and when several parts are named
// "file" the last one wins. An empty body is an empty form (422); a body
// that is not valid multipart (no boundary line, truncated part) is 400.
func (m *mock) upload(w http.ResponseWriter, r *http.Request) {
	h, checksum, ok := m.requestedDigest(w, r)
	if !ok {
		return
	}
	// The multipart reader reads at most 4 KiB at a time; a bigger buffer
	// underneath saves syscalls and per-read overhead.
	body := &countingBody{ReadCloser: r.Body}
	r.Body = struct {
		io.Reader
		io.Closer
	}{bufio.NewReaderSize(body, copyBufSize), body}
	mr, err := r.MultipartReader()
	if err != nil { // Not multipart/form-data, or no boundary.
		drain(r.Body)
		writeJSON(w, http.StatusUnprocessableEntity, m.missingFile)
		return
	}
	buf := make([]byte, copyBufSize)
	var (
		found       bool
		reply       uploadReply
		contentType string
		parts       int
	)
	for ; ; parts++ {
		part, err := mr.NextRawPart()
		if err == io.EOF || (parts == 0 && body.n == 0 && errors.Is(err, io.EOF)) {
			break // End of form; an empty body is an empty form.
		}
		if err != nil {
			drain(r.Body)
			writeJSON(w, http.StatusBadRequest, m.parseError)
			return
		}
		// Like Starlette, a part is a file only if its Content-Disposition
		// has a filename parameter (even an empty one); the name is kept
		// raw (part.FileName would strip directories).
		_, params, _ := mime.ParseMediaType(part.Header.Get("Content-Disposition"))
		fileName, isFile := params["filename"]
		if params["name"] != "file" || !isFile {
			_, err = io.CopyBuffer(io.Discard, part, buf) // Other fields, e.g. metadata_json.
		} else {
			h.Reset()
			var n int64
			n, err = io.CopyBuffer(h, part, buf)
			found = true
			contentType = part.Header.Get("Content-Type")
			reply.FileName, reply.FileSize = fileName, n
			reply.set(checksum, h)
		}
		if err != nil {
			drain(r.Body)
			writeJSON(w, http.StatusBadRequest, m.parseError)
			return
		}
	}
	drain(r.Body) // Epilogue after the closing boundary, if any.

	if !found {
		writeJSON(w, http.StatusUnprocessableEntity, m.missingFile)
		return
	}
	if !supportedFile(contentType, reply.FileName) {
		writeJSON(w, http.StatusUnsupportedMediaType, m.unsupported)
		return
	}
	reply.DocumentID = newUUID4()
	reply.Status = "Event-Sent"
	reply.Message = "Document upload received and queued for processing."
	reply.CompanyID = r.Header.Get("X-Company-ID")
	writeJSON(w, http.StatusAccepted, mustJSON(reply))
}

// supportedFile reports whether the real service accepts a file part with
// the given Content-Type header and file name: by media type (parameters
// ignored), or by extension when the type is absent or generic.
func supportedFile(contentType, fileName string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if mt == "" && err != nil { // Unparsable: keep what precedes any ';'.
		mt, _, _ = strings.Cut(contentType, ";")
		mt = strings.ToLower(strings.TrimSpace(mt))
	}
	switch mt {
	case "application/pdf",
		"application/vnd.openxmlformats-officedocument.wordprocessingml.document",
		"application/msword",
		"text/plain",
		"text/markdown",
		"text/html",
		"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
		"application/vnd.ms-excel":
		return true
	case "", "application/octet-stream":
		switch strings.ToLower(path.Ext(strings.ReplaceAll(fileName, `\`, "/"))) {
		case ".pdf", ".docx", ".doc", ".txt", ".md", ".html", ".htm", ".xlsx", ".xls":
			return true
		}
	}
	return false
}

// newUUID4 returns a random RFC 9562 version 4 UUID in canonical form.
func newUUID4() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails.
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

// ---- ping ----

// ping is the cheapest possible answer, for load benchmarks.
func (m *mock) ping(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, m.pingBody)
}

// ---- echo and sink ----

// echoReply describes a request as it reached the mock.
type echoReply struct {
	Method           string      `json:"method"`
	URI              string      `json:"uri"`  // Raw request-target from the request line.
	Path             string      `json:"path"` // r.URL.EscapedPath().
	RawQuery         string      `json:"raw_query"`
	Host             string      `json:"host"`
	Headers          http.Header `json:"headers"` // Without Host, Transfer-Encoding and Trailer, which net/http moves out.
	Proto            string      `json:"proto"`
	ContentLength    int64       `json:"content_length"` // -1 when unknown (chunked).
	TransferEncoding []string    `json:"transfer_encoding"`
	BodyBytes        int64       `json:"body_bytes"`
	BodySHA256       string      `json:"body_sha256"`
	Trailers         http.Header `json:"trailers"` // Request trailers, if any were declared.
}

// echo answers a JSON description of the request, streaming its body
// through sha256.
func (m *mock) echo(w http.ResponseWriter, r *http.Request) {
	h := sha256.New()
	n, err := m.hashBody(h, r.Body)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, detailJSON("reading request body: "+err.Error()))
		return
	}
	reply := echoReply{
		Method:           r.Method,
		URI:              r.RequestURI,
		Path:             r.URL.EscapedPath(),
		RawQuery:         r.URL.RawQuery,
		Host:             r.Host,
		Headers:          r.Header,
		Proto:            r.Proto,
		ContentLength:    r.ContentLength,
		TransferEncoding: r.TransferEncoding,
		BodyBytes:        n,
		BodySHA256:       hex.EncodeToString(h.Sum(nil)),
		Trailers:         r.Trailer,
	}
	// Empty collections rather than null, for non-Go clients.
	if reply.Headers == nil {
		reply.Headers = http.Header{}
	}
	if reply.TransferEncoding == nil {
		reply.TransferEncoding = []string{}
	}
	if reply.Trailers == nil {
		reply.Trailers = http.Header{}
	}
	writeJSON(w, http.StatusOK, mustJSON(reply))
}

// sink consumes the body and answers its size and checksum.
func (m *mock) sink(w http.ResponseWriter, r *http.Request) {
	h, checksum, ok := m.requestedDigest(w, r)
	if !ok {
		return
	}
	n, err := m.hashBody(h, r.Body)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, detailJSON("reading request body: "+err.Error()))
		return
	}
	reply := struct {
		Bytes int64 `json:"bytes"`
		sums
	}{Bytes: n}
	reply.set(checksum, h)
	writeJSON(w, http.StatusOK, mustJSON(reply))
}

// hashBody streams body through h and returns its length.
func (m *mock) hashBody(h hash.Hash, body io.Reader) (int64, error) {
	// Pooled: a fresh 64 KiB buffer per request would dominate the
	// allocations of small requests in load tests.
	buf := m.bufs.Get().(*[]byte)
	defer m.bufs.Put(buf)
	return io.CopyBuffer(h, body, *buf)
}

// ---- blob ----

// blobParams are the blob route's validated query parameters.
type blobParams struct {
	size       int64
	chunked    bool
	delay      time.Duration
	dieAfter   int64 // -1: do not die.
	stallAfter int64 // -1: do not stall.
	stall      time.Duration
}

// parseBlobParams validates the blob route's query parameters.
func parseBlobParams(r *http.Request) (blobParams, error) {
	q := r.URL.Query()
	p := blobParams{dieAfter: -1, stallAfter: -1}
	// intParam parses q[name] in [0, limit]; ok is false when it is absent.
	intParam := func(name string, limit int64) (v int64, ok bool, err error) {
		s, ok := q.Get(name), q.Has(name)
		if !ok {
			return 0, false, nil
		}
		v, err = strconv.ParseInt(s, 10, 64)
		if err != nil || v < 0 || v > limit {
			return 0, true, errors.New(name + " must be an integer between 0 and " + strconv.FormatInt(limit, 10))
		}
		return v, true, nil
	}

	var ok bool
	var err error
	if p.size, ok, err = intParam("size", maxBlobSize); err != nil {
		return p, err
	} else if !ok {
		return p, errors.New("size is required")
	}
	if q.Has("chunked") {
		if p.chunked, err = strconv.ParseBool(q.Get("chunked")); err != nil {
			return p, errors.New("chunked must be a boolean (1 or 0)")
		}
	}
	delayMS, _, err := intParam("delay_ms", maxDelayMS)
	if err != nil {
		return p, err
	}
	p.delay = time.Duration(delayMS) * time.Millisecond
	if v, ok, err := intParam("die_after", p.size); err != nil {
		return p, err
	} else if ok {
		p.dieAfter = v
	}
	stallAfter, hasStallAfter, err := intParam("stall_after", p.size)
	if err != nil {
		return p, err
	}
	stallMS, hasStallMS, err := intParam("stall_ms", maxDelayMS)
	if err != nil {
		return p, err
	}
	if hasStallAfter != hasStallMS {
		return p, errors.New("stall_after and stall_ms must be given together")
	}
	if hasStallAfter {
		p.stallAfter, p.stall = stallAfter, time.Duration(stallMS)*time.Millisecond
	}
	return p, nil
}

// blob streams Pattern(size) as an application/octet-stream body, with
// Content-Length unless chunked is set, optionally after delay_ms, stalling
// for stall_ms after stall_after bytes, or aborting the connection after
// die_after bytes (if die_after comes first, the stall never happens). With
// Content-Length and die_after=size, the client gets the whole body, as the
// abort comes after the last byte.
func (m *mock) blob(w http.ResponseWriter, r *http.Request) {
	p, err := parseBlobParams(r)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, detailJSON(err.Error()))
		return
	}
	ctx := r.Context()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	if !p.chunked {
		h.Set("Content-Length", strconv.FormatInt(p.size, 10))
	}
	if p.delay > 0 && !sleep(ctx, p.delay) {
		return // Client gone.
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	rc := http.NewResponseController(w)
	if p.chunked {
		// Send the headers now: net/http would otherwise compute a
		// Content-Length for a small body written in one go.
		if rc.Flush() != nil {
			return
		}
	}

	buf := make([]byte, min(p.size, patternBufSize))
	var pos int64
	writeUpTo := func(end int64) bool {
		for pos < end {
			chunk := buf[:min(int64(len(buf)), end-pos)]
			fillPattern(chunk, pos)
			if _, err := w.Write(chunk); err != nil {
				return false
			}
			pos += int64(len(chunk))
		}
		return true
	}
	if p.stallAfter >= 0 && (p.dieAfter < 0 || p.stallAfter <= p.dieAfter) {
		if !writeUpTo(p.stallAfter) || rc.Flush() != nil || !sleep(ctx, p.stall) {
			return
		}
	}
	if p.dieAfter >= 0 {
		if !writeUpTo(p.dieAfter) || rc.Flush() != nil {
			return
		}
		// Standard way to abort a response: net/http closes the connection
		// (the client sees a truncated body) and logs nothing.
		panic(http.ErrAbortHandler)
	}
	writeUpTo(p.size)
}

// sleep waits for d, or until ctx is done; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// ---- headers, gzip, status ----

// headers answers headers that the gateway must forward (both Set-Cookie
// values, X-Upstream) or strip (hop-by-hop ones).
//
// net/http sends all of these as set here, including "Connection: X-Hop":
// it only adds "Connection: close" itself when it is going to close the
// connection, and never strips a handler's hop-by-hop headers (checked by
// TestHeadersOnTheWire). So a proxy in front of this route sees X-Hop,
// Keep-Alive, Proxy-Authenticate, Upgrade and Connection, and must drop them
// all (X-Hop because Connection names it).
func (m *mock) headers(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h["Set-Cookie"] = []string{"a=1; Path=/", "b=2; Path=/"}
	h.Set("X-Upstream", "mock")
	h.Set("X-Hop", "secret")
	h.Set("Keep-Alive", "timeout=5")
	h.Set("Proxy-Authenticate", "Basic")
	h.Set("Upgrade", "h2c")
	h.Set("Connection", "X-Hop")
	writeJSON(w, http.StatusOK, m.headersBody)
}

// gzip answers a pre-compressed JSON body whatever the request's
// Accept-Encoding, to test how the gateway passes compressed bodies through.
func (m *mock) gzip(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Encoding", "gzip")
	h.Set("Content-Length", m.gzipBodySize)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(m.gzipBody)
}

// status answers the status code in the path (200-599) with {"code":N}, no
// body for 204 and 304, and "Location: /elsewhere" for 3xx.
func (m *mock) status(w http.ResponseWriter, r *http.Request) {
	code, err := strconv.Atoi(r.PathValue("code"))
	if err != nil || code < 200 || code > 599 {
		writeJSON(w, http.StatusBadRequest, detailJSON("status code must be an integer between 200 and 599"))
		return
	}
	if code >= 300 && code < 400 {
		w.Header().Set("Location", "/elsewhere")
	}
	if code == http.StatusNoContent || code == http.StatusNotModified {
		w.WriteHeader(code)
		return
	}
	writeJSON(w, code, []byte(`{"code":`+strconv.Itoa(code)+`}`))
}

// ---- helpers ----

// writeJSON answers status with a JSON body of known length.
func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body) // An error means the client is gone.
}

// detailJSON returns FastAPI's error shape {"detail": msg}.
func detailJSON(msg string) []byte {
	return mustJSON(struct {
		Detail string `json:"detail"`
	}{msg})
}

// mustJSON marshals values that cannot fail to marshal.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("ingestmock: " + err.Error())
	}
	return b
}

// gzipped returns b gzip-compressed, with a zero header time so the result
// is deterministic.
func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b) // Writes to a bytes.Buffer cannot fail.
	_ = zw.Close()
	return buf.Bytes()
}

// countingBody counts the bytes read from a request body.
type countingBody struct {
	io.ReadCloser
	n int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n += int64(n)
	return n, err
}

// drain discards the rest of a request body.
func drain(body io.Reader) {
	_, _ = io.Copy(io.Discard, body)
}
