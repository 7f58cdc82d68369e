"""[health] and [logging]."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgeslm.settings.base import Section


class HealthSettings(Section):
    status_interval_s: float = Field(60.0, ge=1, description="Seconds between retained status messages.")
    metrics_port: int = Field(0, ge=0, le=65535, description="Prometheus metrics on this port; 0 = off.")
    metrics_bind: str = Field("127.0.0.1", description="Address the metrics endpoint listens on.")


class LoggingSettings(Section):
    level: Literal["debug", "info", "warning", "error"] = Field("info", description="Least severe level logged.")
    format: Literal["auto", "json", "console"] = Field("auto", description="'json' for journald/log shippers, "
                                                       "'console' for people; 'auto' picks console on a tty.")
    rate_limit_s: float = Field(10.0, ge=0, description="Repeated warnings of one kind (bad payloads) are "
                                "logged at most once per this many seconds, with a count.")
