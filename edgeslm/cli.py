"""Command line: run, check-config, demo, simulate, tail, replay, model, outbox."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from edgeslm import __version__

DEFAULT_CONFIG = Path("/etc/edgeslm/edgeslm.toml")


def _config_path(arg: str | None) -> Path:
    return Path(arg) if arg else Path(os.environ.get("EDGESLM_CONFIG", DEFAULT_CONFIG))


def cmd_check_config(args: argparse.Namespace) -> int:
    from edgeslm.settings import EX_CONFIG, ConfigError, load_settings
    if args.example:
        from edgeslm.settings.example import render_example
        sys.stdout.write(render_example())
        return 0
    path = _config_path(args.config)
    try:
        s = load_settings(path)
    except ConfigError as e:
        print(e.render(), file=sys.stderr)
        return EX_CONFIG
    advisor = f"model at {s.advice.model_dir}" if s.advice.model_dir else "rule-based (no advice.model_dir)"
    if s.advice.model_dir and not (s.advice.model_dir / "genai_config.json").is_file():
        advisor += " (WARNING: no genai_config.json there yet; rules until it is installed)"
    print("OK")
    print(f"  config:        {path}")
    print(f"  gateway:       {s.gateway.name} at site {s.gateway.site}, topics under {s.gateway.topic_prefix}/")
    print(f"  broker:        {'mqtts' if s.mqtt.tls.enabled else 'mqtt'}://{s.mqtt.host}:{s.mqtt.port} "
          f"(MQTT {s.mqtt.protocol}, client id {s.client_id}, user {s.mqtt.username or '-'})")
    for sub in s.subscriptions:
        print(f"  subscription:  {sub.topic} ({sub.codec}, QoS {sub.qos})")
    print(f"  assets:        {len(s.assets)} with context ({', '.join(sorted(s.assets)) or 'none'})")
    print(f"  advice:        {advisor}")
    print(f"  outbox:        {s.outbox_path}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from edgeslm import logs
    from edgeslm.settings import EX_CONFIG, ConfigError, load_settings
    path = _config_path(args.config)
    try:
        settings = load_settings(path)
    except ConfigError as e:
        print(e.render(), file=sys.stderr)
        print("edgeslm: refusing to start with an invalid configuration", file=sys.stderr)
        return EX_CONFIG
    from edgeslm.app import App, StartupError  # after validation: a bad config fails fast
    logs.configure(settings.logging.level, settings.logging.format)
    app = App(settings, config_path=path)
    app.install_signal_handlers()
    try:
        app.start()
    except StartupError as e:
        print(f"edgeslm: cannot start: {e}", file=sys.stderr)
        app.stop()
        return 73  # EX_CANTCREAT
    try:
        app.run_forever()
    finally:
        app.stop()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from edgeslm.demo import run_demo
    faults = tuple(f for f in args.faults.split(",") if f)
    return run_demo(args.duration, Path(args.model) if args.model else None, args.broker, args.rate, faults)


def cmd_simulate(args: argparse.Namespace) -> int:
    from edgeslm.sim.machines import Fault, default_plant
    from edgeslm.sim.publisher import Simulator
    machines = default_plant(args.seed)
    by_asset = {m.asset: m for m in machines}
    for spec in args.fault or []:  # KIND:ASSET@SECONDS
        try:
            kind, rest = spec.split(":", 1)
            asset, at = rest.split("@", 1)
            by_asset[asset].faults.append(Fault(kind, asset, float(at)))
        except (ValueError, KeyError) as e:
            print(f"edgeslm simulate: bad --fault '{spec}': expected KIND:ASSET@SECONDS with ASSET one of "
                  f"{', '.join(by_asset)} ({e})", file=sys.stderr)
            return 64
    host, _, port = args.broker.rpartition(":")
    sim = Simulator(host or "127.0.0.1", int(port), machines, rate_hz=args.rate, topic_prefix=args.prefix)
    sim.start()
    print(f"publishing {len(machines)} machines at {args.rate:g} Hz to {args.broker} under {args.prefix}/<asset>/"
          "telemetry; Ctrl-C to stop", flush=True)
    try:
        end = time.monotonic() + args.duration if args.duration else float("inf")
        while time.monotonic() < end:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    print(f"sent {sim.sent} messages")
    return 0


def cmd_tail(args: argparse.Namespace) -> int:
    from edgeslm.watch import Watcher
    host, _, port = args.broker.rpartition(":")
    w = Watcher(host or "127.0.0.1", int(port), args.prefix).start()
    print(f"watching {args.prefix}/# on {args.broker}; Ctrl-C to stop", flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        w.stop()
    return 0


def cmd_model_pull(args: argparse.Namespace) -> int:
    from edgeslm.advice.modelmgmt import pull_model
    from edgeslm.demo import DEFAULT_MODEL_DIR
    dest = Path(args.dir) if args.dir else DEFAULT_MODEL_DIR
    try:
        path = pull_model(args.variant, dest, os.environ.get("HF_ENDPOINT"))
    except Exception as e:
        print(f"edgeslm model pull: {e}", file=sys.stderr)
        return 1
    print(f"model ready in {path}\nset [advice] model_dir = \"{path}\" in your config")
    return 0


def cmd_model_verify(args: argparse.Namespace) -> int:
    from edgeslm.advice.modelmgmt import verify_model
    try:
        report = verify_model(Path(args.dir), args.provider, args.threads)
    except Exception as e:
        print(f"edgeslm model verify: {e}", file=sys.stderr)
        return 1
    for k, v in report.items():
        print(f"  {k}: {v}")
    return 0


def cmd_outbox_stats(args: argparse.Namespace) -> int:
    from edgeslm.outbox import outbox_stats
    from edgeslm.settings import EX_CONFIG, ConfigError, load_settings
    if args.db:
        db = Path(args.db)
    else:
        try:
            db = load_settings(_config_path(args.config)).outbox_path
        except ConfigError as e:
            print(e.render(), file=sys.stderr)
            return EX_CONFIG
    print(json.dumps(outbox_stats(db), indent=2))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from edgeslm.replay import replay_csv
    return replay_csv(Path(args.file), config=Path(args.config) if args.config else None, asset=args.asset,
                      plot=Path(args.plot) if args.plot else None)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgeslm", description="Edge anomaly-explanation daemon for industrial IoT.")
    p.add_argument("--version", action="version", version=f"edgeslm {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("run", help="run the daemon")
    r.add_argument("--config", "-c", help=f"TOML config (default $EDGESLM_CONFIG or {DEFAULT_CONFIG})")
    r.set_defaults(func=cmd_run)

    c = sub.add_parser("check-config", help="validate a config file; exit 78 when invalid")
    c.add_argument("config", nargs="?", help="TOML config file")
    c.add_argument("--example", action="store_true", help="print a complete commented example config and exit")
    c.set_defaults(func=cmd_check_config)

    d = sub.add_parser("demo", help="broker + simulated plant + daemon on this machine, printing alerts and advice")
    d.add_argument("--duration", type=float, default=60.0, help="seconds of simulated telemetry (default 60)")
    d.add_argument("--model", help="onnxruntime-genai model folder (default: the pulled Phi-3 if present)")
    d.add_argument("--broker", help="HOST:PORT of an existing broker instead of a private mosquitto")
    d.add_argument("--rate", type=float, default=5.0, help="samples per second per machine (default 5)")
    d.add_argument("--faults", default="bearing,stuck,pressure_drop", help="faults to inject, comma-separated")
    d.set_defaults(func=cmd_demo)

    s = sub.add_parser("simulate", help="publish simulated machine telemetry to a broker")
    s.add_argument("--broker", default="127.0.0.1:1883", help="HOST:PORT (default 127.0.0.1:1883)")
    s.add_argument("--prefix", default="sim", help="topic prefix (default sim → sim/<asset>/telemetry)")
    s.add_argument("--rate", type=float, default=1.0, help="samples per second per machine")
    s.add_argument("--duration", type=float, default=0, help="seconds; 0 = until Ctrl-C")
    s.add_argument("--fault", action="append", help="KIND:ASSET@SECONDS, e.g. bearing:pump-1@60 (repeatable)")
    s.add_argument("--seed", type=int, default=7)
    s.set_defaults(func=cmd_simulate)

    t = sub.add_parser("tail", help="live, readable view of alerts and advice")
    t.add_argument("--broker", default="127.0.0.1:1883", help="HOST:PORT")
    t.add_argument("--prefix", default="edgeslm", help="our topic prefix")
    t.set_defaults(func=cmd_tail)

    rp = sub.add_parser("replay", help="run the detectors over a recorded CSV and print the alerts")
    rp.add_argument("file", help="CSV with a timestamp column and one column per signal")
    rp.add_argument("--config", help="take detector settings from this config")
    rp.add_argument("--asset", default="replay", help="asset name for the alerts")
    rp.add_argument("--plot", help="draw each signal with its flagged windows to this PNG (needs matplotlib)")
    rp.set_defaults(func=cmd_replay)

    m = sub.add_parser("model", help="get and check the local model")
    msub = m.add_subparsers(dest="model_command", required=True, metavar="ACTION")
    mp = msub.add_parser("pull", help="download Phi-3-mini ONNX from the Hugging Face hub ($HF_ENDPOINT)")
    mp.add_argument("--variant", default="cpu-int4", help="cpu-int4 (default), cuda-int4, cuda-fp16, ...")
    mp.add_argument("--dir", help="destination folder")
    mp.set_defaults(func=cmd_model_pull)
    mv = msub.add_parser("verify", help="load a model folder, generate a little, print speed and memory")
    mv.add_argument("dir")
    mv.add_argument("--provider", default="cpu", choices=["cpu", "cuda", "dml"])
    mv.add_argument("--threads", type=int, default=0)
    mv.set_defaults(func=cmd_model_verify)

    o = sub.add_parser("outbox", help="inspect the store-and-forward outbox")
    osub = o.add_subparsers(dest="outbox_command", required=True, metavar="ACTION")
    os_ = osub.add_parser("stats", help="exact accounting: produced = delivered + dropped + expired + ... + queued")
    os_.add_argument("--config", "-c", help="config file (to find the outbox)")
    os_.add_argument("--db", help="outbox database file")
    os_.set_defaults(func=cmd_outbox_stats)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)
