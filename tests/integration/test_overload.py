"""Overload: at rising rates the inbound queue sheds the oldest, visibly, and the books balance exactly."""

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


def test_rising_rates_until_shedding_with_exact_accounting(broker: Any, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    settings = daemon_settings(broker, tmp_path, tag, ingest={"queue_size": 10})
    sent = 0
    shed_at = None
    with running(settings) as app, publisher(broker) as pub:
        assert app.pipeline is not None
        topic = f"t-{tag}/m1/telemetry"
        body = json.dumps({"a": 1.5, "b": 2.5, "c": 3.5, "d": 4.5}).encode()
        for rate in (200, 1000, 5000, 0):  # 0 = as fast as the client goes
            n = 2000 if rate else 20000
            t0 = time.monotonic()
            infos = []
            for i in range(n):
                infos.append(pub.publish(topic, body, qos=1))
                if rate and i % 50 == 0:
                    time.sleep(max(0.0, t0 + i / rate - time.monotonic()))
            for info in infos:
                info.wait_for_publish(10)
            sent += n

            def settled(total: int = sent) -> bool:
                return app.counters.get("messages_in") + app.pipeline.dropped == total

            assert wait_for(settled, 30), (sent, app.counters.get("messages_in"), app.pipeline.dropped)
            if app.pipeline.dropped and shed_at is None:
                shed_at = rate or "max"
        # Status keeps being published under load and reports the shedding.
        status = app.status()
        assert status["ingest"]["dropped_oldest"] == app.pipeline.dropped
        assert app.pipeline.is_alive()
    assert shed_at is not None, "no shedding even at full speed with a 10-message queue"
    accepted = app.counters.get("messages_in")
    assert accepted + app.pipeline.dropped == sent
    assert accepted > 0
