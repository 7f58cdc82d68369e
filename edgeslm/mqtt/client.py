"""One paho-mqtt 2.x client (callback API v2): connect, reconnect, subscribe, birth/will, publish.

The daemon opens two (docs/design.md, "Two MQTT sessions"): role "in" subscribes to telemetry on the
persistent session, role "out" carries the birth/will and everything we publish. On one connection a flood
of telemetry queued by the broker for us sits in front of the PUBACKs of our own publishes (one TCP
stream, in order), so alerts and status would wait behind seconds of backlog exactly when load is highest.

paho runs every callback on its single network thread and, unless suppressed, an exception escaping
a callback stops that thread while the process lives on. So every callback here hands work off and
returns inside a try/except that logs.
"""

from __future__ import annotations

import json
import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
import structlog
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes

from edgeslm.logs import RateLimited
from edgeslm.mqtt import selfwake, topics, v5props
from edgeslm.mqtt.v5props import SharedTableProperties as Properties
from edgeslm.settings import MqttSettings, Settings

log = structlog.get_logger("edgeslm.mqtt")

# CONNACK reason codes that no retry will fix without a human (MQTT 5 section 3.2.2.2; 3.1.1 return codes 4, 5).
_AUTH_REFUSED = {"Bad user name or password", "Not authorized", "Banned", "Bad authentication method",
                 "Client identifier not valid", "Unsupported protocol version"}

MessageHandler = Callable[[str, bytes, float], None]  # topic, payload, receive time (epoch s)
AckHandler = Callable[[int, int], None]  # mid, reason code value (>= 0x80 is a failure)


def configure_security(c: paho.Client, m: MqttSettings, password: str | None) -> None:
    """Credentials and TLS from [mqtt]; shared by every client we open (daemon, Sparkplug edge node)."""
    if m.username:
        c.username_pw_set(m.username, password)
    if m.tls.enabled:
        c.tls_set(ca_certs=str(m.tls.ca_file) if m.tls.ca_file else None,
                  certfile=str(m.tls.cert_file) if m.tls.cert_file else None,
                  keyfile=str(m.tls.key_file) if m.tls.key_file else None,
                  cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        # Hostname verification stays on unless the engineer turned it off for a lab broker.
        c.tls_insecure_set(not m.tls.verify_hostname)


@dataclass(frozen=True, slots=True)
class PublishResult:
    mid: int
    queued: bool  # False: paho refused it (not connected, queue full); the caller keeps the message


class MqttLink:
    """One MQTT session of the daemon. Thread-safe publish; callbacks registered before `start()`.

    role "both" (one session that subscribes and publishes: tools and tests), "in" (subscribe only: no
    birth, no will) or "out" (birth/will and publishing; no subscriptions).
    """

    _v5props_warned = False  # the fallbacks in _build are logged once per process
    _selfwake_warned = False

    def __init__(self, settings: Settings, on_message: MessageHandler | None = None,
                 client_id: str | None = None, role: str = "both") -> None:
        if role not in ("both", "in", "out"):
            raise ValueError(f"role must be both, in or out, not {role!r}")
        self._s = settings
        self.role = role
        self._birth = role != "in"
        self._on_message = on_message if role != "out" else None
        self.on_ack: AckHandler | None = None
        self.on_connected: list[Callable[[], None]] = []
        self.on_disconnected: list[Callable[[], None]] = []
        self.connected = threading.Event()
        # Set once the broker has acknowledged this connection's subscriptions (at once when there are none):
        # a message published before that is not delivered to us.
        self.subscribed = threading.Event()
        self._sub_mid: int | None = None
        self._auth_logged = False
        self._stopping = False
        # TCP/TLS failures repeat on every retry: log the first, then once a minute with a count.
        self._fail_log = RateLimited(log, 60.0)
        self._v5 = settings.mqtt.protocol == "5"
        self._subs = [(sub.topic, sub.qos) for sub in settings.subscriptions] if role != "out" else []
        self.status_topic = topics.status(settings.gateway.topic_prefix, settings.gateway.name)
        self._client = self._build(client_id or settings.client_id)

    # --- set-up -------------------------------------------------------------------------------------
    def _build(self, client_id: str) -> paho.Client:
        m = self._s.mqtt
        protocol = paho.MQTTv5 if self._v5 else paho.MQTTv311
        kwargs: dict[str, Any] = {}
        if self._v5:
            # paho decodes each MQTT 5 PUBLISH with tables it rebuilds per message (edgeslm/mqtt/v5props.py).
            if not v5props.install() and not MqttLink._v5props_warned:
                MqttLink._v5props_warned = True
                log.warning("mqtt5_properties_not_shared", paho=getattr(paho, "__version__", "?"),
                            hint="this paho's Properties differs from 2.1/2.2: its own (slower) class stays in use")
        else:
            kwargs["clean_session"] = m.clean_start
        if not selfwake.SUPPORTED and not MqttLink._selfwake_warned:
            MqttLink._selfwake_warned = True
            log.warning("mqtt_selfwake_not_supported", hint="this paho's _packet_queue differs from 2.1/2.2: its "
                        "network thread keeps waking itself for each PUBACK (slower, equally correct)")
        # paho's client minus the socketpair wake-up its network thread sends itself for every PUBACK
        # (edgeslm/mqtt/selfwake.py)
        c = selfwake.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol, **kwargs)
        c.suppress_exceptions = True  # belt and braces: our callbacks already catch everything
        # The outbox is the real queue (on disk); paho's in-memory queue is only a small window.
        c.max_inflight_messages_set(max(1, self._s.outbox.inflight))
        c.max_queued_messages_set(max(1, self._s.outbox.inflight) * 4)
        c.reconnect_delay_set(int(max(1, m.reconnect_min_s)), int(max(1, m.reconnect_max_s)))
        configure_security(c, m, self._s.mqtt_password())
        if self._birth:
            c.will_set(self.status_topic, self._status_payload("offline"), qos=1, retain=True)
        c.on_connect = self._handle_connect
        c.on_disconnect = self._handle_disconnect
        c.on_message = self._handle_message
        c.on_publish = self._handle_publish
        c.on_subscribe = self._handle_subscribe
        c.on_connect_fail = self._handle_connect_fail
        return c

    def _status_payload(self, state: str) -> bytes:
        from edgeslm import __version__
        return json.dumps({"state": state, "gateway": self._s.gateway.name, "site": self._s.gateway.site,
                           "version": __version__, "ts": round(time.time(), 3)}).encode()

    # --- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        m = self._s.mqtt
        props = None
        if self._v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = m.session_expiry_s
        self._client.connect_async(m.host, m.port, keepalive=m.keepalive_s, clean_start=m.clean_start,
                                   properties=props)
        self._client.loop_start()
        log.info("mqtt_connecting", role=self.role, host=m.host, port=m.port, protocol=m.protocol, tls=m.tls.enabled,
                 client_id=self._client._client_id.decode())

    def stop(self, timeout: float = 5.0) -> None:
        """Say `offline` explicitly (the will is only for unclean deaths), then disconnect."""
        try:
            if self._birth and self.connected.is_set():
                info = self._client.publish(self.status_topic, self._status_payload("offline"), qos=1, retain=True)
                info.wait_for_publish(timeout=min(timeout, 2.0))
        except (RuntimeError, ValueError) as e:
            log.warning("mqtt_offline_publish_failed", error=str(e))
        self._stopping = True
        self._client.disconnect()
        self._client.loop_stop()
        self.connected.clear()

    def wait_connected(self, timeout: float) -> bool:
        """Connected and, for a subscribing session, its subscriptions acknowledged (SUBACK)."""
        deadline = time.monotonic() + timeout
        return self.connected.wait(timeout) and self.subscribed.wait(max(0.0, deadline - time.monotonic()))

    def update_subscriptions(self, subscriptions: list[Any]) -> None:
        """Live reload: drop filters no longer configured, add new ones (also re-sent on every connect)."""
        if self.role == "out":
            return
        new = [(sub.topic, sub.qos) for sub in subscriptions]
        gone = [t for t, _ in self._subs if t not in {t2 for t2, _ in new}]
        self._subs = new
        if self.connected.is_set():
            if gone:
                self._client.unsubscribe(gone)
            self._client.subscribe(new)
        log.info("mqtt_subscriptions_updated", removed=gone, total=len(new))

    # --- publishing ---------------------------------------------------------------------------------
    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False,
                user_properties: dict[str, str] | None = None, expiry_s: int = 0,
                content_type: str = "application/json", binary: bool = False) -> PublishResult:
        props = None
        if self._v5:
            props = Properties(PacketTypes.PUBLISH)
            props.ContentType = content_type
            if not binary:  # MQTT 5 3.3.2.3.2: 1 = UTF-8 text, which a broker may validate
                props.PayloadFormatIndicator = 1
            if expiry_s:
                props.MessageExpiryInterval = expiry_s
            if user_properties:
                props.UserProperty = list(user_properties.items())
        info = self._client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        return PublishResult(info.mid, info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS)

    # --- paho callbacks (network thread) ------------------------------------------------------------
    def _handle_connect(self, client: paho.Client, userdata: Any, flags: Any, rc: Any, properties: Any) -> None:
        try:
            if rc.is_failure:
                self.connected.clear()
                reason = str(rc)
                if reason in _AUTH_REFUSED:
                    if not self._auth_logged:  # once: retrying every minute must not flood the journal
                        log.error("mqtt_connect_refused", reason=reason, host=self._s.mqtt.host,
                                  hint="check mqtt.username and the password / credential")
                        self._auth_logged = True
                else:
                    log.warning("mqtt_connect_failed", reason=reason)
                return
            self._auth_logged = False
            # Subscriptions are re-sent on every connect: a broker that lost our session would
            # otherwise deliver nothing, silently.
            subs: list[tuple[str, int]] = list(self._subs)
            self.subscribed.clear()
            if self._on_message is not None and subs:
                self._sub_mid = client.subscribe(subs)[1]
            else:
                self.subscribed.set()
            if self._birth:
                client.publish(self.status_topic, self._status_payload("online"), qos=1, retain=True)
            self.connected.set()
            log.info("mqtt_connected", role=self.role, session_present=bool(getattr(flags, "session_present", False)),
                     subscriptions=len(subs))
            for cb in list(self.on_connected):
                cb()
        except Exception:
            log.exception("mqtt_on_connect_error")

    def _handle_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        try:
            # paho calls this inside its `except OSError`, so the exception is still at hand.
            err = sys.exc_info()[1]
            m = self._s.mqtt
            hint = ("check mqtt.tls.ca_file, the broker's certificate and host name"
                    if isinstance(err, ssl.SSLError) else "is the broker running and reachable?")
            self._fail_log.warning("connect_fail", "mqtt_connect_failed", host=m.host, port=m.port,
                                   tls=m.tls.enabled, error=str(err)[:300] if err else "unknown", hint=hint)
        except Exception:
            log.exception("mqtt_on_connect_fail_error")

    def _handle_disconnect(self, client: paho.Client, userdata: Any, flags: Any, rc: Any,
                           properties: Any) -> None:
        try:
            was = self.connected.is_set()
            self.connected.clear()
            self.subscribed.clear()
            if was and self._stopping:
                log.info("mqtt_disconnected", reason="stopping")
            elif was:
                log.warning("mqtt_disconnected", role=self.role, reason=str(rc))
            for cb in list(self.on_disconnected):
                cb()
        except Exception:
            log.exception("mqtt_on_disconnect_error")

    def _handle_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        try:
            if self._on_message is not None:
                payload = msg.payload  # bytes from paho's decoder; typed bytes | bytearray
                self._on_message(msg.topic, payload if type(payload) is bytes else bytes(payload), time.time())
        except Exception:
            log.exception("mqtt_on_message_error", topic=getattr(msg, "topic", "?"))

    def _handle_publish(self, client: paho.Client, userdata: Any, mid: int, rc: Any, properties: Any) -> None:
        try:
            if self.on_ack is not None:
                # paho 2.x calls on_publish for failed MQTT 5 PUBACKs too; the reason code tells.
                self.on_ack(mid, int(getattr(rc, "value", 0)))
        except Exception:
            log.exception("mqtt_on_publish_error", mid=mid)

    def _handle_subscribe(self, client: paho.Client, userdata: Any, mid: int, rcs: Any, properties: Any) -> None:
        try:
            bad = [str(rc) for rc in rcs if rc.is_failure]
            if bad:
                log.error("mqtt_subscribe_refused", reasons=bad)
            if mid == self._sub_mid:
                self.subscribed.set()  # refused filters are logged above; the others are live
        except Exception:
            log.exception("mqtt_on_subscribe_error")
