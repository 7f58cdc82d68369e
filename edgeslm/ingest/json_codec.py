"""JSON telemetry: one object per message, mapped to samples by the subscription's [json] table.

Stated rules for hostile input (each rejection has a counted reason):
- payloads over the size cap, empty ones, invalid UTF-8: rejected before parsing;
- nesting deeper than the cap: rejected before parsing (Python's parser would recurse);
- NaN, Infinity, -Infinity and overflowing floats (1e309): rejected;
- integers beyond Python's 4300-digit conversion limit: rejected as huge_number;
- duplicate keys in one object: rejected (which value is meant is ambiguous);
- a signal that is `true`/`false`, a string, null, an array or an object: that signal is skipped
  and counted; the message's other signals are kept.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from edgeslm.ingest.errors import PayloadError
from edgeslm.ingest.fields import check_name, check_number, check_time_window, lookup, parse_timestamp, resolve_source
from edgeslm.models import Sample
from edgeslm.settings import IngestSettings, JsonMapping


class _DuplicateKey(Exception):
    pass


def _no_constants(name: str) -> float:
    raise PayloadError("non_finite", f"{name} is not a number")


def _pairs(pairs: list[tuple[str, object]]) -> dict[str, object]:
    d = dict(pairs)
    if len(d) != len(pairs):
        raise _DuplicateKey(next(k for i, (k, _) in enumerate(pairs) if any(k == k2 for k2, _ in pairs[:i])))
    return d


_decoder = json.JSONDecoder(parse_constant=_no_constants, object_pairs_hook=_pairs)


def nesting_depth(raw: bytes) -> int:
    """Deepest bracket nesting outside strings. Only called when a cheap count says it could be deep."""
    depth = deepest = 0
    in_str = escaped = False
    for b in raw:
        if in_str:
            if escaped:
                escaped = False
            elif b == 0x5C:  # backslash
                escaped = True
            elif b == 0x22:
                in_str = False
        elif b == 0x22:
            in_str = True
        elif b in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif b in (0x5D, 0x7D):
            depth -= 1
    return deepest


def parse_json(raw: bytes, max_bytes: int, max_depth: int) -> object:
    if len(raw) > max_bytes:
        raise PayloadError("too_large", f"{len(raw)} bytes > {max_bytes}")
    if not raw.strip():
        raise PayloadError("empty", "empty payload")
    # bytes.count runs in C: only payloads with many brackets pay for the exact scan.
    if raw.count(b"[") + raw.count(b"{") > max_depth and nesting_depth(raw) > max_depth:
        raise PayloadError("too_deep", f"nesting deeper than {max_depth}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PayloadError("bad_utf8", f"invalid UTF-8 at byte {e.start}") from None
    try:
        return _decoder.decode(text)
    except _DuplicateKey as e:
        raise PayloadError("duplicate_key", f"key '{str(e)[:40]}' appears twice") from None
    except RecursionError:
        raise PayloadError("too_deep", "nesting too deep") from None
    except ValueError as e:
        if isinstance(e, PayloadError):
            raise
        if "digits" in str(e):  # "Exceeds the limit (4300 digits) for integer string conversion"
            raise PayloadError("huge_number", "integer with too many digits") from None
        raise PayloadError("bad_json", str(e)[:120]) from None


@dataclass
class JsonDecoder:
    """Decodes one subscription's JSON payloads. Per-signal rejections are reported in `skipped`."""

    mapping: JsonMapping
    limits: IngestSettings
    skipped: dict[str, int] = field(default_factory=dict)  # reason → count, drained by the caller
    # Signal names already checked (bounded): a plant sends the same few keys millions of times.
    _names: dict[str, str] = field(default_factory=dict, repr=False)
    _skip: frozenset[str] = field(default=frozenset(), repr=False)
    # Topic -> checked asset, when the asset comes from the topic (or is a constant): same bound.
    _assets: dict[str, str] | None = field(default=None, repr=False)

    MAX_NAMES = 10_000

    def __post_init__(self) -> None:
        m = self.mapping
        self._skip = frozenset(x for x in (m.asset.partition(":")[2] if m.asset.startswith("field:") else None,
                                           m.timestamp_field) if x)
        if not m.asset.startswith("field:"):
            self._assets = {}

    def decode(self, topic: str, raw: bytes, received: float) -> list[Sample]:
        doc = parse_json(raw, self.limits.max_payload_bytes, self.limits.max_json_depth)
        if not isinstance(doc, dict):
            raise PayloadError("not_object", f"expected a JSON object, got {type(doc).__name__}")
        m = self.mapping
        known = self._assets
        asset = known.get(topic) if known is not None else None
        if asset is None:
            asset = resolve_source(m.asset, topic, "asset", doc)
            if known is not None and len(known) < self.MAX_NAMES:
                known[topic] = asset
        ts = received
        if m.timestamp_field:
            raw_ts = lookup(doc, m.timestamp_field)
            if raw_ts is not None:
                ts = parse_timestamp(raw_ts, m.timestamp_format)
        ts = check_time_window(ts, received, self.limits.max_future_skew_s, self.limits.max_age_s)
        values = doc
        if m.signals_field:
            values = lookup(doc, m.signals_field)  # type: ignore[assignment]
            if not isinstance(values, dict):
                raise PayloadError("no_signals", f"field '{m.signals_field}' is not an object")
        samples: list[Sample] = []
        if m.signals:
            for name in m.signals:
                v = lookup(values, name)
                if v is not None:  # a signal may be absent from some messages
                    self._add(samples, asset, name, ts, v)
        else:
            names, skip, append = self._names, self._skip, samples.append
            for name, v in values.items():
                # Hot path: a known name with a finite float (x - x is nan for nan and inf).
                if type(v) is float and v - v == 0.0 and name in names and name not in skip:
                    append(Sample(asset, names[name], ts, v))
                elif name in skip or v is None or isinstance(v, str | dict | list):
                    continue  # auto mode: only numbers are signals; text fields are metadata
                else:
                    self._add(samples, asset, name, ts, v)
        if not samples:
            raise PayloadError("no_signals", "no usable signal values in the payload")
        return samples

    def _add(self, out: list[Sample], asset: str, name: str, ts: float, v: object) -> None:
        try:
            checked = self._names.get(name)
            if checked is None:
                checked = check_name(name, "signal")
                if len(self._names) < self.MAX_NAMES:
                    self._names[name] = checked
            out.append(Sample(asset, checked, ts, check_number(v, f"signal '{name}'")))
        except PayloadError as e:
            self.skipped[e.reason] = self.skipped.get(e.reason, 0) + 1
