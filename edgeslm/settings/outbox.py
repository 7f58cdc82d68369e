"""[outbox]: the durable store-and-forward queue for everything we publish."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from edgeslm.settings.base import Section


class OutboxSettings(Section):
    path: Path | None = Field(None, description="SQLite file; empty = <gateway.state_dir>/outbox.db.")
    max_rows: int = Field(100_000, ge=10, description="Most queued messages before dropping by priority.")
    max_bytes: int = Field(64 * 1024 * 1024, ge=64 * 1024, description="Most queued payload bytes.")
    min_free_disk_mb: int = Field(50, ge=0, description="Below this free space new messages are dropped "
                                  "(by priority) instead of filling the disk.")
    inflight: int = Field(16, ge=1, le=1000, description="Messages sent but not yet acknowledged (PUBACK).")
    max_attempts: int = Field(10, ge=1, description="Rejected deliveries before a message is dead-lettered.")
    ttl_alert_s: float = Field(7 * 86400.0, gt=0, description="Alerts older than this are expired unsent.")
    ttl_advice_s: float = Field(2 * 86400.0, gt=0, description="Advice older than this is expired unsent.")
    ttl_status_s: float = Field(3600.0, gt=0, description="Status messages older than this are expired unsent.")
    replay_rate_per_s: float = Field(200.0, gt=0, description="Rate limit for backlog sent after an outage.")
    message_expiry_s: int = Field(0, ge=0, description="MQTT 5 message expiry on what we publish; 0 = none.")
