"""Durable store-and-forward outbox: SQLite queue (`store`) and the drain thread (`forwarder`)."""

from edgeslm.outbox.forwarder import Forwarder
from edgeslm.outbox.store import (
    MessageClass,
    Outbox,
    OutboxClosed,
    OutboxError,
    OutboxFull,
    QueuedRow,
    RejectOutcome,
    outbox_stats,
)

__all__ = ["Forwarder", "MessageClass", "Outbox", "OutboxClosed", "OutboxError", "OutboxFull", "QueuedRow",
           "RejectOutcome", "outbox_stats"]
