#!/bin/sh
# Build dist/hwb-client_VERSION_amd64.deb with dpkg-deb: one package for Debian 12 (Python 3.11),
# Ubuntu 24.04 (3.12) and Debian 13 (3.13). The project and its pinned dependencies are installed at
# BUILD time, one tree per Python version, under /usr/lib/hwb-client/python3.X (owned by the package:
# dpkg -S and debsums know every file); /usr/lib/hwb-client/hwb-client starts the tree of the system
# python3. The sandbox national API (hwb_sandbox, waitress, Werkzeug) is not shipped.
#
#   installers/build-deb.sh                      # uses .venv/bin/python and constraints.txt
#   PYTHON=python3 OUT=/tmp/out installers/build-deb.sh
#
# Reproducible: every tool runs with a cleared environment (no PIP_*, no pip.conf, no locale or
# umask of the caller), file times are SOURCE_DATE_EPOCH (default: the date of the top entry of
# installers/deb/changelog), and two builds give the same bytes (tests/integration/test_deb.py).
# The third-party wheels are downloaded once from PyPI into WHEELHOUSE (a cache outside the tree,
# default ~/.cache/hwb-client-build/wheels); later builds are offline.
set -eu
umask 022

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
OUT=${OUT:-$ROOT/dist}
ARCH=${ARCH:-$(dpkg --print-architecture)}
PYTHONS=${PYTHONS:-"3.11 3.12 3.13"}
WHEELHOUSE=${WHEELHOUSE:-${XDG_CACHE_HOME:-$HOME/.cache}/hwb-client-build/wheels}
[ "$ARCH" = amd64 ] || { echo "build-deb.sh: only amd64 is supported (manylinux x86_64 wheels)" >&2; exit 2; }
MACHINE=x86_64

# The Debian version is the top changelog entry; its upstream part must be pyproject's version.
DEB_VERSION=$(dpkg-parsechangelog -l "$ROOT/installers/deb/changelog" -SVersion)
UPSTREAM=$(cd "$ROOT" && "$PYTHON" -I -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
if [ "${DEB_VERSION%-*}" != "$UPSTREAM" ]; then
    echo "build-deb.sh: installers/deb/changelog is at $DEB_VERSION but pyproject.toml at $UPSTREAM;" \
        "add a changelog entry for $UPSTREAM-1 (dch -v $UPSTREAM-1 -c installers/deb/changelog)" >&2
    exit 2
fi
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(dpkg-parsechangelog -l "$ROOT/installers/deb/changelog" -STimestamp)}

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT INT TERM
PKG="$STAGE/pkg"
SRC="$STAGE/src"
LIB="$PKG/usr/lib/hwb-client"
DOC="$PKG/usr/share/doc/hwb-client"

# clean CMD...: run with nothing of the caller's environment but what is named here.
clean() {
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$STAGE/home" LANG=C.UTF-8 LC_ALL=C.UTF-8 TZ=UTC \
        SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1 \
        PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
        ${HTTPS_PROXY:+HTTPS_PROXY="$HTTPS_PROXY"} ${https_proxy:+https_proxy="$https_proxy"} "$@"
}

# Build from a copy so the working tree gets no build/ or *.egg-info.
mkdir -p "$SRC" "$STAGE/home" "$STAGE/wheel" "$WHEELHOUSE"
(cd "$ROOT" && tar --exclude=./.venv --exclude=./.git --exclude=./dist --exclude=./build \
    --exclude='*.egg-info' --exclude=__pycache__ --exclude=./.hypothesis --exclude=./.mypy_cache \
    --exclude=./.pytest_cache --exclude=./.ruff_cache -cf - .) | tar -C "$SRC" -xf -
clean "$PYTHON" -I -m pip wheel --quiet --no-deps --wheel-dir "$STAGE/wheel" "$SRC" >/dev/null

platforms() {
    for minor in 17 28 34 36; do printf -- '--platform manylinux_2_%s_%s ' "$minor" "$MACHINE"; done
    printf -- '--platform manylinux2014_%s' "$MACHINE"
}
# target VERSION: pip install --target for that CPython; wheels only, the dependencies as pinned.
target() {
    pyver=$1 command=$2
    shift 2
    abi="cp$(echo "$pyver" | tr -d .)"
    # shellcheck disable=SC2046 # platforms prints several options on purpose
    clean "$PYTHON" -I -m pip "$command" --quiet --only-binary=:all: --python-version "$pyver" \
        --implementation cp --abi "$abi" --abi abi3 --abi none $(platforms) \
        --constraint "$ROOT/constraints.txt" --find-links "$STAGE/wheel" "$@" "hwb-client==$UPSTREAM"
}

install -d "$LIB" "$DOC" "$PKG/usr/bin" "$PKG/usr/lib/systemd/system" "$PKG/usr/share/man/man1" \
    "$PKG/usr/share/lintian/overrides" "$PKG/etc/logrotate.d" "$PKG/DEBIAN"
install -d -m 0750 "$PKG/etc/hwb-client"
for version in $PYTHONS; do
    tree="$LIB/python$version"
    rm -f "$WHEELHOUSE"/hwb_client-*.whl  # only ever this build's own wheel (pip download copies it)
    # Offline from the wheelhouse when it has everything; otherwise fill it from PyPI first.
    if ! target "$version" install --no-index "--find-links=$WHEELHOUSE" "--target=$tree" >/dev/null 2>&1; then
        rm -rf "$tree"
        target "$version" download --dest="$WHEELHOUSE" "--find-links=$WHEELHOUSE" >/dev/null
        rm -f "$WHEELHOUSE"/hwb_client-*.whl
        target "$version" install --no-index "--find-links=$WHEELHOUSE" "--target=$tree" >/dev/null
    fi
    # Not shipped: the sandbox, the demo and synthetic data (dev only), scripts for a venv, and the
    # one file pip writes that names this build's temporary directory.
    rm -rf "$tree/bin" "$tree/hwb_sandbox" "$tree/hwb_synth" "$tree/hwb_demo"
    find "$tree" -name direct_url.json -delete
    # Babel's CLDR data for the languages the client speaks (English, Welsh) and the root they inherit
    # from; the other ~1,000 locales are 30 MB per Python tree and never read.
    find "$tree/babel/locale-data" -name '*.dat' ! -name root.dat ! -name 'en.dat' ! -name 'en_GB.dat' \
        ! -name 'en_001.dat' ! -name 'en_150.dat' ! -name 'cy.dat' ! -name 'cy_GB.dat' -delete
    [ -s "$tree/hwb_client/locale/cy/LC_MESSAGES/hwb_client.mo" ] || {
        echo "build-deb.sh: the Welsh catalogue was not compiled into the wheel" >&2; exit 1; }
    find "$tree" -name __pycache__ -prune -exec rm -rf {} +
    # As dh_strip does: no debugging symbols (the upstream wheels keep some).
    find "$tree" -name '*.so' -exec strip --strip-unneeded --remove-section=.comment --remove-section=.note {} +
    if [ -e "$tree/waitress" ] || [ -e "$tree/werkzeug" ]; then
        echo "build-deb.sh: the sandbox's web server stack got into the package" >&2
        exit 1
    fi
done

install -m 0755 "$ROOT/installers/deb/launcher.py" "$LIB/hwb-client"
install -m 0755 "$ROOT/installers/deb/hwb-client.sh" "$PKG/usr/bin/hwb-client"
install -m 0644 "$ROOT/service/hwb-client.service" "$PKG/usr/lib/systemd/system/hwb-client.service"
install -m 0640 "$ROOT/config/hwb-client.example.toml" "$PKG/etc/hwb-client/hwb-client.toml"
install -m 0644 "$ROOT/installers/deb/logrotate" "$PKG/etc/logrotate.d/hwb-client"
install -m 0644 "$ROOT/installers/deb/lintian-overrides" "$PKG/usr/share/lintian/overrides/hwb-client"
install -m 0644 "$ROOT/config/hwb-client.example.toml" "$DOC/hwb-client.example.toml"
install -m 0644 "$ROOT/installers/deb/copyright" "$DOC/copyright"
clean gzip -9n < "$ROOT/installers/deb/changelog" > "$DOC/changelog.Debian.gz"
clean gzip -9n < "$ROOT/CHANGELOG.md" > "$DOC/changelog.gz"
clean gzip -9n < "$ROOT/README.md" > "$DOC/README.md.gz"
# The manual page, from the argument parser of the code being packaged.
clean "$PYTHON" -I "$ROOT/installers/deb/manpage.py" "$SRC/src" | clean gzip -9n > "$PKG/usr/share/man/man1/hwb-client.1.gz"

for script in postinst prerm postrm; do
    install -m 0755 "$ROOT/installers/deb/$script" "$PKG/DEBIAN/$script"
done
printf '%s\n' /etc/hwb-client/hwb-client.toml /etc/logrotate.d/hwb-client > "$PKG/DEBIAN/conffiles"

# Modes and times that do not depend on the build machine.
find "$PKG" -type d -exec chmod 0755 {} +
chmod 0750 "$PKG/etc/hwb-client"
find "$PKG/usr/lib/hwb-client" -type f ! -path "$LIB/hwb-client" -exec chmod 0644 {} +
(cd "$PKG" && find usr etc -type f ! -path 'etc/*' -print0 | LC_ALL=C sort -z | xargs -0 md5sum) > "$PKG/DEBIAN/md5sums"
chmod 0644 "$PKG/DEBIAN/md5sums" "$PKG/DEBIAN/conffiles"
SIZE=$(du -sk --apparent-size --exclude=DEBIAN "$PKG" | cut -f1)
sed -e "s/@VERSION@/$DEB_VERSION/g" -e "s/@ARCH@/$ARCH/g" -e "s/@INSTALLED_SIZE@/$SIZE/g" \
    "$ROOT/installers/deb/control.in" > "$PKG/DEBIAN/control"
find "$PKG" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

mkdir -p "$OUT"
DEB="$OUT/hwb-client_${DEB_VERSION}_${ARCH}.deb"
clean dpkg-deb --root-owner-group -Zgzip -z9 --build "$PKG" "$DEB" >/dev/null
echo "$DEB"
