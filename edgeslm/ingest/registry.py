"""Which decoder handles a topic: the first subscription whose filter matches it."""

from __future__ import annotations

from typing import Protocol

from paho.mqtt.client import topic_matches_sub

from edgeslm.ingest.errors import PayloadError
from edgeslm.models import Sample
from edgeslm.settings import IngestSettings, Subscription


class Decoder(Protocol):
    skipped: dict[str, int]

    def decode(self, topic: str, raw: bytes, received: float) -> list[Sample]: ...


def build_decoder(sub: Subscription, limits: IngestSettings) -> Decoder:
    if sub.codec == "json":
        from edgeslm.ingest.json_codec import JsonDecoder
        assert sub.json_map is not None
        return JsonDecoder(sub.json_map, limits)
    if sub.codec == "plain":
        from edgeslm.ingest.plain import PlainDecoder
        assert sub.plain is not None
        return PlainDecoder(sub.plain, limits)
    from edgeslm.ingest.sparkplug import SparkplugDecoder
    assert sub.sparkplug is not None
    return SparkplugDecoder(sub.sparkplug, limits)


class Router:
    """Maps a topic to its decoder; the answer is cached per topic (plants have a fixed set of topics)."""

    MAX_CACHE = 100_000

    def __init__(self, subs: list[Subscription], limits: IngestSettings) -> None:
        self._subs = [(s.topic, build_decoder(s, limits)) for s in subs]
        self._cache: dict[str, Decoder] = {}

    @property
    def decoders(self) -> list[Decoder]:
        return [d for _, d in self._subs]

    def decode(self, topic: str, raw: bytes, received: float) -> list[Sample]:
        dec = self._cache.get(topic)
        if dec is None:
            dec = next((d for f, d in self._subs if topic_matches_sub(f, topic)), None)
            if dec is None:
                raise PayloadError("unknown_topic", topic[:100])
            if len(self._cache) < self.MAX_CACHE:
                self._cache[topic] = dec
        return dec.decode(topic, raw, received)
