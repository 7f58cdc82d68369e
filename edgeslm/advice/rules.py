"""Rule-based advice: instant, deterministic, always available. Used when there is no model, when the
model fails or misses the deadline, and as the floor the model must beat."""

from __future__ import annotations

from edgeslm.advice.evidence import clean_name, clean_text, num
from edgeslm.models import Advice, AlarmEvent, Severity, SignalEvidence
from edgeslm.settings.advice import AssetContext

# Keyword in a signal name → (probable cause, recommended action). First match wins.
_SIGNAL_RULES: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("vib", "accel", "velocity", "rms"), "imbalance, misalignment, looseness or bearing wear",
     "inspect bearings, coupling alignment and mounting bolts; take a vibration spectrum"),
    (("bearing",), "bearing wear or lubrication failure", "check bearing lubrication and listen for noise"),
    (("temp", "therm", "degc"), "overheating: cooling, lubrication or overload problem",
     "check cooling, lubrication and load; verify the temperature sensor"),
    (("press",), "blockage, leak, valve or pump problem", "check valves, filters and lines for blockage or leaks"),
    (("flow",), "blockage, leak or pump wear", "check filters, valves and the pump for blockage or wear"),
    (("current", "amp", "power", "load", "torque"), "mechanical overload or electrical fault",
     "check the driven load for binding and the motor supply for phase imbalance"),
    (("volt",), "supply voltage problem", "check the supply, connections and protection devices"),
    (("speed", "rpm", "freq"), "drive or control problem", "check the drive settings and belt/coupling slip"),
    (("level",), "level control or sensor problem", "check the level sensor and fill/drain valves"),
)

_URGENCY = {Severity.LOW: "low", Severity.MEDIUM: "medium", Severity.HIGH: "high", Severity.CRITICAL: "critical"}


def _rule_for(signal: str) -> tuple[str, str] | None:
    s = signal.lower()
    for keys, cause, action in _SIGNAL_RULES:
        if any(k in s for k in keys):
            return cause, action
    return None


def _direction(s: SignalEvidence) -> str:
    if s.baseline_std <= 0:
        return "changed"
    return "above" if s.window_mean >= s.baseline_mean else "below"


def rule_advice(event: AlarmEvent, ctx: AssetContext | None, *, latency_ms: int = 0,
                reason: str | None = None) -> Advice:
    """Advice built from the evidence and the asset's configured failure modes."""
    asset = clean_name(event.asset)
    top = event.signals[0] if event.signals else None
    if top is not None:
        unit = f" {clean_name(top.unit, 16)}" if top.unit else ""
        dev = f" ({num(round(abs(top.deviation), 1))} sd {_direction(top)} baseline)" if top.baseline_std > 0 else ""
        summary = (f"{clean_name(top.signal)} on {asset} is {num(top.window_mean)}{unit}, baseline "
                   f"{num(top.baseline_mean)}{unit}{dev}; severity {event.severity.value}.")
        if len(event.signals) > 1:
            others = ", ".join(clean_name(s.signal) for s in event.signals[1:3])
            summary += f" Also abnormal: {others}."
    else:
        summary = f"Anomaly on {asset}; severity {event.severity.value}."
    causes: list[str] = []
    actions: list[str] = []
    for s in event.signals[:3]:
        rule = _rule_for(s.signal)
        if rule and rule[0] not in causes:
            causes.append(rule[0])
            actions.append(rule[1])
    if ctx is not None:
        # Engineers' known failure modes come first: they know the machine.
        causes = [clean_text(m, 120) for m in ctx.failure_modes[:2]] + causes
    if not causes:
        causes = ["process or equipment change; cause unknown from the signals alone"]
    if not actions:
        actions = ["inspect the asset and compare with recent process or maintenance changes"]
    if event.severity.rank >= Severity.HIGH.rank:
        actions.insert(0, f"check {asset} on site now and be ready to stop it safely")
    return Advice(
        alert_id=event.alarm_id, asset=event.asset, source="rules", summary=summary[:300],
        probable_causes=tuple(causes[:3]), recommended_actions=tuple(actions[:3]),
        urgency=_URGENCY[event.severity], confidence=0.3, latency_ms=latency_ms, model=None, reason=reason,
    )
