"""The daemon as systemd sees it: READY/WATCHDOG over a fake NOTIFY_SOCKET, SIGHUP reloads good and bad files."""

from __future__ import annotations

import socket
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
import structlog

from edgeslm.app import App
from edgeslm.settings import load_settings
from tests.util import wait_for

pytestmark = pytest.mark.broker


def write_config(path: Path, broker: Any, tag: str, threshold: float = 4.0, port: int | None = None) -> Path:
    path.write_text(f"""
[gateway]
name = "gw-{tag}"
site = "site-{tag}"
state_dir = "{path.parent / 'state'}"
[mqtt]
host = "{broker.host}"
port = {port or broker.port}
client_id = "edgeslm-{tag}"
[[subscriptions]]
topic = "t-{tag}/+/telemetry"
[subscriptions.json]
asset = "topic:1"
[detect.zscore]
threshold = {threshold}
""")
    return path


class NotifySocket:
    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue

    def count(self, field: str) -> int:
        return sum(1 for m in list(self.messages) if field in m.split("\n"))

    def close(self) -> None:
        self._stop.set()
        self._t.join(2)
        self.sock.close()


def test_ready_then_watchdog_only_while_threads_live(broker: Any, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    tag = uuid.uuid4().hex[:8]
    ns = NotifySocket(tmp_path / "notify")
    monkeypatch.setenv("NOTIFY_SOCKET", ns.path)
    monkeypatch.setenv("WATCHDOG_USEC", "400000")  # ping every 0.2 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    cfg = write_config(tmp_path / "edgeslm.toml", broker, tag)
    app = App(load_settings(cfg), config_path=cfg)
    runner = threading.Thread(target=app.run_forever, daemon=True)
    try:
        app.start()
        assert wait_for(lambda: ns.count("READY=1") == 1, 5)
        runner.start()
        assert wait_for(lambda: ns.count("WATCHDOG=1") >= 3, 5)
        # The detector thread dies: systemd must stop hearing from us (and will restart the service).
        assert app.pipeline is not None
        monkeypatch.setattr(app.pipeline, "is_alive", lambda: False)
        before = ns.count("WATCHDOG=1")
        threading.Event().wait(1.0)
        assert ns.count("WATCHDOG=1") <= before + 1  # at most one ping was already on its way
    finally:
        app.stop_event.set()
        runner.join(5) if runner.is_alive() else None
        app.stop()
        ns.close()
    assert ns.count("STOPPING=1") == 1


def test_reload_applies_safe_changes_and_keeps_old_config_on_errors(broker: Any, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    cfg = write_config(tmp_path / "edgeslm.toml", broker, tag)
    app = App(load_settings(cfg), config_path=cfg)
    try:
        app.start()
        with structlog.testing.capture_logs() as logs:
            write_config(cfg, broker, tag, threshold=6.0, port=broker.port + 1)
            assert app.reload()
        changed = {e["key"]: e["applied"] for e in logs if e["event"] == "config_changed"}
        assert changed == {"detect.zscore.threshold": True, "mqtt.port": False}
        assert app.settings.detect.zscore.threshold == 6.0
        assert app.settings.mqtt.port == broker.port  # needs a restart: the running value stays

        with structlog.testing.capture_logs() as logs:
            cfg.write_text(cfg.read_text().replace("threshold = 6.0", "threshold = -1"))
            assert not app.reload()
            cfg.write_text("")  # an editor half-way through saving
            assert not app.reload()
        rejected = [e for e in logs if e["event"] == "reload_rejected"]
        assert len(rejected) == 2
        assert any("detect.zscore.threshold" in p for p in rejected[0]["errors"])
        assert "empty" in rejected[1]["errors"][0]
        assert app.settings.detect.zscore.threshold == 6.0
        assert app.pipeline is not None and app.pipeline.is_alive()
    finally:
        app.stop()


def test_prometheus_endpoint_serves_status_counters(broker: Any, tmp_path: Path) -> None:
    import urllib.request

    from edgeslm.mqtt.localbroker import free_port
    tag = uuid.uuid4().hex[:8]
    cfg = write_config(tmp_path / "edgeslm.toml", broker, tag)
    port = free_port()
    cfg.write_text(cfg.read_text() + f"[health]\nmetrics_port = {port}\n")
    app = App(load_settings(cfg), config_path=cfg)
    try:
        app.start()
        app.counters.add("samples_in", 7)
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        app.stop()
    assert "edgeslm_counters_samples_in_total 7.0" in body
    assert "edgeslm_outbox_produced" in body
