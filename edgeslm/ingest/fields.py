"""Checks shared by every codec: names, numbers and timestamps from untrusted payloads."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from edgeslm.ingest.errors import PayloadError
from edgeslm.mqtt.topics import segment

MAX_NAME_LEN = 128


def check_name(value: object, what: str) -> str:
    """An asset or signal id: a non-empty printable string that round-trips through UTF-8."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise PayloadError("bad_asset", f"{what} must be a string, got {type(value).__name__}")
    s = str(value).strip()
    if not s or len(s) > MAX_NAME_LEN:
        raise PayloadError("bad_asset", f"{what} must be 1-{MAX_NAME_LEN} characters")
    if not s.isprintable():
        raise PayloadError("bad_asset", f"{what} contains control characters")
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from JSON escapes such as "\ud800"
        raise PayloadError("bad_asset", f"{what} is not valid Unicode") from None
    return s


def check_number(value: object, what: str) -> float:
    """A finite reading. `true` is not 1 and a string is not a number: both are rejected."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PayloadError("bad_type", f"{what} must be a number, got {type(value).__name__}")
    f = float(value) if isinstance(value, int) and abs(value) < 1 << 1000 else value
    if isinstance(f, int):
        raise PayloadError("huge_number", f"{what} is out of range")
    if not math.isfinite(f):
        raise PayloadError("non_finite", f"{what} is not finite")
    return f


def parse_timestamp(value: object, fmt: str) -> float:
    """Epoch seconds from a payload timestamp in the configured format."""
    if fmt == "iso8601":
        if not isinstance(value, str) or len(value) > 64:
            raise PayloadError("bad_timestamp", "expected an ISO 8601 string")
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise PayloadError("bad_timestamp", "not ISO 8601") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)  # stated rule: naive times are UTC
        return dt.timestamp()
    try:
        ts = check_number(value, "timestamp")
    except PayloadError as e:
        raise PayloadError("bad_timestamp", e.detail) from None
    return ts / 1000.0 if fmt == "epoch_ms" else ts


def check_time_window(ts: float, received: float, max_future_s: float, max_age_s: float) -> float:
    if ts > received + max_future_s:
        raise PayloadError("future_timestamp", f"{ts - received:.0f} s ahead of the gateway clock")
    if ts < received - max_age_s or ts <= 0:
        raise PayloadError("old_timestamp", f"{received - ts:.0f} s old")
    return ts


def resolve_source(spec: str, topic: str, what: str, fields: dict[str, object] | None = None) -> str:
    """'topic:N' → topic level N, 'const:X' → X, 'field:a.b' → payload field (JSON only)."""
    kind, _, arg = spec.partition(":")
    if kind == "const":
        return arg
    if kind == "topic":
        level = segment(topic, int(arg))
        if level is None or level == "":
            raise PayloadError("no_asset", f"topic '{topic}' has no level {arg} for the {what}")
        return check_name(level, what)
    if fields is None:
        raise PayloadError("no_asset", f"no payload fields to take the {what} from")
    value = lookup(fields, arg)
    if value is None:
        raise PayloadError("no_asset", f"payload has no field '{arg}' for the {what}")
    return check_name(value, what)


def lookup(obj: dict[str, object], dotted: str) -> object | None:
    cur: object = obj
    for part in dotted.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur
