#!/usr/bin/env bash
# Builds (once) the Debian 12 root the container test boots, as a tarball in the cache directory:
#   packaging/box-root.sh CACHE_DIR   → CACHE_DIR/bookworm-root.tar
# debootstrap from the Debian mirror apt already uses on this machine; the packages are what a fresh box
# has plus the samtalsstod package's dependencies (the container has no network, so nothing is fetched later).
set -euo pipefail
cache=${1:?usage: box-root.sh CACHE_DIR}
tarball=$cache/bookworm-root.tar
# Keep in step with the Depends: line of packaging/debian/control (the test installs the .deb with dpkg -i).
include=systemd,systemd-sysv,dbus,python3,python3-venv,iproute2,procps,nftables,libgomp1,tzdata,ca-certificates,alsa-utils
stamp=$cache/bookworm-root.include
if [ -s "$tarball" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$include" ]; then
  echo "$tarball"; exit 0
fi
mirror=$(grep -hE '^\s*URIs:.*debian/?\s*$' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | head -1)
[ -n "$mirror" ] || mirror=$(grep -hE '^deb .*debian/? bookworm' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | head -1)
[ -n "$mirror" ] || { echo "no Debian mirror found in apt's sources" >&2; exit 1; }
mkdir -p "$cache"
work=$(mktemp -d "$cache/root.XXXXXX")
trap 'rm -rf "$work"' EXIT
debootstrap --variant=minbase --include="$include" bookworm "$work/root" "$mirror" >"$cache/debootstrap.log" 2>&1 \
  || { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
rm -rf "$work/root/var/cache/apt/archives/"*.deb "$work/root/var/lib/apt/lists/"*
tar -C "$work/root" -cf "$tarball.tmp" .
mv "$tarball.tmp" "$tarball"
echo "$include" >"$stamp"
echo "$tarball"
