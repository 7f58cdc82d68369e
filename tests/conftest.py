"""Shared fixtures: a REAL MQTT broker and the real tiny onnxruntime-genai model.

Broker, in order: $EDGESLM_TEST_BROKER (host:port), else testcontainers' Mosquitto when a Docker
engine answers, else the `mosquitto` binary on a free loopback port. Never a mock.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import structlog

from edgeslm.mqtt.localbroker import BrokerUnavailable, LocalBroker
from tests.brokers import private_broker

FIXTURE_MODEL = Path(__file__).parent / "fixtures" / "tiny-phi3"


@dataclass(frozen=True)
class BrokerAddr:
    host: str
    port: int
    kind: str  # "env", "container" or "binary"


def _docker_answers() -> bool:
    try:
        import docker  # testcontainers depends on it
        client = docker.from_env(timeout=2)
        client.ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def broker() -> Iterator[BrokerAddr]:
    env = os.environ.get("EDGESLM_TEST_BROKER")
    if env:
        host, _, port = env.rpartition(":")
        yield BrokerAddr(host or "127.0.0.1", int(port), "env")
        return
    if _docker_answers():
        try:
            from testcontainers.community.mqtt import MosquittoContainer
        except ImportError:
            from testcontainers.mqtt import MosquittoContainer
        with MosquittoContainer() as c:
            yield BrokerAddr(c.get_container_host_ip(), int(c.get_exposed_port(c.MQTT_PORT)), "container")
        return
    try:
        b = LocalBroker().start()
    except BrokerUnavailable as e:
        pytest.fail(f"no MQTT broker for the tests: {e}")
    try:
        yield BrokerAddr(b.host, b.port, "binary")
    finally:
        b.close()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalBroker]:
    """A private mosquitto binary that a fault test may stop, restart, kill or freeze."""
    yield from private_broker(tmp_path)


@pytest.fixture(scope="session")
def fixture_model() -> Path:
    if not (FIXTURE_MODEL / "genai_config.json").is_file():
        pytest.fail(f"fixture model missing at {FIXTURE_MODEL}; rebuild with tools/build_test_model/build.sh")
    return FIXTURE_MODEL


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """The demo and the CLI configure structlog globally (e.g. warnings only); each test starts clean."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()
