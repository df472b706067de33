# tests/bench/bench.mk — make bench: the benchmarks of SPEC §7, results in
# docs/BENCHMARKS.md (see there for what is measured and how).
#
#   make bench                      everything, at the sizes below
#   make bench BENCH_BIG=0          skip the 1,000,000-invoice store
#   make bench-tools                only build the programs
#
# Sizes: BENCH_DRAFTS drafts per issuing run (1 and BENCH_WRITERS writers),
# BENCH_REPEAT runs of each, BENCH_INVOICES and BENCH_BIG invoices in the
# generated stores.  Scratch space (about 11 GB with 1,000,000 invoices) is
# BENCH_DIR, emptied at the end unless BENCH_KEEP=1.

BENCH_DRAFTS   ?= 10000
BENCH_WRITERS  ?= 8
BENCH_REPEAT   ?= 3
BENCH_INVOICES ?= 100000
BENCH_BIG      ?= 1000000
BENCH_DIR      ?= tests/tmp/bench
BENCH_OUT      ?= docs/BENCHMARKS.md
BENCH_KEEP     ?= 0

BENCH_BINS = $(BUILD)/bench/drop $(BUILD)/bench/genstore $(BUILD)/bench/mountwait \
             $(BUILD)/bench/nosync.so

$(BUILD)/bench/drop: $(BUILD)/tests/bench/drop.o $(BUILD)/tests/bench/template.o
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ -lpthread

$(BUILD)/bench/genstore: $(BUILD)/tests/bench/genstore.o $(BUILD)/tests/bench/template.o \
                         $(BUILD)/libfapiao.a
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

.PHONY: bench bench-tools
bench-tools: $(BUILD)/fapiaofs $(BUILD)/fapiaofs-platform-sim $(BENCH_BINS)

bench: bench-tools
	@BUILD=$(BUILD) BENCH_DRAFTS=$(BENCH_DRAFTS) BENCH_WRITERS=$(BENCH_WRITERS) BENCH_REPEAT=$(BENCH_REPEAT) \
	  BENCH_INVOICES=$(BENCH_INVOICES) BENCH_BIG=$(BENCH_BIG) BENCH_DIR=$(BENCH_DIR) \
	  BENCH_OUT=$(BENCH_OUT) BENCH_KEEP=$(BENCH_KEEP) bash tests/bench/run.sh

$(BUILD)/bench/mountwait: $(BUILD)/tests/bench/mountwait.o
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^

# Preloaded into the daemon by tests/bench/ab.sh; built as crash.mk builds libpowercut.so.
$(BUILD)/bench/nosync.so: tests/bench/nosync.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) -std=c11 -Wall -Wextra -Werror -O2 -fPIC -shared -o $@ $<
