"""[ingest] and [[subscriptions]]: what telemetry we read and how payloads map to samples."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from edgeslm.settings.base import Section

_SOURCE = re.compile(r"^(topic:-?\d+|field:[^\s]+|const:.+)$")


class JsonMapping(Section):
    """How one JSON payload becomes samples."""

    asset: str = Field("topic:-2", description="Where the asset id comes from: 'topic:N' (topic segment N, "
                       "0-based, negative counts from the end), 'field:NAME' (a payload field, dots for "
                       "nesting) or 'const:ID'.")
    timestamp_field: str | None = Field("ts", description="Payload field with the reading time; empty or "
                                        "missing field uses the arrival time.")
    timestamp_format: Literal["epoch_s", "epoch_ms", "iso8601"] = Field(
        "epoch_s", description="Format of the timestamp field.")
    signals: list[str] = Field(default_factory=list, description="Payload fields that are signals (dots for "
                               "nesting). Empty: every top-level numeric field except the asset and timestamp.")
    signals_field: str | None = Field(None, description="Optional object field holding the signals, e.g. "
                                      "'values' for {\"values\": {\"temp\": 71.2}}.")

    @field_validator("asset")
    @classmethod
    def _asset_source(cls, v: str) -> str:
        if not _SOURCE.match(v):
            raise ValueError("expected 'topic:N', 'field:NAME' or 'const:ID'")
        return v


class PlainMapping(Section):
    """One number per message; asset and signal come from topic segments."""

    asset: str = Field("topic:-2", description="Asset source, as for JSON ('topic:N' or 'const:ID').")
    signal: str = Field("topic:-1", description="Signal source: 'topic:N' or 'const:NAME'.")

    @field_validator("asset", "signal")
    @classmethod
    def _source(cls, v: str) -> str:
        if not _SOURCE.match(v) or v.startswith("field:"):
            raise ValueError("expected 'topic:N' or 'const:NAME'")
        return v


class SparkplugMapping(Section):
    """Sparkplug B (spBv1.0): asset = device id (or edge node id for node metrics); signal = metric name."""

    group_id: str = Field("+", description="Sparkplug group id to accept; '+' for any. Messages of other "
                          "groups are ignored.")
    asset: Literal["device", "node", "node/device"] = Field(
        "device", description="How to form the asset id: 'device' (device id; node metrics use the edge node "
        "id), 'node' (edge node id for all its metrics) or 'node/device' (both, joined by '/').")
    booleans: Literal["skip", "number"] = Field(
        "skip", description="Boolean metrics: 'skip' them, or read them as 0/1 'number's. Skipped by default: "
        "a statistical detector alarms on every legitimate on/off change of a 0/1 series.")
    max_metrics: int = Field(2000, ge=1, le=100_000, description="Messages with more metrics than this are "
                             "rejected (too_many_metrics). Large births may also need ingest.max_payload_bytes "
                             "raised.")
    rebirth: bool = Field(True, description="On a sequence gap, an unknown alias or data before a birth, ask "
                          "the edge node to rebirth (NCMD 'Node Control/Rebirth'). Turn off where this "
                          "host must not command edge nodes.")
    rebirth_interval_s: float = Field(5.0, ge=0.5, le=3600, description="At most one rebirth request per edge "
                                      "node per this many seconds.")
    max_nodes: int = Field(10_000, ge=1, le=1_000_000, description="Edge nodes whose alias maps are kept; "
                           "beyond it the least recently born is forgotten (it is asked to rebirth if it "
                           "sends again).")
    max_devices_per_node: int = Field(1000, ge=1, le=100_000, description="Devices per edge node whose alias "
                                      "maps are kept; further DBIRTHs are rejected (too_many_metrics).")

    @field_validator("group_id")
    @classmethod
    def _group(cls, v: str) -> str:
        if v != "+" and (not v or any(c in v for c in "+#/\0")):
            raise ValueError("expected a Sparkplug group id without '/', '+' or '#', or '+' for any group")
        return v


class Subscription(Section):
    topic: str = Field(min_length=1, description="MQTT topic filter, wildcards allowed.")
    codec: Literal["json", "plain", "sparkplug"] = Field("json", description="Payload format.")
    qos: Literal[0, 1, 2] = Field(1, description="Subscription QoS; 1 lets the broker queue telemetry for us.")
    json_map: JsonMapping | None = Field(None, alias="json", description="Mapping for codec = 'json'.")
    plain: PlainMapping | None = Field(None, description="Mapping for codec = 'plain'.")
    sparkplug: SparkplugMapping | None = Field(None, description="Mapping for codec = 'sparkplug'.")

    model_config = {**Section.model_config, "populate_by_name": True}

    @field_validator("topic")
    @classmethod
    def _topic_filter(cls, v: str) -> str:
        parts = v.split("/")
        for i, p in enumerate(parts):
            if "#" in p and (p != "#" or i != len(parts) - 1):
                raise ValueError("'#' must be a whole last level of the filter")
            if "+" in p and p != "+":
                raise ValueError("'+' must be a whole level of the filter")
        return v

    @model_validator(mode="after")
    def _mapping_for_codec(self) -> Subscription:
        wanted = {"json": "json_map", "plain": "plain", "sparkplug": "sparkplug"}[self.codec]
        for name in ("json_map", "plain", "sparkplug"):
            if name != wanted and getattr(self, name) is not None:
                key = "json" if name == "json_map" else name
                raise ValueError(f"mapping '{key}' given but codec is '{self.codec}'")
        if getattr(self, wanted) is None:
            default = {"json_map": JsonMapping, "plain": PlainMapping, "sparkplug": SparkplugMapping}[wanted]
            object.__setattr__(self, wanted, default())
        return self


class IngestSettings(Section):
    max_payload_bytes: int = Field(65536, ge=64, le=16 * 1024 * 1024,
                                   description="Payloads larger than this are rejected before parsing.")
    max_json_depth: int = Field(8, ge=1, le=64, description="Deeper JSON nesting is rejected.")
    queue_size: int = Field(20000, ge=10, description="Inbound queue bound (messages); when full the oldest "
                            "is dropped and counted.")
    max_future_skew_s: float = Field(300.0, ge=0, description="Timestamps further ahead of the gateway clock "
                                     "than this are rejected.")
    max_age_s: float = Field(7 * 86400.0, gt=0, description="Timestamps older than this are rejected.")
    max_series: int = Field(5000, ge=1, le=1_000_000, description="Most (asset, signal) series the detectors "
                            "learn (~16 KB each once their windows are full). Samples of new series beyond it "
                            "are rejected and counted (too_many_series): a device that invents signal names "
                            "cannot exhaust memory.")
