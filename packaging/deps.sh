#!/bin/sh
# Installs the Debian packages apsync needs to build, test and run its demo.
# Idempotent: when everything is present it only checks and exits. Uses sudo
# when not run as root. Debian 12 (bookworm) is the reference system.
#
#   deps.sh                 what building, the demo and the base tests need
#   deps.sh GROUP...        also the servers some tests start: tryton, gnucash,
#                           odbc, postgres, proxy, chromium (the tests ask for them themselves)
set -eu

# Build: compiler, pkg-config and the libraries chosen for the project.
BUILD_PKGS="gcc make pkg-config libc6-dev libwebsockets-dev libcjson-dev libsqlite3-dev libssl-dev zlib1g-dev libzstd-dev unixodbc-dev libcurl4-openssl-dev libsystemd-dev"
# Run and test: the test runner and clients are Python 3 (standard library only),
# the demo talks to the REST API with curl, tests make certificates with openssl.
RUN_PKGS="python3 curl ca-certificates openssl sqlite3 procps"

# Optional groups: real ERPs and servers the integration tests run.
EXTRA_PKGS=""
for group in "$@"; do
	case "$group" in
	tryton)
		EXTRA_PKGS="$EXTRA_PKGS tryton-server tryton-proteus tryton-modules-account
			tryton-modules-party tryton-modules-product tryton-modules-purchase
			tryton-modules-stock tryton-modules-account-invoice tryton-modules-account-payment
			tryton-modules-company tryton-modules-currency tryton-modules-account-product
			tryton-modules-account-invoice-stock tryton-modules-bank
			tryton-modules-analytic-account tryton-modules-analytic-purchase
			tryton-modules-analytic-invoice" ;;
	gnucash) EXTRA_PKGS="$EXTRA_PKGS gnucash python3-gnucash libdbd-sqlite3" ;;
	odbc) EXTRA_PKGS="$EXTRA_PKGS unixodbc unixodbc-dev libsqliteodbc odbc-postgresql" ;;
	postgres) EXTRA_PKGS="$EXTRA_PKGS postgresql postgresql-client libpq-dev" ;;
	proxy) EXTRA_PKGS="$EXTRA_PKGS tinyproxy" ;;
	# The web page's tests drive Debian's Chromium headless (Playwright from npm).
	# npm comes with some nodejs builds (NodeSource's conflicts with Debian's npm).
	chromium)
		EXTRA_PKGS="$EXTRA_PKGS chromium nodejs fonts-dejavu-core"
		command -v npm >/dev/null 2>&1 || EXTRA_PKGS="$EXTRA_PKGS npm" ;;
	*)
		echo "deps.sh: unknown group '$group' (tryton, gnucash, odbc, postgres, chromium, proxy)" >&2
		exit 2 ;;
	esac
done

missing=""
for p in $BUILD_PKGS $RUN_PKGS $EXTRA_PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
	SUDO=""
elif command -v sudo >/dev/null 2>&1; then
	SUDO="sudo"
else
	echo "deps.sh: missing packages:$missing" >&2
	echo "deps.sh: not root and sudo is not installed; install them as root:" >&2
	echo "  apt-get install -y --no-install-recommends$missing" >&2
	exit 1
fi

echo "deps.sh: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
# Refresh the package index only when it has never been fetched or is a day old.
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mtime -1 2>/dev/null | head -n 1)" ]; then
	$SUDO apt-get update -q
fi
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
