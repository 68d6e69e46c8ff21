#!/bin/sh
# Build dist/hwb-client-VERSION-x64.msi with wixl (Debian package "wixl"): install.ps1, the example
# configuration and the wheels, for an administrator to run install.ps1 on the Windows server.
#
#   installers/build-msi.sh                 # wheels: hwb-client + its pinned dependencies and pywin32,
#                                           # downloaded as CPython 3.11 win_amd64 wheels
#   WHEELS=/path/to/wheels installers/build-msi.sh    # use these wheels instead (offline)
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
OUT=${OUT:-$ROOT/dist}
VERSION=$(cd "$ROOT" && "$PYTHON" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT INT TERM
mkdir -p "$STAGE/files/wheels" "$STAGE/src"

if [ -n "${WHEELS:-}" ]; then
    cp "$WHEELS"/*.whl "$STAGE/files/wheels/"
else
    (cd "$ROOT" && tar --exclude=./.venv --exclude=./.git --exclude=./dist --exclude=./build \
        --exclude='*.egg-info' --exclude=__pycache__ -cf - .) | tar -C "$STAGE/src" -xf -
    "$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$STAGE/files/wheels" "$STAGE/src"
    # pip evaluates environment markers for this machine, not the target: name the Windows-only ones.
    "$PYTHON" -m pip download --quiet --only-binary=:all: --platform win_amd64 --python-version 3.11 \
        --implementation cp --abi cp311 --abi abi3 --abi none --dest "$STAGE/files/wheels" \
        --find-links "$STAGE/files/wheels" --constraint "$ROOT/constraints.txt" \
        "hwb-client==$VERSION" "pywin32>=306" tzdata
fi

install -m 0644 "$ROOT/installers/windows/install.ps1" "$STAGE/files/install.ps1"
install -m 0644 "$ROOT/config/hwb-client.windows.toml" "$STAGE/files/hwb-client.example.toml"  # the Windows example

(cd "$STAGE/files" && find wheels -type f -name '*.whl' | sort) \
    | wixl-heat --prefix wheels/ --directory-ref WHEELSDIR --component-group Wheels \
        --var var.WheelsDir --win64 > "$STAGE/wheels.wxs"

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
MSI="$OUT/hwb-client-$VERSION-x64.msi"
# wixl wants source paths relative to the folder it runs in.
(cd "$STAGE/files" && wixl --arch x64 -D Win64=yes -D "Version=$VERSION" -D SourceDir=. -D WheelsDir=wheels \
    -o "$MSI" "$ROOT/installers/windows/hwb-client.wxs" "$STAGE/wheels.wxs")
echo "$MSI"
