"""MQTT 5 properties without paho's per-object table building.

paho-mqtt 2.x `Properties.__init__` rebuilds its lookup tables (27 property names, their types and packet
kinds) for every object, and `unpack` first clears every one of the 27 names; paho makes one such object for
every MQTT 5 PUBLISH it receives. Measured on the 2-core dev box (2026-11-26): decoding a PUBLISH costs
18 us in MQTT 5 against 3 us in 3.1.1 (10 us building the tables, 6 us clearing them), on a receive path of
40-50 us a message in all: the largest single cost of telemetry in MQTT 5.

`SharedTableProperties` is paho's class with the tables built once, on the class, and a `clear` that deletes
only the properties that are set. Every other method is paho's own, so packing, unpacking, validation, `str`
and `json` behave exactly as before (tests/test_v5props.py compares them property by property). `install()`
makes paho's packet decoders build this class instead; it is used for nothing else.
"""

from __future__ import annotations

import paho.mqtt._packet as _paho_packet
import paho.mqtt.client as _paho_client
from paho.mqtt.properties import Properties

_TABLES = Properties(0)  # one object's tables, shared below (paho never mutates them)


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
    """Make paho's decoders (incoming PUBLISH, CONNACK, SUBACK, PUBACK ...) build `SharedTableProperties`.

    Idempotent. Returns False, changing nothing, when this paho does not look like the 2.x layout this was
    written against (then paho's own class stays in use: slower, equally correct).
    """
    ok = True
    for mod in (_paho_packet, _paho_client):
        current = getattr(mod, "Properties", None)
        if current is SharedTableProperties:
            continue
        ok = ok and current is Properties
    if not ok:
        return False
    for mod in (_paho_packet, _paho_client):
        mod.Properties = SharedTableProperties  # type: ignore[attr-defined,misc]
    return True


def installed() -> bool:
    return getattr(_paho_packet, "Properties", None) is SharedTableProperties
