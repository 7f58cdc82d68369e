"""Machine models (pure): each step returns readings for one timestamp. Seeded, so runs repeat."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

FAULTS = ("bearing", "stuck", "pressure_drop")


@dataclass(frozen=True)
class SignalSpec:
    base: float
    noise: float
    unit: str
    cycle: float = 0.0  # amplitude of the slow load cycle


@dataclass(frozen=True)
class MachineSpec:
    kind: str
    signals: dict[str, SignalSpec]


PUMP = MachineSpec("centrifugal pump", {
    "bearing_temp": SignalSpec(58.0, 0.3, "degC", 1.0),
    "vibration": SignalSpec(2.1, 0.06, "mm/s", 0.1),
    "discharge_pressure": SignalSpec(6.2, 0.04, "bar", 0.15),
    "flow": SignalSpec(42.0, 0.4, "m3/h", 2.0),
})
PRESS = MachineSpec("hydraulic press", {
    "oil_temp": SignalSpec(47.0, 0.25, "degC", 0.8),
    "hydraulic_pressure": SignalSpec(180.0, 1.0, "bar", 4.0),
    "motor_current": SignalSpec(31.0, 0.3, "A", 1.5),
})
COMPRESSOR = MachineSpec("screw compressor", {
    "discharge_temp": SignalSpec(82.0, 0.4, "degC", 1.2),
    "outlet_pressure": SignalSpec(7.5, 0.03, "bar", 0.1),
    "motor_current": SignalSpec(55.0, 0.5, "A", 2.0),
})
KINDS = {"pump": PUMP, "press": PRESS, "compressor": COMPRESSOR}


@dataclass
class Fault:
    """A fault on one asset, active from `start` (seconds since simulation start)."""

    kind: str
    asset: str
    start: float

    def __post_init__(self) -> None:
        if self.kind not in FAULTS:
            raise ValueError(f"unknown fault '{self.kind}': expected one of {', '.join(FAULTS)}")


@dataclass
class Machine:
    asset: str
    spec: MachineSpec
    rng: random.Random
    faults: list[Fault] = field(default_factory=list)
    _stuck: dict[str, float] = field(default_factory=dict)

    def read(self, t: float) -> dict[str, float]:
        """Readings at `t` seconds since the start: load cycle + noise + active faults."""
        load = math.sin(2 * math.pi * t / 600.0)  # a 10-minute production cycle
        out = {name: s.base + s.cycle * load + self.rng.gauss(0.0, s.noise) for name, s in self.spec.signals.items()}
        for f in self.faults:
            if t >= f.start:
                self._apply(f, t - f.start, out)
        return {k: round(v, 4) for k, v in out.items()}

    def _apply(self, f: Fault, dt: float, out: dict[str, float]) -> None:
        names = list(self.spec.signals)
        if f.kind == "bearing":  # friction heat rises, vibration follows
            temp = next((n for n in names if n.endswith("temp")), names[0])
            out[temp] += min(25.0, 0.8 * dt)
            if "vibration" in out:
                out["vibration"] += min(3.0, 0.08 * dt)
        elif f.kind == "stuck":  # a sensor freezes at its last value
            sig = names[-1]
            out[sig] = self._stuck.setdefault(sig, round(out[sig], 1))
        elif f.kind == "pressure_drop":  # a leak: pressure falls sharply, flow or current reacts
            p = next((n for n in names if "pressure" in n), names[0])
            out[p] -= self.spec.signals[p].base * min(0.35, 0.05 + 0.03 * dt)
            for other in ("flow", "motor_current"):
                if other in out:
                    out[other] *= 0.9


def default_plant(seed: int = 7) -> list[Machine]:
    rng = random.Random(seed)
    return [Machine("pump-1", PUMP, random.Random(rng.random())),
            Machine("press-2", PRESS, random.Random(rng.random())),
            Machine("compressor-3", COMPRESSOR, random.Random(rng.random()))]


def schedule_faults(machines: list[Machine], duration: float, kinds: tuple[str, ...] = FAULTS) -> list[Fault]:
    """Spread the chosen faults over the run, one per machine, after the detectors' warm-up."""
    faults = []
    for i, kind in enumerate(kinds):
        m = machines[i % len(machines)]
        f = Fault(kind, m.asset, duration * (0.35 + 0.15 * i))
        m.faults.append(f)
        faults.append(f)
    return faults
