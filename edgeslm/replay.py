"""`edgeslm replay FILE.csv`: run the shipped detectors over recorded data and print the alerts.

The CSV needs a timestamp column (epoch seconds, epoch ms or ISO 8601; named timestamp, ts, time or
datetime, or the first column) and one numeric column per signal.
"""

from __future__ import annotations

import csv
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from edgeslm.alerts import iso
from edgeslm.detect.engine import DetectionEngine
from edgeslm.models import AlarmEvent, AlarmState, Sample
from edgeslm.settings import EX_CONFIG, AlarmSettings, ConfigError, DetectSettings, load_settings

TS_NAMES = ("timestamp", "ts", "time", "datetime", "date")


def parse_ts(text: str) -> float:
    text = text.strip()
    try:
        v = float(text)
        return v / 1000.0 if v > 1e11 else v  # epoch milliseconds
    except ValueError:
        pass
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def read_csv(path: Path) -> tuple[list[str], list[tuple[float, list[float | None]]]]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        sample = fh.read(4096)
        fh.seek(0)
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
        rows = csv.reader(fh, dialect)
        header = [h.strip() for h in next(rows)]
        ts_col = next((i for i, h in enumerate(header) if h.lower() in TS_NAMES), 0)
        signals = [h for i, h in enumerate(header) if i != ts_col]
        data: list[tuple[float, list[float | None]]] = []
        for line_no, row in enumerate(rows, start=2):
            if not row:
                continue
            try:
                ts = parse_ts(row[ts_col])
            except ValueError:
                raise ValueError(f"{path}:{line_no}: cannot read timestamp {row[ts_col]!r}") from None
            vals: list[float | None] = []
            for i, cell in enumerate(row):
                if i == ts_col:
                    continue
                try:
                    vals.append(float(cell))
                except ValueError:
                    vals.append(None)  # empty or text cell: that signal has no reading in this row
            data.append((ts, vals))
    return signals, data


def replay_csv(path: Path, config: Path | None = None, asset: str = "replay", plot: Path | None = None,
               out: TextIO | None = None) -> int:
    out = out or sys.stdout
    detect, alarm, assets = DetectSettings(), AlarmSettings(), {}  # the shipped defaults
    if config is not None:
        try:
            s = load_settings(config)
        except ConfigError as e:
            print(e.render(), file=sys.stderr)
            return EX_CONFIG
        detect, alarm, assets = s.detect, s.alarm, s.assets
    try:
        signals, rows = read_csv(path)
    except (OSError, ValueError, csv.Error, StopIteration) as e:
        print(f"edgeslm replay: {e or 'empty file'}", file=sys.stderr)
        return 65
    engine = DetectionEngine(detect, alarm, assets)
    events: list[AlarmEvent] = []
    t0 = time.monotonic()
    total = len(rows)
    for n, (ts, vals) in enumerate(rows, start=1):
        for sig, v in zip(signals, vals, strict=True):
            if v is not None:
                events.extend(engine.process(Sample(asset, sig, ts, v)))
        if sys.stderr.isatty() and (n % 2000 == 0 or n == total):
            print(f"\r  {n}/{total} rows ({100 * n / total:.0f} %)", end="", file=sys.stderr, flush=True)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    for ev in events:
        sigs = ", ".join(f"{s.signal}={s.value:g} ({s.deviation:+.1f} sigma)" for s in ev.signals[:3])
        print(f"{iso(ev.ts)}  {ev.state.value.upper():8} {ev.severity.value:8} {','.join(ev.detectors):20} {sigs}",
              file=out)
    raised = sum(1 for e in events if e.state is AlarmState.RAISED)
    rate = sum(1 for _, v in rows for x in v if x is not None) / max(time.monotonic() - t0, 1e-9)
    print(f"{total} rows x {len(signals)} signals, {raised} alerts raised ({rate:,.0f} samples/s)", file=out)
    if plot is not None:
        return _plot(plot, signals, rows, events)
    return 0


def _plot(path: Path, signals: list[str], rows: list[tuple[float, list[float | None]]],
          events: list[AlarmEvent]) -> int:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("edgeslm replay: --plot needs matplotlib: pip install 'edgeslm[plot]'", file=sys.stderr)
        return 69
    spans: list[tuple[float, float]] = []
    open_at: dict[str, float] = {}
    for ev in events:
        if ev.state is AlarmState.RAISED:
            open_at[ev.alarm_id] = ev.started_ts
        elif ev.state is AlarmState.CLEARED and ev.alarm_id in open_at:
            spans.append((open_at.pop(ev.alarm_id), ev.ts))
    end = rows[-1][0] if rows else 0.0
    spans += [(s, end) for s in open_at.values()]
    fig, axes = plt.subplots(len(signals), 1, figsize=(12, 2.2 * len(signals)), sharex=True, squeeze=False)
    x = [datetime.fromtimestamp(r[0], UTC) for r in rows]
    for ax, (i, sig) in zip(axes[:, 0], enumerate(signals), strict=True):
        ax.plot(x, [r[1][i] for r in rows], lw=0.7)
        ax.set_ylabel(sig, fontsize=8)
        for a, b in spans:
            ax.axvspan(datetime.fromtimestamp(a, UTC), datetime.fromtimestamp(b, UTC), color="red", alpha=0.2)
    axes[0, 0].set_title(f"{len(spans)} flagged windows")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"plot written to {path}")
    return 0
