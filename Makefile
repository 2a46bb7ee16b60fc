# raftlease — build, test, fuzz, bench, demo.
GO      ?= go
PKGS    ?= ./...
FUZZTIME ?= 10s

.PHONY: all build test test-deps vet test-short fuzz-short bench demo clean

all: build test

build:
	$(GO) build $(PKGS)

vet:
	$(GO) vet $(PKGS)

# Installs what the tests need (redis-server) when it can; says what it skipped.
test-deps:
	@bash scripts/ensure-test-deps.sh

# The test command README and .ci/run name. Race detector on.
test: test-deps vet
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

test-short:
	$(GO) test -short -count=1 $(PKGS)

# Brief runs of every fuzz target (go test allows one target per run).
fuzz-short:
	$(GO) test ./fsm -run '^$$' -fuzz '^FuzzDecodeCommand$$' -fuzztime $(FUZZTIME)
	$(GO) test ./fsm -run '^$$' -fuzz '^FuzzApply$$' -fuzztime $(FUZZTIME)

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

demo:
	$(GO) run ./cmd/demo

clean:
	$(GO) clean -testcache
