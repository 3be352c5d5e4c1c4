# slipway: the two commands a newcomer runs are `make demo` and `make test`.
# Both install what is missing (Debian packages, as root) and start the local
# services they need: Docker Engine, a registry with auth and TLS, SSH targets.
SHELL := /bin/bash
GO    ?= go
BIN   := bin/slipway
STATE ?= $(CURDIR)/.state
export SLIPWAY_TEST_STATE := $(STATE)

.PHONY: all build test test-go test-groovy services services-down demo demo-clean bench fuzz reliability release lint docs clean

all: build

build:
	$(GO) build -trimpath -o $(BIN) ./tools/cmd/slipway

# Everything CI runs. Services are started first; a test that needs one and
# finds none fails (SLIPWAY_REQUIRE_SERVICES=1), it never skips.
test: services lint test-go test-groovy

services:
	test/scripts/services.sh up

services-down:
	test/scripts/services.sh down

test-go: build
	SLIPWAY_REQUIRE_SERVICES=1 $(GO) test -count=1 -timeout 40m ./...

test-groovy:
	test/groovy/run.sh --e2e

lint:
	test/scripts/lint.sh

demo: services build
	test/scripts/demo.sh

demo-clean:
	test/scripts/demo.sh clean
	test/scripts/services.sh down

bench: services build
	test/bench/run.sh

fuzz:
	test/scripts/fuzz.sh $${FUZZTIME:-30s}

# The fault and hostile-input suite, RUNS times each, rewriting RELIABILITY.md.
reliability: services
	$(GO) run ./test/reliability -runs $${RUNS:-3} -out RELIABILITY.md

release:
	test/scripts/release.sh

docs: build
	$(BIN) docs > docs/CLI.md

clean:
	rm -rf bin dist
