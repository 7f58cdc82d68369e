"""atheris fuzz targets: python tests/fuzz/fuzz_codecs.py {json,plain,sparkplug,config} [libFuzzer args]."""

from __future__ import annotations

import contextlib
import math
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from edgeslm.ingest.errors import PayloadError
    from edgeslm.ingest.json_codec import JsonDecoder
    from edgeslm.ingest.plain import PlainDecoder
    from edgeslm.ingest.sparkplug import SparkplugDecoder
    from edgeslm.settings import (
        ConfigError,
        IngestSettings,
        JsonMapping,
        PlainMapping,
        SparkplugMapping,
        load_settings,
    )

NOW = 1_764_000_000.0
LIMITS = IngestSettings()
DECODERS = {
    "json": (JsonDecoder(JsonMapping(asset="topic:1"), LIMITS), "f/a/telemetry"),
    "plain": (PlainDecoder(PlainMapping(asset="topic:1", signal="topic:2"), LIMITS), "f/a/temp"),
    "sparkplug": (SparkplugDecoder(SparkplugMapping(), LIMITS), "spBv1.0/g/DDATA/node/dev"),
}
TMP = Path(tempfile.mkdtemp()) / "c.toml"


def codec_target(name: str):  # type: ignore[no-untyped-def]
    decoder, topic = DECODERS[name]

    def one(data: bytes) -> None:
        try:
            out = decoder.decode(topic, data, NOW)
        except PayloadError:
            return
        for s in out:
            if not (isinstance(s.value, float) and math.isfinite(s.value)):
                raise AssertionError(f"non-finite sample {s!r}")
            s.signal.encode("utf-8")
            s.asset.encode("utf-8")
    return one


def config_target(data: bytes) -> None:
    TMP.write_bytes(data)
    with contextlib.suppress(ConfigError):
        load_settings(TMP)


if __name__ == "__main__":
    which = sys.argv.pop(1) if len(sys.argv) > 1 else "json"
    atheris.Setup(sys.argv, config_target if which == "config" else codec_target(which))
    atheris.Fuzz()
