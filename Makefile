# apsync: plain Makefile over pkg-config (see config.mk for the switches).
#
#   make            build build/bin/apsync-broker and build/bin/apsync-agent
#   make check      install missing packages, build, run every test
#   make demo       install missing packages, build, run the end-to-end demo
#   make asan       the whole test suite under AddressSanitizer + UBSan
#   make bench      throughput, bytes per row and memory against a raw SQLite copy
#   make install    programs, web page, profiles, systemd units and example
#                   configs under DESTDIR + PREFIX (and SYSCONFDIR, UNITDIR)
#   make deb        build/deb/apsync-agent_VERSION_ARCH.deb and apsync-broker_…
#   make windows    build-win/bin/apsync-agent.exe, cross-built with mingw-w64
#                   (make check also runs it under wine: test_windows)

include config.mk

VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
BUILD ?= build
OBJ = $(BUILD)/obj

# Recursive (=) on purpose: pkg-config runs when a recipe needs it, which is
# after `deps` has installed the packages on a fresh machine.
PKG_CONFIG ?= pkg-config
PKG_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(APS_PKGS) $(AGENT_PKGS))
PKG_LIBS = $(shell $(PKG_CONFIG) --libs $(APS_PKGS))
AGENT_LIBS = $(shell $(PKG_CONFIG) --libs $(AGENT_PKGS))

APS_WARN = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wformat=2 -Wno-unused-parameter
ifeq ($(WERROR),1)
APS_WARN += -Werror
endif
APS_CPPFLAGS = -D_GNU_SOURCE -Ibroker -Iagent -DAPSYNC_VERSION='"$(VERSION)"' \
	-DAPSYNC_WEB_ROOT='"$(WEB_ROOT)"' -DAPSYNC_PROFILE_DIR='"$(PROFILE_DIR)"' -Iproto -Icommon
APS_CFLAGS = -std=c11 -pthread $(APS_WARN) $(APS_CPPFLAGS) $(PKG_CFLAGS) $(CFLAGS)
APS_LIBS = $(PKG_LIBS) -lpthread -lm $(PLAT_LIBS)

# The platform's half of common/plat.h and service.h (PLAT, config.mk).
COMMON_SRC = $(wildcard common/*.c common/$(PLAT)/*.c)
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

.PHONY: all deps tests check demo asan bench clean format install deb conf windows \
	win-tests windows-check

# ---- Windows: the agent cross-built with mingw-w64 (packaging/windows/) ----
# `make windows` builds the libraries from Debian's sources once
# (packaging/windows/deps.sh), then build-win/bin/apsync-agent.exe: static,
# one file. `make check` runs its tests under wine; `make windows-check` runs
# only those.
WIN_HOST = x86_64-w64-mingw32
WIN_BUILD = build-win
ifeq ($(PLAT),win32)
WIN_DEPS = $(abspath $(WIN_BUILD))/deps
PKG_CONFIG = PKG_CONFIG_LIBDIR=$(WIN_DEPS)/lib/pkgconfig pkg-config --static
APS_CPPFLAGS += -include common/win32/compat.h -Icommon/win32/include -I$(BUILD)/gen
# the libraries' own Windows libraries come with their .pc files; the
# platform code needs the service and security (advapi32) and shell APIs
PLAT_LIBS = -static -ladvapi32 -lshell32
PLAT_OBJ = $(BUILD)/gen/apsync-res.o
EXE = .exe
endif

all: $(BINS)

deps:
	@packaging/deps.sh

$(OBJ)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(APS_CFLAGS) -MMD -MP -c $< -o $@

# VERSION is compiled in (APSYNC_VERSION): the objects whose source names it
# are rebuilt when it changes, e.g. by `make deb VERSION=X`.
VERSION_STAMP = $(OBJ)/version-$(VERSION).stamp
VERSIONED_OBJ = $(patsubst %.c,$(OBJ)/%.o,$(shell grep -l APSYNC_VERSION $(COMMON_SRC) \
	$(AGENT_SRC) $(BROKER_SRC) agent/main.c broker/main.c $(UNIT_SRC) $(TOOL_SRC) 2>/dev/null))
$(VERSIONED_OBJ): $(VERSION_STAMP)
$(VERSION_STAMP):
	@mkdir -p $(dir $@)
	@rm -f $(OBJ)/version-*.stamp
	@touch $@

$(LIBCOMMON): $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^
$(LIBAGENT): $(AGENT_OBJ)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^
$(LIBBROKER): $(BROKER_OBJ)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(BUILD)/bin/apsync-agent$(EXE): $(OBJ)/agent/main.o $(LIBAGENT) $(LIBCOMMON) $(PLAT_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -pthread -o $@ $^ $(AGENT_LIBS) $(APS_LIBS)

# Windows resources: the manifest and the Event Log's message table.
$(BUILD)/gen/messages.h: common/win32/messages.mc
	@mkdir -p $(dir $@)
	$(WIN_HOST)-windmc -h $(BUILD)/gen -r $(BUILD)/gen $<
$(BUILD)/gen/apsync-res.o: common/win32/apsync.rc common/win32/apsync.manifest $(BUILD)/gen/messages.h
	$(WIN_HOST)-windres -I$(BUILD)/gen -Icommon/win32 $< -o $@
$(OBJ)/common/win32/service.o: $(BUILD)/gen/messages.h

# The unit tests that run on Windows too (under wine): they need no broker.
WIN_UNIT = test_plat test_codec test_config
$(BUILD)/tests/%.exe: $(OBJ)/tests/unit/%.o $(LIBCOMMON) $(PLAT_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -pthread -o $@ $^ $(APS_LIBS)

WIN_MAKE = $(MAKE) --no-print-directory PLAT=win32 BUILD=$(WIN_BUILD) \
	CC=$(WIN_HOST)-gcc-posix AR=$(WIN_HOST)-ar

windows:
	@packaging/windows/deps.sh
	@$(WIN_MAKE) WERROR=$(WERROR) $(WIN_BUILD)/bin/apsync-agent.exe

# What tests/integration/test_windows.py runs under wine (part of `check`).
win-tests:
	@packaging/windows/deps.sh
	@$(WIN_MAKE) WERROR=1 $(WIN_BUILD)/bin/apsync-agent.exe $(WIN_UNIT:%=$(WIN_BUILD)/tests/%.exe)

# Only the Windows tests: the agent as a service under wine, against this
# machine's broker.
windows-check: deps
	@$(MAKE) --no-print-directory WERROR=1 all win-tests
	@APSYNC_BUILD=$(BUILD) python3 tests/run.py test_windows

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
	@$(MAKE) --no-print-directory WERROR=1 tests win-tests
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
	@$(MAKE) --no-print-directory win-tests
	@APSYNC_BUILD=build-asan APSYNC_ASAN=1 python3 tests/run.py $(TESTS)

# ---- install and packages (packaging/README.md) ----
# `install` builds its own copy of the programs, in a directory of its own,
# with the installed paths of the web page and the profiles compiled in.
SYSCONFDIR ?= /etc
BINDIR = $(PREFIX)/bin
DATADIR = $(PREFIX)/share/apsync
DOCDIR = $(PREFIX)/share/doc
UNITDIR ?= $(if $(filter /usr,$(PREFIX)),/lib/systemd/system,$(PREFIX)/lib/systemd/system)
INSTALL_BUILD = $(BUILD)/install$(subst /,-,$(PREFIX))
UNIT_SED = -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	-e 's|@DOCDIR@|$(DOCDIR)|g'

install:
	@$(MAKE) --no-print-directory BUILD=$(INSTALL_BUILD) VERSION=$(VERSION) \
		WEB_ROOT=$(DATADIR)/web PROFILE_DIR=$(DATADIR)/profiles all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(DATADIR)/web $(DESTDIR)$(DATADIR)/profiles \
		$(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/apsync
	install -m 0755 $(INSTALL_BUILD)/bin/apsync-agent $(INSTALL_BUILD)/bin/apsync-broker \
		$(DESTDIR)$(BINDIR)/
	cd broker/web && find . -type f | sort | while read -r f; do \
		install -D -m 0644 "$$f" "$(abspath $(DESTDIR)$(DATADIR))/web/$$f" || exit 1; done
	cd agent/erp/profiles && find . -type f | sort | while read -r f; do \
		install -D -m 0644 "$$f" "$(abspath $(DESTDIR)$(DATADIR))/profiles/$$f" || exit 1; done
	@for p in apsync-agent apsync-broker; do \
		install -d $(DESTDIR)$(DOCDIR)/$$p && \
		install -m 0644 README.md LICENSE $(DESTDIR)$(DOCDIR)/$$p/ && \
		sed $(UNIT_SED) packaging/systemd/$$p.service.in >$(DESTDIR)$(UNITDIR)/$$p.service && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$p.service || exit 1; \
		conf=$(DESTDIR)$(SYSCONFDIR)/apsync/$$p.conf; \
		if [ -e $$conf ]; then echo "kept $$conf"; else \
			sed -e 's|/usr/share/apsync/|$(DATADIR)/|g' -e 's|/etc/apsync/|$(SYSCONFDIR)/apsync/|g' \
				-e 's|/usr/bin/|$(BINDIR)/|g' packaging/$$p.conf >$$conf && \
			chmod 0640 $$conf || exit 1; fi; \
	done
	@echo "installed under $(DESTDIR)$(PREFIX); the services run as the users apsync-agent and" \
		"apsync-broker, which the .debs create (make deb)"

# The .debs: `make install` with PREFIX=/usr into a staging tree, split in
# two packages by packaging/mkdeb.sh. `make deb VERSION=X` builds version X.
DEB_OUT ?= $(BUILD)/deb
DEB_BUILD = $(BUILD)/pkg
DEB_STAGE = $(abspath $(DEB_BUILD))/stage-$(VERSION)
DEB_CFLAGS ?= $(shell dpkg-buildflags --get CFLAGS 2>/dev/null || echo -O2 -g)
DEB_LDFLAGS ?= $(shell dpkg-buildflags --get LDFLAGS 2>/dev/null)

deb: deps
	rm -rf $(DEB_STAGE)
	@$(MAKE) --no-print-directory install BUILD=$(DEB_BUILD) PREFIX=/usr SYSCONFDIR=/etc \
		DESTDIR=$(DEB_STAGE) VERSION=$(VERSION) CFLAGS="$(DEB_CFLAGS)" LDFLAGS="$(DEB_LDFLAGS)"
	python3 packaging/gen-conf.py --bindir $(DEB_STAGE)/usr/bin --check
	packaging/mkdeb.sh $(DEB_STAGE) $(VERSION) $(DEB_OUT)

# Rewrites packaging/apsync-*.conf from the programs' --help (after adding an
# option), with the programs as the packages build them.
conf:
	@$(MAKE) --no-print-directory BUILD=$(DEB_BUILD)/install-usr VERSION=$(VERSION) \
		WEB_ROOT=/usr/share/apsync/web PROFILE_DIR=/usr/share/apsync/profiles \
		CFLAGS="$(DEB_CFLAGS)" LDFLAGS="$(DEB_LDFLAGS)" all
	python3 packaging/gen-conf.py --bindir $(DEB_BUILD)/install-usr/bin --write

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) build-asan

-include $(shell find $(OBJ) -name '*.d' 2>/dev/null)
