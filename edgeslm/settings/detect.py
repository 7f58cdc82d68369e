"""[detect] and [alarm]: detector defaults and the alarm state machine.

The defaults are the ones the daemon ships with and the ones the NAB/SKAB benches run: no per-dataset tuning.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from edgeslm.settings.base import Section


class ZScoreSettings(Section):
    enabled: bool = Field(True, description="Rolling mean/std z-score per signal.")
    window: int = Field(240, ge=10, le=100_000, description="Baseline window in samples.")
    warmup: int = Field(30, ge=5, description="Samples before the detector scores at all ('not enough data').")
    threshold: float = Field(4.0, gt=0, description="|z| at which a sample counts as anomalous.")

    @model_validator(mode="after")
    def _warmup_fits(self) -> ZScoreSettings:
        if self.warmup > self.window:
            raise ValueError("warmup must not exceed window")
        return self


class RobustZSettings(Section):
    enabled: bool = Field(False, description="Rolling median/MAD z-score per signal (robust to outliers). Off by "
                          "default: on bursty or quantised signals it over-fires (NAB: standard 51 -> 39).")
    window: int = Field(60, ge=10, le=10_000, description="Window in samples for the median and MAD.")
    warmup: int = Field(30, ge=5, description="Samples before the detector scores.")
    threshold: float = Field(5.0, gt=0, description="|robust z| (MAD scaled to a standard deviation) at which "
                             "a sample counts as anomalous.")

    @model_validator(mode="after")
    def _warmup_fits(self) -> RobustZSettings:
        if self.warmup > self.window:
            raise ValueError("warmup must not exceed window")
        return self


class EwmaSettings(Section):
    enabled: bool = Field(True, description="EWMA control chart: a smoothed mean leaving its control limits.")
    alpha: float = Field(0.1, gt=0, lt=1, description="Smoothing weight of the newest sample (lambda).")
    warmup: int = Field(30, ge=5, description="Samples before the detector scores.")
    threshold: float = Field(4.0, gt=0, description="Control limit in EWMA standard deviations (L).")


class CusumSettings(Section):
    enabled: bool = Field(False, description="Two-sided CUSUM for slow, small mean shifts. Off by default (NAB: "
                          "standard 51 -> 42 from drift alarms on non-stationary series); enable for process "
                          "signals with a stable set point.")
    drift: float = Field(0.5, ge=0, description="Allowance k in baseline standard deviations: shifts smaller "
                         "than this are ignored.")
    threshold: float = Field(8.0, gt=0, description="Decision interval h in baseline standard deviations.")
    warmup: int = Field(30, ge=5, description="Samples before the detector scores.")


class SpikeSettings(Section):
    enabled: bool = Field(True, description="Spike / rate of change: a step between consecutive samples far "
                          "larger than usual.")
    window: int = Field(120, ge=10, le=100_000, description="Window of recent steps forming the baseline.")
    warmup: int = Field(30, ge=5, description="Samples before the detector scores.")
    threshold: float = Field(6.0, gt=0, description="Step size in baseline step standard deviations.")
    max_rate: float | None = Field(None, gt=0, description="Optional absolute limit on |change| per second.")


class FlatlineSettings(Section):
    enabled: bool = Field(True, description="Stuck sensor: the same value repeated for too long.")
    min_run: int = Field(30, ge=2, description="Least number of identical consecutive samples that can count.")
    factor: float = Field(3.0, ge=1, description="A run must also be this many times longer than the longest "
                          "run seen while learning (quantised signals repeat values normally).")
    warmup: int = Field(100, ge=5, description="Samples used to learn the normal longest run first.")


class ContextSettings(Section):
    enabled: bool = Field(True, description="Novelty (after CAD OSE): a quantised level (orders=0), or a "
                          "sequence of levels (orders>=1), never seen before; calibrated on its own channel by "
                          "the learnt rate of such events. A novel step makes a sample rarer but raises nothing "
                          "unless another detector is beyond its own threshold.")
    levels: int = Field(8, ge=2, le=14, description="Value levels over the range learnt during warm-up.")
    orders: int = Field(1, ge=0, le=6, description="0: new levels only. k >= 1: also contexts of up to k "
                        "samples whose continuation is learnt (1: a level never seen after the previous level). "
                        "With threshold 0.75, 2 flags the same steps as 1; 1 has the faster hot path.")
    warmup: int = Field(250, ge=10, description="Samples that fix the value range before the detector scores "
                        "(longer than the other warm-ups: the level bands should span the signal's usual range).")
    threshold: float = Field(0.75, gt=0, le=1, description="Fraction of contexts with a new continuation at "
                             "which a sample counts as anomalous.")
    support: int = Field(0, ge=0, description="With > 0, only a level seen at least this often can be novel "
                         "(a usual level in an unusual place; new levels are left to the other detectors).")
    noise: float = Field(2.0, ge=0, description="A level is at least this many times the sample-to-sample "
                         "noise wide (robust: median |step| during warm-up), so that noise does not find new levels.")
    short_window: int = Field(5, ge=1, le=100, description="Recent samples whose count of novel steps is "
                              "compared with the learnt rate of novel steps (binomial tail).")
    capacity: int = Field(8192, ge=64, le=1_000_000, description="Learnt transitions kept per signal; past it "
                          "all counts are halved and the rarest forgotten (bounded memory).")


class LimitsSettings(Section):
    enabled: bool = Field(True, description="Hard and soft limits from [assets.*.signals.*] (low/high, "
                          "soft_low/soft_high).")


class StaleSettings(Section):
    enabled: bool = Field(True, description="Stale signal: no sample within the expected interval.")
    tolerance: float = Field(3.0, ge=1, description="A signal is stale after tolerance x its expected "
                             "interval (configured expected_interval_s, else the learned typical interval).")
    min_gap_s: float = Field(30.0, ge=0, description="Never stale before this many seconds of silence.")
    learn: bool = Field(True, description="Learn the typical interval when expected_interval_s is not set.")


class MultivariateSettings(Section):
    enabled: bool = Field(True, description="Hotelling T2 / Mahalanobis distance per asset over its signals.")
    window: int = Field(400, ge=20, le=100_000, description="Rows (one value per signal) in the rolling "
                        "baseline.")
    warmup: int = Field(100, ge=10, description="Rows before the detector scores.")
    shrinkage: float = Field(0.1, ge=0, le=1, description="Covariance shrinkage toward its diagonal "
                             "(0 = sample covariance).")
    refit_every: int = Field(50, ge=1, description="Rows between covariance re-estimates.")
    threshold: float = Field(0.9999, gt=0.5, lt=1, description="Chi-square probability of T2 beyond which a row "
                             "is kept out of the baseline (and counts toward rebaseline_after). Whether a row is "
                             "anomalous is decided by [alarm] raise_likelihood on the calibrated tail.")
    rebaseline_after: int = Field(600, ge=5, description="Anomalous rows in a row after which the new operating "
                                  "point is accepted as normal (longer than for single signals: a closed valve "
                                  "must not become normal within minutes).")
    smoothing: float = Field(0.3, gt=0, le=1, description="EWMA weight of the newest row: T2 is computed on "
                             "smoothed rows (a multivariate EWMA chart), so a small shift that lasts stands out "
                             "of the row-to-row noise (1 = raw rows).")
    calibration_window: int = Field(1000, ge=0, le=100_000, description="T2 values of recent normal rows from "
                                    "which the tail is also calibrated (exponential tail above their 90th "
                                    "percentile); a row's probability is the larger of this and the F tail with "
                                    "the window's effective number of rows. 0 = F tail only.")
    recover_after: int = Field(30, ge=0, description="Rows in a row during which every signal that drove an "
                               "episode is back (within recover_fraction of its deviation and contribution at the "
                               "episode's peak, and within its own limit) before the other signals' baseline is "
                               "re-centred on where they are now: a fault's after-effects (a temperature that "
                               "settles a few degrees lower) stop holding the alarm. 0 = off.")
    recover_fraction: float = Field(0.25, gt=0, lt=1, description="How far back toward normal a driving signal "
                                    "must be (fraction of its deviation at the episode's peak; its contribution "
                                    "must fall below this squared).")

    @model_validator(mode="after")
    def _warmup_fits(self) -> MultivariateSettings:
        if self.warmup > self.window:
            raise ValueError("warmup must not exceed window")
        return self


class LikelihoodSettings(Section):
    long_window: int = Field(2000, ge=50, le=1_000_000, description="Samples of recent raw scores forming the "
                             "reference distribution.")
    short_window: int = Field(5, ge=1, le=1000, description="Recent raw scores averaged before comparing; "
                              "also how many samples a detector beyond its own threshold keeps the alarm gate "
                              "open (a lone spike is diluted in the average on its own sample).")
    warmup: int = Field(150, ge=10, description="Raw scores before the likelihood moves from 0.5.")

    @model_validator(mode="after")
    def _windows(self) -> LikelihoodSettings:
        if self.short_window >= self.long_window:
            raise ValueError("short_window must be smaller than long_window")
        return self


class DetectSettings(Section):
    zscore: ZScoreSettings = Field(default_factory=ZScoreSettings)
    robust: RobustZSettings = Field(default_factory=RobustZSettings)
    ewma: EwmaSettings = Field(default_factory=EwmaSettings)
    cusum: CusumSettings = Field(default_factory=CusumSettings)
    spike: SpikeSettings = Field(default_factory=SpikeSettings)
    flatline: FlatlineSettings = Field(default_factory=FlatlineSettings)
    context: ContextSettings = Field(default_factory=ContextSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    stale: StaleSettings = Field(default_factory=StaleSettings)
    multivariate: MultivariateSettings = Field(default_factory=MultivariateSettings)
    likelihood: LikelihoodSettings = Field(default_factory=LikelihoodSettings)
    rebaseline_after: int = Field(60, ge=5, description="Anomalous samples in a row after which a detector "
                                  "accepts the new level as normal (a lasting level shift, not a fault).")
    evidence_window: int = Field(10, ge=1, le=1000, description="Recent samples summarised in alarm evidence.")


class AlarmSettings(Section):
    raise_likelihood: float = Field(0.999, gt=0.5, lt=1, description="Calibrated anomaly likelihood at "
                                    "which a sample counts as anomalous (one threshold for all signals), when a "
                                    "detector is also beyond its own threshold on it or on one of the last "
                                    "likelihood.short_window samples. Higher: fewer false raises, fewer faults "
                                    "caught (bench/faults.py measures both).")
    clear_likelihood: float = Field(0.99, gt=0.5, lt=1, description="Likelihood a sample must fall below to "
                                    "count as normal again (hysteresis).")
    raise_after: int = Field(1, ge=1, description="Anomalous samples (N of the last M) needed to raise.")
    of_last: int = Field(3, ge=1, description="The M of 'N of the last M'.")
    clear_after: int = Field(10, ge=1, description="Consecutive normal samples (of every signal that was "
                             "anomalous) needed to clear.")
    clear_after_s: float = Field(600.0, gt=0, description="An open alarm with no anomalous sample for this "
                                 "long is cleared by the periodic tick (e.g. the signal went quiet).")
    cooldown_s: float = Field(60.0, ge=0, description="After a clear, a new alarm on the same asset waits "
                              "this long; anomalies inside it re-open nothing (hard-limit breaches excepted).")
    update_min_interval_s: float = Field(30.0, ge=0, description="Least time between 'updated' messages of "
                                         "one episode (only sent when severity rises).")
    medium_nines: float = Field(5.0, gt=0, description="Severity medium from this surprise, in nines of "
                                "likelihood (5 = 0.99999).")
    high_nines: float = Field(7.0, gt=0, description="Severity high from this surprise (or a hard limit).")
    critical_nines: float = Field(10.0, gt=0, description="Severity critical from this surprise, or a hard "
                                  "limit together with another detector.")

    @model_validator(mode="after")
    def _consistent(self) -> AlarmSettings:
        if self.raise_after > self.of_last:
            raise ValueError("raise_after must not exceed of_last")
        if self.clear_likelihood > self.raise_likelihood:
            raise ValueError("clear_likelihood must not exceed raise_likelihood (hysteresis)")
        if not self.medium_nines <= self.high_nines <= self.critical_nines:
            raise ValueError("severity levels must rise: medium_nines <= high_nines <= critical_nines")
        return self
