#!/usr/bin/env bash
# Build the TINY Phi-3-architecture test model (random weights, ~1 MB) in the exact layout of
# the microsoft/Phi-3-mini-4k-instruct-onnx CPU int4 release folder.
# Usage: tools/build_test_model/build.sh [OUT_DIR]   (default: tests/fixtures/tiny-phi3 in the repo)
# Env:   VENV  build venv (default ~/.cache/edgeslm/testmodel-build-venv; created on first use)
#        WORK  scratch dir (default: a fresh temp dir, removed afterwards)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${1:-$ROOT/tests/fixtures/tiny-phi3}
VENV=${VENV:-$HOME/.cache/edgeslm/testmodel-build-venv}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q torch==2.13.0          # CPU wheel; never unpinned (a bare 'torch' pulls CUDA)
  "$VENV/bin/pip" install -q -r "$HERE/requirements.txt"
fi
if [ -n "${WORK:-}" ]; then KEEP_WORK=1; else WORK=$(mktemp -d); KEEP_WORK=0; fi
cleanup() { if [ "$KEEP_WORK" = 0 ]; then rm -rf "$WORK"; fi; }
trap cleanup EXIT
"$VENV/bin/python" "$HERE/make_tiny_phi3.py" --out "$OUT" --work "$WORK"
(cd "$OUT" && du -ch -- * | tail -n 1)
echo "built: $OUT"
