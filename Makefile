# The two commands of the README's quick start:
#   make demo   build pilot and run it on the bundled Node example
#   make test   install what the tests need, then run every test
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
BIN := bin/pilot
FUZZEXECS ?= 400000x

.PHONY: build demo test test-deps unit fuzz vet bench e2e clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/pilot

demo: build
	cd examples/nodejs && PILOT_LOG_LEVEL=$${PILOT_LOG_LEVEL:-info} ../../$(BIN) run --config pilot.yaml

# What the tests need from the machine: util-linux's unshare (PID namespaces),
# Node for the example app, nginx (the proxy tests run it), wrk, and a real
# Consul agent, Traefik and Prometheus (with promtool) built from their Go
# modules (cached in .cache/NAME/VERSION; each first build takes several
# minutes; Debian's prometheus lacks Consul service discovery).
test-deps:
	@bash test/install-deps.sh
	@echo "consul: $$(bash test/consul.sh)"
	@echo "traefik: $$(bash test/traefik.sh)"
	@echo "prometheus: $$(bash test/prometheus.sh)"

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags e2e ./test/e2e

unit:
	$(GO) test -race -count=1 ./...

# A fuzz budget is a count of executions (~20-30 s each here), not a
# duration: with -fuzztime=30s, Go 1.26's coordinator can fail a target
# with a bare "context deadline exceeded" when the time is up
# (golang/go#75804, fixed in Go 1.27). New coverage is minimized for at most
# 1 s (the default is 60 s an input), and -timeout is only a backstop.
fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzParse -fuzztime=$(FUZZEXECS) -fuzzminimizetime=1s -timeout 5m ./pilot/config/
	$(GO) test -run='^$$' -fuzz=FuzzParseLine -fuzztime=$(FUZZEXECS) -fuzzminimizetime=1s -timeout 5m ./telemetry/custom/
	$(GO) test -run='^$$' -fuzz=FuzzDecodeRequest -fuzztime=$(FUZZEXECS) -fuzzminimizetime=1s -timeout 5m ./pilot/control/

test: test-deps build vet unit fuzz e2e

bench: build
	bash test/bench/run.sh

# Containers on a real Docker engine: a private dockerd, stand-in base
# images, the images from the real Dockerfiles, the root compose stack
# (test/e2e; needs root, and the tool binaries test-deps builds).
e2e: test-deps
	$(GO) test -tags e2e -v -count=1 -timeout 30m ./test/e2e

clean:
	rm -rf bin
