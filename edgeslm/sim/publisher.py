"""Publishes simulated telemetry to a broker as JSON: <topic_prefix>/<asset>/telemetry."""

from __future__ import annotations

import json
import threading
import time

import paho.mqtt.client as paho
import structlog
from paho.mqtt.enums import CallbackAPIVersion

from edgeslm.sim.machines import Machine

log = structlog.get_logger("edgeslm.sim")


class Simulator:
    def __init__(self, host: str, port: int, machines: list[Machine], rate_hz: float = 5.0,
                 topic_prefix: str = "sim", username: str | None = None, password: str | None = None) -> None:
        self.machines = machines
        self.rate_hz = rate_hz
        self.topic_prefix = topic_prefix
        self.sent = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"edgeslm-sim-{time.time_ns()}")
        if username:
            self._client.username_pw_set(username, password)
        self._host, self._port = host, port

    def start(self) -> None:
        self._client.connect(self._host, self._port, keepalive=30)
        self._client.loop_start()
        self._thread = threading.Thread(target=self._run, name="edgeslm-simulator", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        t0 = time.time()
        period = 1.0 / self.rate_hz
        next_at = time.monotonic()
        while not self._stop.is_set():
            now = time.time()
            for m in self.machines:
                body = {"ts": round(now, 3), **m.read(now - t0)}
                self._client.publish(f"{self.topic_prefix}/{m.asset}/telemetry", json.dumps(body), qos=0)
                self.sent += 1
            next_at += period
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        self._client.disconnect()
        self._client.loop_stop()
