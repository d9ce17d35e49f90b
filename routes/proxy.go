package routes

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"reflect"
	"sync"
	"syscall"
	"time"

	"github.com/atenex/gateway/metrics"
	"github.com/atenex/gateway/splice"
	"github.com/atenex/gateway/upstream"
	"github.com/gofiber/fiber/v2"
	"github.com/valyala/bytebufferpool"
	"github.com/valyala/fasthttp"
)

// allowedMethods are the methods the original's ingest route accepted; the
// value doubles as the Allow header of a 405.
const allowedMethods = "GET, POST, PUT, DELETE, PATCH, OPTIONS"

// readWholeLimit is the largest response body read whole before the client
// sees it. Smaller bodies are read at once so the upstream connection goes
// back to the pool immediately and the client gets one write; larger ones,
// or ones of unknown length, stream.
const readWholeLimit = 16 << 10

// proxy forwards {prefix}/ingest/{path} to {prefix}/{path} upstream.
type proxy struct {
	upstream Upstream
	// upstreamHost is the Host sent for a client that sent none.
	upstreamHost string
	prefix       string
	// cut is the length of "{prefix}/ingest/": what follows it is
	// forwarded as the client sent it, escapes and all, with the raw query.
	cut         int
	maxBody     int64         // 0: no limit
	clientIdle  time.Duration // longest a client body or download may stall
	upstreamTLS bool
	// uploadPipes and downloads splice large bodies; nil where that cannot
	// work: an https upstream, no splice(2), splicing turned off, no conns,
	// or a fasthttp read buffer too large to empty with one chunk-sized
	// read.
	uploadPipes *splice.Pipes
	downloads   *downloadSplice
	log         *slog.Logger
	metrics     *metrics.Metrics
	// chunks are the buffers bodies are moved with, chunkSize long.
	chunks *sync.Pool
	// handedOff, if set, counts bodies sent on taken-over connections.
	handedOff *sync.WaitGroup
	// handovers holds, by client connection, the bodies waiting for
	// fasthttp to hand their connection over (see sendCloseDelimited).
	handovers sync.Map // net.Conn → *streamedBody
}

// chunkSize is how much of a streamed body moves per read and write:
// 64 KiB system calls instead of fasthttp's 4 KiB copy buffer, which for a
// chunked body also meant a 4 KiB chunk and a flush each time.
const chunkSize = 64 << 10

// newChunkPool returns a pool of chunkSize buffers.
func newChunkPool() *sync.Pool {
	return &sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}
}

// copyChunks moves r to w through one pooled buffer; fasthttp calls it
// (as WriteTo) instead of its own copy loop.
func copyChunks(w io.Writer, r io.Reader, pool *sync.Pool) (int64, error) {
	bp := pool.Get().(*[]byte)
	defer pool.Put(bp)
	var total int64
	for {
		n, done, err := copyOnce(w, r, *bp)
		total += n
		if done || err != nil {
			return total, err
		}
	}
}

// copyOnce moves one read of r to w through buf; done says r has ended.
func copyOnce(w io.Writer, r io.Reader, buf []byte) (n int64, done bool, err error) {
	nr, err := r.Read(buf)
	if nr > 0 {
		written, werr := w.Write(buf[:nr])
		if werr != nil {
			return int64(written), false, werr
		}
		n = int64(written)
	}
	if err == io.EOF {
		return n, true, nil
	}
	return n, false, err
}

func (p *proxy) handle(c *fiber.Ctx) error {
	if !isAllowedMethod(c.Method()) {
		c.Set(fiber.HeaderAllow, allowedMethods)
		return fiber.ErrMethodNotAllowed
	}
	uri := c.Request().URI()
	if path := uri.PathOriginal(); len(path) < p.cut || !safeSubpath(path[p.cut:]) {
		return fiber.NewError(fiber.StatusBadRequest, detailInvalidPath)
	}
	in := &c.Request().Header
	if p.maxBody > 0 && int64(in.ContentLength()) > p.maxBody {
		// Refused before reading it; the unread body cannot be skipped.
		closeLingering(c.Context())
		return fiber.NewError(fiber.StatusRequestEntityTooLarge, detailTooLarge)
	}
	debug := p.log.Enabled(context.Background(), slog.LevelDebug)

	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.UseHostHeader = true
	var target [256]byte
	stats := statsOf(c)
	buildRequestHeader(&req.Header, c, upstreamURI(target[:0], p.prefix, uri, p.cut), requestIDOf(c), stats, p.upstreamHost)
	if p.upstreamTLS {
		// fasthttp refuses to send an http:// request over its TLS client.
		req.URI().SetScheme("https")
	}

	var body *requestBody
	// ContentLength is -1 for a chunked body, and 0 or -2 for none.
	if n, stream := in.ContentLength(), c.Context().RequestBodyStream(); (n > 0 || n == -1) && stream != nil {
		body = &requestBody{r: stream, conn: c.Context().Conn(), idle: p.clientIdle, want: int64(n), limit: p.maxBody, pipes: p.uploadPipes, chunks: p.chunks}
		req.SetBodyStream(body, n)
	}

	if debug {
		p.log.Debug("Initiating proxy request", append(requestAttrs(c),
			slog.String("target_path", string(req.Header.RequestURI())),
			slog.String("company_id", string(in.Peek("X-Company-ID"))))...)
	}

	resp := fasthttp.AcquireResponse()
	resp.Header.SetNoDefaultContentType(true)
	sent := time.Now()
	err := p.upstream.Do(req, resp)
	stats.upstream = time.Since(sent)
	if body != nil {
		stats.bytesIn = body.read
		if body.spliced {
			c.Context().SetConnectionClose()
		}
		if body.unread() {
			// Answered (by the upstream, or with an error) before the
			// client had sent all of it.
			closeLingering(c.Context())
		}
	}
	if err != nil {
		fasthttp.ReleaseResponse(resp)
		if body != nil && body.err != nil {
			// The client, not the upstream, broke off; the upstream saw no
			// complete request, and this connection cannot be reused.
			p.metrics.UpstreamErrors.WithLabelValues("client_abort").Inc()
			return clientBodyError(body.err)
		}
		return p.upstreamFailed(err)
	}
	p.metrics.UpstreamDuration.Observe(stats.upstream.Seconds())
	if debug {
		p.log.Debug("Received response from backend", append(requestAttrs(c),
			slog.Int("status_code", resp.StatusCode()))...)
	}
	return p.respond(c, resp)
}

// upstreamFailed counts a failed exchange with the upstream and wraps it
// for the error handler, which maps its kind to a status.
func (p *proxy) upstreamFailed(err error) error {
	kind := upstream.Classify(err)
	p.metrics.UpstreamErrors.WithLabelValues(string(kind)).Inc()
	return &upstreamError{kind: kind, err: err}
}

// clientBodyError is the answer to an upload the client broke off.
func clientBodyError(err error) error {
	var netErr net.Error
	switch {
	case errors.Is(err, errBodyTooLarge):
		return fiber.NewError(fiber.StatusRequestEntityTooLarge, detailTooLarge)
	case errors.As(err, &netErr) && netErr.Timeout():
		return fiber.NewError(fiber.StatusRequestTimeout, "Request body timed out.")
	}
	return fiber.NewError(fiber.StatusBadRequest, "Request body could not be read.")
}

// respond copies the upstream's answer to the client and hands over its
// body: read whole when small and of known length, streamed otherwise.
// It takes ownership of resp.
func (p *proxy) respond(c *fiber.Ctx, resp *fasthttp.Response) error {
	out := c.Response()
	n := resp.Header.ContentLength()
	streaming := false
	switch {
	case !resp.IsBodyStream():
		out.SetBody(resp.Body())
	case n >= 0 && n <= readWholeLimit:
		buf := bytebufferpool.Get()
		defer bytebufferpool.Put(buf)
		if _, err := buf.ReadFrom(resp.BodyStream()); err != nil {
			fasthttp.ReleaseResponse(resp)
			return p.upstreamFailed(err)
		}
		out.SetBody(buf.B)
	default:
		streaming = true
	}

	copyResponseHeaders(&out.Header, &resp.Header)
	if !streaming {
		fasthttp.ReleaseResponse(resp)
		return nil
	}
	if n < 0 {
		n = -1 // chunked to the client, whatever the upstream's framing
	}
	// The headers leave at once, before the first body byte is read: the
	// client learns the status without waiting for a slow body, and a body
	// that breaks early still shows as a response that broke.
	out.ImmediateHeaderFlush = true
	body := &streamedBody{resp: resp, r: resp.BodyStream(), conn: c.Context().Conn(), idle: p.clientIdle, chunks: p.chunks}
	if n >= spliceDownloadMinimum {
		body.want, body.splice = int64(n), p.downloads
	}
	out.SetBodyStream(body, n)
	if n < 0 && !c.Request().Header.IsHTTP11() {
		p.sendCloseDelimited(c.Context(), body)
	}
	return nil
}

// sendCloseDelimited makes the response to an HTTP/1.0 request, whose body
// length is unknown, end where the connection closes: HTTP/1.0 has no
// chunked coding (RFC 9112, section 6.1), and fasthttp's server would
// chunk it anyway. So fasthttp sends nothing itself; once the handlers
// are done (the access log has hooked the body and stamped its header), it
// hands over the connection, the head goes out without Content-Length or
// Transfer-Encoding and with Connection: close, then the body as it comes,
// and fasthttp closes the connection; if the body broke off, it resets the
// connection instead, for the client to tell a cut body from a whole one.
//
// fasthttp may also close the connection without handing it over (the
// client went away first): connClosed then closes the body, freeing the
// upstream connection and the request's in-flight slot.
func (p *proxy) sendCloseDelimited(ctx *fasthttp.RequestCtx, body *streamedBody) {
	if p.handedOff != nil {
		// Done when the body is closed: once sent, or when the
		// connection closes without being handed over (connClosed).
		p.handedOff.Add(1)
		body.handedOff = p.handedOff.Done
	}
	ctx.SetConnectionClose() // Not the keep-alive fasthttp offers a 1.0 client.
	client := ctx.Conn()
	p.handovers.Store(client, body)
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(conn net.Conn) {
		p.handovers.Delete(client)
		h := &ctx.Response.Header
		h.Del(fasthttp.HeaderTransferEncoding)
		h.SetContentLength(-2) // Identity: delimited by the close.
		var err error
		if body.idle > 0 {
			err = conn.SetWriteDeadline(time.Now().Add(body.idle))
		}
		if err == nil {
			_, err = conn.Write(h.Header())
		}
		if err == nil {
			_, err = body.WriteTo(conn)
		}
		if tc, ok := body.conn.(interface{ SetLinger(int) error }); ok && (err != nil || body.err != nil) {
			// A close would read as the body's end: reset instead, so
			// that the client sees the response broke.
			tc.SetLinger(0)
		}
		body.CloseWithError(err)
	})
}

// errNotHandedOver is why a close-delimited body was never sent.
var errNotHandedOver = errors.New("client connection closed before the response was sent")

// connClosed is told of every client connection fasthttp closes: a body
// still waiting for the connection's handover is not going to be sent.
func (p *proxy) connClosed(c net.Conn) {
	if b, ok := p.handovers.LoadAndDelete(c); ok {
		b.(*streamedBody).CloseWithError(errNotHandedOver)
	}
}

// addSlash redirects {prefix}/ingest to {prefix}/ingest/, keeping the
// query, as the original's router did. 307 keeps the method and body.
func addSlash(c *fiber.Ctx) error {
	uri := c.Request().URI()
	location := string(uri.PathOriginal()) + "/"
	if q := uri.QueryString(); len(q) > 0 {
		location += "?" + string(q)
	}
	c.Set(fiber.HeaderLocation, location)
	c.Status(fiber.StatusTemporaryRedirect)
	return nil
}

// upstreamURI appends the upstream request target to dst:
// prefix + "/" + the client's raw path after cut + the raw query.
func upstreamURI(dst []byte, prefix string, uri *fasthttp.URI, cut int) []byte {
	dst = append(dst, prefix...)
	dst = append(dst, '/')
	dst = append(dst, uri.PathOriginal()[cut:]...)
	if q := uri.QueryString(); len(q) > 0 {
		dst = append(dst, '?')
		dst = append(dst, q...)
	}
	return dst
}

func isAllowedMethod(m string) bool {
	switch m {
	case fiber.MethodGet, fiber.MethodPost, fiber.MethodPut, fiber.MethodDelete,
		fiber.MethodPatch, fiber.MethodOptions:
		return true
	}
	return false
}

// errBodyTooLarge ends an upload that outgrew the body limit mid-stream.
var errBodyTooLarge = errors.New("request body exceeds the limit")

// spliceMinimum is the smallest rest of an upload worth splicing: below it,
// the pipe's set-up and the closed connection cost more than the copies
// saved.
const spliceMinimum = 1 << 20

// spliceDownloadMinimum is the smallest download spliced. A spliced
// download costs its upstream connection, which the gateway closes and so
// holds in TIME_WAIT for a minute: with about 28,000 local ports for the
// one upstream address, 1 MiB downloads would run out of ports at some
// 470 a second (490 MB/s), and small requests needing a new connection
// would fail with them. At 16 MiB that is about 7.8 GB/s, and the
// handshake is lost in the transfer.
const spliceDownloadMinimum = 16 << 20

// maxPrefetch is the most of a body fasthttp reads before the handler runs
// (readBodyWithStreaming), whatever the server's BodyLimit.
const maxPrefetch = 8 << 10

// requestBody passes the client's body to the upstream. It gives each read
// from the client the full idle timeout, enforces the body limit on bodies
// of unknown length, and remembers why reading failed, so a client that
// broke off is told apart from an upstream that did. A body that ends
// before its Content-Length is a failure too: fasthttp reports it as EOF.
//
// A large body of known length is spliced: once fasthttp's read buffer is
// empty, the rest goes from the client's socket to the upstream's inside
// the kernel (package splice), not through the gateway's memory.
type requestBody struct {
	r     io.Reader // fasthttp's body stream; the client socket once drained
	conn  net.Conn
	idle  time.Duration
	want  int64 // Content-Length, or -1 when chunked
	limit int64 // 0: none
	read  int64
	err   error
	eof   bool // the body's end was read

	// pipes, when not nil, splice the body once it is large enough.
	pipes *splice.Pipes
	// spliced says the client socket was read directly: fasthttp has lost
	// count of the body, and the connection must not carry another request.
	spliced bool
	// dropped says the upstream answered before the body ended and stopped
	// reading it (upstream.Splicer): the rest is left unread.
	dropped bool

	chunks *sync.Pool
}

// WriteTo and SupportsBodyWriteTo make fasthttp move the body in chunkSize
// pieces (fasthttp.BodyWriterTo), or splice it.
func (b *requestBody) WriteTo(w io.Writer) (int64, error) {
	if b.pipes == nil || b.want-b.read < spliceMinimum {
		return copyChunks(w, b, b.chunks)
	}
	rf, ok := w.(io.ReaderFrom)
	_, isTCP := b.conn.(syscall.Conn)
	if !ok || !isTCP {
		return copyChunks(w, b, b.chunks)
	}
	// Before the socket can be read directly, fasthttp's read buffer must
	// be empty. Its stream first returns the body's prefetched start (at
	// most the server's BodyLimit, and never over 8 KiB), then reads from
	// that buffer: a read of at least the buffer's size either takes all it
	// holds or, when it is empty, reads the socket straight into p. A read
	// returns prefetched bytes or buffered ones, never both: so once more
	// than the prefetch has been read, the last read emptied the buffer.
	bp := b.chunks.Get().(*[]byte)
	defer b.chunks.Put(bp)
	var total int64
	for b.read <= maxPrefetch {
		n, done, err := copyOnce(w, b, *bp)
		total += n
		if done || err != nil {
			return total, err
		}
	}
	if b.want-b.read < spliceMinimum {
		n, err := copyChunks(w, b, b.chunks)
		return total + n, err
	}
	b.r, b.spliced = b.conn, true
	// w (fasthttp's writer for the upstream) bounds b by the body's length
	// and, once its buffer is flushed, hands it to the upstream connection's
	// ReadFrom, which calls SpliceTo.
	n, err := rf.ReadFrom(b)
	return total + n, err
}

func (b *requestBody) SupportsBodyWriteTo() bool { return true }

// SpliceTo moves n bytes from the client socket to dst in the kernel
// (upstream.Splicer). A failure of the client side is remembered, as in
// Read, and returned as the socket reported it; the upstream side's is
// returned as a *splice.DestinationError, as upstream.Splicer asks.
func (b *requestBody) SpliceTo(dst splice.Side, n int64) (int64, error) {
	if !b.spliced {
		// fasthttp's read buffer may still hold part of the body.
		return 0, splice.ErrUnsupported
	}
	raw, err := b.conn.(syscall.Conn).SyscallConn()
	if err != nil {
		return 0, splice.ErrUnsupported
	}
	src := splice.Side{Conn: raw, Ready: func() error {
		if b.idle > 0 {
			return b.conn.SetReadDeadline(time.Now().Add(b.idle))
		}
		return nil
	}}
	moved, err := b.pipes.Copy(dst, src, n)
	b.read += moved
	if srcErr, _ := splitSpliceError(err); srcErr != nil {
		b.err = srcErr
		return moved, srcErr
	}
	return moved, err // Still a *splice.DestinationError, if the upstream's.
}

// DropRest implements upstream.Splicer. Only a spliced body gets here, and
// its client connection is closed after the answer, so the bytes left
// unread cannot be taken for a next request.
func (b *requestBody) DropRest() { b.dropped = true }

func (b *requestBody) Read(p []byte) (int, error) {
	if b.dropped || (b.want >= 0 && b.read >= b.want) {
		// Done: don't wait on the client socket for bytes past the body.
		return 0, io.EOF
	}
	if b.idle > 0 {
		if err := b.conn.SetReadDeadline(time.Now().Add(b.idle)); err != nil {
			b.err = err
			return 0, err
		}
	}
	n, err := b.r.Read(p)
	b.read += int64(n)
	switch {
	case b.limit > 0 && b.read > b.limit:
		// Not one byte past the limit goes upstream.
		n, err = 0, errBodyTooLarge
	case err == io.EOF && b.want >= 0 && b.read < b.want:
		err = io.ErrUnexpectedEOF
	}
	if err == io.EOF {
		b.eof = true
	} else if err != nil {
		b.err = err
	}
	return n, err
}

// unread says the client may still be sending some of the body.
func (b *requestBody) unread() bool {
	if b.want >= 0 {
		return b.dropped || b.err != nil || b.read < b.want
	}
	return b.dropped || b.err != nil || !b.eof
}

// streamedBody is an upstream response body on its way to the client.
// fasthttp closes it, with the write error if any, when the last byte is
// written or the transfer fails: that releases the upstream connection
// (back to the pool only if the body was read to its end), frees the
// request's in-flight slot and lets the access log write its line.
type streamedBody struct {
	resp *fasthttp.Response
	r    io.Reader
	// conn is the client's: each chunk read here is written to it next and
	// gets the full idle timeout to go out, counted from when it was read,
	// so a client that stops reading is cut off, one that reads slowly is
	// not, and a pause of the upstream is not charged to the client.
	conn    net.Conn
	idle    time.Duration
	read    int64 // bytes read from the upstream
	sent    int64 // bytes handed to the client connection, when known
	wroteTo bool  // sent is known: WriteTo moved the body
	err     error // why reading from the upstream failed
	// done, if set, is called once when the body is finished with: n bytes
	// went to the client; upstreamErr or clientErr says why it broke off.
	done func(n int64, upstreamErr, clientErr error)
	// release, if set, frees the request's in-flight slot.
	release  func()
	released bool
	// handedOff, if set, says the body is done to whoever drains bodies
	// sent on taken-over connections (see Deps.HandedOff).
	handedOff func()

	chunks *sync.Pool

	// splice, when not nil, moves the body from the upstream's socket to
	// the client's; want is then its Content-Length.
	splice *downloadSplice
	want   int64
}

// downloadSplice is what splicing a download takes.
type downloadSplice struct {
	pipes *splice.Pipes
	// conns finds the upstream socket a response arrived on.
	conns *upstream.Conns
	// connWriter is the type of writer fasthttp's server hands the body
	// stream of a response of known length (connBodyWriter). A download
	// is spliced only into that one: any other caller of the stream's
	// WriteTo (Response.Body, as Fiber's ETag uses it, or compression)
	// gets it copied into its writer.
	connWriter reflect.Type
}

// WriteTo and SupportsBodyWriteTo make fasthttp move the body in chunkSize
// pieces (fasthttp.BodyWriterTo), or splice it.
func (b *streamedBody) WriteTo(w io.Writer) (int64, error) {
	n, err := b.writeTo(w)
	b.sent, b.wroteTo = n, true
	return n, err
}

func (b *streamedBody) writeTo(w io.Writer) (int64, error) {
	client, ok := b.conn.(syscall.Conn)
	if b.splice == nil || !ok || reflect.TypeOf(w) != b.splice.connWriter {
		return copyChunks(w, b, b.chunks)
	}
	// fasthttp's server is writing the response: it has flushed the head
	// (ImmediateHeaderFlush) and holds nothing else, so the body may go to
	// the client socket directly, as long as what went that way is
	// finished before anything goes through w. One read of chunkSize
	// through the body stream empties the upstream connection's read
	// buffer (upstream.Conns.Source): after it, the rest of the body is in
	// the upstream socket.
	bp := b.chunks.Get().(*[]byte)
	n, done, err := copyOnce(b.conn, b, *bp)
	b.chunks.Put(bp)
	if done || err != nil {
		return n, err
	}
	src, ok := b.splice.conns.Source(b.resp.LocalAddr())
	raw, rerr := client.SyscallConn()
	if !ok || rerr != nil {
		rest, err := copyChunks(w, b, b.chunks)
		return n + rest, err
	}
	dst := splice.Side{Conn: raw, Ready: func() error {
		if b.idle > 0 {
			return b.conn.SetWriteDeadline(time.Now().Add(b.idle))
		}
		return nil
	}}
	// fasthttp loses count of the body: its connection must not go back
	// to the pool, whatever it concludes from the stream.
	b.resp.Header.SetConnectionClose()
	moved, err := b.splice.pipes.Copy(dst, src, b.want-b.read)
	b.read += moved
	n += moved
	if err == splice.ErrUnsupported {
		// Refused before any byte moved (not an errno that merely counts
		// as unsupported, after some had): the stream is still in step.
		b.resp.Header.ResetConnectionClose()
		rest, err := copyChunks(w, b, b.chunks)
		return n + rest, err
	}
	srcErr, err := splitSpliceError(err)
	if srcErr != nil {
		b.err = srcErr
	}
	return n, err
}

// splitSpliceError unwraps an error of splice.Pipes.Copy: src is the
// source side's failure, if that is what it was, and err the error itself
// as its side reported it.
func splitSpliceError(e error) (src, err error) {
	var srcErr *splice.SourceError
	var dstErr *splice.DestinationError
	switch {
	case errors.As(e, &srcErr):
		return srcErr.Err, srcErr.Err
	case errors.As(e, &dstErr):
		return nil, dstErr.Err
	}
	return nil, e
}

func (b *streamedBody) SupportsBodyWriteTo() bool { return true }

func (b *streamedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.read += int64(n)
	if err != nil && err != io.EOF {
		b.err = err
	}
	if n > 0 && b.idle > 0 {
		if derr := b.conn.SetWriteDeadline(time.Now().Add(b.idle)); derr != nil {
			return n, derr
		}
	}
	return n, err
}

// Close releases the upstream response; fasthttp then calls CloseWithError.
func (b *streamedBody) Close() error {
	if b.released {
		return nil
	}
	b.released = true
	err := b.resp.CloseBodyStream()
	fasthttp.ReleaseResponse(b.resp)
	if b.release != nil {
		b.release()
	}
	if b.handedOff != nil {
		b.handedOff()
	}
	return err
}

// CloseWithError is how fasthttp reports the end of the transfer:
// writeErr is the client side's failure, nil when every byte went out.
func (b *streamedBody) CloseWithError(writeErr error) error {
	err := b.Close()
	if b.done != nil {
		sent := b.read
		if b.wroteTo {
			sent = b.sent
		}
		done := b.done
		b.done = nil
		clientErr := writeErr
		if b.err != nil {
			clientErr = nil // the upstream broke first; the write failed because of it
		}
		done(sent, b.err, clientErr)
	}
	return err
}
