"""systemd's notify protocol (sd_notify(3)) over $NOTIFY_SOCKET, without a C library."""

from __future__ import annotations

import os
import socket


class Notifier:
    """READY=1, STATUS=…, WATCHDOG=1, STOPPING=1, RELOADING=1. A no-op outside systemd."""

    def __init__(self, address: str | None = None) -> None:
        addr = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        if addr.startswith("@"):
            addr = "\0" + addr[1:]  # abstract namespace socket
        self._addr = addr or None
        self._sock: socket.socket | None = None
        if self._addr:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def notify(self, *fields: str) -> bool:
        if self._sock is None or self._addr is None:
            return False
        try:
            self._sock.sendto("\n".join(fields).encode(), self._addr)
            return True
        except OSError:
            return False

    @staticmethod
    def watchdog_interval() -> float | None:
        """Half of WATCHDOG_USEC (systemd's advice), when the watchdog is meant for this process."""
        usec = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        if not usec or (pid and pid != str(os.getpid())):
            return None
        try:
            return int(usec) / 2e6
        except ValueError:
            return None

    def close(self) -> None:
        if self._sock:
            self._sock.close()
            self._sock = None
