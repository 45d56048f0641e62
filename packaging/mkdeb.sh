#!/bin/sh
# Builds apsync-agent_VERSION_ARCH.deb and apsync-broker_VERSION_ARCH.deb with
# plain dpkg-deb from a staging tree made by
#   make install PREFIX=/usr SYSCONFDIR=/etc DESTDIR=STAGE
# (`make deb` does both). Reproducible: the same tree and commit give the same
# bytes (files dated SOURCE_DATE_EPOCH, the last commit's time by default,
# owned by root, binaries stripped).
#
#   mkdeb.sh STAGE VERSION OUTDIR
#
# Depends: from dpkg-shlibdeps (dpkg-dev) when present, otherwise the packages
# holding the libraries the binaries name (NEEDED), without versions.
set -eu

if [ $# -ne 3 ]; then
	echo "usage: $0 STAGE VERSION OUTDIR" >&2
	exit 2
fi
stage=$(cd "$1" && pwd)
version=$2
mkdir -p "$3"
out=$(cd "$3" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
arch=$(dpkg --print-architecture)
maintainer=${DEB_MAINTAINER:-"apsync developers <apsync@example.invalid>"}
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git -C "$here/.." log -1 --format=%ct 2>/dev/null ||
		stat -c %Y "$here/../VERSION")
fi
export SOURCE_DATE_EPOCH
umask 022

case "$version" in
[0-9]*) ;;
*)
	echo "mkdeb.sh: version \"$version\" must start with a digit" >&2
	exit 2 ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# shlibs PKG BINARY: the Depends line for the libraries BINARY (relative to
# $work) loads.
shlibs() {
	if command -v dpkg-shlibdeps >/dev/null 2>&1; then
		printf 'Source: apsync\n\nPackage: %s\nArchitecture: any\n' "$1" \
			>"$work/debian/control"
		(cd "$work" && dpkg-shlibdeps -O --warnings=1 -e"$2") |
			sed -n 's/^shlibs:Depends=//p'
	else
		echo "mkdeb.sh: dpkg-shlibdeps (dpkg-dev) is missing: Depends without versions" >&2
		for so in $(readelf -d "$work/$2" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p'); do
			lib=$(ldd "$work/$2" | awk -v so="$so" '$1 == so { print $3 }')
			[ -n "$lib" ] || continue
			dpkg -S "$(readlink -f "$lib")" 2>/dev/null || dpkg -S "$lib" 2>/dev/null || true
		done | sed 's/:.*//' | sort -u | paste -sd, - | sed 's/,/, /g'
	fi
}

# package PKG STATE GECOS PATH...: one package holding PATHs of the stage.
package() {
	pkg=$1 state=$2 gecos=$3
	shift 3
	root=$work/debian/$pkg # where dpkg-shlibdeps expects a package's tree
	for path in "$@"; do
		mkdir -p "$root/$(dirname "$path")"
		cp -a "$stage/$path" "$root/$path"
	done
	strip --strip-unneeded --remove-section=.comment --remove-section=.note \
		"$root/usr/bin/$pkg"
	# Debian's place for the licence.
	mv "$root/usr/share/doc/$pkg/LICENSE" "$root/usr/share/doc/$pkg/copyright"

	mkdir -p "$root/DEBIAN" # also tells dpkg-shlibdeps where the package's root is
	depends=$(shlibs "$pkg" "debian/$pkg/usr/bin/$pkg")
	if [ -z "$depends" ]; then
		echo "mkdeb.sh: no library dependencies found for $pkg" >&2
		exit 1
	fi
	depends="$depends, adduser"
	size=$(du -sk --apparent-size --exclude=DEBIAN "$root" | cut -f1)

	sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@MAINTAINER@|$maintainer|" \
		-e "s|@SIZE@|$size|" -e "s|@DEPENDS@|$depends|" \
		"$here/debian/$pkg.control" >"$root/DEBIAN/control"
	(cd "$root" && find etc -type f | sed 's|^|/|' | sort) >"$root/DEBIAN/conffiles"
	for script in postinst prerm postrm; do
		sed -e "s|@PKG@|$pkg|g" -e "s|@STATE@|$state|g" -e "s|@GECOS@|$gecos|g" \
			"$here/debian/$script.in" >"$root/DEBIAN/$script"
		chmod 0755 "$root/DEBIAN/$script"
	done
	chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles"
	find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
	dpkg-deb --root-owner-group -Zxz --build "$root" "$out/${pkg}_${version}_${arch}.deb" \
		>/dev/null
	echo "$out/${pkg}_${version}_${arch}.deb"
}

package apsync-agent /var/lib/apsync "apsync SyncTool" \
	usr/bin/apsync-agent usr/share/apsync/profiles usr/share/doc/apsync-agent \
	lib/systemd/system/apsync-agent.service etc/apsync/apsync-agent.conf
package apsync-broker /var/lib/apsync-broker "apsync broker" \
	usr/bin/apsync-broker usr/share/apsync/web usr/share/doc/apsync-broker \
	lib/systemd/system/apsync-broker.service etc/apsync/apsync-broker.conf
