"""Sparkplug B output, pure part: births, aliases, DDATA of changes only, seq numbering, bdSeq sessions."""

from __future__ import annotations

import math
from typing import Any

import pytest

from edgeslm.advice.schema import advice_payload
from edgeslm.alerts import alert_payload
from edgeslm.ingest import sparkplug_b_pb2 as pb
from edgeslm.ingest.sparkplug import REBIRTH_METRIC, rebirth_command
from edgeslm.models import Advice, AdviceStatus, AlarmEvent, AlarmState, Severity, SignalEvidence
from edgeslm.settings.sparkplug import SparkplugOutSettings
from edgeslm.sparkplug_out import ADVICE_METRICS, ALERT_METRICS, DEVICE_METRICS, EdgeNode, is_rebirth_command

TS = 1_764_000_000.0


def alert(asset: str = "pump-1", state: AlarmState = AlarmState.RAISED, score: float = 7.5) -> dict[str, Any]:
    ev = AlarmEvent("a-1", asset, state, Severity.HIGH, TS, TS - 5, ("zscore",),
                    (SignalEvidence("bearing_temp", 80.0, 79.0, 70.0, 81.0, 60.0, 2.0, score, ("zscore",)),), score)
    return alert_payload(ev, site="s", gateway="g", advice_status=AdviceStatus.PENDING)


def advice(asset: str = "pump-1") -> dict[str, Any]:
    return advice_payload(Advice("a-1", asset, "rules", "Bearing running hot", ("lubrication",), ("grease it",),
                                 "high", 0.6, 12), ts=TS)


def parse(raw: bytes) -> Any:
    return pb.Payload.FromString(raw)


def values(p: Any) -> dict[str, Any]:
    return {m.name: (None if m.is_null else getattr(m, m.WhichOneof("value"))) for m in p.metrics}


def test_births_start_at_seq_0_with_bdseq_and_rebirth_metric() -> None:
    node = EdgeNode("grp", "gw-1", bd_seq=41)
    (topic, raw), = node.births()
    assert topic == "spBv1.0/grp/NBIRTH/gw-1"
    p = parse(raw)
    assert p.seq == 0
    assert values(p) == {"bdSeq": 41, REBIRTH_METRIC: False}
    assert [m.datatype for m in p.metrics] == [4, 11]
    topic, raw = node.ndeath()
    assert topic == "spBv1.0/grp/NDEATH/gw-1" and values(parse(raw)) == {"bdSeq": 41}


def test_first_alert_gives_dbirth_declaring_every_metric_then_ddata_by_alias() -> None:
    node = EdgeNode("grp", "gw-1")
    node.births()
    (topic, raw), = node.update("pump-1", alert(), ALERT_METRICS, connected=True)
    assert topic == "spBv1.0/grp/DBIRTH/gw-1/pump-1"
    p = parse(raw)
    assert p.seq == 1
    assert [m.name for m in p.metrics] == [n for n, _, _ in DEVICE_METRICS]
    assert all(m.HasField("alias") and m.datatype in (10, 12) for m in p.metrics)
    v = values(p)
    assert v["alert/id"] == "a-1" and v["alert/state"] == "raised" and v["alert/score"] == 7.5
    assert v["alert/signals"] == "bearing_temp" and v["advice/summary"] is None
    (topic, raw), = node.update("pump-1", advice(), ADVICE_METRICS, connected=True)
    assert topic == "spBv1.0/grp/DDATA/gw-1/pump-1"
    p2 = parse(raw)
    aliases = {m.alias: m.name for m in p.metrics}
    assert p2.seq == 2 and all(not m.HasField("name") for m in p2.metrics)
    got = {aliases[m.alias]: getattr(m, m.WhichOneof("value")) for m in p2.metrics}
    assert got == {"advice/alert_id": "a-1", "advice/summary": "Bearing running hot", "advice/urgency": "high",
                   "advice/source": "rules", "advice/confidence": 0.6}
    assert all(m.timestamp == int(TS * 1000) for m in p2.metrics)


def test_ddata_carries_only_changed_metrics_and_nothing_when_unchanged() -> None:
    node = EdgeNode("grp", "gw-1")
    node.births()
    node.update("pump-1", alert(), ALERT_METRICS, connected=True)
    assert node.update("pump-1", alert(), ALERT_METRICS, connected=True) == []
    (_, raw), = node.update("pump-1", alert(state=AlarmState.CLEARED), ALERT_METRICS, connected=True)
    assert [m.string_value for m in parse(raw).metrics] == ["cleared"]


def test_aliases_are_unique_across_devices_and_ids_are_topic_safe() -> None:
    node = EdgeNode("grp", "gw-1")
    node.births()
    (_, a), = node.update("pump-1", alert("pump-1"), ALERT_METRICS, connected=True)
    (t2, b), = node.update("line/2#x", alert("line/2#x"), ALERT_METRICS, connected=True)
    assert t2 == "spBv1.0/grp/DBIRTH/gw-1/line_2_x"
    assert not {m.alias for m in parse(a).metrics} & {m.alias for m in parse(b).metrics}


def test_values_while_disconnected_are_kept_for_the_next_births() -> None:
    node = EdgeNode("grp", "gw-1", bd_seq=255)
    assert node.update("pump-1", alert(), ALERT_METRICS, connected=False) == []
    node.new_session()
    assert node.bd_seq == 0  # bdSeq wraps like seq
    msgs = node.births()
    assert [t for t, _ in msgs] == ["spBv1.0/grp/NBIRTH/gw-1", "spBv1.0/grp/DBIRTH/gw-1/pump-1"]
    assert [parse(r).seq for _, r in msgs] == [0, 1]
    assert values(parse(msgs[1][1]))["alert/state"] == "raised"


def test_seq_wraps_after_255() -> None:
    node = EdgeNode("grp", "gw-1")
    node.births()
    seqs = []
    for i in range(300):
        out = node.update("pump-1", {**alert(), "score": float(i)}, ALERT_METRICS, connected=True)
        seqs.append(parse(out[0][1]).seq)
    assert seqs[:2] == [1, 2] and seqs[254:257] == [255, 0, 1]


def test_non_finite_score_is_published_as_null() -> None:
    node = EdgeNode("grp", "gw-1")
    node.births()
    (_, raw), = node.update("pump-1", {**alert(), "score": math.inf}, ALERT_METRICS, connected=True)
    m = next(m for m in parse(raw).metrics if m.name == "alert/score")
    assert m.is_null


def test_rebirth_command_is_recognised_and_garbage_is_not() -> None:
    _, raw = rebirth_command("grp", "gw-1", 1)
    assert is_rebirth_command(raw)
    p = pb.Payload()
    p.metrics.add(name=REBIRTH_METRIC, boolean_value=False)
    assert not is_rebirth_command(p.SerializeToString())
    assert not is_rebirth_command(b"\xff\xff")


def test_settings_require_an_edge_node_id_when_enabled() -> None:
    assert not SparkplugOutSettings().enabled
    with pytest.raises(ValueError, match="edge_node_id"):
        SparkplugOutSettings(enabled=True)
    with pytest.raises(ValueError, match="group_id"):
        SparkplugOutSettings(group_id="a/b")
    assert SparkplugOutSettings(enabled=True, edge_node_id="gw-1").group_id == "edgeslm"

