"""Shared by the integration tests: a running daemon and a publisher."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edgeslm.app import App
from edgeslm.settings import Settings, load_settings


def daemon_settings(broker: Any, tmp_path: Path, tag: str, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "gateway": {"name": f"gw-{tag}", "site": f"site-{tag}", "state_dir": str(tmp_path / f"state-{tag}")},
        "mqtt": {"host": broker.host, "port": broker.port, "client_id": f"edgeslm-{tag}", "clean_start": True},
        "subscriptions": [{"topic": f"t-{tag}/+/telemetry", "json": {"asset": "topic:1"}},
                          {"topic": f"p-{tag}/+/+", "codec": "plain", "plain": {"asset": "topic:1",
                                                                                 "signal": "topic:2"}}],
        "advice": {"model_dir": None},
        "health": {"status_interval_s": 1},
    }
    for k, v in overrides.items():
        base[k] = {**base.get(k, {}), **v} if isinstance(v, dict) else v
    return load_settings(None, **base)


@contextmanager
def running(settings: Settings) -> Iterator[App]:
    app = App(settings)
    try:
        app.start()
        assert app.link is not None and app.link.wait_connected(10), "daemon did not connect"
        assert app.out_link is not None and app.out_link.wait_connected(10), "daemon's out session did not connect"
        yield app
    finally:
        app.stop()


@contextmanager
def publisher(broker: Any) -> Iterator[paho.Client]:
    c = paho.Client(CallbackAPIVersion.VERSION2)
    c.connect(broker.host, broker.port)
    c.loop_start()
    try:
        yield c
    finally:
        c.disconnect()
        c.loop_stop()


@contextmanager
def subscriber(broker: Any, topic: str) -> Iterator[queue.Queue[tuple[str, bytes]]]:
    """A plain paho subscriber (what an HMI sees): yields a queue of (topic, payload) once subscribed."""
    q: queue.Queue[tuple[str, bytes]] = queue.Queue()
    ready = threading.Event()
    c = paho.Client(CallbackAPIVersion.VERSION2)
    c.on_connect = lambda cl, *_: cl.subscribe(topic, qos=1)
    c.on_subscribe = lambda *_: ready.set()
    c.on_message = lambda cl, u, m: q.put((m.topic, m.payload))
    c.connect(broker.host, broker.port)
    c.loop_start()
    try:
        assert ready.wait(10), "test subscriber did not subscribe"
        yield q
    finally:
        c.disconnect()
        c.loop_stop()
