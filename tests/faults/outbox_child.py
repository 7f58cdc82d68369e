"""A stand-in daemon for kill -9 tests: the real Outbox + Forwarder, ids printed only after put() returned.

    python outbox_child.py DB HOST PORT SEED MODE PREFIX

MODE "burst": producers put in seeded bursts while the forwarder drains. MODE "drain": put a backlog
with the forwarder off, print DRAINING, then drain. Output lines: `READY <ms>`, `ID <id>`, `DRAINING`.
Each line is one os.write (atomic on a pipe), so a kill never leaves a half id that looks whole.
"""

from __future__ import annotations

import os
import random
import sys
import threading
import time
from pathlib import Path

T0 = time.monotonic()

from edgeslm.mqtt.client import MqttLink  # noqa: E402
from edgeslm.outbox import Forwarder, MessageClass, Outbox, OutboxError  # noqa: E402
from edgeslm.settings import load_settings  # noqa: E402

CLASSES = [MessageClass.ALERT, MessageClass.ALERT, MessageClass.ADVICE]


def say(line: str) -> None:
    os.write(1, (line + "\n").encode())


def main() -> None:
    db, host, port, seed, mode, prefix = sys.argv[1:7]
    rng = random.Random(int(seed))
    s = load_settings(None, subscriptions=[{"topic": "unused/#"}], gateway={"state_dir": str(Path(db).parent)},
                      mqtt={"host": host, "port": int(port), "client_id": f"child-{prefix}", "reconnect_min_s": 1,
                            "reconnect_max_s": 1},
                      outbox={"min_free_disk_mb": 0, "coalesce_status": False})
    ob = Outbox(Path(db), s.outbox)
    say(f"READY {(time.monotonic() - T0) * 1000:.0f}")
    link = MqttLink(s)
    fwd = Forwarder(ob, link, s.outbox)

    def producer(k: int, count: int, r: random.Random) -> None:
        for i in range(count):
            topic = f"{prefix}/t{r.randrange(4)}"
            try:
                ident = ob.put(topic, {"k": k, "i": i, "v": r.random()}, r.choice(CLASSES))
            except OutboxError as e:
                say(f"ERR {e}")
                continue
            say(f"ID {ident}")
            if r.random() < 0.05:
                time.sleep(r.uniform(0, 0.01))  # bursts with pauses

    if mode == "drain":
        producer(0, 1500, rng)
        say("DRAINING")
        fwd.start()
        link.start()
        time.sleep(30)
    else:
        fwd.start()
        link.start()
        threads = [threading.Thread(target=producer, args=(k, 100_000, random.Random(rng.random())),
                                    name=f"producer-{k}", daemon=True) for k in range(3)]
        for t in threads:
            t.start()
        time.sleep(30)


if __name__ == "__main__":
    main()
