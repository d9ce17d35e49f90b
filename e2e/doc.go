// Package e2e holds the gateway's end-to-end tests. They build the real
// gateway binary, run it as a subprocess in front of the mock ingest service
// (package ingestmock) started by the test, and check what only a whole
// process shows: peak memory while hundreds of MiB stream through, draining
// on SIGTERM, exit codes and messages for bad configuration, the JSON log
// format, and .env handling.
//
// Run them with go test ./e2e/; they need the go command to build the
// binary and Linux's /proc to read the gateway's peak RSS.
package e2e
