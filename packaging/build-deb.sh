#!/usr/bin/env bash
# `make deb`: samtalsstod_<version>_amd64.deb with dpkg-deb.
#   packaging/build-deb.sh OUT_DIR WHEEL_CACHE
# The package carries the app as a wheel plus an offline wheelhouse of exactly what this checkout's venv runs
# (pip freeze as constraints: the same versions, torch's CPU wheel, the portable llama.cpp build); postinst
# builds /opt/samtalsstod/.venv from it. Wheels are compressed already, so zstd at its fastest level.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: build-deb.sh OUT_DIR WHEEL_CACHE}
wheel_cache=${2:?usage: build-deb.sh OUT_DIR WHEEL_CACHE}
py=$root/.venv/bin/python
mkdir -p "$out" "$wheel_cache"
out=$(cd "$out" && pwd)
base=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/pyproject.toml" | head -1)
# Upgrades need a growing version: the commit count of the checkout.
version="$base+$(git -C "$root" rev-list --count HEAD 2>/dev/null || echo 0)"
stage=$(mktemp -d "$out/stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
prefix=$stage/opt/samtalsstod
mkdir -p "$prefix/wheels" "$stage/DEBIAN" "$stage/etc/samtalsstod" "$stage/usr/bin" \
    "$stage/usr/lib/systemd/system" "$stage/usr/lib/sysusers.d" "$stage/usr/lib/tmpfiles.d" "$prefix/provisioning"

# The wheelhouse: the project's runtime closure (no dev extras) pinned to the venv's versions, plus pip.
constraints=$stage/constraints.txt
"$py" -m pip freeze --exclude-editable | grep -v '^#' >"$constraints"
pip_version=$("$py" -m pip --version | awk '{print $2}')
PIP_CONSTRAINT= "$py" -m pip wheel --quiet --disable-pip-version-check -w "$wheel_cache" -c "$constraints" \
    --find-links "$root/var/cache/wheels" "$root" "pip==$pip_version" 2>&1 | grep -v "is ignored" || true
# Exactly the wheels of this closure (the cache may hold older builds of the app): resolve again, offline.
"$py" -m pip download --quiet --disable-pip-version-check --no-index --find-links "$wheel_cache" \
    -c "$constraints" -d "$prefix/wheels" "samtalsstod==$base" "pip==$pip_version" 2>&1 | grep -v "is ignored" || true
ls "$prefix"/wheels/samtalsstod-*.whl "$prefix"/wheels/pip-*.whl "$prefix"/wheels/torch-*.whl >/dev/null
rm -rf "$root/build"  # setuptools' leftovers of the app's wheel

# Units rendered from the templates with the default box config (paths under /opt/samtalsstod).
APPLIANCE_CONFIG="$root/packaging/appliance.toml" "$root/.venv/bin/appliance" units render \
    "$stage/usr/lib/systemd/system" >/dev/null
install -m 0644 "$root/packaging/appliance-firewall.service" "$stage/usr/lib/systemd/system/"
install -m 0644 "$root/packaging/appliance.toml" "$stage/etc/samtalsstod/appliance.toml"
install -m 0644 "$root/packaging/sysusers.conf" "$stage/usr/lib/sysusers.d/samtalsstod.conf"
install -m 0644 "$root/packaging/tmpfiles.conf" "$stage/usr/lib/tmpfiles.d/samtalsstod.conf"
install -m 0644 "$root/provisioning/README.md" "$prefix/provisioning/README.md"
ln -s /opt/samtalsstod/.venv/bin/appliance "$stage/usr/bin/appliance"
for f in postinst prerm postrm; do install -m 0755 "$root/packaging/debian/$f" "$stage/DEBIAN/$f"; done
install -m 0644 "$root/packaging/debian/conffiles" "$stage/DEBIAN/conffiles"
rm "$constraints"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@SIZE@/$size/" "$root/packaging/debian/control.in" >"$stage/DEBIAN/control"
deb=$out/samtalsstod_${version}_amd64.deb
dpkg-deb --root-owner-group -Zzstd -z1 --build "$stage" "$deb" >/dev/null
echo "$deb"
