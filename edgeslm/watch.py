"""A readable live view of our alerts and advice (`edgeslm tail`, and the demo's output)."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from typing import Any, TextIO

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion


def format_message(topic: str, body: dict[str, Any], seen: dict[str, str] | None = None) -> str | None:
    """One or a few lines for a person; None for messages we do not show (status).

    `seen` (alert_id → last state) turns a re-sent alert whose state did not change (its advice status
    moved) into one short line.
    """
    if topic.endswith("/alerts"):
        aid, state = str(body.get("alert_id", "")), str(body.get("state", ""))
        if seen is not None:
            if seen.get(aid) == state:
                return f"ALERT  {body.get('asset')}  advice {body.get('advice_status')}  id={aid[:13]}"
            seen[aid] = state
        ev = body.get("evidence", {}).get("signals", [])
        sig = ", ".join(f"{s['signal']}={s['value']}{(' ' + s['unit']) if s.get('unit') else ''}"
                        f" ({s['deviation_sigma']:+.1f} sigma)" if s.get("deviation_sigma") is not None
                        else f"{s['signal']}={s['value']}" for s in ev[:3])
        hist = " [historical]" if body.get("historical") else ""
        return (f"ALERT  {body.get('ts', '')}  {body.get('asset')}  {str(body.get('state', '')).upper():8} "
                f"{body.get('severity', '')}  by {','.join(body.get('detectors', []))}  {sig}  "
                f"advice={body.get('advice_status')}  id={str(body.get('alert_id', ''))[:13]}{hist}")
    if topic.endswith("/advice"):
        src = body.get("source")
        who = f"model {body.get('model')}" if src == "model" else f"rules ({body.get('reason') or 'no model'})"
        lines = [f"ADVICE {body.get('ts', '')}  {body.get('asset')}  urgency={body.get('urgency')} "
                 f"confidence={body.get('confidence')}  from {who} in {body.get('latency_ms')} ms  "
                 f"id={str(body.get('alert_id', ''))[:13]}",
                 f"       summary: {body.get('summary')}"]
        lines += [f"       cause:   {c}" for c in body.get("probable_causes", [])[:3]]
        lines += [f"       action:  {a}" for a in body.get("recommended_actions", [])[:3]]
        return "\n".join(lines)
    return None


class Watcher:
    """Subscribes to <prefix>/# and prints (or hands over) every alert and advice."""

    def __init__(self, host: str, port: int, prefix: str, out: TextIO | None = None,
                 on_message: Callable[[str, dict[str, Any]], None] | None = None,
                 username: str | None = None, password: str | None = None) -> None:
        self.out = out or sys.stdout
        self.received: list[tuple[str, dict[str, Any]]] = []
        self._seen: dict[str, str] = {}
        self._on = on_message
        self._lock = threading.Lock()
        self._prefix = prefix
        self._c = paho.Client(CallbackAPIVersion.VERSION2)
        if username:
            self._c.username_pw_set(username, password)
        self._c.on_connect = lambda c, *_: c.subscribe(f"{prefix}/#", qos=1)
        self._c.on_message = self._handle
        self._host, self._port = host, port

    def _handle(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        try:
            body = json.loads(msg.payload)
        except ValueError:
            return
        if not isinstance(body, dict):
            return
        with self._lock:
            self.received.append((msg.topic, body))
        if self._on:
            self._on(msg.topic, body)
        line = format_message(msg.topic, body, self._seen)
        if line:
            print(line, file=self.out, flush=True)

    def start(self) -> Watcher:
        self._c.connect(self._host, self._port, keepalive=30)
        self._c.loop_start()
        return self

    def stop(self) -> None:
        self._c.disconnect()
        self._c.loop_stop()

    def alert_ids(self) -> set[str]:
        return {str(b.get("alert_id")) for b in self.messages("/alerts") if b.get("state") == "raised"}

    def messages(self, suffix: str) -> list[dict[str, Any]]:
        with self._lock:
            return [b for t, b in self.received if t.endswith(suffix)]
