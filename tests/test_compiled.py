"""The compiled detectors (mypyc, edgeslm/accel.py) give exactly what the pure Python modules give."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgeslm import accel

pytest.importorskip("mypyc")
if shutil.which("cc") is None and shutil.which("gcc") is None:  # pragma: no cover - machines without a compiler
    pytest.skip("no C compiler", allow_module_level=True)

REPO = Path(__file__).resolve().parent.parent

# One engine over a plant stream with every kind of event: noise, an excursion, a lone spike, a frozen sensor,
# a dropout and NaNs; prints whether the detectors were compiled and every event and the final state, exactly.
SCRIPT = r"""
import json, math, random, sys
sys.path.insert(0, sys.argv[1])
from edgeslm import accel
from edgeslm.detect.engine import DetectionEngine
from edgeslm.models import Sample
from edgeslm.settings import AlarmSettings, DetectSettings

rng = random.Random(7)
eng = DetectionEngine(DetectSettings(), AlarmSettings(), {})
events = []
for i in range(6000):
    for a in range(3):
        for k in range(4):
            x = 50.0 + 10.0 * k + rng.gauss(0.0, 1.0 + 0.5 * k)
            if a == 0 and 2000 <= i < 2100:
                x += 12.0
            if a == 1 and i == 3000 and k == 2:
                x += 40.0
            if a == 2 and 3500 <= i < 4000 and k == 1:
                x = 61.0
            if a == 2 and 4500 <= i < 4520 and k == 3:
                x = 0.0
            if i % 997 == 5 and k == 0:
                x = math.nan
            events += [[e.alarm_id, e.state.value, e.ts, repr(e.score), list(e.detectors)]
                       for e in eng.process(Sample(f"asset{a}", f"s{k}", 60.0 * i, x))]
    if i % 300 == 0:
        events += [[e.alarm_id, e.state.value, e.ts] for e in eng.tick(60.0 * i)]
# alarm ids are UUIDv7 (time + random bits): numbered by first appearance so that two runs compare
ids = {}
for e in events:
    ids.setdefault(e[0], f"alarm-{len(ids)}")
state = json.dumps(eng.state(), allow_nan=False, sort_keys=True)
for raw, num in ids.items():
    state = state.replace(raw, num)
print(json.dumps({"compiled": accel.compiled_in_use(), "events": [[ids[e[0]], *e[1:]] for e in events],
                  "state": json.loads(state)}, allow_nan=False))
"""


@pytest.fixture(scope="module")
def compiled_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return accel.build(tmp_path_factory.mktemp("compiled"))


def _run(root: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(root)], capture_output=True, text=True, timeout=600,
                         check=True)
    return json.loads(out.stdout)


def test_compiled_detectors_give_the_same_events_and_state_as_pure_python(compiled_root: Path) -> None:
    compiled, pure = _run(compiled_root), _run(REPO)
    assert compiled["compiled"] is True and pure["compiled"] is False
    assert len(pure["events"]) > 10  # the stream does raise and clear
    assert compiled["events"] == pure["events"]
    assert compiled["state"] == pure["state"]


def test_a_development_checkout_is_pure_python() -> None:
    # an editable install never compiles, so an edited .py cannot be shadowed by a stale extension module
    assert not list((REPO / "edgeslm").rglob("*.so"))
    assert accel.compiled_in_use() is False
