"""Property-based tests: no input makes a codec or the config loader fail in any but the stated way."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeslm.ingest.errors import PayloadError
from edgeslm.ingest.json_codec import JsonDecoder
from edgeslm.ingest.plain import PlainDecoder
from edgeslm.settings import ConfigError, IngestSettings, JsonMapping, PlainMapping, Settings, load_settings

NOW = 1_764_000_000.0
LIMITS = IngestSettings()
JSON_AUTO = JsonDecoder(JsonMapping(asset="topic:1"), LIMITS)
JSON_FIELD = JsonDecoder(JsonMapping(asset="field:id", signals_field="v", timestamp_format="iso8601"), LIMITS)
PLAIN = PlainDecoder(PlainMapping(asset="topic:1", signal="topic:2"), LIMITS)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30)


def check_samples(out: list[Any]) -> None:
    assert out
    for s in out:
        assert isinstance(s.value, float) and math.isfinite(s.value)
        assert s.asset and s.signal and s.signal.isprintable()
        s.signal.encode("utf-8")  # no lone surrogates reach the detectors
        s.asset.encode("utf-8")


def run(decoder: Any, topic: str, raw: bytes) -> None:
    try:
        out = decoder.decode(topic, raw, NOW)
    except PayloadError as e:
        assert e.reason in PayloadError.REASONS
        return
    check_samples(out)


@given(st.binary(max_size=2000))
def test_json_codec_on_any_bytes(raw: bytes) -> None:
    run(JSON_AUTO, "f/a/telemetry", raw)
    run(JSON_FIELD, "f/a/telemetry", raw)


@given(json_values)
def test_json_codec_on_any_json_document(doc: Any) -> None:
    raw = json.dumps(doc).encode()  # may contain NaN/Infinity: Python writes them, the codec must refuse
    run(JSON_AUTO, "f/a/telemetry", raw)
    run(JSON_FIELD, "f/a/telemetry", raw)


@given(st.dictionaries(st.text(max_size=12), json_values, max_size=8), st.text(max_size=30))
def test_json_codec_on_telemetry_like_objects(doc: dict[str, Any], asset: str) -> None:
    run(JSON_FIELD, "f/a/telemetry", json.dumps({"id": asset, "v": doc, "ts": "2025-11-24T16:00:00Z"}).encode())


@given(st.binary(max_size=100), st.text(max_size=30))
def test_plain_codec_on_any_bytes_and_topic(raw: bytes, topic: str) -> None:
    run(PLAIN, topic, raw)


@given(st.binary(max_size=3000))
@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_config_loader_on_any_bytes(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "c.toml"
        p.write_bytes(raw)
        try:
            s = load_settings(p)
        except ConfigError as e:
            assert e.problems and all(isinstance(x, str) and x for x in e.problems)
            return
        assert isinstance(s, Settings)


def _keys() -> list[tuple[str, str]]:
    out = []
    for section, info in Settings.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and hasattr(ann, "model_fields"):
            out += [(section, k) for k in ann.model_fields]
    return out


toml_scalar = (st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False) | st.booleans()
               | st.text(max_size=20) | st.lists(st.integers(0, 9), max_size=3))


@given(st.lists(st.tuples(st.sampled_from(_keys()), toml_scalar), max_size=6))
@settings(max_examples=300)
def test_config_loader_on_wrong_types_and_ranges(assignments: list[tuple[tuple[str, str], Any]]) -> None:
    tables: dict[str, dict[str, Any]] = {}
    for (section, key), value in assignments:
        tables.setdefault(section, {})[key] = value
    text = '[[subscriptions]]\ntopic = "a/#"\n' + "".join(
        f"[{section}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in kv.items()) for section, kv in tables.items())
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "c.toml"
        p.write_text(text)
        try:
            load_settings(p)
        except ConfigError as e:
            # every problem names a key path from the file (or the top level for cross-key rules)
            assert all(":" in x for x in e.problems)
