"""JSON and plain codecs: mapping rules and the stated rule for each kind of bad input."""

from __future__ import annotations

import json

import pytest

from edgeslm.ingest.errors import PayloadError
from edgeslm.ingest.json_codec import JsonDecoder, nesting_depth
from edgeslm.ingest.plain import PlainDecoder
from edgeslm.ingest.registry import Router
from edgeslm.settings import IngestSettings, JsonMapping, PlainMapping, Subscription

NOW = 1_764_000_000.0
LIMITS = IngestSettings()


def dec(**mapping: object) -> JsonDecoder:
    return JsonDecoder(JsonMapping(**mapping), LIMITS)


def reason(d: JsonDecoder | PlainDecoder, raw: bytes, topic: str = "f/pump-1/telemetry") -> str:
    with pytest.raises(PayloadError) as ei:
        d.decode(topic, raw, NOW)
    return ei.value.reason


def test_asset_from_topic_and_all_numeric_fields() -> None:
    out = dec(asset="topic:1").decode("f/pump-1/telemetry", b'{"ts": 1764000000.5, "temp": 61.2, "rpm": 2950, '
                                      b'"state": "run"}', NOW)
    assert [(s.asset, s.signal, s.ts, s.value) for s in out] == [
        ("pump-1", "temp", 1764000000.5, 61.2), ("pump-1", "rpm", 1764000000.5, 2950.0)]


def test_asset_from_nested_field_listed_signals_and_ms_timestamps() -> None:
    d = dec(asset="field:meta.id", timestamp_field="t", timestamp_format="epoch_ms", signals=["v.temp"])
    out = d.decode("x", json.dumps({"meta": {"id": "p7"}, "t": 1764000000500, "v": {"temp": 1}}).encode(), NOW)
    assert [(s.asset, s.signal, s.ts, s.value) for s in out] == [("p7", "v.temp", 1764000000.5, 1.0)]


def test_signals_field_and_iso_timestamps() -> None:
    d = dec(asset="const:press", timestamp_format="iso8601", signals_field="values")
    out = d.decode("x", b'{"ts": "2025-11-24T16:00:00Z", "values": {"p": 3.5}}', NOW)
    assert out[0].asset == "press" and out[0].ts == 1764000000.0 and out[0].value == 3.5


def test_missing_timestamp_uses_arrival_time() -> None:
    assert dec(asset="topic:1").decode("f/a/t", b'{"x": 1.5}', NOW)[0].ts == NOW


@pytest.mark.parametrize(("raw", "why"), [
    (b"", "empty"),
    (b"   ", "empty"),
    (b"\xff\xfe{}", "bad_utf8"),
    (b'{"x": NaN}', "non_finite"),
    (b'{"x": Infinity}', "non_finite"),
    (b'{"x": -Infinity}', "non_finite"),
    (b'{"x": 1e309}', "no_signals"),  # overflowing float: that signal is skipped, nothing usable is left
    (b'{"x": ' + b"9" * 5000 + b"}", "huge_number"),
    (b'{"x": 1, "x": 2}', "duplicate_key"),
    (b"[1, 2]", "not_object"),
    (b"null", "not_object"),
    (b"42", "not_object"),
    (b'{"x": true}', "no_signals"),
    (b'{"x": "12"}', "no_signals"),
    (b"{" * 50 + b"}" * 50, "too_deep"),
    (b'{"x": 1', "bad_json"),
    (b'{"ts": 99999999999, "x": 1}', "future_timestamp"),
    (b'{"ts": -5, "x": 1}', "old_timestamp"),
    (b'{"ts": "yesterday", "x": 1}', "bad_timestamp"),
    (b'{"ts": true, "x": 1}', "bad_timestamp"),
])
def test_bad_payloads_have_a_stated_reason(raw: bytes, why: str) -> None:
    assert reason(dec(asset="topic:1"), raw) == why


def test_oversized_payload_rejected_before_parsing() -> None:
    d = JsonDecoder(JsonMapping(asset="topic:1"), IngestSettings(max_payload_bytes=64))
    assert reason(d, b'{"x": 1, "pad": "' + b"a" * 100 + b'"}') == "too_large"


def test_bad_signal_is_skipped_and_counted_others_kept() -> None:
    d = dec(asset="topic:1", signals=["a", "b", "c", "d"])
    out = d.decode("f/p/t", b'{"a": 1.0, "b": true, "c": null, "d": "x"}', NOW)
    assert [s.signal for s in out] == ["a"]
    assert d.skipped == {"bad_type": 2}  # null counts as absent, not as bad


def test_bad_asset_values() -> None:
    d = dec(asset="field:id")
    assert reason(d, b'{"id": "\\ud800", "x": 1}') == "bad_asset"  # lone surrogate
    assert reason(d, b'{"id": "a\\u0000b", "x": 1}') == "bad_asset"
    assert reason(d, b'{"id": ["a"], "x": 1}') == "bad_asset"
    assert reason(d, b'{"x": 1}') == "no_asset"


def test_assets_from_topics_are_remembered_but_a_bad_topic_is_rejected_every_time() -> None:
    d = dec(asset="topic:1")
    for _ in range(2):
        assert [s.asset for s in d.decode("f/pump-1/telemetry", b'{"x": 1.5}', NOW)] == ["pump-1"]
        assert [s.asset for s in d.decode("f/pump-2/telemetry", b'{"x": 1.5}', NOW)] == ["pump-2"]
        assert reason(d, b'{"x": 1.5}', "f//telemetry") == "no_asset"
        assert reason(d, b'{"x": 1.5}', "f/a\tb/telemetry") == "bad_asset"
    d.MAX_NAMES = 2  # full: a new topic is still resolved, just not remembered
    assert [s.asset for s in d.decode("f/pump-3/telemetry", b'{"x": 1.5}', NOW)] == ["pump-3"]
    assert d._assets == {"f/pump-1/telemetry": "pump-1", "f/pump-2/telemetry": "pump-2"}


def test_depth_scan_ignores_brackets_in_strings() -> None:
    assert nesting_depth(b'{"a": "[[[[[[[[[[[[", "b": {"c": 1}}') == 2
    out = dec(asset="topic:1").decode("f/p/t", b'{"note": "[[[[[[[[[[[[[[[[[", "x": 2}', NOW)
    assert out[0].value == 2.0


def test_plain_numbers() -> None:
    d = PlainDecoder(PlainMapping(asset="topic:1", signal="topic:2"), LIMITS)
    out = d.decode("f/press-2/oil_temp", b" 47.25 ", NOW)
    assert (out[0].asset, out[0].signal, out[0].value) == ("press-2", "oil_temp", 47.25)
    for raw, why in [(b"nan", "bad_number"), (b"inf", "bad_number"), (b"1_000", "bad_number"),
                     (b"true", "bad_number"), (b"", "empty"), (b"1e400", "non_finite"), (b"1" * 100, "too_large")]:
        assert reason(d, raw, "f/press-2/oil_temp") == why, raw
    assert reason(d, b"1.0", "short") == "no_asset"


def test_router_picks_first_matching_subscription() -> None:
    subs = [Subscription(topic="f/+/telemetry", codec="json", json={"asset": "topic:1"}),
            Subscription(topic="f/+/+/value", codec="plain", plain={"asset": "topic:1", "signal": "topic:2"})]
    r = Router(subs, LIMITS)
    assert r.decode("f/a/telemetry", b'{"x": 1}', NOW)[0].signal == "x"
    assert r.decode("f/a/temp/value", b"3", NOW)[0].signal == "temp"
    with pytest.raises(PayloadError) as ei:
        r.decode("other/topic", b"3", NOW)
    assert ei.value.reason == "unknown_topic"
