# SPDX-License-Identifier: MIT
# mk/bench.mk — `make bench` and `make bench-quick`: weft against Go's
# runtime, side by side in one run (docs/benchmarks.md). Included by the
# Makefile, so $(WEFT_TEST), $(B), $(CC), $(WARN), $(SUBMAKE) come from there.
#
#   make bench                          every scenario, warm-up + 5 pairs
#   make bench SCENARIOS=spawn,yield    a subset (names from `weft-test bench-list`)
#   make bench PROCS=1                  procs=1 for every scenario
#   make bench PAIRS=9                  more pairs (BENCH_ARGS: more bench.py options)
#   make bench-quick                    3 pairs, smaller n: under 2 minutes
#
# Go's side (bench/go/) is built offline, with GOPATH, GOCACHE and GOMODCACHE
# under build/go/. Output: the table on stdout, build/bench/results.json and
# build/bench/report.svg.

BENCH_OUT   := build/bench
GO_OUT      := build/go
GO_BENCH    := $(GO_OUT)/weft-bench-go
FLOOR_BENCH := $(BENCH_OUT)/floor_timerfd $(BENCH_OUT)/floor_echo
GO_SRC      := bench/go/go.mod $(wildcard bench/go/*.go)
GO_ENV      := GOPATH=$(abspath $(GO_OUT))/path GOCACHE=$(abspath $(GO_OUT))/cache \
               GOMODCACHE=$(abspath $(GO_OUT))/modcache GOFLAGS=-mod=mod GOPROXY=off \
               GOSUMDB=off GO111MODULE=on CGO_ENABLED=0

SCENARIOS  ?=
PROCS      ?=
PAIRS      ?=
BENCH_ARGS ?=
BENCH_RUN = /usr/bin/python3 scripts/bench.py --weft $(WEFT_TEST) --go $(GO_BENCH) \
            $(addprefix --floor ,$(FLOOR_BENCH)) --out $(BENCH_OUT) $(if $(SCENARIOS),--scenarios $(SCENARIOS)) \
            $(if $(PROCS),--procs $(PROCS)) $(if $(PAIRS),--pairs $(PAIRS)) $(BENCH_ARGS)

.PHONY: bench bench-quick bench-build bench-check

# Benchmarks mean something only natively and on the release build.
bench-check:
	@if [ '$(TARGET)' != '$(NATIVE)' ] || [ -n '$(VARIANT)' ]; then \
	    echo "bench: runs the native release build only (got TARGET=$(TARGET) VARIANT=$(VARIANT))" >&2; \
	    exit 1; fi
	@scripts/deps.sh bench

bench: bench-check
	@$(SUBMAKE) bench-build
	@$(BENCH_RUN)

bench-quick: bench-check
	@$(SUBMAKE) bench-build
	@$(BENCH_RUN) --quick

bench-build: $(WEFT_TEST) $(GO_BENCH) $(FLOOR_BENCH)

$(GO_BENCH): $(GO_SRC) mk/bench.mk
	@mkdir -p $(@D)
	$(call say,GO,$@)cd bench/go && $(GO_ENV) go build -trimpath -o $(abspath $@) .

$(BENCH_OUT)/floor_%: bench/floor_%.c mk/bench.mk
	@mkdir -p $(@D)
	$(call say,CC,$<)$(CC) -std=c11 -O2 $(WARN) -pthread -o $@ $<
