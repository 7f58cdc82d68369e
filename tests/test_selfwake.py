"""selfwake.Client: no wake-up byte from paho's network thread to itself, nothing lost, other threads still wake it.

Real broker, real paho: the socketpair paho writes its wake-up byte to is wrapped to count who writes.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edgeslm.mqtt import selfwake
from tests.conftest import BrokerAddr
from tests.integration.helpers import publisher
from tests.util import wait_for

N = 200


class CountingWake:
    """paho's wake-up socket, counting the bytes written to it by each thread."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.by_thread: dict[int, int] = {}

    def send(self, data: bytes) -> int:
        t = threading.get_ident()
        self.by_thread[t] = self.by_thread.get(t, 0) + 1
        return self._sock.send(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _subscriber(b: BrokerAddr, cls: type[paho.Client], client_id: str, topic: str, got: list[bytes]
                ) -> tuple[paho.Client, CountingWake]:
    """A persistent-session QoS 1 subscriber on its own network thread, its wake socket counted."""
    subscribed = threading.Event()
    c = cls(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    c.on_message = lambda cl, u, m: got.append(m.payload)
    c.on_subscribe = lambda *_: subscribed.set()
    c.connect(b.host, b.port)
    c.subscribe(topic, qos=1)
    c.loop_start()
    assert subscribed.wait(10), "no SUBACK"
    wake = CountingWake(c._sockpairW)  # type: ignore[arg-type]
    c._sockpairW = wake  # type: ignore[assignment]
    return c, wake


def _publish(b: BrokerAddr, topic: str, n: int) -> None:
    with publisher(b) as pub:
        infos = [pub.publish(topic, f"{i}".encode(), qos=1) for i in range(n)]
        for info in infos:
            info.wait_for_publish(10)


def test_this_paho_is_the_one_it_was_written_against() -> None:
    # If paho's _packet_queue changes, the override falls back to paho's own; this says it is time to re-check.
    assert selfwake.SUPPORTED


@pytest.mark.parametrize("cls", [selfwake.Client, paho.Client], ids=["selfwake", "stock-paho"])
def test_pubacks_from_the_network_thread_do_not_wake_it(broker: BrokerAddr, cls: type[paho.Client]) -> None:
    topic = f"selfwake/{time.time_ns()}/t"
    cid = f"selfwake-{time.time_ns()}"
    got: list[bytes] = []
    c, wake = _subscriber(broker, cls, cid, topic, got)
    try:
        _publish(broker, topic, N)
        assert wait_for(lambda: len(got) >= N), f"received {len(got)}/{N}"
        net = c._thread.ident  # type: ignore[union-attr]
        # the last PUBACKs leave before we look
        assert wait_for(lambda: not c.want_write())
    finally:
        c.disconnect()
        c.loop_stop()
    assert sorted(int(p) for p in got) == list(range(N))
    from_net = wake.by_thread.get(net, 0)
    if cls is selfwake.Client:
        assert from_net == 0
    else:  # what the override removes: a byte per PUBACK (the test would see it)
        assert from_net >= N

    # Every message was acknowledged: the broker redelivers nothing to the same persistent session.
    again: list[bytes] = []
    c2, _ = _subscriber(broker, cls, cid, topic, again)
    try:
        time.sleep(0.5)
    finally:
        c2.disconnect()
        c2.loop_stop()
    assert again == []


def test_a_publish_from_another_thread_still_wakes_the_loop(broker: BrokerAddr) -> None:
    topic = f"selfwake/{time.time_ns()}/other"
    got: list[bytes] = []
    c, wake = _subscriber(broker, selfwake.Client, f"selfwake-o-{time.time_ns()}", topic, got)
    try:
        info = c.publish(topic, b"from the main thread", qos=1)
        info.wait_for_publish(10)
        assert info.is_published()
        assert wait_for(lambda: got == [b"from the main thread"])
    finally:
        c.disconnect()
        c.loop_stop()
    assert wake.by_thread.get(threading.get_ident(), 0) >= 1
