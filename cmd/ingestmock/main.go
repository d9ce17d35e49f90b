// Command ingestmock serves the mock Atenex ingest service (package
// ingestmock) so that the gateway can be run and load tested locally
// without the real ingest service.
//
// Usage:
//
//	ingestmock [-addr 127.0.0.1:8001] [-prefix /api/v1]
//
// It stops gracefully on SIGINT or SIGTERM, giving running requests 10
// seconds to finish; a second signal kills it at once.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/atenex/gateway/ingestmock"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // Let a second signal kill the process at once.
	}()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "ingestmock:", err)
		os.Exit(1)
	}
}

// shutdownTimeout is how long running requests get to finish on shutdown.
const shutdownTimeout = 10 * time.Second

// run serves the mock until ctx is done, then shuts down gracefully.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("ingestmock", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8001", "`address` to listen on (port 0 picks a free port)")
	prefix := fs.String("prefix", "/api/v1", "API `prefix` of the routes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}

	handler, err := newHandler(*prefix)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler: handler,
		// No read or write timeouts: bodies may be many GiB and the blob
		// route stalls on purpose. Only slow request heads are cut.
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	fmt.Fprintf(stderr, "ingestmock: serving the mock ingest service on http://%s%s\n", ln.Addr(), *prefix)

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err // Serve never returns nil.
	case <-ctx.Done():
	}

	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// newHandler is ingestmock.New with its panic on a bad prefix turned into
// an error, as the prefix comes from the command line.
func newHandler(prefix string) (h http.Handler, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errors.New(strings.TrimPrefix(fmt.Sprint(r), "ingestmock: "))
		}
	}()
	return ingestmock.New(prefix), nil
}
