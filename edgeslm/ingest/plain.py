"""Plain numeric payloads: one reading per message, e.g. topic plant/press-7/temp, payload b"71.3"."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from edgeslm.ingest.errors import PayloadError
from edgeslm.ingest.fields import resolve_source
from edgeslm.models import Sample
from edgeslm.settings import IngestSettings, PlainMapping

# A decimal number and nothing else: Python's float() would also take "nan", "inf" and "1_000".
_NUMBER = re.compile(rb"^\s*-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*$")
MAX_PLAIN_BYTES = 64


@dataclass
class PlainDecoder:
    mapping: PlainMapping
    limits: IngestSettings
    skipped: dict[str, int] = field(default_factory=dict)

    def decode(self, topic: str, raw: bytes, received: float) -> list[Sample]:
        if not raw.strip():
            raise PayloadError("empty", "empty payload")
        if len(raw) > MAX_PLAIN_BYTES:
            raise PayloadError("too_large", f"{len(raw)} bytes for one number")
        if not _NUMBER.match(raw):
            raise PayloadError("bad_number", "payload is not a decimal number")
        value = float(raw)
        if not math.isfinite(value):
            raise PayloadError("non_finite", "number overflows a double")
        asset = resolve_source(self.mapping.asset, topic, "asset")
        signal = resolve_source(self.mapping.signal, topic, "signal")
        return [Sample(asset, signal, received, value)]
