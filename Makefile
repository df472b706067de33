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

PKGS    = fuse3 sqlite3 jansson libcurl openssl libmicrohttpd inih
CC     ?= cc
CFLAGS  = -std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -Wall -Wextra -Werror \
          -Wshadow -Wstrict-prototypes -Wno-missing-field-initializers \
          $(OPT) -g $(SANFLAGS) -I. $(shell pkg-config --cflags $(PKGS))
LDLIBS  = $(shell pkg-config --libs $(PKGS)) -lpthread
LDFLAGS = $(SANFLAGS)

# The core library: everything but the FUSE front end and the simulators' main().
LIB_SRCS  = $(wildcard engine/*.c) $(wildcard device/*.c)
LIB_OBJS  = $(LIB_SRCS:%.c=$(BUILD)/%.o)
FS_OBJS   = $(patsubst %.c,$(BUILD)/%.o,$(wildcard fs/*.c))
UNIT_SRCS = $(wildcard tests/unit/test_*.c)
UNIT_BINS = $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

BINS = $(BUILD)/fapiaofs $(BUILD)/fapiaofs-platform-sim $(UNIT_BINS)

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
