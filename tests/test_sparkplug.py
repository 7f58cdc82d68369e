"""Sparkplug B ingest: births, data by alias, sequence numbers, rebirth requests, deaths, hostile bytes."""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeslm.ingest import sparkplug_b_pb2 as pb
from edgeslm.ingest.errors import PayloadError
from edgeslm.ingest.registry import Router
from edgeslm.ingest.sparkplug import REBIRTH_METRIC, SparkplugDecoder
from edgeslm.settings import IngestSettings, SparkplugMapping, Subscription

NOW = 1_764_000_000.0
NOW_MS = int(NOW * 1000)
LIMITS = IngestSettings()
G, N = "plant", "edge-1"


def metric(name: str | None = None, alias: int | None = None, datatype: int | None = None,
           ts_ms: int | None = None, **value: Any) -> dict[str, Any]:
    m: dict[str, Any] = {"name": name, "alias": alias, "datatype": datatype, "timestamp": ts_ms, **value}
    return {k: v for k, v in m.items() if v is not None}


def payload(*metrics: dict[str, Any], seq: int | None = None, ts_ms: int | None = NOW_MS) -> bytes:
    p = pb.Payload()
    if ts_ms is not None:
        p.timestamp = ts_ms
    if seq is not None:
        p.seq = seq
    for m in metrics:
        p.metrics.add(**m)
    return p.SerializeToString()


def nbirth(seq: int = 0, bd: int = 0) -> bytes:
    return payload(metric("bdSeq", datatype=4, long_value=bd), metric(REBIRTH_METRIC, datatype=11, boolean_value=False),
                   metric("Supply/Voltage", alias=1, datatype=10, double_value=230.5),
                   metric("Counter", alias=2, datatype=7, int_value=10), seq=seq)


def dbirth(seq: int) -> bytes:
    return payload(metric("bearing_temp", alias=10, datatype=9, float_value=61.5),
                   metric("offset", alias=11, datatype=1, int_value=0xFE),  # Int8 -2, two's complement
                   metric("delta", alias=12, datatype=4, long_value=(1 << 64) - 5),  # Int64 -5
                   metric("running", alias=13, datatype=11, boolean_value=True),
                   metric("label", alias=14, datatype=12, string_value="pump"),
                   metric("Device Control/Rebirth", datatype=11, boolean_value=False), seq=seq)


def dec(**mapping: Any) -> SparkplugDecoder:
    return SparkplugDecoder(SparkplugMapping(**mapping), LIMITS)


def t(kind: str, device: str | None = None, node: str = N, group: str = G) -> str:
    return f"spBv1.0/{group}/{kind}/{node}" + (f"/{device}" if device else "")


def triples(samples: list[Any]) -> list[tuple[str, str, float]]:
    return [(s.asset, s.signal, s.value) for s in samples]


def born(d: SparkplugDecoder) -> None:
    d.decode(t("NBIRTH"), nbirth(0, bd=7), NOW)
    d.decode(t("DBIRTH", "pump-1"), dbirth(1), NOW)


def rebirth_requests(d: SparkplugDecoder) -> list[str]:
    out = []
    for topic, raw in d.outgoing:
        p = pb.Payload.FromString(raw)
        assert [(m.name, m.datatype, m.boolean_value) for m in p.metrics] == [(REBIRTH_METRIC, 11, True)]
        out.append(topic)
    return out


def test_births_declare_aliases_and_carry_values_with_signed_types_decoded() -> None:
    d = dec()
    assert triples(d.decode(t("NBIRTH"), nbirth(), NOW)) == [("edge-1", "Supply/Voltage", 230.5),
                                                            ("edge-1", "Counter", 10.0)]
    out = d.decode(t("DBIRTH", "pump-1"), dbirth(1), NOW)
    assert triples(out) == [("pump-1", "bearing_temp", 61.5), ("pump-1", "offset", -2.0), ("pump-1", "delta", -5.0)]
    assert all(s.ts == NOW for s in out)  # payload timestamp (ms) when metrics carry none
    assert d.outgoing == [] and d.skipped == {}


def test_data_by_alias_only_resolves_names_and_uses_metric_timestamps() -> None:
    d = dec()
    born(d)
    out = d.decode(t("DDATA", "pump-1"), payload(metric(alias=10, ts_ms=NOW_MS - 1500, float_value=70.25),
                                                 metric(alias=12, long_value=7), seq=2), NOW)
    assert [(s.asset, s.signal, s.ts, s.value) for s in out] == [
        ("pump-1", "bearing_temp", NOW - 1.5, 70.25), ("pump-1", "delta", NOW, 7.0)]
    assert triples(d.decode(t("NDATA"), payload(metric(alias=1, double_value=229.0), seq=3), NOW)) == [
        ("edge-1", "Supply/Voltage", 229.0)]
    assert d.outgoing == [] and d.skipped == {}


@pytest.mark.parametrize(("how", "node_asset", "device_asset"), [
    ("device", "edge-1", "pump-1"), ("node", "edge-1", "edge-1"), ("node/device", "edge-1", "edge-1/pump-1")])
def test_asset_naming_modes(how: str, node_asset: str, device_asset: str) -> None:
    d = dec(asset=how)
    assert {s.asset for s in d.decode(t("NBIRTH"), nbirth(), NOW)} == {node_asset}
    assert {s.asset for s in d.decode(t("DBIRTH", "pump-1"), dbirth(1), NOW)} == {device_asset}


def test_booleans_are_skipped_by_default_and_read_as_0_1_when_configured() -> None:
    d = dec(booleans="number")
    born(d)
    out = d.decode(t("DDATA", "pump-1"), payload(metric(alias=13, boolean_value=False), seq=2), NOW)
    assert triples(out) == [("pump-1", "running", 0.0)]
    d2 = dec()
    born(d2)
    assert d2.decode(t("DDATA", "pump-1"), payload(metric(alias=13, boolean_value=False), seq=2), NOW) == []
    assert d2.skipped == {}  # a configured choice, not a bad payload


def test_sequence_wraps_from_255_to_0_without_a_gap() -> None:
    d = dec()
    d.decode(t("NBIRTH"), nbirth(seq=254), NOW)
    for seq in (255, 0, 1):
        assert d.decode(t("NDATA"), payload(metric(alias=1, double_value=seq), seq=seq), NOW)
    assert d.skipped == {} and d.outgoing == []


def test_sequence_gap_is_counted_requests_one_rebirth_and_keeps_the_readings() -> None:
    d = dec(rebirth_interval_s=5)
    born(d)
    out = d.decode(t("DDATA", "pump-1"), payload(metric(alias=10, float_value=1.0), seq=5), NOW)
    assert triples(out) == [("pump-1", "bearing_temp", 1.0)]
    assert d.skipped == {"sequence_gap": 1}
    assert rebirth_requests(d) == [f"spBv1.0/{G}/NCMD/{N}"]
    # Another gap within the interval: counted, but no second request (rate limit per node).
    d.decode(t("NDATA"), payload(metric(alias=1, double_value=1.0), seq=9), NOW + 1)
    assert d.skipped == {"sequence_gap": 2} and len(d.outgoing) == 1
    d.decode(t("NDATA"), payload(metric(alias=1, double_value=1.0), seq=20), NOW + 6)
    assert len(rebirth_requests(d)) == 2 and d.rebirths_requested == 2


def test_unknown_alias_is_counted_and_requests_rebirth() -> None:
    d = dec()
    born(d)
    out = d.decode(t("DDATA", "pump-1"), payload(metric(alias=99, double_value=1.0),
                                                 metric(alias=10, float_value=2.0), seq=2), NOW)
    assert triples(out) == [("pump-1", "bearing_temp", 2.0)]
    assert d.skipped == {"unknown_alias": 1}
    assert rebirth_requests(d) == [f"spBv1.0/{G}/NCMD/{N}"]


def test_data_from_a_node_never_seen_born_requests_rebirth_but_keeps_named_metrics() -> None:
    d = dec()
    out = d.decode(t("DDATA", "pump-9"), payload(metric("temp", datatype=10, double_value=3.5),
                                                 metric(alias=4, double_value=1.0), seq=17), NOW)
    assert triples(out) == [("pump-9", "temp", 3.5)]
    assert d.skipped == {"unknown_alias": 1}
    assert rebirth_requests(d) == [f"spBv1.0/{G}/NCMD/{N}"]


def test_rebirth_can_be_turned_off() -> None:
    d = dec(rebirth=False)
    d.decode(t("NDATA"), payload(metric(alias=1, double_value=1.0), seq=3), NOW)
    assert d.outgoing == [] and d.skipped == {"unknown_alias": 1}


def test_ndeath_with_matching_bdseq_forgets_aliases_and_a_stale_one_does_not() -> None:
    d = dec()
    born(d)
    d.decode(t("NDEATH"), payload(metric("bdSeq", datatype=4, long_value=6), ts_ms=None), NOW)  # older session
    assert d.decode(t("DDATA", "pump-1"), payload(metric(alias=10, float_value=1.0), seq=2), NOW)
    d.decode(t("NDEATH"), payload(metric("bdSeq", datatype=4, long_value=7), ts_ms=None), NOW)
    assert d.decode(t("DDATA", "pump-1"), payload(metric(alias=10, float_value=1.0), seq=3), NOW) == []
    assert d.skipped == {"unknown_alias": 1} and len(rebirth_requests(d)) == 1


def test_ddeath_forgets_the_device_aliases_only() -> None:
    d = dec()
    born(d)
    assert d.decode(t("DDEATH", "pump-1"), payload(seq=2), NOW) == []
    assert d.decode(t("DDATA", "pump-1"), payload(metric(alias=10, float_value=1.0), seq=3), NOW) == []
    assert d.skipped == {"unknown_alias": 1}
    assert triples(d.decode(t("NDATA"), payload(metric(alias=1, double_value=5.0), seq=4), NOW)) == [
        ("edge-1", "Supply/Voltage", 5.0)]


def test_nbirth_resets_sequence_and_device_aliases() -> None:
    d = dec()
    born(d)
    d.decode(t("NBIRTH"), nbirth(seq=0, bd=8), NOW)
    assert d.decode(t("DDATA", "pump-1"), payload(metric(alias=10, float_value=1.0), seq=1), NOW) == []
    assert d.skipped == {"unknown_alias": 1}  # no sequence_gap: the birth restarted the count


def test_non_finite_and_badly_named_metrics_are_skipped_and_counted_others_kept() -> None:
    d = dec()
    born(d)
    out = d.decode(t("DDATA", "pump-1"), payload(
        metric(alias=10, float_value=math.nan), metric("x", datatype=10, double_value=math.inf),
        metric("bad\x00name", datatype=10, double_value=1.0), metric("ok", datatype=10, double_value=2.0), seq=2),
        NOW)
    assert triples(out) == [("pump-1", "ok", 2.0)]
    assert d.skipped == {"non_finite": 2, "bad_asset": 1}


def test_metric_timestamps_outside_the_window_are_skipped() -> None:
    d = dec()
    out = d.decode(t("NBIRTH"), payload(metric("a", datatype=10, ts_ms=NOW_MS + 3_600_000, double_value=1),
                                        metric("b", datatype=10, ts_ms=1, double_value=1),
                                        metric("c", datatype=10, double_value=1), seq=0), NOW)
    assert triples(out) == [("edge-1", "c", 1.0)]
    assert d.skipped == {"future_timestamp": 1, "old_timestamp": 1}


def test_non_numeric_types_and_nulls_are_not_signals() -> None:
    d = dec()
    out = d.decode(t("NBIRTH"), payload(metric("s", datatype=12, string_value="x"),
                                        metric("when", datatype=13, long_value=NOW_MS),
                                        metric("blob", datatype=17, bytes_value=b"\x00"),
                                        metric("n", datatype=10, is_null=True), seq=0), NOW)
    assert out == [] and d.skipped == {}


@pytest.mark.parametrize("raw", [b"\xff\xff\xff", b"\x12\x05\n\x01", b"\x0a" * 3])
def test_malformed_protobuf_is_rejected_as_bad_sparkplug(raw: bytes) -> None:
    with pytest.raises(PayloadError) as ei:
        dec().decode(t("NDATA"), raw, NOW)
    assert ei.value.reason == "bad_sparkplug"


def test_invalid_utf8_metric_name_is_rejected_not_crashing() -> None:
    p = pb.Payload(seq=0)
    p.metrics.add(name="ab", datatype=10, double_value=1.0)
    raw = p.SerializeToString().replace(b"ab", b"\xff\xfe")
    d = dec()
    try:
        out = d.decode(t("NBIRTH"), raw, NOW)
    except PayloadError as e:  # the pure-Python protobuf backend rejects at parse time
        assert e.reason == "bad_sparkplug"
    else:
        assert out == [] and d.skipped == {"bad_asset": 1}


def test_size_and_metric_count_caps_apply_before_work() -> None:
    with pytest.raises(PayloadError) as ei:
        dec().decode(t("NDATA"), b"\x00" * (LIMITS.max_payload_bytes + 1), NOW)
    assert ei.value.reason == "too_large"
    many = payload(*[metric(f"m{i}", datatype=10, double_value=1.0) for i in range(11)], seq=0)
    with pytest.raises(PayloadError) as ei:
        dec(max_metrics=10).decode(t("NBIRTH"), many, NOW)
    assert ei.value.reason == "too_many_metrics"


def test_seq_out_of_range_rejects_the_message() -> None:
    with pytest.raises(PayloadError) as ei:
        dec().decode(t("NDATA"), payload(metric("a", datatype=10, double_value=1.0), seq=256), NOW)
    assert ei.value.reason == "bad_sparkplug"


def test_commands_host_state_and_other_groups_are_ignored_bad_topics_rejected() -> None:
    d = dec(group_id="plant")
    assert d.decode(t("NCMD"), payload(metric(REBIRTH_METRIC, boolean_value=True)), NOW) == []
    assert d.decode("spBv1.0/STATE/host-1", b'{"online": true}', NOW) == []
    assert d.decode(t("NBIRTH", group="other"), nbirth(), NOW) == []
    for bad in ("spBv1.0/plant/NDATA", "spBv2.0/plant/NDATA/n", "spBv1.0/plant/DDATA/n",
                "spBv1.0/plant/XDATA/n", "spBv1.0/plant/NDATA/n/extra"):
        with pytest.raises(PayloadError) as ei:
            d.decode(bad, nbirth(), NOW)
        assert ei.value.reason == "unknown_topic", bad
    with pytest.raises(PayloadError) as ei:
        d.decode("spBv1.0/plant/NBIRTH/", nbirth(), NOW)
    assert ei.value.reason == "bad_asset"


def test_node_table_is_bounded_least_recently_born_forgotten() -> None:
    d = dec(max_nodes=2)
    for node in ("a", "b", "c"):
        d.decode(t("NBIRTH", node=node), nbirth(), NOW)
    assert d.decode(t("NDATA", node="a"), payload(metric(alias=1, double_value=1.0), seq=1), NOW) == []
    assert triples(d.decode(t("NDATA", node="c"), payload(metric(alias=1, double_value=1.0), seq=1), NOW)) == [
        ("c", "Supply/Voltage", 1.0)]


def test_pending_commands_are_bounded_when_never_drained() -> None:
    from edgeslm.ingest.sparkplug import MAX_OUTGOING
    d = dec()
    for i in range(MAX_OUTGOING + 5):
        d.decode(t("NDATA", node=f"n{i}"), payload(metric(alias=1, double_value=1.0), seq=1), NOW)
    assert len(d.outgoing) == MAX_OUTGOING and d.outgoing[-1][0].endswith(f"/n{MAX_OUTGOING + 4}")


def test_router_builds_a_sparkplug_decoder_from_a_subscription() -> None:
    r = Router([Subscription(topic="spBv1.0/#", codec="sparkplug")], LIMITS)
    assert triples(r.decode(t("NBIRTH"), nbirth(), NOW))[0] == ("edge-1", "Supply/Voltage", 230.5)


def test_mapping_rejects_a_group_id_with_wildcards() -> None:
    with pytest.raises(ValueError, match="group id"):
        SparkplugMapping(group_id="a/#")


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=512), st.sampled_from(["NBIRTH", "NDATA", "DDATA", "NDEATH", "DBIRTH"]))
def test_arbitrary_bytes_only_ever_raise_payload_error(raw: bytes, kind: str) -> None:
    d = dec(booleans="number")
    d.decode(t("NBIRTH"), nbirth(), NOW)
    topic = t(kind, "dev" if kind.startswith("D") else None)
    try:
        out = d.decode(topic, raw, NOW)
    except PayloadError:
        return
    assert all(math.isfinite(s.value) and s.signal and s.asset for s in out)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.none(), st.text(max_size=20)), st.one_of(st.none(), st.integers(0, 2**64 - 1)),
                          st.integers(0, 30), st.integers(0, 2**64 - 1),
                          st.sampled_from(["int_value", "long_value", "float_value", "double_value",
                                           "boolean_value", "string_value"])), max_size=8),
       st.one_of(st.none(), st.integers(0, 2**64 - 1)))
def test_well_formed_but_hostile_payloads_only_ever_raise_payload_error(metrics: list[Any], seq: int | None) -> None:
    p = pb.Payload()
    if seq is not None:
        p.seq = seq
    for name, alias, datatype, number, which in metrics:
        m = p.metrics.add(datatype=datatype)
        if name is not None:
            m.name = name
        if alias is not None:
            m.alias = alias
        if which == "int_value":
            m.int_value = number & 0xFFFFFFFF
        elif which == "long_value":
            m.long_value = number
        elif which == "float_value":
            m.float_value = struct.unpack("<f", struct.pack("<I", number & 0xFFFFFFFF))[0]
        elif which == "double_value":
            m.double_value = struct.unpack("<d", struct.pack("<Q", number))[0]
        elif which == "boolean_value":
            m.boolean_value = bool(number & 1)
        else:
            m.string_value = str(number)
    d = dec(booleans="number")
    for kind in ("NBIRTH", "NDATA", "DBIRTH", "DDATA", "NDEATH"):
        try:
            out = d.decode(t(kind, "dev" if kind.startswith("D") else None), p.SerializeToString(), NOW)
        except PayloadError:
            continue
        assert all(math.isfinite(s.value) for s in out)
