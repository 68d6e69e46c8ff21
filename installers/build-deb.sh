#!/bin/sh
# Build dist/hwb-client_VERSION_ARCH.deb with dpkg-deb: the project and its pinned dependencies as
# wheels (installed offline into /opt/hwb-client/venv by postinst), the systemd unit, an example
# configuration (a conffile) and /usr/bin/hwb-client.
#
#   installers/build-deb.sh            # uses .venv/bin/python and constraints.txt
#   PYTHON=python3 OUT=/tmp/out installers/build-deb.sh
#
# The wheels are built for the building Python (CPython 3.11 on x86_64 = Debian 12's python3), so
# the package is amd64 and depends on python3 3.11.x.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
OUT=${OUT:-$ROOT/dist}
ARCH=${ARCH:-$(dpkg --print-architecture)}
VERSION=$(cd "$ROOT" && "$PYTHON" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT INT TERM
PKG="$STAGE/pkg"
SRC="$STAGE/src"

# Constraints: the exact pins we ship and test; a freeze of the dev venv if there are none yet.
if [ -f "$ROOT/constraints.txt" ]; then
    CONSTRAINTS="$ROOT/constraints.txt"
else
    CONSTRAINTS="$STAGE/constraints.txt"
    "$PYTHON" -m pip freeze --exclude-editable | grep -iv '^hwb-client' > "$CONSTRAINTS"
fi

# Build from a copy so the working tree gets no build/ or *.egg-info.
mkdir -p "$SRC"
(cd "$ROOT" && tar --exclude=./.venv --exclude=./.git --exclude=./dist --exclude=./build \
    --exclude='*.egg-info' --exclude=__pycache__ --exclude=./.hypothesis --exclude=./.mypy_cache \
    --exclude=./.pytest_cache --exclude=./.ruff_cache -cf - .) | tar -C "$SRC" -xf -

install -d "$PKG/DEBIAN" "$PKG/opt/hwb-client/wheels" "$PKG/lib/systemd/system" \
    "$PKG/usr/bin" "$PKG/usr/share/doc/hwb-client"
install -d -m 0750 "$PKG/etc/hwb-client"
"$PYTHON" -m pip wheel --quiet --disable-pip-version-check --wheel-dir "$PKG/opt/hwb-client/wheels" \
    --constraint "$CONSTRAINTS" "$SRC"

install -m 0644 "$ROOT/service/hwb-client.service" "$PKG/lib/systemd/system/hwb-client.service"
install -m 0640 "$ROOT/config/hwb-client.example.toml" "$PKG/etc/hwb-client/hwb-client.toml"
install -m 0644 "$ROOT/config/hwb-client.example.toml" "$PKG/usr/share/doc/hwb-client/hwb-client.example.toml"
install -m 0755 "$ROOT/installers/deb/hwb-client.sh" "$PKG/usr/bin/hwb-client"
install -m 0644 "$ROOT/installers/deb/copyright" "$PKG/usr/share/doc/hwb-client/copyright"
if [ -f "$ROOT/README.md" ]; then
    install -m 0644 "$ROOT/README.md" "$PKG/opt/hwb-client/README.md"
fi
if [ -f "$ROOT/CHANGELOG.md" ]; then
    install -m 0644 "$ROOT/CHANGELOG.md" "$PKG/usr/share/doc/hwb-client/CHANGELOG.md"
fi

for script in postinst prerm postrm; do
    sed "s/@VERSION@/$VERSION/g" "$ROOT/installers/deb/$script" > "$PKG/DEBIAN/$script"
    chmod 0755 "$PKG/DEBIAN/$script"
done
echo /etc/hwb-client/hwb-client.toml > "$PKG/DEBIAN/conffiles"
SIZE=$(du -sk --exclude=DEBIAN "$PKG" | cut -f1)
sed -e "s/@VERSION@/$VERSION/g" -e "s/@ARCH@/$ARCH/g" -e "s/@INSTALLED_SIZE@/$SIZE/g" \
    "$ROOT/installers/deb/control.in" > "$PKG/DEBIAN/control"

mkdir -p "$OUT"
DEB="$OUT/hwb-client_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group -Zxz --build "$PKG" "$DEB" >/dev/null
echo "$DEB"
