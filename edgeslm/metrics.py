"""Optional Prometheus endpoint ([health] metrics_port): the status counters as metrics."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

_BAD = re.compile(r"[^a-zA-Z0-9_]")


def _name(key: str) -> str:
    return "edgeslm_" + _BAD.sub("_", key)


def _flatten(prefix: str, value: Any, out: dict[str, float]) -> None:
    if isinstance(value, int | float):  # bool is an int: up = 1.0
        out[prefix] = float(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}_{k}" if prefix else str(k), v, out)


class StatusCollector:
    """Reads the same status dict the MQTT status message carries, at scrape time."""

    def __init__(self, status: Callable[[], dict[str, Any]]) -> None:
        self._status = status

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
        flat: dict[str, float] = {}
        _flatten("", self._status(), flat)
        for key, value in sorted(flat.items()):
            name = _name(key)
            if key.startswith("counters_"):
                yield CounterMetricFamily(name, f"edgeslm counter {key[9:]}", value=value)
            else:
                yield GaugeMetricFamily(name, f"edgeslm {key}", value=value)


def start_metrics_server(port: int, bind: str, status: Callable[[], dict[str, Any]]) -> Any:
    """Starts the exporter thread; raises RuntimeError with the fix when prometheus-client is missing."""
    try:
        from prometheus_client import CollectorRegistry, start_http_server
    except ImportError:
        raise RuntimeError("health.metrics_port is set but prometheus-client is not installed: "
                           "pip install 'edgeslm[metrics]' (or set metrics_port = 0)") from None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(status))  # type: ignore[arg-type]
    return start_http_server(port, addr=bind, registry=registry)
