"""Every payload of the bad-input corpus, through the real MQTT path: counted, and a canary still flows."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.integration.helpers import daemon_settings, publisher, running
from tests.util import wait_for

pytestmark = pytest.mark.broker
CORPUS = Path(__file__).parents[1] / "corpus"


def test_corpus_never_stops_processing(broker: Any, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    files = sorted((CORPUS / "json").glob("*.bin")) + sorted((CORPUS / "plain").glob("*.bin"))
    assert len(files) > 40
    with running(daemon_settings(broker, tmp_path, tag)) as app, publisher(broker) as pub:
        assert app.pipeline is not None
        slow = []
        for i, f in enumerate(files):
            topic = f"t-{tag}/a/telemetry" if f.parent.name == "json" else f"p-{tag}/a/temp"
            before = app.counters.get("samples_in")
            pub.publish(topic, f.read_bytes(), qos=1).wait_for_publish(5)
            canary = json.dumps({"ts": time.time(), "canary": float(i)})
            t0 = time.monotonic()
            pub.publish(f"t-{tag}/canary/telemetry", canary, qos=1).wait_for_publish(5)
            # The canary sample (and, for the few benign corpus entries, the entry's own) arrives within 1 s.
            if not wait_for(lambda b=before: app.counters.get("samples_in") > b, 1.0):
                slow.append(f.name)
            assert time.monotonic() - t0 < 5
        assert not slow, f"canary not processed within 1 s after: {slow}"
        assert app.pipeline.is_alive()
        counters = app.counters.snapshot()
        bad = {k.removeprefix("bad_payload."): v for k, v in counters.items() if k.startswith("bad_payload.")}
        # each rejected payload is counted under a stated reason
        for reason in ("non_finite", "huge_number", "too_deep", "duplicate_key", "bad_utf8", "not_object", "empty",
                       "too_large", "future_timestamp", "old_timestamp", "bad_timestamp", "bad_number"):
            assert bad.get(reason, 0) >= 1, (reason, bad)
        assert counters["bad_payloads"] == sum(bad.values())


def test_invented_signal_names_cannot_grow_memory_past_the_series_limit(broker: Any, tmp_path: Path) -> None:
    """A device that puts a fresh key in every message (a counter as a field name, a UUID...) would make a
    new series each time: past ingest.max_series they are rejected and counted, known series go on."""
    tag = uuid.uuid4().hex[:8]
    with running(daemon_settings(broker, tmp_path, tag, ingest={"max_series": 6})) as app, \
            publisher(broker) as pub:
        assert app.pipeline is not None and app.engine is not None
        t0 = time.time()
        for i in range(40):
            body = {"ts": t0 + i, "temp": 20.0 + i % 3, "press": 1.0, f"junk_{i}": float(i)}
            pub.publish(f"t-{tag}/m1/telemetry", json.dumps(body), qos=1).wait_for_publish(5)
        assert wait_for(lambda: app.counters.get("messages_in") == 40, 10)
        assert app.engine.series_count == 6  # temp, press and the first four junk keys
        assert app.counters.get("bad_payload.too_many_series") == 36
        # the known series are still scored
        assert wait_for(lambda: app.engine.stats()["samples_scored"] == 40 * 2 + 4, 5)
        assert app.pipeline.is_alive()
