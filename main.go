// Command gateway is the Atenex API gateway: the single entry point between
// the web frontend and the ingest service. It streams uploads and downloads
// through a pooled upstream client and drains gracefully on SIGTERM.
//
// Configuration comes from GATEWAY_* environment variables and a .env file
// in the working directory; see the README for the full table.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/atenex/gateway/app"
	"github.com/atenex/gateway/auth"
	"github.com/atenex/gateway/config"
	"github.com/atenex/gateway/logging"
	"github.com/joho/godotenv"
)

// version is stamped at build time: -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, a second one gets the default action: exit now.
	go func() { <-ctx.Done(); stop() }()
	if err := run(ctx, os.Args[1:], os.Environ(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

// logFlushInterval bounds how long a log line waits in memory.
const logFlushInterval = 200 * time.Millisecond

// run is the whole program, given its inputs, so tests can drive it. It
// returns when ctx is done and the gateway has drained, or on a startup
// error.
func run(ctx context.Context, args, environ []string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "healthcheck" {
		return healthcheck(ctx, environ)
	}
	if len(args) > 0 && args[0] == "token" {
		return token(args[1:], environ, stdout)
	}
	flags := flag.NewFlagSet("gateway", flag.ContinueOnError)
	envFile := flags.String("env-file", ".env", "`file` of KEY=value settings; the process environment overrides it")
	showVersion := flags.Bool("version", false, "print the version and exit")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if *showVersion {
		_, err := fmt.Fprintln(stdout, version)
		return err
	}

	logs := logging.NewBuffer(stdout, logFlushInterval)
	defer logs.Close()

	dotenv, err := readDotenv(*envFile)
	var cfg config.Config
	if err == nil {
		cfg, err = config.Load(append(dotenv, environ...))
	}
	log := logging.New(logs, logging.ParseLevel(cfg.LogLevel))
	startup := logging.Named(log, "gateway.config")
	if err != nil {
		startup.Log(ctx, logging.LevelCritical, "Invalid gateway configuration", slog.String("error", err.Error()))
		return fmt.Errorf("invalid configuration:\n%w", err)
	}

	startup.Info("Starting gateway", slog.String("version", version))
	listeners, err := app.Listen(cfg)
	if err != nil {
		startup.Log(ctx, logging.LevelCritical, "Cannot listen", slog.String("error", err.Error()))
		return err
	}
	return app.New(cfg, log).Serve(ctx, listeners)
}

// readDotenv returns the KEY=value entries of path; a missing file has none.
func readDotenv(path string) ([]string, error) {
	m, err := godotenv.Read(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	entries := make([]string, 0, len(m))
	for k, v := range m {
		entries = append(entries, k+"="+v)
	}
	return entries, nil
}

// token prints a development token for GATEWAY_AUTH_MODE=jwt, signed
// HS256 with the configured GATEWAY_JWT_SECRET (from .env and the process
// environment, as the gateway reads them), so that auth can be tried with
// curl in one step: gateway token -company acme.
func token(args, environ []string, stdout io.Writer) error {
	flags := flag.NewFlagSet("gateway token", flag.ContinueOnError)
	envFile := flags.String("env-file", ".env", "`file` of KEY=value settings; the process environment overrides it")
	company := flags.String("company", "", "the company the token is for (required)")
	user := flags.String("user", "dev-user", "the token's user (the user claim)")
	email := flags.String("email", "dev@example.com", "the token's email")
	ttl := flags.Duration("ttl", time.Hour, "how long the token is valid")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if *company == "" {
		return errors.New("token: -company is required")
	}
	dotenv, err := readDotenv(*envFile)
	if err != nil {
		return err
	}
	cfg, err := config.Load(append(dotenv, environ...))
	if err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	if cfg.JWTSecret == "" {
		return errors.New("token: set GATEWAY_JWT_SECRET (at least 32 bytes) to mint a development token")
	}
	tok, err := auth.DevToken([]byte(cfg.JWTSecret), cfg.JWTCompanyClaim, *company, *user, *email, *ttl)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}

// healthcheck asks the gateway on this machine for /health and fails
// unless it answers 200. It is the container's HEALTHCHECK: the image has
// no curl.
func healthcheck(ctx context.Context, environ []string) error {
	cfg, err := config.Load(environ)
	if err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	url := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.Port)) + "/health"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health check: %s answered %d", url, resp.StatusCode)
	}
	return nil
}
