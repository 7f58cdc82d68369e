"""MqttLink over TLS and with broker authentication, against a private mosquitto and a test CA.

The CA, server and client certificates are made per test session with the openssl CLI (no extra
Python dependency). The TLS options go after LocalBroker's own `listener` line, so they apply to it.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from edgeslm.mqtt.client import MqttLink
from edgeslm.mqtt.localbroker import LocalBroker
from edgeslm.settings import Settings, load_settings
from tests.brokers import private_broker

pytestmark = [pytest.mark.broker]
TIMEOUT = 10.0


def _openssl(*args: str | Path, cwd: Path) -> None:
    subprocess.run(["openssl", *map(str, args)], cwd=cwd, check=True, capture_output=True, timeout=30)


def _make_ca(d: Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2", "-subj", f"/CN=edgeslm test {name}",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-addext", "subjectKeyIdentifier=hash", cwd=d)


def _make_leaf(d: Path, name: str, ca: str, ext: str) -> None:
    (d / f"{name}.ext").write_text(ext + "\nauthorityKeyIdentifier=keyid\nbasicConstraints=CA:FALSE\n")
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
             "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext", cwd=d)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed")
    d = tmp_path_factory.mktemp("pki")
    _make_ca(d, "ca")
    _make_ca(d, "other-ca")
    _make_leaf(d, "server", "ca", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth")
    _make_leaf(d, "client", "ca", "extendedKeyUsage=clientAuth")
    return d


def _broker(tmp_path: Path, conf: str) -> Iterator[LocalBroker]:
    yield from private_broker(tmp_path, persistence=False, extra_conf=conf)


def _tls_conf(pki: Path, require_certificate: bool = False) -> str:
    return "\n".join([f"cafile {pki / 'ca.crt'}", f"certfile {pki / 'server.crt'}", f"keyfile {pki / 'server.key'}",
                      "tls_version tlsv1.2", f"require_certificate {'true' if require_certificate else 'false'}"])


@pytest.fixture
def tls_broker(pki: Path, tmp_path: Path) -> Iterator[LocalBroker]:
    yield from _broker(tmp_path, _tls_conf(pki))


@pytest.fixture
def mtls_broker(pki: Path, tmp_path: Path) -> Iterator[LocalBroker]:
    yield from _broker(tmp_path, _tls_conf(pki, require_certificate=True))


@pytest.fixture
def auth_broker(tmp_path: Path) -> Iterator[LocalBroker]:
    if shutil.which("mosquitto_passwd") is None:
        pytest.skip("mosquitto_passwd not installed")
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwd), "edge", "s3cret-pw"], check=True,
                   capture_output=True, timeout=10)
    passwd.chmod(0o600)
    # `log_type notice` makes mosquitto log each refused attempt: proof that we retried but logged once.
    yield from _broker(tmp_path, f"allow_anonymous false\npassword_file {passwd}\nlog_type notice")


def settings(tmp_path: Path, port: int, host: str = "127.0.0.1", protocol: str = "5", **mqtt: Any) -> Settings:
    return load_settings(None, gateway={"name": "gw-tls", "state_dir": str(tmp_path / "state")},
                         mqtt={"host": host, "port": port, "protocol": protocol, "client_id": f"tls-{time.time_ns()}",
                               "reconnect_min_s": 1, "reconnect_max_s": 1, **mqtt},
                         subscriptions=[{"topic": "t/#"}])


def connects(s: Settings, timeout: float = TIMEOUT) -> bool:
    link = MqttLink(s, on_message=lambda *_: None)
    link.start()
    try:
        return link.wait_connected(timeout)
    finally:
        link.stop()


@pytest.mark.parametrize(("host", "protocol"), [("localhost", "5"), ("127.0.0.1", "5"), ("localhost", "3.1.1")])
def test_tls_with_a_private_ca_and_hostname_verification_connects(
        tls_broker: LocalBroker, pki: Path, tmp_path: Path, host: str, protocol: str) -> None:
    s = settings(tmp_path, tls_broker.port, host=host, protocol=protocol,
                 tls={"enabled": True, "ca_file": str(pki / "ca.crt"), "verify_hostname": True})
    assert connects(s)


def test_tls_with_the_wrong_ca_does_not_connect(tls_broker: LocalBroker, pki: Path, tmp_path: Path) -> None:
    s = settings(tmp_path, tls_broker.port, tls={"enabled": True, "ca_file": str(pki / "other-ca.crt")})
    assert not connects(s, timeout=2.5)


def test_tls_with_the_wrong_ca_is_logged(tls_broker: LocalBroker, pki: Path, tmp_path: Path) -> None:
    s = settings(tmp_path, tls_broker.port, tls={"enabled": True, "ca_file": str(pki / "other-ca.crt")})
    with structlog.testing.capture_logs() as logs:
        assert not connects(s, timeout=2.5)
    assert any(e["log_level"] in ("warning", "error") and e["event"].startswith("mqtt_connect") for e in logs)


def test_client_certificate_is_required_and_accepted(mtls_broker: LocalBroker, pki: Path, tmp_path: Path) -> None:
    tls = {"enabled": True, "ca_file": str(pki / "ca.crt")}
    assert connects(settings(tmp_path, mtls_broker.port, tls={**tls, "cert_file": str(pki / "client.crt"),
                                                                "key_file": str(pki / "client.key")}))
    assert not connects(settings(tmp_path, mtls_broker.port, tls=tls), timeout=2.5)


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_password_from_password_file_connects(auth_broker: LocalBroker, tmp_path: Path, protocol: str) -> None:
    pw = tmp_path / "mqtt_password"
    pw.write_text("s3cret-pw\n")
    assert connects(settings(tmp_path, auth_broker.port, protocol=protocol, username="edge", password_file=str(pw)))


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_bad_password_is_refused_and_logged_once_across_retries(
        auth_broker: LocalBroker, tmp_path: Path, protocol: str) -> None:
    pw = tmp_path / "mqtt_password"
    pw.write_text("wrong\n")
    s = settings(tmp_path, auth_broker.port, protocol=protocol, username="edge", password_file=str(pw))
    log_file = auth_broker.dir / "mosquitto.log"
    link = MqttLink(s, on_message=lambda *_: None)
    with structlog.testing.capture_logs() as logs:
        link.start()
        try:
            deadline = time.monotonic() + TIMEOUT
            # Wait until the broker has refused us at least three times (paho retries every second).
            while log_file.read_text().count("not authorised") < 3 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert log_file.read_text().count("not authorised") >= 3
            assert not link.connected.is_set()
        finally:
            link.stop()
    refused = [e for e in logs if e["event"] == "mqtt_connect_refused"]
    assert len(refused) == 1, logs
    assert refused[0]["reason"] in ("Bad user name or password", "Not authorized")
    assert not [e for e in logs if e["event"] == "mqtt_connect_failed"]
