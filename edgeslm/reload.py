"""What a SIGHUP may change live, and what needs a restart. Pure: compares two Settings."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from edgeslm.settings import Settings

# Top-level sections applied live by the detector thread and the advisor; everything else (the broker
# connection, the gateway identity, the outbox file, the model itself) is only read at start-up.
LIVE = ("detect", "alarm", "assets", "ingest", "subscriptions", "logging", "health")
# The model and its generation set-up (tokens, guidance, threads) are fixed when it loads.
LIVE_ADVICE_KEYS = ("deadline_s", "queue_size", "enabled", "max_signals", "partial_interval_s")


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            _flatten(getattr(value, name), f"{prefix}.{name}" if prefix else name, out)
    elif isinstance(value, dict) and value and all(isinstance(v, BaseModel) for v in value.values()):
        for k, v in value.items():
            _flatten(v, f"{prefix}.{k}", out)
    else:
        out[prefix] = value


def changed_keys(old: Settings, new: Settings) -> list[tuple[str, bool]]:
    """(key path, applies live) for every key whose value differs."""
    a: dict[str, Any] = {}
    b: dict[str, Any] = {}
    _flatten(old, "", a)
    _flatten(new, "", b)
    out = []
    for key in sorted(a.keys() | b.keys()):
        if a.get(key, _MISSING) != b.get(key, _MISSING):
            top = key.split(".", 1)[0].split("[", 1)[0]
            live = top in LIVE or (top == "advice" and key.split(".")[1] in LIVE_ADVICE_KEYS)
            out.append((key, live))
    return out


_MISSING = object()
