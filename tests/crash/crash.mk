# tests/crash/crash.mk — make crash: the kill -9 harness of SPEC §7 (tests/crash/README.md).
#
#   make crash          the full run on build/: at least 50 kills (CRASH_SEED=N to repeat one)
#   make crash-short    the short run (8 kills, under a minute) that make check runs
#                       through tests/run, also on build-asan/
#
# The writer program is part of `all`, so that make check finds it in both builds.

CRASH_WRITER = $(BUILD)/crash-writer
all: $(CRASH_WRITER)

$(CRASH_WRITER): $(BUILD)/tests/crash/writer.o
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ -lpthread

.PHONY: crash crash-short
crash: all
	@FAPIAOFS_BUILD=$(BUILD) bash tests/crash/crash.sh full

crash-short: all
	@FAPIAOFS_BUILD=$(BUILD) bash tests/crash/crash.sh short
