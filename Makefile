# fapiaofs — build, run and test.  See README.md.
#
#   make            build everything into build/
#   make run        install what is missing, build, start the platform simulator,
#                   mount on ./mnt with the embedded default and issue a demo draft
#   make stop       unmount ./mnt and stop the simulator
#   make check      every test: unit tests and mount tests, plain and ASan+UBSan
#
# SAN=1 builds with AddressSanitizer + UBSan into build-asan/.

SAN   ?= 0
ifeq ($(SAN),1)
BUILD ?= build-asan
SANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT = -O1
else
BUILD ?= build
SANFLAGS =
OPT = -O2
endif

PKGS    = fuse3 sqlite3 jansson libcurl openssl libmicrohttpd inih libusb-1.0
CC     ?= cc
CFLAGS  = -std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -Wall -Wextra -Werror \
          -Wshadow -Wstrict-prototypes -Wno-missing-field-initializers \
          $(OPT) -g $(SANFLAGS) -I. $(shell pkg-config --cflags $(PKGS))
LDLIBS  = $(shell pkg-config --libs $(PKGS)) -lpthread
LDFLAGS = $(SANFLAGS)

# The core library: everything but the FUSE front end and the simulators' main().
LIB_SRCS  = $(wildcard engine/*.c) $(filter-out device/simtool.c,$(wildcard device/*.c))
LIB_OBJS  = $(LIB_SRCS:%.c=$(BUILD)/%.o)
FS_OBJS   = $(patsubst %.c,$(BUILD)/%.o,$(wildcard fs/*.c))
UNIT_SRCS = $(wildcard tests/unit/test_*.c)
UNIT_BINS = $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

BINS = $(BUILD)/fapiaofs $(BUILD)/fapiaofs-platform-sim $(BUILD)/fapiaofs-sim $(UNIT_BINS)

.PHONY: all run stop check unit mount-tests clean deps
all: $(BINS)

# V=1 shows the commands.
Q = $(if $(V),,@)

$(BUILD)/%.o: %.c $(wildcard */*.h) $(wildcard tests/unit/*.h)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/libfapiao.a: $(LIB_OBJS)
	$(Q)ar rcs $@ $^

$(BUILD)/fapiaofs: $(FS_OBJS) $(BUILD)/libfapiao.a
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/fapiaofs-platform-sim: $(BUILD)/platform/sim.o $(BUILD)/libfapiao.a
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/fapiaofs-sim: $(BUILD)/device/simtool.o $(BUILD)/libfapiao.a
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(BUILD)/libfapiao.a
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# unit tests of fs/ modules link the module itself (its other fs/ calls are the test's)
$(BUILD)/tests/test_afterglow: $(BUILD)/fs/afterglow.o

deps:
	@bash scripts/install-deps

run: deps
	@$(MAKE) --no-print-directory all
	@bash scripts/run-demo

stop:
	@bash scripts/stop

check: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory SAN=1 all
	@bash tests/run build build-asan

clean:
	rm -rf build build-asan tests/tmp
.SECONDARY:

# The crash harness (make crash) and the benchmarks (make bench) keep their
# rules beside their code.
-include tests/crash/crash.mk
-include tests/bench/bench.mk

# ---- fuzzing: clang + libFuzzer, ASan + UBSan (tests/fuzz/) -------------------
#
# Targets (tests/fuzz/fuzz_TARGET.c, corpus tests/fuzz/corpus/TARGET):
#   draft      the draft parser and validator (engine/draft.h)
#   proto      the device protocol: BOT wrappers, CDBs, requests, responses, and whole
#              sessions of the host (remote.c) and of the device (loopback.c)
#   clearance  the platform's clearance answer as the device parses it, invoice summaries
#   command    the device/clear command line (clear_parse_command)
#   journal    a line of the simulated device's journal (sim_parse_journal_line)
#
#   make fuzz          build every target and run each for FUZZ_SECONDS (60) on a copy of its
#                      corpus in build-fuzz/corpus-TARGET; one line of figures per target (runs,
#                      exec/s, coverage, corpus); exits non-zero on a crash, leak, timeout or broken
#                      invariant and leaves the input in build-fuzz/artifacts/TARGET-*
#   make fuzz-smoke    each target for FUZZ_SMOKE_SECONDS (2) from its checked-in corpus alone
#                      (about 16 s in all: libFuzzer adds a second); one "ok -"/"not ok -" line
#                      per target, for tests/run
#   make fuzz-merge    fold what the runs found into the checked-in corpora (minimised)
#   make fuzz-seeds    write the seeds of proto, clearance, command and journal again (make_seeds.c)
#   FUZZ_TARGETS="proto command" limits any of them to those targets.  tests/fuzz/run.sh runs
#   the fuzzers (per-target dictionary and input size) and reads their figures.

FUZZ_TARGETS ?= draft proto clearance command journal
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 2
FUZZ_CC    ?= clang
FUZZ_BUILD  = build-fuzz
# UBSan must not recover, or libFuzzer would never see (and save) its findings.
FUZZ_SAN    = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -Wall -Wextra -g -O1 -I. \
              $(shell pkg-config --cflags $(PKGS))
# the harnesses themselves are held to the project's warnings
FUZZ_WARN   = -Werror -Wshadow -Wstrict-prototypes -Wno-missing-field-initializers
FUZZ_OBJS   = $(LIB_SRCS:%.c=$(FUZZ_BUILD)/%.o)
FUZZ_BINS   = $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)
FUZZ_RUN    = bash tests/fuzz/run.sh

.PHONY: fuzz fuzz-build fuzz-smoke fuzz-merge fuzz-seeds fuzz-toolchain fuzz-clean

# A clear message instead of a compiler error when clang or libFuzzer is missing.
fuzz-toolchain:
	@command -v $(FUZZ_CC) >/dev/null 2>&1 || { \
	  echo "fuzz: '$(FUZZ_CC)' not found: the fuzz targets need clang with libFuzzer" \
	       "(Debian 12: apt-get install clang libclang-rt-14-dev, or make deps)" >&2; exit 1; }
	@mkdir -p $(FUZZ_BUILD)
	@printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return (void)d, (int)(n & 0); }\n' \
	  | $(FUZZ_CC) -x c -fsanitize=fuzzer,address,undefined -o $(FUZZ_BUILD)/toolchain-check - \
	    >$(FUZZ_BUILD)/toolchain-check.log 2>&1 || { cat $(FUZZ_BUILD)/toolchain-check.log >&2; \
	  echo "fuzz: '$(FUZZ_CC)' cannot link -fsanitize=fuzzer,address,undefined: the libFuzzer" \
	       "runtime is missing (Debian 12: apt-get install libclang-rt-14-dev)" >&2; exit 1; }

$(FUZZ_BUILD)/%.o: %.c $(wildcard */*.h) | fuzz-toolchain
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CLANG   $@")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(FUZZ_SAN) -c -o $@ $<

$(FUZZ_BUILD)/libfapiao.a: $(FUZZ_OBJS)
	$(Q)rm -f $@ && ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FUZZ_BUILD)/libfapiao.a $(wildcard */*.h) \
                      | fuzz-toolchain
	@$(if $(Q),echo "  FUZZER  $@")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_WARN) -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $< \
	  $(FUZZ_BUILD)/libfapiao.a $(LDLIBS)

# The seed writer is an ordinary program over the same (instrumented) library.
$(FUZZ_BUILD)/make_seeds: tests/fuzz/make_seeds.c $(FUZZ_BUILD)/libfapiao.a $(wildcard */*.h) | fuzz-toolchain
	@$(if $(Q),echo "  CLANG   $@")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_WARN) -fsanitize=fuzzer-no-link $(FUZZ_SAN) -o $@ $< \
	  $(FUZZ_BUILD)/libfapiao.a $(LDLIBS)

fuzz-build: $(FUZZ_BINS)

fuzz: fuzz-build
	@$(FUZZ_RUN) run $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# A build failure is one "not ok" line per target, like a crash.
fuzz-smoke:
	@mkdir -p $(FUZZ_BUILD); log=$(FUZZ_BUILD)/fuzz-build.log; \
	if $(MAKE) --no-print-directory fuzz-build >$$log 2>&1; then \
	  $(FUZZ_RUN) smoke $(FUZZ_BUILD) $(FUZZ_SMOKE_SECONDS) $(FUZZ_TARGETS); \
	else \
	  if grep -q '^fuzz: ' $$log; then why="clang with libFuzzer is not available"; \
	  else why="the build failed"; fi; \
	  for t in $(FUZZ_TARGETS); do echo "not ok - fuzz $$t: $$why (log: $$log)"; done; \
	  grep -E '^fuzz:|error:' $$log | head -n 20; \
	  exit 1; \
	fi

fuzz-merge: fuzz-build
	@$(FUZZ_RUN) merge $(FUZZ_BUILD) 0 $(FUZZ_TARGETS)

fuzz-seeds: $(FUZZ_BUILD)/make_seeds
	$(FUZZ_BUILD)/make_seeds tests/fuzz/corpus

fuzz-clean:
	rm -rf $(FUZZ_BUILD)
clean: fuzz-clean
