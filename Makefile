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

# ---- fuzzing: clang + libFuzzer, ASan + UBSan (tests/fuzz/) -------------------
#
#   make fuzz          build build-fuzz/fuzz_draft and fuzz draft_parse() for FUZZ_SECONDS (60)
#                      on a copy of tests/fuzz/corpus/draft in build-fuzz/corpus-draft;
#                      exits non-zero on a crash, leak, timeout or broken invariant and
#                      leaves the input in build-fuzz/artifacts/
#   make fuzz-smoke    the same for 5 s; one "ok -"/"not ok -" line for tests/run
#   make fuzz-merge    fold what the runs found into the checked-in corpus (minimised)

FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 5
FUZZ_CC    ?= clang
FUZZ_BUILD  = build-fuzz
# UBSan must not recover, or libFuzzer would never see (and save) its findings.
FUZZ_SAN    = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -Wall -Wextra -g -O1 -I. \
              $(shell pkg-config --cflags $(PKGS))
FUZZ_OBJS   = $(LIB_SRCS:%.c=$(FUZZ_BUILD)/%.o)
FUZZ_ARGS   = -dict=tests/fuzz/draft.dict -max_len=65536 -timeout=10 -rss_limit_mb=2048
FUZZ_CORPUS = $(FUZZ_BUILD)/corpus-draft

.PHONY: fuzz fuzz-smoke fuzz-merge fuzz-toolchain fuzz-clean

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

$(FUZZ_BUILD)/fuzz_draft: tests/fuzz/fuzz_draft.c $(FUZZ_BUILD)/libfapiao.a $(wildcard */*.h) \
                          | fuzz-toolchain
	@$(if $(Q),echo "  FUZZER  $@")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $< $(FUZZ_BUILD)/libfapiao.a \
	  $(LDLIBS)

fuzz: $(FUZZ_BUILD)/fuzz_draft
	@mkdir -p $(FUZZ_CORPUS) $(FUZZ_BUILD)/artifacts
	@cp -n tests/fuzz/corpus/draft/* $(FUZZ_CORPUS)/
	$(FUZZ_BUILD)/fuzz_draft $(FUZZ_ARGS) -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	  -artifact_prefix=$(FUZZ_BUILD)/artifacts/ $(FUZZ_CORPUS)

fuzz-smoke:
	@mkdir -p $(FUZZ_BUILD); log=$(FUZZ_BUILD)/fuzz-smoke.log; \
	if $(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(FUZZ_SMOKE_SECONDS) >$$log 2>&1; then \
	  echo "ok - fuzz draft parser $(FUZZ_SMOKE_SECONDS) s, no crash"; \
	else \
	  if grep -q '^fuzz: ' $$log; then why="clang with libFuzzer is not available"; \
	  elif grep -qE 'Test unit written|^SUMMARY|ERROR: libFuzzer' $$log; then \
	    why="crash, leak, timeout or broken invariant; inputs in $(FUZZ_BUILD)/artifacts/"; \
	  else why="build or run failed"; fi; \
	  echo "not ok - fuzz draft parser $(FUZZ_SMOKE_SECONDS) s: $$why (log: $$log)"; \
	  grep -E '^(fuzz|fuzz_draft):|error:|ERROR|SUMMARY|runtime error|^    #[0-9]|Test unit written' \
	    $$log | head -n 30; \
	  exit 1; \
	fi

fuzz-merge: $(FUZZ_BUILD)/fuzz_draft
	$(FUZZ_BUILD)/fuzz_draft $(FUZZ_ARGS) -merge=1 tests/fuzz/corpus/draft $(FUZZ_CORPUS)

fuzz-clean:
	rm -rf $(FUZZ_BUILD)
clean: fuzz-clean
