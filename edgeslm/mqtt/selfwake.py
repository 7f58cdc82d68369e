"""paho's client without the wake-ups its network thread sends itself.

With `loop_start()`, paho-mqtt 2.x queues every outgoing packet in `_packet_queue` and then writes a byte to
a socketpair, so that its network thread, possibly asleep in `select()`, wakes and writes the packet. That
wake-up is needed when another thread publishes. But for every QoS 1 message it receives, paho's own
network thread queues the PUBACK from inside its read handler: the byte is written by the very thread it
is meant to wake, which then returns from the next `select()` only to read the byte back before it writes
the PUBACK. Two system calls and one more pass through paho's loop per message received, each of them
a point where the thread gives up the GIL; with the detector thread busy on the other side of the GIL
the hand-overs cost more than the calls. The next `select()` already watches the socket for writing
whenever a packet is queued (`want_write()`), so from the network thread the byte wakes nobody.

`Client` skips the byte when the caller is the network thread and keeps paho's behaviour otherwise
(publishes from other threads still wake it). Measured on the 2-core dev box (2026-12-03, bench drains of
20,000 QoS 1 messages, every detector off): paho's thread 62-69 -> 41-49 us of CPU a message.

The override repeats paho's 2.1/2.2 `_packet_queue`; `SUPPORTED` checks that this paho's method is that
one (same names, same packet fields), and if it is not, paho's own method runs unchanged.
"""

from __future__ import annotations

import threading
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode

# What paho 2.1/2.2's `_packet_queue` reads and writes: the layout this override was written against.
_PAHO_NAMES = {"len", "_out_packet", "append", "_sockpairW", "send", "sockpair_data", "BlockingIOError",
               "_thread", "_on_socket_register_write", "_in_callback_mutex", "acquire", "release", "loop_write",
               "_call_socket_register_write", "MQTTErrorCode", "MQTT_ERR_SUCCESS"}
_PACKET_FIELDS = ("command", "mid", "qos", "pos", "to_process", "packet", "info")


def _matches_paho() -> bool:
    code = getattr(getattr(paho.Client, "_packet_queue", None), "__code__", None)
    return (code is not None and set(code.co_names) == _PAHO_NAMES and _PACKET_FIELDS in code.co_consts
            and code.co_varnames[:6] == ("self", "command", "packet", "mid", "qos", "info"))


SUPPORTED = _matches_paho()


class Client(paho.Client):
    """paho's `Client`; a packet queued by its own network thread does not wake that thread."""

    def _packet_queue(self, command: int, packet: bytes | bytearray, mid: int, qos: int,
                      info: paho.MQTTMessageInfo | None = None) -> MQTTErrorCode:
        t: Any = self._thread  # type: ignore[has-type]
        if not SUPPORTED or t is None or t.ident != threading.get_ident():
            return super()._packet_queue(command, packet, mid, qos, info)
        # The network thread itself (a PUBACK from its read handler, a SUBSCRIBE from on_connect): it goes back
        # to select() with this packet queued, so want_write() puts the socket in the write set.
        self._out_packet.append({"command": command, "mid": mid, "qos": qos, "pos": 0, "to_process": len(packet),
                                 "packet": packet, "info": info})
        self._call_socket_register_write()  # only acts with an external event loop's callbacks, as in paho
        return MQTTErrorCode.MQTT_ERR_SUCCESS
