# Build switches and paths. Override on the command line: `make PREFIX=/usr`.
# The user's CFLAGS/LDFLAGS stay apart from the project's own flags (APS_*).

PREFIX ?= /usr/local

# Optimisation and debug info; the project's warnings are added separately.
CFLAGS ?= -O2 -g
LDFLAGS ?=

# 1: treat warnings as errors (CI sets this through `make check`).
WERROR ?= 0

# Where the broker finds its web page by default. A development build serves
# the page straight from the source tree; packages set /usr/share/apsync/web.
WEB_ROOT ?= $(CURDIR)/broker/web
# Where the agent finds its ERP mapping profiles by default (--profiles).
PROFILE_DIR ?= $(CURDIR)/agent/erp/profiles

# posix: Linux; win32: the Windows agent, cross-built by `make windows`.
PLAT ?= posix

# Libraries, all found through pkg-config (libsystemd: sd_notify under systemd).
# The agent alone reaches ERPs: unixODBC for SQL databases, libcurl for ERP web
# APIs. On Windows, odbc is Windows' own ODBC (odbc32) and the Service Control
# Manager takes libsystemd's place.
ifeq ($(PLAT),win32)
APS_PKGS = libwebsockets libcjson sqlite3 openssl zlib libzstd
else
APS_PKGS = libwebsockets libcjson sqlite3 openssl zlib libzstd libsystemd
endif
AGENT_PKGS = odbc libcurl
