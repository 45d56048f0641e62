# apsync: plain Makefile over pkg-config (see config.mk for the switches).
#
#   make            build build/bin/apsync-broker and build/bin/apsync-agent
#   make check      install missing packages, build, run every test
#   make demo       install missing packages, build, run the end-to-end demo
#   make asan       the whole test suite under AddressSanitizer + UBSan
#   make bench      throughput, bytes per row and memory against a raw SQLite copy

include config.mk

VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
BUILD ?= build
OBJ = $(BUILD)/obj

# Recursive (=) on purpose: pkg-config runs when a recipe needs it, which is
# after `deps` has installed the packages on a fresh machine.
PKG_CFLAGS = $(shell pkg-config --cflags $(APS_PKGS) $(AGENT_PKGS))
PKG_LIBS = $(shell pkg-config --libs $(APS_PKGS))
AGENT_LIBS = $(shell pkg-config --libs $(AGENT_PKGS))

APS_WARN = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wformat=2 -Wno-unused-parameter
ifeq ($(WERROR),1)
APS_WARN += -Werror
endif
APS_CPPFLAGS = -D_GNU_SOURCE -Ibroker -Iagent -DAPSYNC_VERSION='"$(VERSION)"' \
	-DAPSYNC_WEB_ROOT='"$(WEB_ROOT)"' -DAPSYNC_PROFILE_DIR='"$(PROFILE_DIR)"' -Iproto -Icommon
APS_CFLAGS = -std=c11 -pthread $(APS_WARN) $(APS_CPPFLAGS) $(PKG_CFLAGS) $(CFLAGS)
APS_LIBS = $(PKG_LIBS) -lpthread -lm

COMMON_SRC = $(wildcard common/*.c)
AGENT_SRC = $(filter-out agent/main.c,$(wildcard agent/*.c agent/erp/*.c))
BROKER_SRC = $(filter-out broker/main.c,$(wildcard broker/*.c broker/api/*.c broker/store/*.c))
UNIT_SRC = $(wildcard tests/unit/test_*.c)
TOOL_SRC = $(wildcard tests/tools/*.c)

COMMON_OBJ = $(COMMON_SRC:%.c=$(OBJ)/%.o)
AGENT_OBJ = $(AGENT_SRC:%.c=$(OBJ)/%.o)
BROKER_OBJ = $(BROKER_SRC:%.c=$(OBJ)/%.o)

LIBCOMMON = $(BUILD)/lib/libapsync-common.a
LIBAGENT = $(BUILD)/lib/libapsync-agent.a
LIBBROKER = $(BUILD)/lib/libapsync-broker.a

BINS = $(BUILD)/bin/apsync-broker $(BUILD)/bin/apsync-agent
UNIT_BINS = $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TOOL_BINS = $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tests/%)

.PHONY: all deps tests check demo asan bench clean format

all: $(BINS)

deps:
	@packaging/deps.sh

$(OBJ)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(APS_CFLAGS) -MMD -MP -c $< -o $@

$(LIBCOMMON): $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^
$(LIBAGENT): $(AGENT_OBJ)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^
$(LIBBROKER): $(BROKER_OBJ)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(BUILD)/bin/apsync-agent: $(OBJ)/agent/main.o $(LIBAGENT) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -pthread -o $@ $^ $(AGENT_LIBS) $(APS_LIBS)

$(BUILD)/bin/apsync-broker: $(OBJ)/broker/main.o $(LIBBROKER) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -pthread -o $@ $^ $(APS_LIBS)

# Unit tests link the real object files of the modules they test.
$(BUILD)/tests/%: $(OBJ)/tests/unit/%.o $(LIBAGENT) $(LIBBROKER) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -pthread -o $@ $^ $(AGENT_LIBS) $(APS_LIBS)
$(BUILD)/tests/%: $(OBJ)/tests/tools/%.o $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -pthread -o $@ $^ $(APS_LIBS)

tests: $(BINS) $(UNIT_BINS) $(TOOL_BINS)

# `check` and `demo` are the two commands of the README: each installs what
# is missing first, then builds in a fresh make (so pkg-config sees the
# packages it just installed).
check: deps
	@$(MAKE) --no-print-directory WERROR=1 tests
	@APSYNC_BUILD=$(BUILD) python3 tests/run.py $(TESTS)

demo: deps
	@$(MAKE) --no-print-directory all
	@APSYNC_BUILD=$(BUILD) python3 packaging/demo.py

bench: deps
	@$(MAKE) --no-print-directory all
	@APSYNC_BUILD=$(BUILD) python3 tests/bench.py

asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan WERROR=1 \
		CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
		LDFLAGS="-fsanitize=address,undefined" tests
	@APSYNC_BUILD=build-asan APSYNC_ASAN=1 python3 tests/run.py $(TESTS)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) build-asan

-include $(shell find $(OBJ) -name '*.d' 2>/dev/null)
