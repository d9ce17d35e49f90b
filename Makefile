# The two commands a newcomer needs:
#   make run    start the mock ingest service and the gateway (with .env)
#   make test   format and vet checks, then every test with the race detector
GO      ?= go
BIN     := bin
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
# The flags the Dockerfile builds with; the container test builds the same way.
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: build run test lint fuzz bench clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/gateway .
	$(GO) build -o $(BIN)/ingestmock ./cmd/ingestmock

# The mock listens on 127.0.0.1:8001, where .env points the gateway; it is
# stopped when the gateway exits (Ctrl-C).
run: build
	@$(BIN)/ingestmock -addr 127.0.0.1:8001 & mock=$$!; \
	trap 'kill $$mock 2>/dev/null' EXIT; \
	$(BIN)/gateway

test:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 6m $$($(GO) list ./... | grep -v /e2e)
	# e2e runs the real, uninstrumented binary: -race would only slow the harness.
	$(GO) test -count=1 -timeout 4m ./e2e

# staticcheck, fetched through the Go module proxy on first use.
lint:
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

# FUZZTIME per target, e.g. make fuzz FUZZTIME=5m
FUZZTIME ?= 30s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list 'Fuzz.*' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

# Load test: clients direct to the mock ingest service, through nginx, and
# through the gateway, side by side (bench/main.go has the details). About
# 5 minutes with the defaults; as root it apt-get installs wrk and nginx if
# missing. The report also goes to bench/results/latest.md.
# BENCHFLAGS, e.g. make bench BENCHFLAGS='-duration 2s -size 64MiB -only get,upload'
BENCHFLAGS ?=
bench: build
	$(GO) run ./bench -gateway $(BIN)/gateway -mock $(BIN)/ingestmock -out bench/results/latest.md $(BENCHFLAGS)

clean:
	rm -rf $(BIN)
