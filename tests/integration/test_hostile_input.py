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
