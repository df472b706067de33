# tests/crash/crash.mk — make crash: the kill -9 harness of SPEC §7 (tests/crash/README.md).
#
#   make crash          the full run on build/: at least 50 kills (CRASH_SEED=N to repeat one)
#   make crash-short    the short run (8 kills, under a minute) that make check runs
#                       through tests/run, also on build-asan/
#
# The writer program and the power-cut library (tests/crash/powercut.c) are part of `all`, so
# that make check finds them in both builds.

CRASH_WRITER = $(BUILD)/crash-writer
POWERCUT_LIB = $(BUILD)/libpowercut.so
all: $(CRASH_WRITER) $(POWERCUT_LIB)

$(CRASH_WRITER): $(BUILD)/tests/crash/writer.o
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ -lpthread

# The power-cut library is preloaded into the daemon: no sanitizer (ASan's runtime must come
# first), and no _FILE_OFFSET_BITS, so that open and open64 are two symbols it can define.
$(POWERCUT_LIB): tests/crash/powercut.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -O2 -g -fPIC -shared -o $@ $< -ldl -lpthread

.PHONY: crash crash-short
crash: all
	@FAPIAOFS_BUILD=$(BUILD) bash tests/crash/crash.sh full

crash-short: all
	@FAPIAOFS_BUILD=$(BUILD) bash tests/crash/crash.sh short
