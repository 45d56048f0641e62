#!/bin/bash
# Cross-builds the third-party libraries of apsync-agent for Windows x86_64
# (x86_64-w64-mingw32) as static libraries, from Debian 12's own sources,
# on a Debian 12 machine. README.md beside this file says what and why.
#
#   packaging/windows/deps.sh
#
# Steps, each skipped when already done (a second run takes seconds):
#   1. installs the Debian packages it needs (mingw-w64, cmake, ...; sudo when not root)
#   2. downloads the bookworm source packages with `apt-get source` through a
#      private apt configuration (own sources.list, state and cache under
#      $WIN_SRC/apt; /etc/apt is not touched): apt checks the Release file's
#      signature against Debian's archive keyring and every file's SHA-256
#   3. builds each library into $WIN_DEPS (include/, lib/*.a, lib/pkgconfig/*.pc),
#      once per version: a stamp per library records what it was built from
#   4. links packaging/windows/smoke.c against all of them into smoke.exe and,
#      with wine, runs it
#
# Environment (all optional):
#   WIN_BUILD=build-win        work directory (relative paths: to the repository)
#   WIN_SRC=$WIN_BUILD/src     download cache of Debian source packages
#   WIN_DEPS=$WIN_BUILD/deps   install prefix of the libraries
#   JOBS=2                     parallel make jobs
#   WITH_CURL=1                0: do not build libcurl
#   DEBIAN_PATCHES=1           0: build the upstream tarballs without Debian's patches
#   REFRESH=0                  1: fetch Debian's source index again (new point release)
#   SMOKE=1                    0: no smoke test
#   WINE=1                     0: build smoke.exe but do not install or run wine
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
cd "$TOP"

abspath() { case "$1" in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$TOP/$1" ;; esac; }
WIN_BUILD=$(abspath "${WIN_BUILD:-build-win}")
WIN_SRC=$(abspath "${WIN_SRC:-$WIN_BUILD/src}")
WIN_DEPS=$(abspath "${WIN_DEPS:-$WIN_BUILD/deps}")
WORK=$WIN_BUILD/work           # unpacked and patched source trees, build directories
STAMPS=$WIN_DEPS/.stamps       # beside what they describe: deleting deps/ rebuilds all
JOBS=${JOBS:-2}
WITH_CURL=${WITH_CURL:-1}
DEBIAN_PATCHES=${DEBIAN_PATCHES:-1}
REFRESH=${REFRESH:-0}
SMOKE=${SMOKE:-1}
WINE=${WINE:-1}

# The *-posix variant of Debian's mingw-w64 gcc: its runtime is winpthreads,
# which the agent's pthread_* calls need. Every library is compiled with it,
# so one libgcc and one threading model end up in apsync-agent.exe.
HOST=x86_64-w64-mingw32
CC=$HOST-gcc-posix
AR=$HOST-ar
TOOLCHAIN=$HERE/mingw-w64-x86_64.cmake

# Where the static OpenSSL looks for openssl.cnf, engines and providers at run
# time. Left alone these would be build-machine paths (/work/.../deps/ssl), that
# Windows resolves on the current drive, where any user may create them and
# plant a configuration: use the admin-only places a native Windows build uses.
WIN_OPENSSLDIR="C:/Program Files/Common Files/SSL"
WIN_ENGINESDIR="C:/Program Files/OpenSSL/lib/engines-3"
WIN_MODULESDIR="C:/Program Files/OpenSSL/lib/ossl-modules"

# Source package and the upstream version it must carry (Debian revisions may
# change with point releases; another upstream version stops the build).
LIBS="zlib libzstd openssl cjson sqlite3 libwebsockets"
[ "$WITH_CURL" = 1 ] && LIBS="$LIBS curl"
expected_upstream() {
	case "$1" in
	openssl) echo '3.0.*' ;;
	libwebsockets) echo '4.1.6' ;;
	cjson) echo '1.7.15' ;;
	sqlite3) echo '3.40.1' ;;
	libzstd) echo '1.5.4+*' ;;
	zlib) echo '1.2.13*' ;;
	curl) echo '7.88.1' ;;
	esac
}

# Messages go to fd 3, the console, also from inside a build whose output
# goes to its log file.
exec 3>&1
log() { printf 'deps.sh: %s\n' "$*" >&3; }
die() { printf 'deps.sh: error: %s\n' "$*" >&2; exit 1; }

# ---- 1. Debian packages --------------------------------------------------------------

# mingw-w64 (posix threads), build tools, apt's signature checker and keyring,
# patch for Debian's patches, tcl and a native gcc for SQLite's amalgamation.
PKGS="gcc-mingw-w64-x86-64-posix binutils-mingw-w64-x86-64 mingw-w64-x86-64-dev
	cmake make perl pkg-config xz-utils bzip2 patch gpgv debian-archive-keyring
	tcl gcc libc6-dev"
# wine64 runs smoke.exe (a console program: no X display needed).
[ "$SMOKE" = 1 ] && [ "$WINE" = 1 ] && PKGS="$PKGS wine64"

install_packages() {
	missing=""
	for p in $PKGS; do
		if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
			missing="$missing $p"
		fi
	done
	[ -z "$missing" ] && return 0
	if [ "$(id -u)" -eq 0 ]; then
		SUDO=""
	elif command -v sudo >/dev/null 2>&1; then
		SUDO="sudo"
	else
		die "missing packages:$missing; not root and no sudo: apt-get install -y --no-install-recommends$missing"
	fi
	log "installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	# Refresh the package index only when it has never been fetched or is a day old.
	if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mtime -1 2>/dev/null | head -n 1)" ]; then
		$SUDO apt-get update -q
	fi
	# shellcheck disable=SC2086
	$SUDO apt-get install -y -q --no-install-recommends $missing
}

# ---- 2. Debian sources, verified by apt ------------------------------------------------

# A private apt: bookworm's deb-src only, signed-by Debian's archive keyring,
# with its own lists and caches; the machine's /etc/apt and /var are not used.
APT_DIR=$WIN_SRC/apt
setup_apt() {
	mkdir -p "$APT_DIR/etc/apt.conf.d" "$APT_DIR/etc/preferences.d" \
		"$APT_DIR/etc/sources.list.d" "$APT_DIR/etc/trusted.gpg.d" \
		"$APT_DIR/state/lists/partial" "$APT_DIR/cache/archives/partial" "$APT_DIR/log"
	touch "$APT_DIR/state/status"
	# Only bookworm proper: the security archive's pool is not reachable from
	# the build machines (point releases carry its fixes into bookworm).
	cat >"$APT_DIR/etc/sources.list" <<-EOF
		deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
	EOF
	cat >"$APT_DIR/apt.conf" <<-EOF
		Dir::Etc "$APT_DIR/etc";
		Dir::Etc::main "apt.conf";
		Dir::Etc::parts "apt.conf.d";
		Dir::Etc::sourcelist "sources.list";
		Dir::Etc::sourceparts "sources.list.d";
		Dir::Etc::preferences "preferences";
		Dir::Etc::preferencesparts "preferences.d";
		Dir::Etc::trusted "trusted.gpg";
		Dir::Etc::trustedparts "trusted.gpg.d";
		Dir::State "$APT_DIR/state";
		Dir::State::status "$APT_DIR/state/status";
		Dir::Cache "$APT_DIR/cache";
		Dir::Log "$APT_DIR/log";
		Acquire::Languages "none";
		Acquire::GzipIndexes "true";
		APT::Sandbox::User "$(id -un)";
	EOF
	export APT_CONFIG="$APT_DIR/apt.conf"
	if [ "$REFRESH" = 1 ] || ! ls "$APT_DIR/state/lists/"*_Sources* >/dev/null 2>&1; then
		log "fetching bookworm's source index (InRelease signature checked by apt)"
		apt-get update -q
	fi
}

# The Debian version of a source package in the (cached) index; no network.
debian_version() {
	apt-cache showsrc --only-source "$1" | sed -n 's/^Version: //p' | head -n 1
}

# Downloads PKG=VERSION into $WIN_SRC, or re-checks the files already there
# against the index's SHA-256 sums ("Skipping already downloaded file").
fetch_source() {
	[ -f "$WIN_SRC/${1}_${2#*:}.dsc" ] || log "$1 $2: downloading the source package"
	(cd "$WIN_SRC" && apt-get source --download-only -qq "$1=$2") >/dev/null ||
		die "apt-get source $1=$2 failed (REFRESH=1 fetches a newer index)"
}

# File names out of a .dsc (its Checksums-Sha256 section).
dsc_file() { # DSC PATTERN
	sed -n '/^Checksums-Sha256:/,/^[^ ]/p' "$1" | awk '{print $3}' | grep -E "$2" | head -n 1
}

# Unpacks orig + debian tarballs into $WORK/PKG (fresh), applies Debian's
# patch series (minus the SKIP list) unless DEBIAN_PATCHES=0. Sets TREE.
unpack() { # PKG DEBVERSION [SKIP...]
	local pkg=$1 dsc="$WIN_SRC/${1}_${2#*:}.dsc" orig debian patch p
	shift 2
	orig=$(dsc_file "$dsc" '\.orig\.tar\.[a-z0-9]+$')
	debian=$(dsc_file "$dsc" '\.debian\.tar\.[a-z0-9]+$')
	TREE=$WORK/$pkg
	rm -rf "$TREE"
	mkdir -p "$TREE"
	tar -xf "$WIN_SRC/$orig" -C "$TREE" --strip-components=1
	tar -xf "$WIN_SRC/$debian" -C "$TREE"
	[ "$DEBIAN_PATCHES" = 1 ] || return 0
	[ -f "$TREE/debian/patches/series" ] || return 0
	# Same options as dpkg-source: no fuzz, strip one level.
	sed -e 's/#.*//' "$TREE/debian/patches/series" | while read -r patch _; do
		[ -n "$patch" ] || continue
		case " $* " in *" $patch "*)
			log "  $pkg: not applying Debian's $patch"
			continue ;;
		esac
		patch -d "$TREE" -p1 -F0 -N -s <"$TREE/debian/patches/$patch" ||
			die "$pkg: Debian's $patch does not apply"
	done
	# Our own patches for the Windows build, if any.
	for p in "$HERE/patches/$pkg"-*.patch; do
		[ -f "$p" ] || continue
		log "  $pkg: applying $(basename "$p")"
		patch -d "$TREE" -p1 -F0 -N -s <"$p" || die "$pkg: $(basename "$p") does not apply"
	done
}

# ---- 3. the libraries --------------------------------------------------------------------

# A .pc file written by us (upstream installs none for Windows, or none at all).
write_pc() { # NAME VERSION DESCRIPTION LIBS [LIBS.PRIVATE [CFLAGS [REQUIRES.PRIVATE]]]
	mkdir -p "$WIN_DEPS/lib/pkgconfig"
	cat >"$WIN_DEPS/lib/pkgconfig/$1.pc" <<-EOF
		prefix=$WIN_DEPS
		libdir=\${prefix}/lib
		includedir=\${prefix}/include

		Name: $1
		Description: $3
		Version: $2
		Libs: -L\${libdir} $4
		Libs.private: ${5:-}
		Cflags: -I\${includedir} ${6:-}
		Requires.private: ${7:-}
	EOF
}

# Common cmake invocation: the toolchain file, static, release, our prefix.
cmake_configure() { # SRCDIR BUILDDIR [ARGS...]
	local src=$1 bld=$2
	shift 2
	cmake -S "$src" -B "$bld" -DCMAKE_TOOLCHAIN_FILE="$TOOLCHAIN" -DAPSYNC_WIN_DEPS="$WIN_DEPS" \
		-DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$WIN_DEPS" \
		-DCMAKE_INSTALL_LIBDIR=lib -DBUILD_SHARED_LIBS=OFF "$@"
}

# zlib: Debian's source has no win32/ makefiles (removed with the .dfsg
# repack) and zlib's configure refuses mingw, so its library sources are
# compiled as they are (the objects of zlib's Makefile.in: OBJZ and OBJG).
ZLIB_OBJS="adler32 crc32 deflate infback inffast inflate inftrees trees zutil
	compress uncompr gzclose gzlib gzread gzwrite"
build_zlib() {
	unpack zlib "$VER"
	local o
	for o in $ZLIB_OBJS; do
		$CC -O2 -Wall -c "$TREE/$o.c" -o "$TREE/$o.o"
	done
	# shellcheck disable=SC2046
	$AR rcs "$TREE/libz.a" $(for o in $ZLIB_OBJS; do echo "$TREE/$o.o"; done)
	install -d "$WIN_DEPS/include" "$WIN_DEPS/lib"
	install -m 644 "$TREE/zlib.h" "$TREE/zconf.h" "$WIN_DEPS/include/"
	install -m 644 "$TREE/libz.a" "$WIN_DEPS/lib/"
	write_pc zlib "${UPSTREAM%.dfsg}" "zlib compression library" "-lz"
}

# Zstandard: lib/Makefile's libzstd.a (single-threaded: the agent uses no
# zstd worker threads, and it needs no threading library then).
build_libzstd() {
	unpack libzstd "$VER"
	make -C "$TREE/lib" -j"$JOBS" CC="$CC" AR="$AR" libzstd.a
	install -d "$WIN_DEPS/include" "$WIN_DEPS/lib"
	install -m 644 "$TREE/lib/zstd.h" "$TREE/lib/zstd_errors.h" "$TREE/lib/zdict.h" "$WIN_DEPS/include/"
	install -m 644 "$TREE/lib/libzstd.a" "$WIN_DEPS/lib/"
	write_pc libzstd "${UPSTREAM%%+*}" "fast lossless compression algorithm library" "-lzstd"
}

# OpenSSL: its mingw64 target, libraries only. OPENSSLDIR and friends are
# given to make (Configure would take a C:/ path as relative to --prefix).
build_openssl() {
	unpack openssl "$VER"
	cd "$TREE"
	./Configure mingw64 no-shared no-tests --cross-compile-prefix="$HOST-" CC=gcc-posix \
		--prefix="$WIN_DEPS" --libdir=lib
	make -j"$JOBS" build_libs OPENSSLDIR="$WIN_OPENSSLDIR" \
		ENGINESDIR="$WIN_ENGINESDIR" MODULESDIR="$WIN_MODULESDIR"
	make install_dev
	cd "$TOP"
}

# cJSON: cmake, static. CJSON_HIDE_SYMBOLS: plain declarations, not
# __declspec(dllexport) (its Windows default), also for the programs using it.
build_cjson() {
	unpack cjson "$VER"
	cmake_configure "$TREE" "$TREE/build" -DENABLE_CJSON_TEST=OFF -DENABLE_CJSON_UTILS=OFF \
		-DENABLE_CUSTOM_COMPILER_FLAGS=OFF -DENABLE_PUBLIC_SYMBOLS=OFF \
		-DENABLE_HIDDEN_SYMBOLS=ON -DENABLE_TARGET_EXPORT=OFF
	cmake --build "$TREE/build" -j"$JOBS"
	cmake --install "$TREE/build"
	sed -i 's|^Cflags: \(.*\)|Cflags: \1 -DCJSON_HIDE_SYMBOLS|' "$WIN_DEPS/lib/pkgconfig/libcjson.pc"
}

# SQLite: Debian ships the full source tree, not the amalgamation. The
# amalgamation (sqlite3.c) is generated natively (tclsh, gcc), after Debian's
# patches, and cross-compiled with the options of Debian's libsqlite3.
SQLITE_OPTIONS="-DSQLITE_SECURE_DELETE -DSQLITE_ENABLE_COLUMN_METADATA
	-DSQLITE_ENABLE_FTS3 -DSQLITE_ENABLE_FTS3_PARENTHESIS -DSQLITE_ENABLE_RTREE=1
	-DSQLITE_SOUNDEX=1 -DSQLITE_ENABLE_UNLOCK_NOTIFY -DSQLITE_OMIT_LOOKASIDE=1
	-DSQLITE_ENABLE_DBSTAT_VTAB -DSQLITE_ALLOW_ROWID_IN_VIEW
	-DSQLITE_ENABLE_UPDATE_DELETE_LIMIT=1 -DSQLITE_ENABLE_LOAD_EXTENSION
	-DSQLITE_ENABLE_JSON1 -DSQLITE_LIKE_DOESNT_MATCH_BLOBS -DSQLITE_THREADSAFE=1
	-DSQLITE_ENABLE_FTS3_TOKENIZER=1 -DSQLITE_USE_URI=1 -DSQLITE_MAX_SCHEMA_RETRY=25
	-DSQLITE_ENABLE_PREUPDATE_HOOK -DSQLITE_ENABLE_SESSION -DSQLITE_ENABLE_STMTVTAB
	-DSQLITE_MAX_VARIABLE_NUMBER=250000"
build_sqlite3() {
	unpack sqlite3 "$VER"
	mkdir -p "$TREE/native"
	(cd "$TREE/native" && ../configure --disable-tcl && make sqlite3.c)
	# shellcheck disable=SC2086
	$CC -O2 $SQLITE_OPTIONS -c "$TREE/native/sqlite3.c" -o "$TREE/native/sqlite3.o"
	rm -f "$TREE/native/libsqlite3.a"
	$AR rcs "$TREE/native/libsqlite3.a" "$TREE/native/sqlite3.o"
	install -d "$WIN_DEPS/include" "$WIN_DEPS/lib"
	install -m 644 "$TREE/native/sqlite3.h" "$TREE/src/sqlite3ext.h" "$WIN_DEPS/include/"
	install -m 644 "$TREE/native/libsqlite3.a" "$WIN_DEPS/lib/"
	write_pc sqlite3 "$UPSTREAM" "SQL database engine" "-lsqlite3"
}

# libwebsockets: cmake, static, TLS by the static OpenSSL above, no zlib or
# ws extensions (the agent uses neither), no test apps or examples.
# The system libraries go with the OpenSSL libraries: lws's configure checks
# link test programs against them (a failing check would silently drop, e.g.,
# X509_VERIFY_PARAM_set1_host, i.e. host name checking). Its check for
# openssl/ecdh.h does not see the include directory given: it is answered.
# Git is hidden from it: it would put the hash of the enclosing repository
# (apsync's own) into lws_get_library_version().
build_libwebsockets() {
	unpack libwebsockets "$VER"
	cmake_configure "$TREE" "$TREE/build" \
		-DLWS_WITH_STATIC=ON -DLWS_WITH_SHARED=OFF \
		-DLWS_WITHOUT_TESTAPPS=ON -DLWS_WITH_MINIMAL_EXAMPLES=OFF \
		-DLWS_WITH_SSL=ON -DLWS_OPENSSL_INCLUDE_DIRS="$WIN_DEPS/include" \
		-DLWS_OPENSSL_LIBRARIES:STRING="$WIN_DEPS/lib/libssl.a;$WIN_DEPS/lib/libcrypto.a;ws2_32;gdi32;crypt32" \
		-DLWS_WITH_ZLIB=OFF -DLWS_WITH_BUNDLED_ZLIB=OFF -DLWS_WITHOUT_EXTENSIONS=ON \
		-DLWS_IPV6=ON -DLWS_UNIX_SOCK=OFF -DLWS_WITH_EXPORT_LWSTARGETS=OFF \
		-DLWS_CTEST_INTERNET_AVAILABLE=OFF -DDISABLE_WERROR=ON \
		-DLWS_HAVE_OPENSSL_ECDH_H=1 -DCMAKE_DISABLE_FIND_PACKAGE_Git=ON
	# The TLS checks the agent relies on must have passed.
	for d in LWS_OPENSSL_SUPPORT LWS_WITH_CLIENT LWS_CLIENT_HTTP_PROXYING \
		LWS_HAVE_X509_VERIFY_PARAM_set1_host LWS_HAVE_SSL_CTX_set1_param \
		LWS_HAVE_TLS_CLIENT_METHOD LWS_HAVE_SSL_set_alpn_protos; do
		grep -q "^#define $d\b" "$TREE/build/lws_config.h" ||
			die "libwebsockets: $d is not set in lws_config.h"
	done
	cmake --build "$TREE/build" -j"$JOBS"
	cmake --install "$TREE/build"
	# No .pc on Windows upstream, and the static library is libwebsockets_static.a.
	write_pc libwebsockets "$UPSTREAM" "Websockets server and client library" \
		"-lwebsockets_static" "-lws2_32 -luserenv -lpsapi -liphlpapi -lcrypt32" "" "openssl"
}

# libcurl: cmake, static, OpenSSL and zlib, HTTP(S) only (the agent reaches
# ERPs' web APIs), no LDAP, SSH, IDN, HTTP/2; no CA bundle path is compiled in
# (on Windows the agent passes CURLSSLOPT_NATIVE_CA or a CA file).
build_curl() {
	unpack curl "$VER" 90_gnutls.patch 99_nss.patch
	cmake_configure "$TREE" "$TREE/build" \
		-DBUILD_CURL_EXE=OFF -DBUILD_TESTING=OFF -DENABLE_MANUAL=OFF -DBUILD_LIBCURL_DOCS=OFF \
		-DCURL_USE_OPENSSL=ON -DOPENSSL_ROOT_DIR="$WIN_DEPS" -DOPENSSL_USE_STATIC_LIBS=ON \
		-DCURL_ZLIB=ON -DZLIB_ROOT="$WIN_DEPS" -DCURL_ZSTD=OFF -DCURL_BROTLI=OFF \
		-DUSE_NGHTTP2=OFF -DCURL_USE_LIBSSH2=OFF -DCURL_USE_LIBSSH=OFF -DUSE_LIBIDN2=OFF \
		-DUSE_WIN32_IDN=OFF -DCURL_DISABLE_LDAP=ON -DHTTP_ONLY=ON \
		-DCURL_CA_BUNDLE=none -DCURL_CA_PATH=none
	cmake --build "$TREE/build" -j"$JOBS"
	cmake --install "$TREE/build"
	# curl 7.88's cmake writes a libcurl.pc unusable here: the compiler's own
	# libraries and absolute .a paths in Libs, and no -DCURL_STATICLIB (without
	# it curl.h declares __declspec(dllimport)). Its CMake package files are not
	# needed either (pkg-config is the interface of this prefix).
	write_pc libcurl "$UPSTREAM" "Library to transfer files with URL syntax (HTTP, HTTPS)" \
		"-lcurl" "-lws2_32 -lwinmm -ladvapi32 -lcrypt32 -lbcrypt" "-DCURL_STATICLIB" "openssl zlib"
	rm -rf "$WIN_DEPS/lib/cmake/CURL"
	rmdir "$WIN_DEPS/lib/cmake" 2>/dev/null || true
}

# Which built libraries a library is compiled against (their stamps go into its key).
lib_deps() {
	case "$1" in
	libwebsockets) echo openssl ;;
	curl) echo "openssl zlib" ;;
	esac
}

# A library is rebuilt when its key changes: Debian version, the recipe
# (the build function's text), our patches, the toolchain file, the
# compiler, DEBIAN_PATCHES and the keys of what it is compiled against.
lib_key() { # LIB VERSION
	{
		echo "$2 patches=$DEBIAN_PATCHES"
		declare -f "build_$1" unpack write_pc cmake_configure
		[ "$1" = zlib ] && echo "$ZLIB_OBJS"
		[ "$1" = sqlite3 ] && echo "$SQLITE_OPTIONS"
		[ "$1" = openssl ] && echo "$WIN_OPENSSLDIR $WIN_ENGINESDIR $WIN_MODULESDIR"
		cat "$TOOLCHAIN" "$HERE/patches/$1"-*.patch 2>/dev/null || true
		$CC --version | head -n 1
		for d in $(lib_deps "$1"); do cat "$STAMPS/$d" 2>/dev/null || echo "$d missing"; done
	} | sha256sum | cut -d' ' -f1
}

# ---- 4. smoke test -------------------------------------------------------------------------

smoke() {
	pcs="libwebsockets libcjson sqlite3 libzstd openssl zlib"
	defs=""
	if [ "$WITH_CURL" = 1 ]; then
		pcs="libcurl $pcs"
		defs="-DSMOKE_WITH_CURL"
	fi
	mkdir -p "$WIN_BUILD/smoke"
	exe=$WIN_BUILD/smoke/smoke.exe
	# The link line the agent's Makefile should use too (README.md), plus ODBC.
	# shellcheck disable=SC2046,SC2086
	$CC -O2 -Wall -Wextra $defs -o "$exe" "$HERE/smoke.c" \
		$(pkg-config --static --cflags --libs $pcs) -lodbc32 -static
	log "built $exe ($(du -k "$exe" | cut -f1) KiB)"
	[ "$WINE" = 1 ] || return 0
	wine=$(command -v wine64 || command -v wine || echo /usr/lib/wine/wine64)
	[ -x "$wine" ] || die "wine not found (WINE=0 skips running smoke.exe)"
	# A prefix of our own, kept for the next run (the first run makes it: ~15 s).
	# No X display is needed for a console program; mono/gecko are not wanted.
	log "running smoke.exe under $wine"
	# Output through files: wine's own processes outlive the program for a
	# while and would hold a pipe (make's, a CI log's) open.
	env -u DISPLAY WINEPREFIX="$WIN_BUILD/wineprefix" WINEDEBUG=-all \
		WINEDLLOVERRIDES="mscoree,mshtml=" "$wine" "$exe" </dev/null \
		>"$WIN_BUILD/smoke/wine.stdout" 2>"$WIN_BUILD/smoke/wine.stderr" ||
		{ cat "$WIN_BUILD/smoke/wine.stdout" "$WIN_BUILD/smoke/wine.stderr" >&2
		  die "smoke.exe failed under wine"; }
	cat "$WIN_BUILD/smoke/wine.stdout"
}

# ---- main ----------------------------------------------------------------------------------

# A failing build stops the script (set -e); show the end of its log then.
BUILD_LOG=""
on_exit() {
	local rc=$?
	if [ "$rc" -ne 0 ] && [ -n "$BUILD_LOG" ]; then
		tail -n 30 "$BUILD_LOG" >&2
		echo "deps.sh: error: build failed, whole log: $BUILD_LOG" >&2
	fi
}
trap on_exit EXIT

# One run at a time per build directory (e.g. two make targets calling this).
mkdir -p "$WIN_BUILD"
exec 9>"$WIN_BUILD/.deps.lock"
flock 9

install_packages
mkdir -p "$WIN_SRC" "$WORK" "$STAMPS" "$WIN_DEPS/lib/pkgconfig"
setup_apt

# Everything found by pkg-config during the builds must come from our prefix,
# never from the Linux host (/usr/lib/x86_64-linux-gnu/pkgconfig).
export PKG_CONFIG_LIBDIR="$WIN_DEPS/lib/pkgconfig"
export PKG_CONFIG_PATH=""

for lib in $LIBS; do
	VER=$(debian_version "$lib")
	[ -n "$VER" ] || die "$lib: not in bookworm's source index"
	UPSTREAM=${VER#*:}
	UPSTREAM=${UPSTREAM%-*}
	# shellcheck disable=SC2254
	case "$UPSTREAM" in
	$(expected_upstream "$lib")) ;;
	*) die "$lib: bookworm now has $UPSTREAM, expected $(expected_upstream "$lib"); check and update deps.sh" ;;
	esac
	fetch_source "$lib" "$VER"
	key=$(lib_key "$lib" "$VER")
	if [ "$(cat "$STAMPS/$lib" 2>/dev/null)" = "$key" ]; then
		log "$lib $VER: up to date"
		continue
	fi
	log "$lib $VER: building (log: $WORK/$lib.log)"
	start=$(date +%s)
	BUILD_LOG=$WORK/$lib.log
	"build_$lib" >"$BUILD_LOG" 2>&1
	BUILD_LOG=""
	cd "$TOP"
	echo $(($(date +%s) - start)) >"$STAMPS/$lib.seconds"
	echo "$key" >"$STAMPS/$lib"
	log "$lib $VER: built in $(cat "$STAMPS/$lib.seconds") s"
done

# ODBC on Windows is the system's odbc32.dll; mingw-w64 ships sql.h and
# libodbc32.a. An odbc.pc lets the Makefile keep asking pkg-config for "odbc".
if [ ! -f "/usr/$HOST/include/sqlext.h" ] || [ ! -f "/usr/$HOST/lib/libodbc32.a" ]; then
	die "mingw-w64's ODBC headers or libodbc32.a are missing"
fi
write_pc odbc "3.80" "Windows ODBC (odbc32.dll, headers and import library from mingw-w64)" "-lodbc32"

# Make every .pc relocatable: the prefix is found from the .pc file's own place.
for pc in "$WIN_DEPS"/lib/pkgconfig/*.pc; do
	sed -i "s|$WIN_DEPS|\${pcfiledir}/../..|g" "$pc"
done

[ "$SMOKE" = 1 ] && smoke

log "done: $WIN_DEPS"
for lib in $LIBS; do
	printf '  %-14s %s s\n' "$lib" "$(cat "$STAMPS/$lib.seconds")"
done
# shellcheck disable=SC2016
log 'link with: PKG_CONFIG_LIBDIR=build-win/deps/lib/pkgconfig pkg-config --static --cflags --libs'
echo "  $( [ "$WITH_CURL" = 1 ] && echo 'libcurl ')libwebsockets libcjson sqlite3 libzstd openssl zlib odbc  (+ -static)"
