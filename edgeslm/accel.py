"""Optional compiled per-sample path: the same typed Python source, compiled to C extensions by mypyc.

There is no second implementation: mypyc compiles the detector modules, the alarm stage and the engine as they
are, and the per-sample path runs about twice as fast (bench/detect_speed.py --compiled, docs/benchmarks.md), with
results identical to the pure modules (tests/test_compiled.py checks events and state bit for bit). Only
deployment builds compile (`EDGESLM_COMPILE=1 pip wheel --no-build-isolation .`, docs/operations.md): a
development checkout stays pure Python, so an edited .py is never shadowed by a stale .so next to it.

Standard library only: setup.py reads COMPILED_MODULES from this file before edgeslm's dependencies exist.
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

# The per-sample path: the detectors, the alarm stage and the engine. The multivariate detector (numpy calls
# once per row) and the settings models (pydantic) stay Python; mypyc type-checks the engine against them with
# pydantic's mypy plugin (MYPY_CONFIG; pyproject.toml [tool.mypy] for wheel builds).
COMPILED_MODULES: tuple[str, ...] = tuple(
    f"edgeslm/detect/{name}.py"
    for name in ("base", "rolling", "zscore", "robust_zscore", "ewma", "cusum", "spike", "flatline", "context",
                 "likelihood", "limits", "alarm", "engine")
)
MYPY_CONFIG = "[mypy]\nplugins = pydantic.mypy\n"


def module_names() -> list[str]:
    return [p.removesuffix(".py").replace("/", ".") for p in COMPILED_MODULES]


def compiled_in_use() -> bool:
    """True when every module of COMPILED_MODULES was loaded from a C extension."""
    files = [getattr(importlib.import_module(m), "__file__", "") or "" for m in module_names()]
    return all(f.endswith(tuple(EXTENSION_SUFFIXES)) for f in files)


def build(dest: Path) -> Path:
    """Copy this checkout's package into `dest` and compile COMPILED_MODULES there in place (needs mypy and a C
    compiler); returns `dest`, to be put first on sys.path. For benches and tests; deployments build a wheel."""
    src = Path(__file__).resolve().parent
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src, dest / "edgeslm", ignore=shutil.ignore_patterns("__pycache__", "*.so"), dirs_exist_ok=True)
    (dest / "mypy.ini").write_text(MYPY_CONFIG)
    proc = subprocess.run([sys.executable, "-m", "mypyc", *COMPILED_MODULES], cwd=dest, capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"mypyc failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return dest
