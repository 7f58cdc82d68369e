"""Shared helpers for the benches: argument parsing, machine description, the final JSON line."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


def parser(description: str, data: Path | None = None, out: Path | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    if data is not None:
        p.add_argument("--data", type=Path, default=data, help=f"dataset folder (default {data})")
    if out is not None:
        p.add_argument("--out", type=Path, default=out, help=f"output folder (default {out})")
    return p


def machine() -> str:
    """e.g. '2 cores, Intel(R) Xeon(R) ... (x86_64), Python 3.11.9'."""
    model = platform.processor() or platform.machine()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {model} ({platform.machine()}), Python {platform.python_version()}"


def final_json(payload: dict[str, Any]) -> None:
    """The last line of every bench: one JSON object, machine-readable."""
    sys.stdout.flush()
    print(json.dumps(payload, allow_nan=False, sort_keys=False), flush=True)
