"""Private mosquitto brokers for tests that stop, kill, freeze or reconfigure them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgeslm.mqtt.localbroker import BrokerUnavailable, LocalBroker


def private_broker(tmp_path: Path, **kwargs: Any) -> Iterator[LocalBroker]:
    """Yields a started LocalBroker working in tmp_path/broker; closes it afterwards."""
    workdir = tmp_path / "broker"
    workdir.mkdir()
    try:
        b = LocalBroker(workdir=workdir, **kwargs).start()
    except BrokerUnavailable as e:
        pytest.fail(str(e))
    try:
        yield b
    finally:
        b.close()
