"""DetectionEngine: per-(asset, signal) detectors -> calibrated likelihood -> per-asset alarm episodes.

Owned by one thread (the detector thread): no locks. `process` is the hot path and stays in plain Python
floats; numpy is used only by the multivariate detector, once per row and per refit.
"""

from __future__ import annotations

import functools
import json
import math
from array import array
from collections.abc import Iterable, Iterator
from typing import Any

from edgeslm.detect.alarm import AssetAlarm, severity_for
from edgeslm.detect.base import Detector
from edgeslm.detect.context import ContextNovelty
from edgeslm.detect.cusum import Cusum
from edgeslm.detect.ewma import Ewma
from edgeslm.detect.flatline import Flatline
from edgeslm.detect.likelihood import AnomalyLikelihood, EventRate, nines
from edgeslm.detect.limits import HARD, OK, Limits
from edgeslm.detect.multivariate import Hotelling
from edgeslm.detect.robust_zscore import RobustZScore
from edgeslm.detect.spike import Spike
from edgeslm.detect.zscore import ZScore
from edgeslm.models import AlarmEvent, AlarmState, SignalEvidence
from edgeslm.settings.advice import AssetContext, SignalContext
from edgeslm.settings.detect import AlarmSettings, DetectSettings

STATE_VERSION = 1
_NO_CTX = SignalContext()


def build_detectors(cfg: DetectSettings) -> list[Detector]:
    """The per-signal detector set for these settings (limits and stale are handled beside them)."""
    dets: list[Detector] = []
    rb = cfg.rebaseline_after
    if cfg.zscore.enabled:
        z = cfg.zscore
        dets.append(ZScore(z.window, z.warmup, z.threshold, rb))
    if cfg.robust.enabled:
        r = cfg.robust
        dets.append(RobustZScore(r.window, r.warmup, r.threshold, rb))
    if cfg.ewma.enabled:
        e = cfg.ewma
        dets.append(Ewma(e.alpha, e.warmup, e.threshold, cfg.zscore.window, rb))
    if cfg.cusum.enabled:
        c = cfg.cusum
        dets.append(Cusum(c.drift, c.threshold, c.warmup, cfg.zscore.window, rb))
    if cfg.spike.enabled:
        sp = cfg.spike
        dets.append(Spike(sp.window, sp.warmup, sp.threshold, sp.max_rate))
    if cfg.flatline.enabled:
        f = cfg.flatline
        dets.append(Flatline(f.min_run, f.factor, f.warmup))
    return dets


def build_context(cfg: DetectSettings) -> ContextNovelty | None:
    """The sequence detector, calibrated on its own channel (its scores live on another scale than the rest)."""
    if not cfg.context.enabled:
        return None
    c = cfg.context
    return ContextNovelty(c.levels, c.orders, c.warmup, c.threshold, c.capacity, c.support, c.noise)


class _Multi:
    """Row assembly for one asset's multivariate detector: a row is complete when every signal has reported."""

    __slots__ = ("bits", "contrib", "det", "last", "normal_run", "order", "p", "pending", "signal")

    def __init__(self, order: list[str], cfg: DetectSettings) -> None:
        self.order = order
        self.signal = MV
        m = cfg.multivariate
        self.det = (Hotelling(len(order), m.window, m.warmup, m.shrinkage, m.refit_every, m.threshold,
                              m.rebaseline_after, m.smoothing, m.calibration_window, m.recover_after,
                              m.recover_fraction) if len(order) >= 2 else None)
        self.last: dict[str, float] = {}
        self.pending: set[str] = set(order)
        self.p = 1.0
        self.contrib: dict[str, float] = {}
        self.bits = 0
        self.normal_run = 0

    def get_state(self) -> dict[str, Any]:
        # The row being assembled too (last values, who has not reported yet): a restart mid-row continues it.
        return {"order": self.order, "det": self.det.get_state() if self.det else None, "bits": self.bits,
                "normal_run": self.normal_run, "last": dict(self.last), "pending": sorted(self.pending),
                "p": self.p, "contrib": dict(self.contrib)}

    def set_state(self, st: dict[str, Any]) -> None:
        if self.det is not None and st.get("det") is not None:
            self.det.set_state(st["det"])
        self.bits = int(st["bits"])
        self.normal_run = int(st["normal_run"])
        known = set(self.order)
        self.last = {k: float(v) for k, v in st.get("last", {}).items() if k in known}
        self.pending = {k for k in st.get("pending", self.order) if k in known} | (known - set(self.last))
        self.p = float(st.get("p", 1.0))
        self.contrib = {k: float(v) for k, v in st.get("contrib", {}).items() if k in known}


MV = "~multivariate"  # pseudo-signal name of the multivariate detector in an asset's abnormal set


class _Series:
    """Everything learnt about one (asset, signal)."""

    __slots__ = (
        "asset",
        "bits",
        "calib",
        "cnov",
        "ctx",
        "ctx_calib",
        "dets",
        "dt",
        "fire_n",
        "fired",
        "gate_by",
        "hole_n",
        "last_ts",
        "limit",
        "limits",
        "n",
        "nab",
        "normal_run",
        "p",
        "raises",
        "recent",
        "ri",
        "signal",
        "stale",
        "stuck_x",
    )

    def __init__(self, asset: str, signal: str, cfg: DetectSettings, ctx: SignalContext) -> None:
        self.asset = asset
        self.signal = signal
        self.ctx = ctx
        # What runs on each sample: every detector scores and learns (`update`); on a value the flatline detector
        # holds as stuck the others only score it (score_one has no side effects), so it never enters their
        # baselines (DetectionEngine._score_stuck). The detectors alone: their methods, threshold and name are
        # looked up per call (lists of bound methods and of (detector, threshold, name) tuples cost 1.5 KB a
        # series and were no faster).
        self.dets: tuple[Detector, ...] = tuple(build_detectors(cfg))
        lk = cfg.likelihood
        self.calib = AnomalyLikelihood(lk.long_window, lk.short_window, lk.warmup)
        self.cnov = build_context(cfg)
        self.ctx_calib = EventRate(lk.long_window, cfg.context.short_window, lk.warmup) if self.cnov else None
        self.limits = (Limits(ctx.low, ctx.high, ctx.soft_low, ctx.soft_high)
                       if cfg.limits.enabled and any(v is not None for v in
                                                     (ctx.low, ctx.high, ctx.soft_low, ctx.soft_high)) else None)
        self.recent = array("d")  # ring of the last evidence_window values (8 bytes a value, no float objects)
        self.ri = 0
        self.n = 0
        self.last_ts: float | None = None
        self.dt = 0.0  # learnt typical interval (EWMA of inter-arrival times)
        self.p = 0.5  # latest tail probability
        self.fired: tuple[str, ...] = ()
        self.limit = OK
        self.bits = 0  # last M anomalous flags, newest in bit 0
        self.normal_run = 0
        self.stale = False
        self.nab = 0.0  # NAB export: surprise score on the sample that raised/escalated an alarm, else 0
        self.hole_n = -(10**9)  # sample number (n) of the last never-visited level inside the range
        self.stuck_x: float | None = None  # the value the flatline detector flagged on the last sample
        self.fire_n = -(10**9)  # sample number (n) of the last sample with a detector beyond its threshold
        self.gate_by: tuple[str, ...] = ()  # the detectors beyond their threshold on that sample
        # sample numbers (n) of this series' raises in the last long_window; a tuple: most series never raise,
        # and the empty tuple is shared
        self.raises: tuple[int, ...] = ()

    def evidence(self, cfg: DetectSettings) -> SignalEvidence:
        vals = self.recent
        bl: tuple[float, float] | None = None
        for d in self.dets:
            bl = d.baseline()
            if bl is not None:
                break
        wmean = math.fsum(vals) / len(vals) if vals else 0.0
        if bl is None:
            bl = (wmean, 0.0)
        last = vals[self.ri - 1] if vals else 0.0
        dets = self.fired
        if self.limit != OK:
            dets = (*dets, "limits")
        if self.stale:
            dets = (*dets, "stale")
        return SignalEvidence(signal=self.signal, value=last, window_mean=wmean, window_min=min(vals, default=0.0),
                              window_max=max(vals, default=0.0), baseline_mean=bl[0], baseline_std=bl[1],
                              score=round(nines(self.p), 3), detectors=dets, unit=self.ctx.unit)

    def get_state(self) -> dict[str, Any]:
        r = self.recent
        return {"asset": self.asset, "signal": self.signal, "n": self.n, "last_ts": self.last_ts, "dt": self.dt,
                "recent": (r[self.ri:] + r[: self.ri]).tolist(), "bits": self.bits, "normal_run": self.normal_run,
                "stale": self.stale, "calib": self.calib.get_state(), "raises": list(self.raises),
                "hole_n": self.hole_n, "fire_n": self.fire_n, "gate_by": list(self.gate_by),
                "stuck_x": self.stuck_x,
                "detectors": {d.name: d.get_state() for d in self.dets},
                "context": ({"det": self.cnov.get_state(), "calib": self.ctx_calib.get_state()}
                            if self.cnov is not None and self.ctx_calib is not None else None)}

    def set_state(self, st: dict[str, Any], cfg: DetectSettings) -> None:
        self.n = int(st["n"])
        self.last_ts = None if st["last_ts"] is None else float(st["last_ts"])
        self.dt = float(st["dt"])
        self.recent = array("d", [float(v) for v in st["recent"]][-cfg.evidence_window:])
        self.ri = len(self.recent) % cfg.evidence_window
        self.bits = int(st["bits"])
        self.normal_run = int(st["normal_run"])
        self.stale = bool(st["stale"])
        self.raises = tuple(int(v) for v in st.get("raises", ()))
        self.hole_n = int(st.get("hole_n", -(10**9)))
        self.fire_n = int(st.get("fire_n", -(10**9)))
        self.gate_by = tuple(str(v) for v in st.get("gate_by", ()))
        sx = st.get("stuck_x")
        self.stuck_x = None if sx is None else float(sx)
        self.calib.set_state(st["calib"])
        cs = st.get("context")
        if cs is not None and self.cnov is not None and self.ctx_calib is not None:
            self.cnov.set_state(cs["det"])
            self.ctx_calib.set_state(cs["calib"])
        saved = st["detectors"]
        for d in self.dets:
            if d.name in saved:
                d.set_state(saved[d.name])


class DetectionEngine:
    """Streams samples through the detectors and the alarm state machine; returns alarm events."""

    def __init__(self, detect: DetectSettings, alarm: AlarmSettings, assets: dict[str, AssetContext]) -> None:
        self._series: dict[tuple[str, str], _Series] = {}
        self._alarms: dict[str, AssetAlarm] = {}
        self._multi: dict[str, _Multi] = {}
        self._samples = 0
        self._rejected = 0
        self._events = 0
        self._configure(detect, alarm, assets)

    def _configure(self, detect: DetectSettings, alarm: AlarmSettings, assets: dict[str, AssetContext]) -> None:
        self.detect = detect
        self.alarm = alarm
        self.assets = dict(assets)
        self._raise_p = 1.0 - alarm.raise_likelihood
        self._clear_p = 1.0 - alarm.clear_likelihood
        self._mask = (1 << alarm.of_last) - 1
        self._ew = detect.evidence_window
        self._lw = detect.likelihood.long_window
        self._csw = detect.context.short_window
        self._gw = detect.likelihood.short_window

    def _ctx(self, asset: str, signal: str) -> SignalContext:
        a = self.assets.get(asset)
        return a.signals.get(signal, _NO_CTX) if a is not None else _NO_CTX

    def _new_series(self, asset: str, signal: str) -> _Series:
        ser = _Series(asset, signal, self.detect, self._ctx(asset, signal))
        self._series[(asset, signal)] = ser
        if asset not in self._alarms:
            self._alarms[asset] = AssetAlarm(asset)
        if self.detect.multivariate.enabled:
            old = self._multi.get(asset)
            self._multi[asset] = _Multi([*(old.order if old else []), signal], self.detect)
        return ser

    # -- hot path -------------------------------------------------------------------------------------------
    def process(self, sample: Any) -> list[AlarmEvent]:
        """Score one Sample; return the alarm events it causes (usually none)."""
        asset = sample.asset
        ser = self._series.get((asset, sample.signal))
        if ser is None:
            ser = self._new_series(asset, sample.signal)
        x = sample.value
        ts = sample.ts
        if x - x != 0.0:  # NaN or +-inf: never let it into a baseline
            self._rejected += 1
            return []
        self._samples += 1
        last = ser.last_ts
        if last is not None:
            gap = ts - last
            if gap > 0.0:
                ser.dt = gap if ser.dt == 0.0 else ser.dt + 0.05 * (gap - ser.dt)
        ser.last_ts = ts
        ser.n += 1
        ew = self._ew
        rec = ser.recent
        if len(rec) < ew:
            rec.append(x)
            ser.ri = len(rec) % ew
        else:
            rec[ser.ri] = x
            ser.ri = ser.ri + 1 if ser.ri + 1 < ew else 0

        raw = 0.0
        fired: tuple[str, ...] = ()
        if x == ser.stuck_x:  # a value the flatline detector holds as stuck: scored, not learnt
            raw, fired = self._score_stuck(ser, x, ts)
        else:
            for d in ser.dets:
                s = d.update(x, ts)
                if s is not None:
                    r = s / d.threshold
                    if r > raw:  # noqa: PLR1730 -- hot path: a compare is cheaper than a max() call
                        raw = r
                    if r >= 1.0:
                        fired += (d.name,)
        ser.stuck_x = x if fired and "flatline" in fired else None
        # The gate (below) is opened by a detector beyond its own threshold or by a never-visited level (for
        # short_window samples after one inside the visited range); a novel transition otherwise only makes the
        # sample rarer (plain noise makes new transitions at its rare tail levels, new extremes come one by one).
        if fired:
            ser.fire_n = ser.n
            ser.gate_by = fired
            gate = True
        elif ser.n - ser.fire_n < self._gw:
            # The likelihood averages the last short_window raw scores, so a lone spike's sample is often not yet
            # rare while the next ones are: the gate stays open as long as the spike is in that average, and the
            # detectors that opened it are the ones named in the evidence.
            fired = ser.gate_by
            gate = True
        else:
            gate = not ser.dets
        p = ser.calib.update(raw)
        cn = ser.cnov
        if cn is not None:
            cs = cn.update(x, ts)
            if cs is not None:
                new = cs >= cn.threshold
                pc = ser.ctx_calib.update(new)  # type: ignore[union-attr]
                if new:
                    fired += ("context",)
                    if cn.hole:
                        ser.hole_n = ser.n
                    if cn.fresh or ser.n - ser.hole_n < self._csw:
                        gate = True
                    if pc < p:  # noqa: PLR1730 -- hot path
                        p = pc
        ser.p = p
        ser.fired = fired
        lim = ser.limits.check(x) if ser.limits is not None else OK
        ser.limit = lim

        al = self._alarms[asset]
        if ser.stale:
            ser.stale = False
        # Both gates: rare for this signal (likelihood) and beyond at least one detector's own threshold.
        events = self._flag(al, ser, ts, lim != OK or (p <= self._raise_p and gate), lim, p, fired)
        ser.nab = 0.0
        mv = self._multi.get(asset)
        if mv is not None and mv.det is not None:
            mv.last[ser.signal] = x
            pend = mv.pending
            pend.discard(ser.signal)
            if not pend:
                mv.pending = set(mv.order)
                scored = mv.det.update([mv.last[k] for k in mv.order], ts)
                if scored is not None:
                    mp = mv.det.p
                    mv.p = mp
                    if mp <= self._raise_p:
                        contrib = scored[1]
                        tot = sum(c for c in contrib if c > 0.0) or 1.0
                        mv.contrib = {k: c / tot for k, c in zip(mv.order, contrib, strict=True) if c > 0.0}
                        al.involved.update(k for k, c in mv.contrib.items() if c >= 0.2)
                    ev2 = self._flag(al, mv, ts, mp <= self._raise_p, OK, mp, ("multivariate",))
                    if ev2:
                        events = events + ev2 if events else ev2
        if events:
            for e in events:
                if e.state is AlarmState.RAISED:
                    # Discounted by this signal's raises in the last long_window samples (Bonferroni: k earlier
                    # raises make the evidence of one more p x (1 + k)): a chattering signal ranks lower.
                    rl = ser.raises
                    old = ser.n - self._lw
                    i = 0
                    while i < len(rl) and rl[i] <= old:
                        i += 1
                    sc = e.score - math.log10(1.0 + (len(rl) - i))
                    ser.raises = (*rl[i:], ser.n)
                    if sc > 0.0:
                        ser.nab = max(ser.nab, sc / (sc + 4.0))
        return events

    @staticmethod
    def _score_stuck(ser: _Series, x: float, ts: float) -> tuple[float, tuple[str, ...]]:
        """The detector loop of `process` on a value the flatline detector holds as stuck: the others score it but
        do not learn it. A frozen sensor's constant would otherwise become their baseline (spread ~0), and every
        sample after the sensor recovers would look like a spike (an alarm storm and an episode held for a
        window's length)."""
        raw = 0.0
        fired: tuple[str, ...] = ()
        for d in ser.dets:
            s = d.update(x, ts) if d.name == "flatline" else d.score_one(x, ts)
            if s is not None:
                r = s / d.threshold
                if r > raw:  # noqa: PLR1730
                    raw = r
                if r >= 1.0:
                    fired += (d.name,)
        return raw, fired

    def _flag(self, al: AssetAlarm, ser: _Series | _Multi, ts: float, anomalous: bool, lim: int, p: float,
              fired: tuple[str, ...]) -> list[AlarmEvent]:
        if anomalous:
            ser.bits = ((ser.bits << 1) | 1) & self._mask
            ser.normal_run = 0
            al.abnormal.add(ser.signal)
        else:
            ser.bits = (ser.bits << 1) & self._mask
            if p > self._clear_p:
                ser.normal_run += 1
                if ser.normal_run >= self.alarm.clear_after:
                    al.abnormal.discard(ser.signal)
            else:
                ser.normal_run = 0
            if al.alarm_id is None:
                return []
        return self._alarm_step(al, ser, ts, anomalous, lim, p, fired)

    def _alarm_step(self, al: AssetAlarm, ser: _Series | _Multi, ts: float, anomalous: bool, lim: int, p: float,
                    fired: tuple[str, ...]) -> list[AlarmEvent]:
        cfg = self.alarm
        if al.alarm_id is None:
            if ser.bits.bit_count() < cfg.raise_after:
                return []
            if ts < al.cooldown_until and lim != HARD:
                return []
            dets = set(fired)
            if lim != OK:
                dets.add("limits")
            surprise = nines(p)
            al.start(ts, severity_for(surprise, lim, len(dets), cfg), surprise, dets)
            return [self._emit(al, AlarmState.RAISED, ts)]
        if anomalous:
            if ser.signal != MV:
                al.involved.add(ser.signal)
            dets_t = (*fired, "limits") if lim != OK else fired
            surprise = nines(p)
            al.note(ts, severity_for(surprise, lim, len(dets_t), cfg), surprise, dets_t)
        elif not al.abnormal:
            ev = self._emit(al, AlarmState.CLEARED, ts)
            al.finish(ts, cfg)
            return [ev]
        if al.wants_update(ts, cfg):
            return [self._emit(al, AlarmState.UPDATED, ts)]
        return []

    def _emit(self, al: AssetAlarm, state: AlarmState, ts: float) -> AlarmEvent:
        self._events += 1
        al.involved.update(al.abnormal)
        names = al.involved
        evs = []
        for sig in names:
            ser = self._series.get((al.asset, sig))
            if ser is not None:
                evs.append(ser.evidence(self.detect))
        mv = self._multi.get(al.asset)
        contrib = mv.contrib if mv is not None and MV in al.involved else {}
        evs.sort(key=lambda e: (-contrib.get(e.signal, 0.0), -e.score, e.signal))
        return al.event(state, ts, tuple(evs))

    def process_many(self, samples: Iterable[Any]) -> list[AlarmEvent]:
        out: list[AlarmEvent] = []
        proc = self.process
        for s in samples:
            ev = proc(s)
            if ev:
                out.extend(ev)
        return out

    # -- periodic -------------------------------------------------------------------------------------------
    def tick(self, now: float) -> list[AlarmEvent]:
        """Stale signals, clears by time and pending 'updated' messages. Call about once a second."""
        out: list[AlarmEvent] = []
        st = self.detect.stale
        cfg = self.alarm
        if st.enabled:
            for ser in self._series.values():
                if ser.stale or ser.last_ts is None:
                    continue
                interval = ser.ctx.expected_interval_s
                if interval is None:
                    if not st.learn or ser.n < 10 or ser.dt <= 0.0:
                        continue
                    interval = ser.dt
                if now - ser.last_ts > max(st.tolerance * interval, st.min_gap_s):
                    ser.stale = True
                    ser.normal_run = 0
                    al = self._alarms[ser.asset]
                    al.abnormal.add(ser.signal)
                    if al.alarm_id is not None:
                        al.note(now, al.severity, al.peak, ("stale",))
        for al in self._alarms.values():
            stale = any(self._series[(al.asset, s)].stale for s in al.abnormal if (al.asset, s) in self._series)
            if al.alarm_id is None:
                if stale and now >= al.cooldown_until:
                    al.start(now, severity_for(0.0, OK, 1, cfg), 0.0, {"stale"})
                    out.append(self._emit(al, AlarmState.RAISED, now))
                continue
            if not stale and now - al.last_anomalous_ts >= cfg.clear_after_s:
                out.append(self._emit(al, AlarmState.CLEARED, now))
                al.finish(now, cfg)
            elif al.wants_update(now, cfg):
                out.append(self._emit(al, AlarmState.UPDATED, now))
        return out

    # -- scores for benches and dashboards ------------------------------------------------------------------
    def likelihood(self, asset: str, signal: str) -> float:
        """Latest calibrated anomaly likelihood (0..1) of one series; 0.5 while warming up or unknown."""
        ser = self._series.get((asset, signal))
        return 1.0 - ser.p if ser is not None else 0.5

    def nab_score(self, asset: str, signal: str) -> float:
        """Per-sample score in [0, 1) for NAB-style benchmarks: what an operator would see from the daemon.

        Non-zero only on the sample that raised an alarm of the asset: s/(s + 4), s = the raise's surprise
        (nines) less log10(1 + k), k = this signal's raises in its last `likelihood.long_window` samples
        (0.5 = likelihood 0.9999 on a signal that has not raised lately). The alarms themselves are not changed
        by the discount; it ranks a chattering signal's raises below a quiet one's. The raw per-sample
        likelihood is `likelihood()`.
        """
        ser = self._series.get((asset, signal))
        return ser.nab if ser is not None else 0.0

    def multivariate_tail(self, asset: str) -> float | None:
        """Tail probability of the asset's latest multivariate row (None before the detector scores)."""
        m = self._multi.get(asset)
        return m.p if m is not None and m.det is not None and m.det.n >= m.det.warmup else None

    def surprise(self, asset: str, signal: str) -> float:
        """Latest surprise of one series in nines of likelihood (4 = 0.9999)."""
        ser = self._series.get((asset, signal))
        return nines(ser.p) if ser is not None else 0.0

    def alarm_open(self, asset: str) -> str | None:
        al = self._alarms.get(asset)
        return al.alarm_id if al is not None else None

    # -- lifecycle ------------------------------------------------------------------------------------------
    def knows(self, asset: str, signal: str) -> bool:
        return (asset, signal) in self._series

    @property
    def series_count(self) -> int:
        return len(self._series)

    def stats(self) -> dict[str, Any]:
        return {"series": len(self._series), "assets": len(self._alarms), "samples_scored": self._samples,
                "samples_rejected": self._rejected, "events": self._events,
                "alarms_open": sum(1 for a in self._alarms.values() if a.alarm_id is not None),
                "signals_stale": sum(1 for s in self._series.values() if s.stale)}

    def state(self) -> dict[str, Any]:
        """Everything learnt, JSON-safe (no NaN/inf), for saving across restarts: `state_json`, parsed."""
        return json.loads("".join(self.state_json()))

    def state_json(self) -> Iterator[str]:
        """The state document as JSON text in pieces, one series at a time, for writing to a file as it is made.

        Building the whole state first holds every window of every series as Python objects at once (tens
        of MB at a few thousand series, a peak RSS the rest of the time does not need); this holds one.
        It is the one definition of the document's layout; `state()` parses it.
        """
        dump = functools.partial(json.dumps, allow_nan=False, separators=(",", ":"))
        yield f'{{"version":{STATE_VERSION},"series":['
        for i, ser in enumerate(self._series.values()):
            yield ("," if i else "") + dump(ser.get_state())
        yield '],"alarms":{'
        for i, (a, al) in enumerate(self._alarms.items()):
            yield ("," if i else "") + dump(a) + ":" + dump(al.get_state())
        yield '},"multi":{'
        for i, (a, m) in enumerate(self._multi.items()):
            yield ("," if i else "") + dump(a) + ":" + dump(m.get_state())
        yield '},"counters":' + dump({"samples": self._samples, "rejected": self._rejected,
                                      "events": self._events}) + "}"

    def load_state(self, d: dict[str, Any]) -> None:
        if d.get("version") != STATE_VERSION:
            raise ValueError(f"detector state version {d.get('version')!r} is not {STATE_VERSION}")
        self._series.clear()
        self._alarms.clear()
        self._multi.clear()
        for st in d["series"]:
            self._new_series(st["asset"], st["signal"]).set_state(st, self.detect)
        for asset, mst in d.get("multi", {}).items():
            m = self._multi.get(asset)
            if m is not None and m.order == mst["order"]:
                m.set_state(mst)
        for asset, ast in d["alarms"].items():
            al = self._alarms.setdefault(asset, AssetAlarm(asset))
            al.set_state(ast)
        c = d.get("counters", {})
        self._samples = int(c.get("samples", 0))
        self._rejected = int(c.get("rejected", 0))
        self._events = int(c.get("events", 0))

    def reconfigure(self, detect: DetectSettings, alarm: AlarmSettings, assets: dict[str, AssetContext]) -> None:
        """Live reload: new settings, learnt baselines and open episodes kept where they still fit."""
        saved = self.state()
        self._configure(detect, alarm, assets)
        self.load_state(saved)
