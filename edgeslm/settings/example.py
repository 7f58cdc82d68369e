"""Renders the commented example config from the settings tree, so the file can never fall out of date.

Every key appears with its description, its constraints and its shipped default; keys without a
default value (None) appear commented out with an example.
"""

from __future__ import annotations

import json
import textwrap
import types
import typing
from pathlib import Path
from typing import Any

from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

HEADER = """\
# edgeslm configuration: one file, read at start and on `systemctl reload edgeslm` (SIGHUP).
#
# Check it with:   edgeslm check-config /etc/edgeslm/edgeslm.toml
# Any key can be overridden by an environment variable: EDGESLM_<TABLE>__<KEY>, e.g.
#   EDGESLM_MQTT__HOST=broker.plant.local   EDGESLM_ADVICE__THREADS=2
# Units are in the key names (_s seconds, _mb megabytes, _bytes bytes) or stated in the comment.
# Keys left out take the default shown here. Unknown keys are errors (they are usually typos).
"""

# Examples for keys whose default is "not set", shown commented out.
EXAMPLES: dict[str, Any] = {
    "mqtt.username": "edgeslm", "mqtt.password": "change-me", "mqtt.password_file": "/etc/edgeslm/mqtt_password",
    "mqtt.tls.ca_file": "/etc/edgeslm/ca.pem", "mqtt.tls.cert_file": "/etc/edgeslm/client.pem",
    "mqtt.tls.key_file": "/etc/edgeslm/client.key",
    "advice.model_dir": "/var/lib/edgeslm/models/phi3-mini-4k-instruct-cpu-int4",
    "outbox.path": "/var/lib/edgeslm/outbox.db",
}

SUBSCRIPTIONS_EXAMPLE = """\
# ---------------------------------------------------------------------------------------------
# [[subscriptions]]: where telemetry comes from. Repeat the block for each topic filter.
#   topic  MQTT filter, wildcards allowed ('+' one level, '#' the rest)
#   codec  "json" (one object per message), "plain" (one number per message), "sparkplug" (Sparkplug B)
#   qos    0, 1 or 2; 1 lets the broker keep telemetry for us while the daemon restarts
# The mapping table under it ([subscriptions.json], [subscriptions.plain] or
# [subscriptions.sparkplug]) says where the asset, the timestamp and the signals are.
# Sources are written 'topic:N' (level N of the topic, 0-based, negative from the end),
# 'field:NAME' (a payload field, dots for nesting) or 'const:VALUE'.

[[subscriptions]]
topic = "factory/+/telemetry"        # e.g. factory/pump-1/telemetry  {"ts": 1732600000.5, "bearing_temp": 61.2}
codec = "json"
qos = 1
[subscriptions.json]
asset = "topic:1"                    # the asset id is the 2nd topic level
timestamp_field = "ts"               # missing field or empty: the arrival time is used
timestamp_format = "epoch_s"         # "epoch_s", "epoch_ms" or "iso8601" (naive times are UTC)
signals = []                         # [] = every numeric field; or list them: ["bearing_temp", "vibration"]
# signals_field = "values"           # when signals sit in an object: {"ts": ..., "values": {"temp": 61.2}}

# [[subscriptions]]
# topic = "factory/+/+/value"        # one number per message: factory/press-2/oil_temp/value  b"47.3"
# codec = "plain"
# [subscriptions.plain]
# asset = "topic:1"
# signal = "topic:2"

# [[subscriptions]]
# topic = "spBv1.0/plant-a/#"        # Sparkplug B edge nodes (NBIRTH/DBIRTH/NDATA/DDATA)
# codec = "sparkplug"
# [subscriptions.sparkplug]
# group_id = "plant-a"
# asset = "device"                   # "device", "node" or "node/device"
"""

ASSETS_EXAMPLE = """\
# ---------------------------------------------------------------------------------------------
# [assets."<asset id>"]: what engineers know about a machine. Optional, one table per asset.
# It goes into the advice prompt (machine type, failure modes, notes) and sets per-signal units
# and limits: a reading beyond a hard limit (low/high) is always an alarm; beyond a soft limit a
# low-severity one. expected_interval_s: the signal is stale when silent for a few intervals.

[assets."pump-1"]
machine_type = "centrifugal pump, 15 kW, 2950 rpm"
failure_modes = ["bearing wear", "cavitation", "mechanical seal leak"]
notes = "Bearings regreased 2026-09. Suction strainer clogs in autumn."
[assets."pump-1".signals.bearing_temp]
unit = "degC"
description = "drive-end bearing temperature"
high = 95.0
soft_high = 80.0
expected_interval_s = 1.0
[assets."pump-1".signals.vibration]
unit = "mm/s"
high = 11.0
"""

SKIP = {"subscriptions", "assets"}

TITLES = {
    "gateway": "who this gateway is and where it keeps its state",
    "mqtt": "the broker connection",
    "ingest": "limits on incoming telemetry (bad input is counted and logged, never fatal)",
    "detect": "the detectors, per (asset, signal); these defaults are what the NAB/SKAB benches run",
    "alarm": "the alarm state machine: one alert per episode, not one per sample",
    "advice": "maintenance advice from the local model (or rules when there is none)",
    "outbox": "the durable store-and-forward queue for everything we publish",
    "health": "status messages and metrics",
    "logging": "logs (stdout; journald under systemd)",
}


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if not (isinstance(value, float) and value.is_integer() and abs(value) < 1e15) \
            else f"{value:.1f}"
    if isinstance(value, Path):
        return json.dumps(str(value))
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    if hasattr(value, "value"):  # enums
        return _fmt(value.value)
    raise TypeError(f"cannot render {value!r}")


def _constraints(info: FieldInfo) -> str:
    parts = []
    for m in info.metadata:
        if isinstance(m, Ge):
            parts.append(f">= {m.ge}")
        elif isinstance(m, Gt):
            parts.append(f"> {m.gt}")
        elif isinstance(m, Le):
            parts.append(f"<= {m.le}")
        elif isinstance(m, Lt):
            parts.append(f"< {m.lt}")
        elif isinstance(m, MinLen) and m.min_length:
            parts.append("non-empty" if m.min_length == 1 else f"at least {m.min_length} characters")
        elif isinstance(m, MaxLen):
            parts.append(f"at most {m.max_length} characters")
    args = typing.get_args(info.annotation)
    lit = next((a for a in (info.annotation, *args) if typing.get_origin(a) is typing.Literal), None)
    if lit is not None:
        parts.append("one of " + ", ".join(_fmt(a) for a in typing.get_args(lit)))
    return "; ".join(parts)


def _is_section(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        for a in typing.get_args(annotation):
            if isinstance(a, type) and issubclass(a, BaseModel):
                return a
    return None


def _render_section(model: type[BaseModel], path: str, out: list[str]) -> None:
    instance = model()
    scalars: list[tuple[str, FieldInfo, type[BaseModel] | None]] = []
    tables: list[tuple[str, FieldInfo, type[BaseModel] | None]] = []
    for name, info in model.model_fields.items():
        sub = _is_section(info.annotation)
        (tables if sub else scalars).append((name, info, sub))
    if scalars:
        out.append("")
        doc = (model.__doc__ or "").strip().splitlines()
        if doc and not doc[0].startswith(("A config table", "Root of")):
            out.append(f"# {doc[0]}")
        out.append(f"[{path}]")
        for name, info, _ in scalars:
            key = info.alias or name
            desc = info.description or ""
            cons = _constraints(info)
            text = desc + (f" ({cons})" if cons else "")
            out.extend(textwrap.wrap(text, width=98, initial_indent="# ", subsequent_indent="#   "))
            default = getattr(instance, name)
            if default is None or isinstance(default, SecretStr):
                example = EXAMPLES.get(f"{path}.{key}")
                out.append(f"# {key} = {_fmt(example) if example is not None else '...'}")
            else:
                out.append(f"{key} = {_fmt(default)}")
    for name, info, sub in tables:
        assert sub is not None
        _render_section(sub, f"{path}.{info.alias or name}", out)


def render_example() -> str:
    from edgeslm.settings import Settings
    out = [HEADER]
    for name, info in Settings.model_fields.items():
        if name in SKIP:
            continue
        sub = _is_section(info.annotation)
        assert sub is not None, name
        out.append("# " + "-" * 93)
        out.append(f"# [{name}]: {TITLES.get(name, '')}")
        _render_section(sub, name, out)
        out.append("")
        if name == "ingest":
            out.append(SUBSCRIPTIONS_EXAMPLE)
        if name == "advice":
            out.append(ASSETS_EXAMPLE)
    text = "\n".join(out)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.rstrip() + "\n"
