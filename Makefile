# raftlease — build, test, fuzz, bench, demo.
GO      ?= go
PKGS    ?= ./...
FUZZTIME ?= 10s

.PHONY: all build test test-deps vet test-short fuzz-short bench bench-compare demo clean

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

# raftlease vs etcd vs Redis side by side, one machine, one run (docs/performance.md).
bench-compare:
	bash bench/compare.sh

demo:
	$(GO) run ./cmd/demo

clean:
	$(GO) clean -testcache

# The fault-injection harness against real leasenode processes
# (docs/reliability.md). Run directories go under $(JEPSEN_OUT), which is
# gitignored. JEPSEN_MODE: auto (netns as root with iptables, else hooks),
# netns or hooks.
JEPSEN_OUT  ?= jepsen-runs
JEPSEN_MODE ?= auto
FAMILY      ?= partition
SEED        ?= 0
RUNS        ?= 1
DURATION    ?= 60s
NODES       ?= 3
SHORT_DURATION ?= 60s

.PHONY: jepsen-bin jepsen jepsen-short jepsen-redis

jepsen-bin:
	@bash scripts/ensure-jepsen-deps.sh
	$(GO) build -o $(JEPSEN_OUT)/bin/leasenode ./cmd/leasenode
	$(GO) build -o $(JEPSEN_OUT)/bin/jepsen ./cmd/jepsen

# make jepsen FAMILY=kill SEED=42 RUNS=10 DURATION=60s [NODES=5] [JEPSEN_MODE=hooks]
jepsen: jepsen-bin
	$(JEPSEN_OUT)/bin/jepsen run --family $(FAMILY) --seed $(SEED) --runs $(RUNS) --duration $(DURATION) \
		--nodes $(NODES) --mode $(JEPSEN_MODE) --out $(JEPSEN_OUT)

# One run per nemesis family plus the negative controls; fails on any
# invalid run or undetected control.
jepsen-short: jepsen-bin
	$(JEPSEN_OUT)/bin/jepsen run --family short --seed $(SEED) --duration $(SHORT_DURATION) \
		--mode $(JEPSEN_MODE) --out $(JEPSEN_OUT)/short

# The Redis comparison (docs/redis.md, "Under failover"): the elector
# workload on the Redis bridge with a primary, a replica and three
# Sentinels, the primary killed every ~10 s. A comparison, not a gate: it
# exits 0 when every run completed and was checked, and prints each run's
# violations. Needs redis-server. Not part of jepsen-short.
# make jepsen-redis SEED=42 RUNS=3 DURATION=60s
jepsen-redis: test-deps jepsen-bin
	$(JEPSEN_OUT)/bin/jepsen redis --seed $(SEED) --runs $(RUNS) --duration $(DURATION) --out $(JEPSEN_OUT)/redis
