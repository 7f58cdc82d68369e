"""Topic names we publish on. Pure functions; config supplies prefix, site and gateway."""

from __future__ import annotations


def alerts(prefix: str, site: str, asset: str) -> str:
    return f"{prefix}/{site}/{safe_level(asset)}/alerts"


def advice(prefix: str, site: str, asset: str) -> str:
    return f"{prefix}/{site}/{safe_level(asset)}/advice"


def advice_partial(prefix: str, site: str, asset: str) -> str:
    return f"{prefix}/{site}/{safe_level(asset)}/advice/partial"


def status(prefix: str, gateway: str) -> str:
    return f"{prefix}/{gateway}/status"


def safe_level(name: str) -> str:
    """A topic level from an untrusted id: wildcards, separators and NUL are replaced (MQTT 4.7.1)."""
    cleaned = "".join("_" if c in "+#/\0" else c for c in name)
    return cleaned or "_"


def segment(topic: str, index: int) -> str | None:
    """Level `index` of a topic (negative counts from the end), or None when the topic is shorter."""
    parts = topic.split("/")
    try:
        return parts[index]
    except IndexError:
        return None
