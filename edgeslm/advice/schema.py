"""The advice JSON: the schema the model is constrained to, its pydantic check, the evidence check,
and the payload we publish."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgeslm.alerts import iso
from edgeslm.models import Advice, AdvicePartial, AlarmEvent

URGENCIES = ("low", "medium", "high", "critical")
# Bounds chosen for the 2-core budget (~6.6 decode tok/s): the longest legal answer must still fit in
# max_new_tokens, and a real model writes far less than the bounds.
SUMMARY_MAX = 100
ITEM_MAX = 60
ITEMS_MAX = 2
# Confidence as a closed set: a free JSON number lets a weak model emit digits until max_length.
CONFIDENCES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


class ModelAdvice(BaseModel):
    """What the model must produce; validates the (already guided) output once more."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    summary: str = Field(min_length=1, max_length=SUMMARY_MAX)
    probable_causes: list[str] = Field(min_length=1, max_length=ITEMS_MAX)
    recommended_actions: list[str] = Field(min_length=1, max_length=ITEMS_MAX)
    urgency: Literal["low", "medium", "high", "critical"]
    confidence: float = Field(ge=0.0, le=1.0)


def advice_json_schema() -> dict[str, Any]:
    """JSON schema for guided generation: every string, array and number bounded, fixed whitespace."""
    item = {"type": "string", "minLength": 1, "maxLength": ITEM_MAX}
    return {
        "type": "object",
        "properties": {
            "summary": {"type": "string", "minLength": 1, "maxLength": SUMMARY_MAX},
            "probable_causes": {"type": "array", "items": item, "minItems": 1, "maxItems": ITEMS_MAX},
            "recommended_actions": {"type": "array", "items": item, "minItems": 1, "maxItems": ITEMS_MAX},
            "urgency": {"enum": list(URGENCIES)},
            "confidence": {"enum": list(CONFIDENCES)},
        },
        "required": ["summary", "probable_causes", "recommended_actions", "urgency", "confidence"],
        "additionalProperties": False,
        # Without this a weak model may emit whitespace between tokens until max_length.
        "x-guidance": {"whitespace_flexible": False},
    }


class AdviceRejected(ValueError):
    """Model output that must not be published; the message is the reason given with the fallback."""


def parse_model_output(text: str) -> ModelAdvice:
    """Parse and validate raw model text; raise AdviceRejected with a short reason."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise AdviceRejected(f"invalid JSON: {e.msg} at char {e.pos}") from None
    except ValueError as e:  # not a JSONDecodeError: an integer beyond Python's digit limit
        raise AdviceRejected(f"invalid JSON: {str(e)[:80]}") from None
    try:
        adv = ModelAdvice.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise AdviceRejected(f"schema: {loc}: {first['msg']}") from None
    texts = [adv.summary, *adv.probable_causes, *adv.recommended_actions]
    if not all(t.strip() for t in texts):
        raise AdviceRejected("schema: empty text")
    return adv


# An identifier-like word: letters/digits joined by _ . - : / (e.g. "pump-3", "bearing_temp", "P101").
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]*[A-Za-z0-9]|[A-Za-z0-9]")


def _distinctive(name: str) -> bool:
    """A name that cannot be an ordinary word: it has a digit, a separator or inner capitals.

    Plain words ("temperature", "motor") are left alone: the model may use them as language, and
    rejecting them would reject harmless (or, on the random test model, meaningless) text."""
    return bool(re.search(r"[0-9_.:/-]", name) or re.search(r"[a-z][A-Z]", name)) and len(name) >= 3


class EvidenceCheck:
    """Rejects advice that names assets or signals that are not in the alert's evidence.

    Only names we know (configured assets and signals, plus every asset/signal seen in alerts) and that
    look like identifiers are checked; an unknown word is not evidence of anything."""

    def __init__(self, known_names: Iterable[str] = ()):
        self._known: set[str] = set()
        self.learn(known_names)

    def learn(self, names: Iterable[str]) -> None:
        self._known.update(n.lower() for n in names if n and _distinctive(n))

    def check(self, advice: ModelAdvice, event: AlarmEvent) -> None:
        allowed = {event.asset.lower(), *(s.lower() for s in event.signal_names)}
        foreign = self._known - allowed
        if not foreign:
            return
        for text in (advice.summary, *advice.probable_causes, *advice.recommended_actions):
            for word in _WORD.findall(text):
                w = word.lower()
                if w in foreign:
                    raise AdviceRejected(f"names {word!r}, which is not in the alert's evidence")


def advice_payload(advice: Advice, ts: float | None = None) -> dict[str, Any]:
    """The JSON object published on …/advice (UTF-8, allow_nan=False safe)."""
    out: dict[str, Any] = {
        "alert_id": advice.alert_id,
        "ts": iso(time.time() if ts is None else ts),  # ISO 8601 UTC, as on alerts
        "asset": advice.asset,
        "source": advice.source,
        "model": advice.model,
        "summary": advice.summary,
        "probable_causes": list(advice.probable_causes),
        "recommended_actions": list(advice.recommended_actions),
        "urgency": advice.urgency,
        "confidence": round(float(advice.confidence), 3),
        "latency_ms": int(advice.latency_ms),
    }
    if advice.source == "rules" and advice.reason:
        out["reason"] = advice.reason
    return out


def partial_payload(p: AdvicePartial, ts: float | None = None) -> dict[str, Any]:
    """The JSON object published on …/advice/partial: self-contained (the whole text so far), so a late
    subscriber or a lost QoS 0 message costs nothing; `fields` is what the unfinished JSON says so far."""
    out: dict[str, Any] = {
        "alert_id": p.alert_id,
        "ts": iso(time.time() if ts is None else ts),
        "asset": p.asset,
        "part": p.part,
        "final": p.final,
        "text": p.text,
        "fields": partial_fields(p.text),
        "output_tokens": p.output_tokens,
        "elapsed_ms": p.elapsed_ms,
        "model": p.model,
    }
    if p.final:
        out["stop"] = p.stop
        out["accepted"] = bool(p.accepted)
    return out


_HALF_ESCAPE = re.compile(r"\\u[0-9a-fA-F]{0,3}$")


def partial_fields(text: str) -> dict[str, Any]:
    """Best-effort reading of an advice JSON object that is still being written, for HMIs that show the
    summary as it grows: the open string is closed, an unfinished key or number is dropped, brackets are
    closed. Only the advice keys with the right types are kept; anything unreadable gives {}."""
    s = text.strip()
    if not s.startswith("{"):
        return {}
    obj: Any = None
    for _ in range(8):  # each failed try cuts back to the previous comma
        obj, cut = _close_json(s)
        if obj is not None or cut is None:
            break
        s = s[:cut]
    if not isinstance(obj, dict):
        return {}
    out: dict[str, Any] = {}
    if isinstance(obj.get("summary"), str):
        out["summary"] = obj["summary"]
    for key in ("probable_causes", "recommended_actions"):
        v = obj.get(key)
        if isinstance(v, list) and all(isinstance(x, str) for x in v):
            out[key] = v
    if obj.get("urgency") in URGENCIES:
        out["urgency"] = obj["urgency"]
    c = obj.get("confidence")
    if isinstance(c, int | float) and not isinstance(c, bool) and 0.0 <= c <= 1.0:
        out["confidence"] = float(c)
    return out


def _close_json(s: str) -> tuple[Any, int | None]:
    """(the object `s` would be if closed now, or None; position of the last comma outside strings)."""
    closers: list[str] = []
    in_str = esc = False
    cut: int | None = None
    for i, ch in enumerate(s):
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "{[":
            closers.append("}" if ch == "{" else "]")
        elif ch in "}]":
            if not closers:
                return None, cut
            closers.pop()
            if not closers:
                s = s[:i + 1]  # the object is complete: ignore anything after it
                break
        elif ch == ",":
            cut = i
    if in_str:
        s = s[:-1] if esc else _HALF_ESCAPE.sub("", s)
        s += '"'
    try:
        return json.loads(s + "".join(reversed(closers))), cut
    except ValueError:
        return None, cut
