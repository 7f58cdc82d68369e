"""Why a payload was rejected. The reason is a short stable code: it is a counter name."""

from __future__ import annotations


class PayloadError(ValueError):
    """A payload (or part of it) that cannot become a sample. `reason` is counted, `detail` logged."""

    REASONS = frozenset({
        "too_large", "empty", "bad_utf8", "bad_json", "too_deep", "duplicate_key", "not_object",
        "non_finite", "huge_number", "bad_type", "no_asset", "bad_asset", "bad_timestamp",
        "future_timestamp", "old_timestamp", "no_signals", "bad_number", "unknown_topic",
        "bad_sparkplug", "unknown_alias", "sequence_gap", "out_of_order", "too_many_metrics",
        "too_many_series",
    })

    def __init__(self, reason: str, detail: str = "") -> None:
        assert reason in self.REASONS, reason
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)
