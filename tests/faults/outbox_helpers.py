"""Shared by the outbox tests: a recording verifier subscriber and settings builders."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edgeslm.settings import Settings, load_settings


def make_settings(tmp_path: Path, host: str, port: int, *, client_id: str, outbox: dict[str, Any] | None = None,
                  mqtt: dict[str, Any] | None = None) -> Settings:
    return load_settings(None, subscriptions=[{"topic": "unused/#"}], gateway={"state_dir": str(tmp_path)},
                         mqtt={"host": host, "port": port, "client_id": client_id, "reconnect_min_s": 1,
                               "reconnect_max_s": 1, **(mqtt or {})},
                         outbox={"min_free_disk_mb": 0, **(outbox or {})})


def identity_holds(st: dict[str, Any]) -> bool:
    return bool(st["produced"] == st["delivered"] + st["dropped"] + st["expired"] + st["dead_lettered"] + st["queued"])


@dataclass(frozen=True)
class Received:
    topic: str
    payload: dict[str, Any]
    props: dict[str, str]
    at: float  # monotonic


class Verifier:
    """A QoS 1 subscriber with a persistent session that records everything it receives."""

    def __init__(self, host: str, port: int, topic: str, client_id: str) -> None:
        self.host, self.port, self.topic = host, port, topic
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self._ids: set[str] = set()
        self._changed = threading.Condition(self._lock)
        self.subscribed = threading.Event()
        self.sessions_present: list[bool] = []  # one per connect: False after the first means a lost session
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
        c.reconnect_delay_set(1, 1)
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.on_subscribe = lambda *a: self.subscribed.set()
        self.client = c

    def __enter__(self) -> Verifier:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect_async(self.host, self.port, keepalive=5, clean_start=False, properties=props)
        self.client.loop_start()
        if not self.subscribed.wait(10):
            raise RuntimeError("verifier did not subscribe within 10 s")
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, rc: Any, properties: Any) -> None:
        self.sessions_present.append(bool(getattr(flags, "session_present", False)))
        client.subscribe(self.topic, qos=1)

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        props = dict(getattr(msg.properties, "UserProperty", []) or [])
        rec = Received(msg.topic, json.loads(msg.payload), props, time.monotonic())
        with self._changed:
            self.messages.append(rec)
            self._ids.add(rec.payload["id"])
            self._changed.notify_all()

    def ids(self) -> set[str]:
        with self._lock:
            return set(self._ids)

    def wait_for(self, ids: set[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not ids <= self._ids:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.2))
        return True

    def duplicates(self) -> int:
        with self._lock:
            return len(self.messages) - len(self._ids)

    def assert_fifo_per_topic(self, gap_free: bool = True) -> None:
        """First deliveries per topic come in seq order (and without gaps unless some were dropped)."""
        seen: set[str] = set()
        last: dict[str, int] = {}
        with self._lock:
            msgs = list(self.messages)
        for m in msgs:
            if m.payload["id"] in seen:
                continue
            seen.add(m.payload["id"])
            seq = m.payload["seq"]
            prev = last.get(m.topic, 0)
            assert seq > prev, f"{m.topic}: seq {seq} after {prev}"
            if gap_free:
                assert seq == prev + 1, f"{m.topic}: gap, seq {seq} after {prev}"
            last[m.topic] = seq
