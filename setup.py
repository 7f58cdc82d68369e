"""Build hook: EDGESLM_COMPILE=1 compiles the per-sample detectors with mypyc (see edgeslm/accel.py).

    EDGESLM_COMPILE=1 pip wheel --no-build-isolation --no-deps -w dist .   (needs mypy, setuptools, a C compiler)

Without it (the default, and every editable install) the package is pure Python. Everything else about the
build is in pyproject.toml.
"""

import os
import runpy

from setuptools import setup

ext_modules = []
if os.environ.get("EDGESLM_COMPILE") == "1":
    from mypyc.build import mypycify

    modules = runpy.run_path(os.path.join("edgeslm", "accel.py"))["COMPILED_MODULES"]
    ext_modules = mypycify(list(modules), opt_level="3")

setup(ext_modules=ext_modules)
