"""`edgeslm demo`: broker + simulated plant + the daemon + a live view, on one machine, no set-up."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from edgeslm import logs
from edgeslm.app import App
from edgeslm.mqtt.localbroker import BrokerUnavailable, LocalBroker
from edgeslm.settings import Settings, load_settings
from edgeslm.sim.machines import FAULTS, default_plant, schedule_faults
from edgeslm.sim.publisher import Simulator
from edgeslm.watch import Watcher

DEFAULT_MODEL_DIR = Path(os.environ.get("EDGESLM_MODEL_DIR", "~/.cache/edgeslm/models/phi3-mini-4k-instruct-cpu-int4")
                         ).expanduser()


def demo_settings(host: str, port: int, state_dir: Path, model_dir: Path | None) -> Settings:
    return load_settings(
        None,
        gateway={"name": "demo-gw", "site": "demo-plant", "topic_prefix": "edgeslm", "state_dir": str(state_dir)},
        mqtt={"host": host, "port": port, "client_id": f"edgeslm-demo-{os.getpid()}", "clean_start": True},
        subscriptions=[{"topic": "sim/+/telemetry", "codec": "json", "json": {"asset": "topic:1"}}],
        advice={"model_dir": str(model_dir) if model_dir else None, "deadline_s": 45.0},
        health={"status_interval_s": 10},
        logging={"level": "warning", "format": "console"},
        assets={
            "pump-1": {"machine_type": "centrifugal pump, 15 kW", "failure_modes": [
                "bearing wear", "cavitation", "seal leak"], "signals": {
                "bearing_temp": {"unit": "degC", "high": 95}, "vibration": {"unit": "mm/s"},
                "discharge_pressure": {"unit": "bar"}, "flow": {"unit": "m3/h"}}},
            "press-2": {"machine_type": "hydraulic press", "failure_modes": ["oil leak", "pump wear"],
                        "signals": {"oil_temp": {"unit": "degC"}, "hydraulic_pressure": {"unit": "bar"},
                                    "motor_current": {"unit": "A"}}},
            "compressor-3": {"machine_type": "screw compressor", "failure_modes": ["air leak", "valve fault"],
                             "signals": {"discharge_temp": {"unit": "degC"}, "outlet_pressure": {"unit": "bar"},
                                         "motor_current": {"unit": "A"}}},
        },
    )


def run_demo(duration: float, model: Path | None, broker: str | None, rate_hz: float = 5.0,
             faults: tuple[str, ...] = FAULTS, out: Any = None) -> int:
    def say(*a: object) -> None:
        print(*a, file=out, flush=True)

    logs.configure("warning", "console")
    model_dir = model if model is not None else (DEFAULT_MODEL_DIR if DEFAULT_MODEL_DIR.is_dir() else None)
    local: LocalBroker | None = None
    if broker:
        host, _, port_s = broker.rpartition(":")
        host, port = host or "127.0.0.1", int(port_s)
    else:
        try:
            local = LocalBroker(persistence=False).start()
        except BrokerUnavailable as e:
            say(f"edgeslm demo: cannot start a broker: {e}")
            return 69  # EX_UNAVAILABLE
        host, port = local.host, local.port
    with tempfile.TemporaryDirectory(prefix="edgeslm-demo-") as tmp:
        settings = demo_settings(host, port, Path(tmp), model_dir)
        app = App(settings)
        machines = default_plant()
        planned = schedule_faults(machines, duration, faults)
        say(f"edgeslm demo: broker {host}:{port} ({'private mosquitto' if local else 'given'}), "
            f"{len(machines)} simulated machines at {rate_hz:g} Hz for {duration:g} s")
        for f in planned:
            say(f"  fault planned: {f.kind} on {f.asset} at t={f.start:.0f} s")
        watcher = Watcher(host, port, settings.gateway.topic_prefix, out=out).start()
        sim = Simulator(host, port, machines, rate_hz=rate_hz)
        try:
            app.start()
            assert app.advisor is not None
            say(f"advisor: {app.advisor.describe()}")
            if not app.advisor.model_loaded:
                say(f"  (to use Phi-3: 'edgeslm model pull' puts it in {DEFAULT_MODEL_DIR}, or pass --model DIR)")
            say("-" * 100)
            sim.start()
            end = time.monotonic() + duration
            while time.monotonic() < end:
                time.sleep(0.2)
            sim.stop()
            # Let advice already being written finish (bounded by the advice deadline).
            grace = time.monotonic() + (settings.advice.deadline_s if app.advisor.model_loaded else 3.0)
            while time.monotonic() < grace and app.advisor.stats().get("queued", 0) + app.advisor.stats().get(
                    "busy", 0) > 0:
                time.sleep(0.2)
            time.sleep(1.0)
        finally:
            sim.stop()
            app.stop()
            time.sleep(0.5)
            watcher.stop()
            if local:
                local.close()
        advice = watcher.messages("/advice")
        raised = len(watcher.alert_ids())
        say("-" * 100)
        say(f"summary: {sim.sent} telemetry messages, {raised} alerts raised, {len(advice)} advice "
            f"({sum(1 for a in advice if a.get('source') == 'model')} from the model, "
            f"{sum(1 for a in advice if a.get('source') == 'rules')} from rules)")
        with contextlib.suppress(Exception):
            c = app.counters.snapshot()
            say(f"counters: samples_in={c.get('samples_in', 0)} bad_payloads={c.get('bad_payloads', 0)}")
    return 0
