"""Payload codecs: bytes from a topic → Samples. Pure: no I/O, the receive time is passed in."""

from edgeslm.ingest.errors import PayloadError
from edgeslm.ingest.registry import Decoder, build_decoder

__all__ = ["Decoder", "PayloadError", "build_decoder"]
