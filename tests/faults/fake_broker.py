"""A scripted MQTT 5 broker on a loopback socket, only for PUBACKs with error reason codes.

mosquitto never refuses a PUBLISH with a reason code we can choose, so this ONE case uses a fake: it
answers CONNECT, PINGREQ and QoS 1 PUBLISH (with `policy(topic, payload, attempt) -> reason code`).
"""

from __future__ import annotations

import json
import socket
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

Policy = Callable[[str, dict[str, Any], int], int]


def _read_exact(conn: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    mult, value = 1, 0
    while True:
        b = data[pos]
        pos += 1
        value += (b & 0x7F) * mult
        if not b & 0x80:
            return value, pos
        mult *= 128


class FakeBroker:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.received: list[tuple[str, dict[str, Any], int]] = []  # topic, payload, reason we answered
        self.attempts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(4)
        self._sock.settimeout(0.2)
        self.host, self.port = self._sock.getsockname()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="fake-broker", daemon=True)

    def __enter__(self) -> FakeBroker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), name="fake-broker-conn", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.5)
        try:
            while not self._stop.is_set():
                try:
                    first = _read_exact(conn, 1)[0]
                except TimeoutError:
                    continue
                length, mult = 0, 1
                while True:
                    b = _read_exact(conn, 1)[0]
                    length += (b & 0x7F) * mult
                    mult *= 128
                    if not b & 0x80:
                        break
                body = _read_exact(conn, length) if length else b""
                kind = first >> 4
                if kind == 1:  # CONNECT -> CONNACK (no session, success, no properties)
                    conn.sendall(bytes([0x20, 0x03, 0x00, 0x00, 0x00]))
                elif kind == 3:
                    self._publish(conn, first, body)
                elif kind == 12:  # PINGREQ
                    conn.sendall(bytes([0xD0, 0x00]))
                elif kind == 14:  # DISCONNECT
                    return
        except (ConnectionError, OSError):
            return
        finally:
            conn.close()

    def _publish(self, conn: socket.socket, first: int, body: bytes) -> None:
        qos = (first >> 1) & 3
        tlen = int.from_bytes(body[0:2], "big")
        topic = body[2:2 + tlen].decode()
        pos = 2 + tlen
        pid = 0
        if qos:
            pid = int.from_bytes(body[pos:pos + 2], "big")
            pos += 2
        plen, pos = _varint(body, pos)
        payload = json.loads(body[pos + plen:])
        with self._lock:
            key = str(payload.get("id", ""))  # MqttLink's own birth message carries no id: accepted
            self.attempts[key] += 1
            reason = self.policy(topic, payload, self.attempts[key]) if key else 0
            self.received.append((topic, payload, reason))
        if qos == 1:
            conn.sendall(bytes([0x40, 0x03]) + pid.to_bytes(2, "big") + bytes([reason]))
