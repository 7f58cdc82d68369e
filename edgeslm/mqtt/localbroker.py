"""Run a private mosquitto on a free loopback port: for `edgeslm demo`, tests and benchmarks."""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

INSTALL_HINT = ("the 'mosquitto' broker binary is not installed. On Debian/Ubuntu: "
                "sudo apt-get install -y mosquitto (the packaged service may stay disabled: "
                "edgeslm starts its own on a free port). Or point --broker at an existing broker.")


class BrokerUnavailable(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_mosquitto() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)), None)


class LocalBroker:
    """A mosquitto child process. `extra_conf` lines are appended (TLS listeners, auth) by tests."""

    def __init__(self, port: int | None = None, extra_conf: str = "", persistence: bool = True,
                 workdir: Path | None = None) -> None:
        binary = find_mosquitto()
        if binary is None:
            raise BrokerUnavailable(INSTALL_HINT)
        self.binary: str = binary
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self._own_dir = workdir is None
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="edgeslm-mosquitto-"))
        self.extra_conf = extra_conf
        self.persistence = persistence
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def conf_path(self) -> Path:
        return self.dir / "mosquitto.conf"

    def _write_conf(self) -> None:
        # Started as root, mosquitto switches to user 'mosquitto', which cannot read a private 0700 work
        # folder; naming the current user keeps it (the option has no effect when not root).
        lines = [f"user {getpass.getuser()}", f"listener {self.port} 127.0.0.1", "allow_anonymous true",
                 f"persistence {'true' if self.persistence else 'false'}",
                 f"persistence_location {self.dir}/", "autosave_interval 1",
                 "max_queued_messages 100000", "log_dest stderr", "log_type error", "log_type warning",
                 self.extra_conf]
        self.conf_path.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 10.0) -> LocalBroker:
        self._write_conf()
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf_path)], stdout=subprocess.DEVNULL,
                                     stderr=open(self.dir / "mosquitto.log", "ab"),  # noqa: SIM115
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrokerUnavailable(f"mosquitto exited with {self.proc.returncode}: "
                                        f"{(self.dir / 'mosquitto.log').read_text()[-500:]}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BrokerUnavailable(f"mosquitto did not listen on port {self.port} within {timeout} s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def freeze(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
