"""[outbox]: the durable store-and-forward queue for everything we publish."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

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
    historical_after_s: float = Field(5.0, ge=0, description="A message older than this when sent is replayed "
                                      "backlog: flagged \"historical\": true and rate-limited.")
    coalesce_status: bool = Field(True, description="A new status message supersedes older unsent status "
                                  "messages of the same topic (counted as dropped/superseded).")
    batch_max: int = Field(256, ge=1, le=10_000, description="Most operations grouped into one SQLite "
                           "transaction (group commit).")
    commit_delay_ms: float = Field(1.0, ge=0, le=50, description="When several threads are putting at once, "
                                   "wait this long for the others so they share one commit (fsync); 0 = off.")
    retry_base_s: float = Field(1.0, gt=0, description="First retry delay after a rejected PUBACK, doubled "
                                "per attempt up to retry_max_s.")
    retry_max_s: float = Field(60.0, gt=0, description="Longest retry delay after a rejected PUBACK.")
    ack_timeout_s: float = Field(15.0, gt=0, description="A PUBACK missing this long marks the link stalled "
                                 "(keep it below 1.5 x mqtt.keepalive_s so a frozen broker is noticed first "
                                 "here).")
    open_retry_s: float = Field(60.0, ge=0, description="At start, how long to keep retrying to open the "
                                "database while the disk is full before giving up with an error.")
    dead_letter_max_rows: int = Field(10_000, ge=1, description="Dead-letter rows kept; the oldest are pruned.")

    @model_validator(mode="after")
    def _check(self) -> OutboxSettings:
        if self.retry_base_s > self.retry_max_s:
            raise ValueError("retry_base_s must not exceed retry_max_s")
        return self
