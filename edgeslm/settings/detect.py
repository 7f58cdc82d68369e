"""[detect] and [alarm]: detector defaults and the alarm state machine."""

from __future__ import annotations

from pydantic import Field, model_validator

from edgeslm.settings.base import Section


class ZScoreSettings(Section):
    enabled: bool = Field(True, description="Rolling mean/std z-score per signal.")
    window: int = Field(120, ge=10, le=100_000, description="Baseline window in samples.")
    warmup: int = Field(30, ge=5, description="Samples before the detector scores at all ('not enough data').")
    threshold: float = Field(4.0, gt=0, description="|z| at which a sample counts as anomalous.")

    @model_validator(mode="after")
    def _warmup_fits(self) -> ZScoreSettings:
        if self.warmup > self.window:
            raise ValueError("warmup must not exceed window")
        return self


class DetectSettings(Section):
    zscore: ZScoreSettings = Field(default_factory=ZScoreSettings)


class AlarmSettings(Section):
    raise_after: int = Field(2, ge=1, description="Anomalous samples (N of the last M) needed to raise.")
    of_last: int = Field(3, ge=1, description="The M of 'N of the last M'.")
    clear_after: int = Field(10, ge=1, description="Consecutive normal samples needed to clear (hysteresis).")
    cooldown_s: float = Field(60.0, ge=0, description="After a clear, a new alarm on the same asset waits "
                              "this long; anomalies inside it re-open nothing.")
    update_min_interval_s: float = Field(30.0, ge=0, description="Least time between 'updated' messages of "
                                         "one episode (only sent when severity rises).")

    @model_validator(mode="after")
    def _n_of_m(self) -> AlarmSettings:
        if self.raise_after > self.of_last:
            raise ValueError("raise_after must not exceed of_last")
        return self
