"""MQTT 5 properties without paho's per-object table building.

paho-mqtt 2.x `Properties.__init__` rebuilds its lookup tables (27 property names, their types and packet
kinds) for every object, and `unpack` first clears every one of the 27 names; paho makes one such object for
every MQTT 5 PUBLISH it receives. Measured on the 2-core dev box (2026-11-26): decoding a PUBLISH without
properties (our telemetry) costs 18-26 us in MQTT 5 against 3 us in 3.1.1 (10 us building the tables, 6 us
clearing them), on a receive path of 40-50 us a message in all.

`SharedTableProperties` is paho's class with the tables built once, on the class, and a `clear` that deletes
only the properties that are set. Every other method is paho's own, so packing, unpacking, validation, `str`
and `json` behave exactly as before (tests/test_v5props.py compares them). `install()` makes paho's packet
decoders (`paho.mqtt._packet`: PUBLISH, CONNACK, SUBACK, PUBACK ...) build this class; paho's client module
keeps its own name for the class, so its `isinstance` checks (`will_set`, `publish`) accept both. Our client
also builds the properties of what it sends with it.
"""

from __future__ import annotations

import paho.mqtt._packet as _paho_packet
from paho.mqtt.properties import Properties

_TABLES = Properties(0)  # one object's tables, shared below (paho never mutates them)
# What paho's __init__ puts on an instance: the layout this module was written against (paho 2.1, 2.2).
_PAHO_LAYOUT = {"packetType", "types", "names", "properties"}


class SharedTableProperties(Properties):
    """paho's `Properties`, its lookup tables built once for all objects."""

    types = _TABLES.types
    names = _TABLES.names
    properties = _TABLES.properties

    def __init__(self, packetType: int) -> None:
        self.packetType = packetType

    def clear(self) -> None:
        # The instance holds packetType and the properties that are set, nothing else (the tables are on
        # the class), so this deletes what paho's clear deletes, without testing all 27 names.
        for name in [k for k in vars(self) if k != "packetType"]:
            delattr(self, name)


def install() -> bool:
    """Make paho's packet decoders build `SharedTableProperties` (idempotent).

    Returns False, changing nothing, when this paho does not look like the 2.x layout this was written against
    (its decoders' class is not paho's `Properties`, or a `Properties` object holds other instance state):
    paho's own class then stays in use, slower and equally correct.
    """
    current = getattr(_paho_packet, "Properties", None)
    if current is SharedTableProperties:
        return True
    if current is not Properties or set(vars(_TABLES)) != _PAHO_LAYOUT:
        return False
    _paho_packet.Properties = SharedTableProperties  # type: ignore[attr-defined,misc]
    return True


def uninstall() -> None:
    """paho's own class again (tests, and benches that measure stock paho in the same process)."""
    if getattr(_paho_packet, "Properties", None) is SharedTableProperties:
        _paho_packet.Properties = Properties  # type: ignore[attr-defined,misc]


def installed() -> bool:
    return getattr(_paho_packet, "Properties", None) is SharedTableProperties
