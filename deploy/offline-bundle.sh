#!/usr/bin/env bash
# Build one tarball that installs edgeslm on an air-gapped gateway: every wheel it needs, the unit,
# the example config, install.sh, and optionally a model folder.
#
#   deploy/offline-bundle.sh [--model DIR] [--out DIR] [--python-version 3.11] [--platform manylinux2014_x86_64]
#                            [--compiled]
# On the gateway:  tar xzf edgeslm-offline-*.tar.gz && cd edgeslm-offline-* && sudo ./install.sh --offline
# --compiled: the detectors and engine compiled with mypyc (2.5x as fast, same results; edgeslm/accel.py). Builds on
# this machine for this machine's Python and platform; needs mypy, setuptools>=77 and a C compiler here.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
OUT=$SRC/dist MODEL="" PYV="" PLAT="" COMPILED="" PY=${PYTHON:-python3}
while [ $# -gt 0 ]; do
  case "$1" in
    --model) MODEL=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --python-version) PYV=$2; shift 2 ;;
    --platform) PLAT=$2; shift 2 ;;
    --compiled) COMPILED=1; shift ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "offline-bundle.sh: unknown option $1" >&2; exit 64 ;;
  esac
done
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$SRC/pyproject.toml" | head -1)
NAME=edgeslm-offline-$VERSION
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
B=$WORK/$NAME
mkdir -p "$B/wheels" "$B/systemd" "$B/config" "$OUT"
echo ">> building the edgeslm wheel"
if [ -n "$COMPILED" ]; then
  if [ -n "$PYV$PLAT" ]; then
    echo "offline-bundle.sh: --compiled builds for this machine only (not with --python-version/--platform)" >&2
    exit 64
  fi
  if ! "$PY" -c 'import mypyc, setuptools, sys; sys.exit(int(setuptools.__version__.split(".")[0]) < 77)' 2>/dev/null; then
    echo "offline-bundle.sh: --compiled needs mypy and setuptools>=77 in $PY:" >&2
    echo "  $PY -m pip install 'mypy>=1.11,<3' 'setuptools>=77' wheel   (and a C compiler: apt-get install gcc)" >&2
    exit 69
  fi
  EDGESLM_COMPILE=1 "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$B/wheels" "$SRC"
else
  "$PY" -m pip wheel -q --no-deps -w "$B/wheels" "$SRC"
fi
echo ">> collecting dependency wheels"
if [ -n "$PYV$PLAT" ]; then
  # cross-target: binary wheels only, for the gateway's Python and platform
  "$PY" -m pip download -q --only-binary=:all: ${PYV:+--python-version "$PYV"} ${PLAT:+--platform "$PLAT"} \
    -d "$B/wheels" "$B"/wheels/edgeslm-*.whl
else
  "$PY" -m pip download -q -d "$B/wheels" "$B"/wheels/edgeslm-*.whl
fi
# pip itself and setuptools-free venv creation: the gateway's python3-venv brings pip.
cp "$SRC/deploy/install.sh" "$B/install.sh"
cp "$SRC/systemd/edgeslm.service" "$B/systemd/"
cp "$SRC/config/edgeslm.toml" "$B/config/"
cp "$SRC/README.md" "$SRC/LICENSE" "$B/"
if [ -n "$MODEL" ]; then
  [ -f "$MODEL/genai_config.json" ] || { echo "offline-bundle.sh: $MODEL has no genai_config.json" >&2; exit 66; }
  mkdir -p "$B/model/$(basename "$MODEL")"
  cp -a "$MODEL/." "$B/model/$(basename "$MODEL")/"
fi
(cd "$B/wheels" && sha256sum ./* > ../SHA256SUMS)
tar -C "$WORK" -czf "$OUT/$NAME.tar.gz" "$NAME"
echo ">> $OUT/$NAME.tar.gz ($(du -h "$OUT/$NAME.tar.gz" | cut -f1), $(ls "$B/wheels" | wc -l) wheels)"
