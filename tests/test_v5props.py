"""SharedTableProperties behaves exactly as paho's Properties, and paho decodes with it once installed."""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Iterator

import paho.mqtt._packet as paho_packet
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import MQTTException, Properties

from edgeslm.mqtt import v5props
from edgeslm.mqtt.v5props import SharedTableProperties
from tests.conftest import BrokerAddr


@pytest.fixture
def paho_as_it_was() -> Iterator[None]:
    """Whatever a test installs into paho is undone after it (as it was when the test started)."""
    was = v5props.installed()
    yield
    if was:
        v5props.install()
    else:
        v5props.uninstall()

# Every property a PUBLISH may carry, each type of value paho encodes (byte, 2/4-byte and variable integers,
# binary, UTF-8 string, string pairs; the two that may repeat, given as lists).
PUBLISH_PROPS = {"PayloadFormatIndicator": 1, "MessageExpiryInterval": 3600, "ContentType": "application/json",
                 "ResponseTopic": "plant/reply/äö", "CorrelationData": b"\x00\x01corr",
                 "SubscriptionIdentifier": [7, 300],
                 "TopicAlias": 12, "UserProperty": [("site", "Hall 3"), ("line", "ß-2"), ("site", "dup")]}


def _packed(cls: type[Properties]) -> bytes:
    p = cls(PacketTypes.PUBLISH)
    for k, v in PUBLISH_PROPS.items():
        setattr(p, k, v)
    return p.pack()


def _publish_packet(props: bytes) -> bytes:
    topic = b"plant/press1/telemetry"
    return struct.pack("!H", len(topic)) + topic + struct.pack("!H", 42) + props + b'{"ts": 1, "v": 2.5}'


def test_packs_the_same_bytes_as_paho() -> None:
    assert _packed(SharedTableProperties) == _packed(Properties)
    assert SharedTableProperties(PacketTypes.PUBLISH).pack() == Properties(PacketTypes.PUBLISH).pack() == b"\x00"


@pytest.mark.parametrize("raw", [_packed(Properties), b"\x00"], ids=["all-publish-properties", "none"])
def test_unpacks_what_paho_unpacks(raw: bytes) -> None:
    ours, n_ours = SharedTableProperties(PacketTypes.PUBLISH).unpack(raw)
    theirs, n_theirs = Properties(PacketTypes.PUBLISH).unpack(raw)
    assert n_ours == n_theirs == len(raw)
    assert ours.json() == theirs.json()
    assert str(ours) == str(theirs)
    assert ours.isEmpty() == theirs.isEmpty() == (raw == b"\x00")
    if raw != b"\x00":
        assert ours.UserProperty == [("site", "Hall 3"), ("line", "ß-2"), ("site", "dup")]
        assert ours.SubscriptionIdentifier == [7, 300]
        assert ours.CorrelationData == b"\x00\x01corr"


def test_reused_object_is_cleared_like_paho() -> None:
    """unpack() clears first: a second packet's properties must not inherit the first one's."""
    ours, theirs = SharedTableProperties(PacketTypes.PUBLISH), Properties(PacketTypes.PUBLISH)
    for p in (ours, theirs):
        p.unpack(_packed(Properties))
        p.unpack(b"\x00")
    assert ours.json() == theirs.json() == {}
    assert vars(ours) == {"packetType": PacketTypes.PUBLISH}


@pytest.mark.parametrize(("name", "value"), [("NoSuchProperty", 1), ("TopicAlias", 0), ("ReceiveMaximum", 10),
                                             ("PayloadFormatIndicator", 2)])
def test_validation_is_paho_s(name: str, value: object) -> None:
    for cls in (Properties, SharedTableProperties):
        with pytest.raises(MQTTException) as e:
            setattr(cls(PacketTypes.PUBLISH), name, value)
        assert str(e.value)


def test_tables_are_shared_not_rebuilt() -> None:
    a, b = SharedTableProperties(PacketTypes.PUBLISH), SharedTableProperties(PacketTypes.CONNECT)
    assert a.names is b.names and a.properties is b.properties
    assert a.names == Properties(PacketTypes.PUBLISH).names


@pytest.mark.usefixtures("paho_as_it_was")
def test_install_makes_paho_decode_with_it() -> None:
    v5props.uninstall()
    stock = paho_packet.decode_publish(0x32, _publish_packet(_packed(Properties)), MQTTProtocolVersion.MQTTv5)
    assert type(stock.properties) is Properties
    assert v5props.install() and v5props.install()  # idempotent
    assert v5props.installed()
    res = paho_packet.decode_publish(0x32, _publish_packet(_packed(Properties)), MQTTProtocolVersion.MQTTv5)
    assert type(res.properties) is SharedTableProperties
    assert res.properties.json() == Properties(PacketTypes.PUBLISH).unpack(_packed(Properties))[0].json()
    assert res.payload == b'{"ts": 1, "v": 2.5}' and res.topic == b"plant/press1/telemetry" and res.mid == 42


@pytest.mark.usefixtures("paho_as_it_was")
def test_paho_still_takes_its_own_class_where_it_checks() -> None:
    """paho's client checks isinstance(properties, Properties) (will_set, publish): stock and shared both pass."""
    v5props.install()
    for cls in (Properties, SharedTableProperties):
        c = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        props = cls(PacketTypes.WILLMESSAGE)
        props.WillDelayInterval = 5
        c.will_set("plant/status", b"offline", qos=1, retain=True, properties=props)
        assert c._will_properties is props


@pytest.mark.usefixtures("paho_as_it_was")
def test_install_refuses_a_paho_it_does_not_know() -> None:
    """Another class in paho's decoders (a future paho, another patch): left alone, paho's path stays."""
    v5props.uninstall()

    class Other(Properties):
        pass

    paho_packet.Properties = Other  # type: ignore[attr-defined,misc]
    try:
        assert not v5props.install()
        assert paho_packet.Properties is Other and not v5props.installed()
    finally:
        paho_packet.Properties = Properties  # type: ignore[attr-defined,misc]


@pytest.mark.usefixtures("paho_as_it_was")
def test_properties_arrive_intact_through_a_real_broker(broker: BrokerAddr) -> None:
    """A v5 publish with properties, through the broker, to a paho subscriber decoding with the shared tables."""
    v5props.install()
    topic = f"v5props/{time.time_ns()}/t"
    got: list[paho.MQTTMessage] = []
    arrived, subscribed = threading.Event(), threading.Event()

    def on_message(c: paho.Client, u: object, m: paho.MQTTMessage) -> None:
        got.append(m)
        arrived.set()

    sub = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    sub.on_message = on_message
    sub.on_subscribe = lambda *_: subscribed.set()
    sub.connect(broker.host, broker.port)
    sub.subscribe(topic, qos=1)
    sub.loop_start()
    pub = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    try:
        assert subscribed.wait(10)
        props = Properties(PacketTypes.PUBLISH)
        props.ContentType = "application/json"
        props.MessageExpiryInterval = 600
        props.UserProperty = [("alert_id", "0193-abc"), ("site", "Hall 3")]
        pub.publish(topic, b'{"v": 1}', qos=1, properties=props).wait_for_publish(10)
        assert arrived.wait(10)
    finally:
        for c in (pub, sub):
            c.disconnect()
            c.loop_stop()
    m = got[0]
    assert type(m.properties) is SharedTableProperties
    assert m.properties.ContentType == "application/json"
    assert m.properties.UserProperty == [("alert_id", "0193-abc"), ("site", "Hall 3")]
    assert 0 < m.properties.MessageExpiryInterval <= 600  # the broker passes the remaining lifetime
    assert m.payload == b'{"v": 1}'
