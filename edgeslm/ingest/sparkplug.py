"""Sparkplug B (spBv1.0) telemetry: births define metric aliases, data messages carry values by alias.

Topic: spBv1.0/<group>/<NBIRTH|NDATA|NDEATH|DBIRTH|DDATA|DDEATH>/<edge node>[/<device>].
The decoder is pure (no I/O, no clock): commands it wants sent (rebirth requests) are appended to
`outgoing` as (topic, payload) for the caller to publish after each batch.

Stated rules:
- payloads over ingest.max_payload_bytes are rejected before parsing (too_large); bytes that are not a
  Sparkplug Payload are rejected (bad_sparkplug); more than `max_metrics` metrics: too_many_metrics;
- numeric datatypes (Int8..UInt64, Float, Double) become samples; Boolean only if `booleans = "number"`;
  String, DateTime, Bytes, DataSet, Template and null metrics are not signals and are skipped silently,
  as are the control metrics (bdSeq, Node Control/*, Device Control/*);
- NaN/Infinity metric values, bad names and timestamps outside the accepted window: that metric is
  skipped and counted in `skipped`; the message's other metrics are kept;
- `seq` runs 0-255 per edge node and wraps; a gap is counted (sequence_gap) and triggers a rebirth
  request; the readings in that message are still used (they are real readings, only older ones are
  missing);
- an alias never declared by a birth is counted (unknown_alias) and triggers a rebirth request, as
  does data from an edge node whose NBIRTH we have not seen (we joined after it was born);
- rebirth requests are rate-limited per edge node (`rebirth_interval_s`);
- NDEATH forgets the node's aliases only when its bdSeq matches the NBIRTH's: a late will from an
  older session must not erase the current one. DDEATH forgets the device's aliases.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from edgeslm.ingest import sparkplug_b_pb2 as pb
from edgeslm.ingest.errors import PayloadError
from edgeslm.ingest.fields import check_name, check_number, check_time_window
from edgeslm.models import Sample
from edgeslm.settings import IngestSettings, SparkplugMapping

NAMESPACE = "spBv1.0"
REBIRTH_METRIC = "Node Control/Rebirth"
BDSEQ_METRIC = "bdSeq"

# Data type codes (Sparkplug 3.0, section 6.4.16).
INT8, INT16, INT32, INT64 = 1, 2, 3, 4
UINT8, UINT16, UINT32, UINT64 = 5, 6, 7, 8
FLOAT, DOUBLE, BOOLEAN, STRING, DATETIME, TEXT = 9, 10, 11, 12, 13, 14
_SIGNED_BITS = {INT8: 8, INT16: 16, INT32: 32, INT64: 64}
_NUMERIC = {INT8, INT16, INT32, INT64, UINT8, UINT16, UINT32, UINT64, FLOAT, DOUBLE}
_NODE_MESSAGES = {"NBIRTH", "NDATA", "NDEATH"}
_DEVICE_MESSAGES = {"DBIRTH", "DDATA", "DDEATH"}
_IGNORED = {"NCMD", "DCMD", "STATE"}  # commands (ours included) and host state: not telemetry
MAX_OUTGOING = 1000  # pending commands kept when the caller does not drain them


@dataclass
class _Scope:
    """Alias map of an edge node's own metrics or of one of its devices."""

    aliases: dict[int, tuple[str, int]] = field(default_factory=dict)  # alias → (name, datatype)
    types: dict[str, int] = field(default_factory=dict)  # name → datatype


@dataclass
class _Node:
    born: bool = False
    bd_seq: int | None = None
    last_seq: int | None = None
    metrics: _Scope = field(default_factory=_Scope)
    devices: dict[str, _Scope] = field(default_factory=dict)
    last_rebirth_request: float | None = None


def parse_topic(topic: str) -> tuple[str, str, str, str | None] | None:
    """(group, message type, edge node, device or None); None for a topic outside spBv1.0."""
    parts = topic.split("/")
    if len(parts) < 3 or parts[0] != NAMESPACE:
        return None
    if parts[1] == "STATE":
        return ("", "STATE", parts[2], None)
    if len(parts) == 4 and parts[2] in _NODE_MESSAGES | {"NCMD"}:
        return (parts[1], parts[2], parts[3], None)
    if len(parts) == 5 and parts[2] in _DEVICE_MESSAGES | {"DCMD"}:
        return (parts[1], parts[2], parts[3], parts[4])
    return None


def rebirth_command(group: str, node: str, ts_ms: int) -> tuple[str, bytes]:
    """The NCMD a host application sends to make an edge node republish its births."""
    p = pb.Payload(timestamp=ts_ms)
    m = p.metrics.add()
    m.name = REBIRTH_METRIC
    m.timestamp = ts_ms
    m.datatype = BOOLEAN
    m.boolean_value = True
    return f"{NAMESPACE}/{group}/NCMD/{node}", p.SerializeToString()


def parse_payload(raw: bytes, max_bytes: int) -> Any:
    """A Payload message from untrusted bytes; PayloadError for anything else."""
    if len(raw) > max_bytes:
        raise PayloadError("too_large", f"{len(raw)} bytes > {max_bytes}")
    msg = pb.Payload()
    try:
        msg.ParseFromString(raw)
    except Exception as e:  # DecodeError; UnicodeDecodeError from the pure-Python backend; depth limits
        raise PayloadError("bad_sparkplug", f"not a Sparkplug B payload: {type(e).__name__}") from None
    return msg


def metric_value(m: Any, datatype: int) -> int | float | bool | None:
    """The metric's value as a Python number (bool for Boolean); None when it has no numeric value."""
    which = m.WhichOneof("value")
    if which == "double_value":
        return m.double_value  # type: ignore[no-any-return]
    if which == "float_value":
        return m.float_value  # type: ignore[no-any-return]
    if which == "boolean_value":
        return bool(m.boolean_value)
    if which in ("int_value", "long_value"):
        v = int(getattr(m, which))
        bits = _SIGNED_BITS.get(datatype)
        if bits is not None:  # signed types travel as two's complement in an unsigned field
            v &= (1 << bits) - 1
            if v >= 1 << (bits - 1):
                v -= 1 << bits
        return v
    return None


class SparkplugDecoder:
    """Decodes one subscription's Sparkplug B messages; keeps alias maps and sequence state per node."""

    def __init__(self, mapping: SparkplugMapping, limits: IngestSettings) -> None:
        self.mapping = mapping
        self.limits = limits
        self.skipped: dict[str, int] = {}  # reason → count, drained by the caller
        self.outgoing: list[tuple[str, bytes]] = []  # (topic, payload) to publish, drained by the caller
        self.rebirths_requested = 0
        self._nodes: OrderedDict[tuple[str, str], _Node] = OrderedDict()

    # --- entry point --------------------------------------------------------------------------------
    def decode(self, topic: str, raw: bytes, received: float) -> list[Sample]:
        parsed = parse_topic(topic)
        if parsed is None:
            raise PayloadError("unknown_topic", f"not a Sparkplug B topic: {topic[:100]}")
        group, kind, node_id, device_id = parsed
        if kind in _IGNORED or self.mapping.group_id not in ("+", group):
            return []
        # Ids become asset names: validated like any other untrusted name (empty levels included).
        check_name(group, "Sparkplug group id")
        check_name(node_id, "Sparkplug edge node id")
        if device_id is not None:
            check_name(device_id, "Sparkplug device id")
        msg = parse_payload(raw, self.limits.max_payload_bytes)
        if len(msg.metrics) > self.mapping.max_metrics:
            raise PayloadError("too_many_metrics", f"{len(msg.metrics)} metrics > {self.mapping.max_metrics}")
        key = (group, node_id)
        if kind == "NBIRTH":
            return self._node_birth(key, msg, received)
        if kind == "NDEATH":
            self._node_death(key, msg)
            return []
        node = self._nodes.get(key)
        if node is None:
            node = self._new_node(key)
        self._check_seq(key, node, msg, received)
        if kind == "DBIRTH":
            assert device_id is not None
            return self._device_birth(key, node, device_id, msg, received)
        if kind == "DDEATH":
            node.devices.pop(str(device_id), None)
            return []
        if not node.born:
            self._request_rebirth(key, node, received)  # we joined after its birth: aliases unknown
        if kind == "NDATA":
            return self._samples(key, node, node.metrics, None, msg, received)
        scope = node.devices.get(str(device_id))
        if scope is None:
            self._request_rebirth(key, node, received)
            scope = _Scope()
        return self._samples(key, node, scope, device_id, msg, received)

    # --- births and deaths --------------------------------------------------------------------------
    def _new_node(self, key: tuple[str, str]) -> _Node:
        while len(self._nodes) >= self.mapping.max_nodes:
            self._nodes.popitem(last=False)  # least recently born first
        node = self._nodes[key] = _Node()
        return node

    def _node_birth(self, key: tuple[str, str], msg: Any, received: float) -> list[Sample]:
        seq = self._seq(msg)  # before touching state: a rejected birth must not erase the current one
        old = self._nodes.pop(key, None)
        node = self._new_node(key)
        if old is not None:
            node.last_rebirth_request = old.last_rebirth_request  # the rate limit outlives a birth
        node.born = True
        node.last_seq = seq
        node.metrics = self._scope_from_birth(msg)
        for m in msg.metrics:
            if m.name == BDSEQ_METRIC:
                v = metric_value(m, m.datatype or INT64)
                node.bd_seq = v if isinstance(v, int) and not isinstance(v, bool) else None
        return self._samples(key, node, node.metrics, None, msg, received)

    def _node_death(self, key: tuple[str, str], msg: Any) -> None:
        node = self._nodes.get(key)
        if node is None:
            return
        death_bd: int | None = None
        for m in msg.metrics:
            if m.name == BDSEQ_METRIC:
                v = metric_value(m, m.datatype or INT64)
                death_bd = v if isinstance(v, int) and not isinstance(v, bool) else None
        if death_bd is not None and node.bd_seq is not None and death_bd != node.bd_seq:
            return  # a stale will from an earlier session; the node has been reborn since
        del self._nodes[key]

    def _device_birth(self, key: tuple[str, str], node: _Node, device_id: str, msg: Any,
                      received: float) -> list[Sample]:
        if device_id not in node.devices and len(node.devices) >= self.mapping.max_devices_per_node:
            raise PayloadError("too_many_metrics", f"more than {self.mapping.max_devices_per_node} devices "
                               f"on edge node {key[1]}")
        if not node.born:
            self._request_rebirth(key, node, received)
        scope = node.devices[device_id] = self._scope_from_birth(msg)
        return self._samples(key, node, scope, device_id, msg, received)

    @staticmethod
    def _scope_from_birth(msg: Any) -> _Scope:
        scope = _Scope()
        for m in msg.metrics:
            name = m.name if isinstance(m.name, str) else None  # invalid UTF-8 arrives as bytes
            if not name:
                continue
            scope.types[name] = m.datatype
            if m.HasField("alias"):
                scope.aliases[m.alias] = (name, m.datatype)
        return scope

    # --- sequence numbers and rebirth ---------------------------------------------------------------
    @staticmethod
    def _seq(msg: Any) -> int | None:
        if not msg.HasField("seq"):
            return None
        if msg.seq > 255:
            raise PayloadError("bad_sparkplug", f"seq {msg.seq} outside 0-255")
        return int(msg.seq)

    def _check_seq(self, key: tuple[str, str], node: _Node, msg: Any, received: float) -> None:
        seq = self._seq(msg)
        if seq is None:
            return
        if node.last_seq is not None and seq != (node.last_seq + 1) % 256:
            # Messages were lost (or reordered): our view of the node may be stale. Sparkplug's remedy
            # is a rebirth, which resends every current value and alias.
            self._count("sequence_gap")
            self._request_rebirth(key, node, received)
        node.last_seq = seq

    def _request_rebirth(self, key: tuple[str, str], node: _Node, received: float) -> None:
        if not self.mapping.rebirth:
            return
        last = node.last_rebirth_request
        # abs(): a wall clock stepped backwards must not block requests until it catches up.
        if last is not None and abs(received - last) < self.mapping.rebirth_interval_s:
            return
        node.last_rebirth_request = received
        if len(self.outgoing) >= MAX_OUTGOING:
            del self.outgoing[0]
        self.outgoing.append(rebirth_command(key[0], key[1], int(received * 1000)))
        self.rebirths_requested += 1

    # --- metrics → samples --------------------------------------------------------------------------
    def _samples(self, key: tuple[str, str], node: _Node, scope: _Scope, device_id: str | None, msg: Any,
                 received: float) -> list[Sample]:
        asset = self._asset(key[1], device_id)
        payload_ts = msg.timestamp / 1000.0 if msg.timestamp else None
        out: list[Sample] = []
        unknown_alias = False
        for m in msg.metrics:
            name: object = m.name if m.HasField("name") else None
            datatype = m.datatype
            if name is None:
                if not m.HasField("alias"):
                    self._count("bad_sparkplug")
                    continue
                known = scope.aliases.get(m.alias)
                if known is None:
                    self._count("unknown_alias")
                    unknown_alias = True
                    continue
                name, birth_type = known
                datatype = datatype or birth_type
            elif not datatype and isinstance(name, str):
                datatype = scope.types.get(name, 0)
            if isinstance(name, str) and (name == BDSEQ_METRIC or name.startswith(("Node Control/",
                                                                                   "Device Control/"))):
                continue
            if m.is_null:
                continue
            value = metric_value(m, datatype)
            if value is None:
                continue  # strings, bytes, datasets, templates: not signals
            if isinstance(value, bool):
                if self.mapping.booleans == "skip":
                    continue
                value = int(value)
            elif datatype and datatype not in _NUMERIC:
                continue  # e.g. DateTime (ms in long_value) is a time, not a reading
            try:
                signal = check_name(name, "metric name")
                number = value if type(value) is float and math.isfinite(value) else check_number(value, signal)
                ts = m.timestamp / 1000.0 if m.timestamp else payload_ts or received
                ts = check_time_window(ts, received, self.limits.max_future_skew_s, self.limits.max_age_s)
            except PayloadError as e:
                self._count(e.reason)
                continue
            out.append(Sample(asset, signal, ts, float(number)))
        if unknown_alias:
            self._request_rebirth(key, node, received)
        return out

    def _asset(self, node_id: str, device_id: str | None) -> str:
        how = self.mapping.asset
        if how == "node" or device_id is None:
            return node_id
        if how == "device":
            return device_id
        return check_name(f"{node_id}/{device_id}", "asset")

    def _count(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
