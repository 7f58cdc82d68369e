"""Drain the outbox to the broker at QoS 1: a small in-flight window, delete on PUBACK < 0x80.

Resend policy. paho keeps QoS 1 messages it has not seen acknowledged in memory and re-sends them itself
after a reconnect. We do not fight that: on a disconnect the in-flight entries become *orphans* (their
mids stay mapped to their rows, so a PUBACK for paho's re-send still deletes the row), and after the
reconnect we hold our own sending for a short grace period so those re-sends can be acknowledged. Then we
resend from the database, from the oldest queued row, skipping what was acknowledged. The database, not
paho's memory, is the source of truth (paho's memory is gone after a restart), and each reconnect adds at
most one window of duplicates (2 x window only if paho's re-sends are not acknowledged within the grace).
"""

from __future__ import annotations

import heapq
import json
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from edgeslm.outbox.store import Outbox, OutboxError, QueuedRow, RejectOutcome
from edgeslm.settings.outbox import OutboxSettings

log = structlog.get_logger("edgeslm.outbox")

_PREFETCH = 256
_RECONNECT_GRACE_S = 1.0  # how long paho's own re-sends get to be acknowledged before we resend from disk
_REFUSED_RETRY_S = 0.2  # paho refused a publish (its queue full, or not connected): try again after this
_REASON_BAD_TOPIC = 0x90  # MQTT 5 "Topic Name invalid": what we record when paho refuses the topic itself


class Link(Protocol):
    """What the forwarder needs from MqttLink (so tests can substitute a scripted link)."""

    connected: threading.Event
    on_ack: Callable[[int, int], None] | None
    on_connected: list[Callable[[], None]]
    on_disconnected: list[Callable[[], None]]

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False,
                user_properties: dict[str, str] | None = None, expiry_s: int = 0) -> Any: ...


@dataclass(slots=True)
class _Sent:
    row: QueuedRow
    sent_at: float  # monotonic


class Forwarder:
    """One named thread that sends queued rows and turns PUBACKs into deletions."""

    def __init__(self, outbox: Outbox, link: Link, settings: OutboxSettings,
                 on_delivered: Callable[[QueuedRow], None] | None = None) -> None:
        self._ob = outbox
        self._link = link
        self._s = settings
        self._on_delivered = on_delivered
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._acks: deque[tuple[int, int]] = deque()  # filled on paho's thread, emptied on ours
        self._resets = 0  # disconnects seen by paho's thread
        self._seen_resets = 0
        self._inflight: dict[int, _Sent] = {}  # mid -> sent on the current connection
        self._orphans: dict[int, _Sent] = {}  # mid -> sent before the last disconnect (paho may re-send it)
        self._inflight_rows: set[int] = set()
        self._acked: set[int] = set()  # rows acknowledged whose delete has not committed yet
        # One delete transaction in flight at a time; acks arriving meanwhile wait and go in the next one,
        # so a fast drain commits (and fsyncs, and wears the flash) once per batch, not once per message.
        self._delivery: tuple[Future[int], list[int]] | None = None
        self._to_deliver: list[int] = []
        self._rejections: list[tuple[Future[RejectOutcome], _Sent, int]] = []
        self._backoff: dict[int, float] = {}  # row -> monotonic time it may be retried
        self._rewinds: list[tuple[float, int]] = []  # heap of (due, row) to resend from
        self._buffer: deque[QueuedRow] = deque()
        self._cursor = 0  # highest row handed to paho (or skipped) on this connection
        self._hold_until = 0.0
        self._hold_armed = False
        self._retry_at = 0.0
        self._tokens = 1.0
        self._refill_at = time.monotonic()
        self._stalled = False
        self._flush_until = 0.0
        self.counts: dict[str, int] = {"sent": 0, "acked": 0, "rejected": 0, "historical": 0, "resets": 0,
                                       "stalls": 0, "refused": 0}
        link.on_ack = self._on_ack
        link.on_connected.append(self._wake.set)
        link.on_disconnected.append(self._on_disconnected)
        outbox.add_listener(self._wake.set)
        self._thread = threading.Thread(target=self._run, name="outbox-forwarder", daemon=True)

    # --- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Flush briefly (what the caller just put, e.g. the final status), wait (bounded) for outstanding
        PUBACKs so their rows are not sent again later, then stop. Everything else stays queued on disk."""
        self._flush_until = time.monotonic() + min(1.0, timeout / 3)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("outbox_forwarder_stuck", timeout_s=timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def stalled(self) -> bool:
        return self._stalled

    def stats(self) -> dict[str, Any]:
        return {**self.counts, "inflight": len(self._inflight), "stalled": self._stalled}

    # --- paho's network thread: hand off only ----------------------------------------------------------
    def _on_ack(self, mid: int, reason: int) -> None:
        self._acks.append((mid, reason))
        self._wake.set()

    def _on_disconnected(self) -> None:
        self._resets += 1
        self._wake.set()

    # --- forwarder thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        log.info("outbox_forwarder_started", inflight=self._s.inflight)
        while not self._stop.is_set():
            self._wake.clear()
            try:
                timeout = self._step()
            except Exception:
                log.exception("outbox_forwarder_error")
                timeout = 1.0
            if timeout > 0:
                self._wake.wait(timeout)
        while self._link.connected.is_set() and time.monotonic() < self._flush_until:
            self._wake.clear()
            try:
                timeout = self._step()
            except Exception:
                log.exception("outbox_forwarder_error")
                break
            if not self._inflight and not self._buffer and not self._ob.pending(self._cursor, 1):
                break
            if timeout > 0:
                self._wake.wait(min(timeout, 0.05))
        self._finish(deadline=time.monotonic() + 1.0)
        log.info("outbox_forwarder_stopped", **self.counts)

    def _finish(self, deadline: float) -> None:
        """Let in-flight PUBACKs land and their deletes commit, so a clean stop resends nothing."""
        while self._inflight and self._link.connected.is_set() and time.monotonic() < deadline:
            self._process_acks()
            self._wake.wait(0.02)
            self._wake.clear()
        self._process_acks()
        while (self._delivery or self._to_deliver) and time.monotonic() < deadline:
            if self._delivery is not None:
                try:
                    self._delivery[0].result(timeout=max(0.05, deadline - time.monotonic()))
                except Exception as e:
                    log.warning("outbox_delivery_not_recorded", error=str(e))
            self._reap()

    def _step(self) -> float:
        """One pass; returns how long to sleep (0 = more work now)."""
        now = time.monotonic()
        self._process_acks()
        self._reap()
        if self._resets != self._seen_resets:
            self._seen_resets = self._resets
            self._reset("disconnected")
        if not self._link.connected.is_set():
            return 0.5
        if self._hold_armed:
            self._hold_armed = False
            self._hold_until = now + min(_RECONNECT_GRACE_S, self._s.ack_timeout_s) if self._orphans else 0.0
        if now < self._hold_until and self._orphans:
            return min(0.05, self._hold_until - now)
        self._orphans_expire(now)
        self._check_stall(now)
        return self._fill(now)

    def _reset(self, why: str) -> None:
        """The connection is gone: what was in flight may or may not have arrived. Resend from the database."""
        self.counts["resets"] += 1
        self._orphans.update(self._inflight)
        self._inflight.clear()
        self._inflight_rows.clear()
        self._buffer.clear()
        self._cursor = 0  # pending retries keep their rewinds: rows in backoff are skipped until due
        self._hold_armed = True
        self._stalled = False  # the stall ended in a disconnect
        log.info("outbox_resend_from_db", why=why, orphans=len(self._orphans))

    def _orphans_expire(self, now: float) -> None:
        # Orphans whose re-send was never acknowledged: their mids may be reused by paho.
        if self._orphans and now - min(s.sent_at for s in self._orphans.values()) > 60:
            old = [mid for mid, s in self._orphans.items() if now - s.sent_at > 60]
            for mid in old:
                del self._orphans[mid]

    def _process_acks(self) -> None:
        delivered: list[int] = []
        while self._acks:
            mid, reason = self._acks.popleft()
            sent = self._inflight.pop(mid, None)
            if sent is not None:
                self._inflight_rows.discard(sent.row.n)
            else:
                sent = self._orphans.pop(mid, None)
            if sent is None:
                continue  # our own birth/status publish from MqttLink, or a late duplicate
            if reason < 0x80:
                self.counts["acked"] += 1
                if sent.row.n not in self._acked:
                    self._acked.add(sent.row.n)
                    delivered.append(sent.row.n)
                if self._on_delivered is not None:
                    self._on_delivered(sent.row)
            else:
                self.counts["rejected"] += 1
                log.warning("outbox_publish_rejected", topic=sent.row.topic, id=sent.row.id, reason=reason,
                            attempts=sent.row.attempts + 1)
                self._backoff[sent.row.n] = float("inf")  # until the attempt is counted
                self._rejections.append((self._ob.mark_rejected(sent.row.n, reason), sent, reason))
        if self._stalled and (delivered or not self._inflight):
            self._stalled = False
            log.info("outbox_link_recovered")
        self._to_deliver.extend(delivered)

    def _reap(self) -> None:
        """Collect finished writer operations; start the next delete batch."""
        if self._delivery is not None and self._delivery[0].done():
            fut, ns = self._delivery
            self._delivery = None
            if fut.exception() is not None:
                # Not recorded (disk full?): try again; the rows stay excluded from sending meanwhile.
                log.warning("outbox_delivery_not_recorded", rows=len(ns), error=str(fut.exception()))
                self._to_deliver[:0] = ns
            else:
                self._acked.difference_update(ns)
        if self._delivery is None and self._to_deliver:
            ns, self._to_deliver = self._to_deliver, []
            try:
                self._delivery = (self._ob.mark_delivered(ns), ns)
                self._delivery[0].add_done_callback(lambda _f: self._wake.set())
            except OutboxError:  # closed: the rows stay queued and are resent next start (at-least-once)
                self._to_deliver = ns
        if self._rejections:
            keep_r: list[tuple[Future[RejectOutcome], _Sent, int]] = []
            now = time.monotonic()
            for rfut, sent, reason in self._rejections:
                if not rfut.done():
                    keep_r.append((rfut, sent, reason))
                    continue
                n = sent.row.n
                exc = rfut.exception()
                outcome = rfut.result() if exc is None else RejectOutcome("retry", sent.row.attempts + 1)
                if outcome.state == "retry":
                    delay = min(self._s.retry_max_s, self._s.retry_base_s * 2 ** max(0, outcome.attempts - 1))
                    due = now + delay * random.uniform(0.8, 1.2)
                    self._backoff[n] = due
                    heapq.heappush(self._rewinds, (due, n))
                else:
                    self._backoff.pop(n, None)
                    if outcome.state == "dead":
                        log.error("outbox_dead_lettered", topic=sent.row.topic, id=sent.row.id, reason=reason,
                                  attempts=outcome.attempts)
            self._rejections = keep_r

    def _check_stall(self, now: float) -> None:
        if not self._inflight:
            return
        oldest = min(s.sent_at for s in self._inflight.values())
        waited = now - oldest
        if waited > self._s.ack_timeout_s and not self._stalled:
            self._stalled = True
            self.counts["stalls"] += 1
            log.warning("outbox_link_stalled", waited_s=round(waited, 2), inflight=len(self._inflight))
        if waited > 4 * self._s.ack_timeout_s:
            # Still "connected" but nothing acknowledged for long: a lost PUBACK. Resend from the database.
            self._reset("ack_timeout")
            self._hold_armed = False

    def _take_token(self, now: float) -> bool:
        rate = self._s.replay_rate_per_s
        burst = max(1.0, rate / 10)
        self._tokens = min(burst, self._tokens + (now - self._refill_at) * rate)
        self._refill_at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def _fill(self, now: float) -> float:
        window = self._s.inflight
        while self._rewinds and self._rewinds[0][0] <= now:
            _, n = heapq.heappop(self._rewinds)
            if self._backoff.get(n, 0.0) <= now:
                self._backoff.pop(n, None)
                if n <= self._cursor:
                    self._cursor = n - 1
                    self._buffer.clear()
        if now < self._retry_at:
            return self._retry_at - now
        wall = time.time()
        while len(self._inflight) < window:
            if not self._buffer:
                self._buffer.extend(self._ob.pending(self._cursor, _PREFETCH))
                if not self._buffer:
                    return self._idle_timeout(now)
            row = self._buffer[0]
            if row.n in self._acked or row.n in self._inflight_rows or row.n in self._backoff:
                self._buffer.popleft()
                self._cursor = max(self._cursor, row.n)
                continue
            historical = wall - row.created > self._s.historical_after_s
            if historical and not self._take_token(now):
                return 1.0 / self._s.replay_rate_per_s
            self._buffer.popleft()
            if not self._send(row, historical, now):
                return _REFUSED_RETRY_S
            self._cursor = max(self._cursor, row.n)
        return self._idle_timeout(now)

    def _idle_timeout(self, now: float) -> float:
        t = 0.5
        if self._rewinds:
            t = min(t, max(0.0, self._rewinds[0][0] - now))
        if self._inflight:
            t = min(t, self._s.ack_timeout_s / 4)
        return max(t, 0.001)

    def _send(self, row: QueuedRow, historical: bool, now: float) -> bool:
        payload = row.payload
        props = {"id": row.id, "seq": str(row.seq)}
        if historical:
            if b'"historical"' in payload:  # the caller set it: rewrite through JSON to keep keys unique
                obj = json.loads(payload)
                obj["historical"] = True
                payload = json.dumps(obj, allow_nan=False, separators=(",", ":"), ensure_ascii=False).encode()
            else:  # stored payloads are our own `{"id":...,"seq":N,...}` objects: append the flag
                payload = payload[:-1] + b',"historical":true}'
            props["historical"] = "true"
            self.counts["historical"] += 1
        try:
            res = self._link.publish(row.topic, payload, qos=1, retain=row.retain, user_properties=props,
                                     expiry_s=self._s.message_expiry_s)
        except (ValueError, TypeError) as e:
            # paho refuses this message itself (invalid topic, too large): no retry can fix it.
            log.error("outbox_publish_invalid", topic=row.topic, id=row.id, error=str(e))
            self._backoff[row.n] = float("inf")
            self._rejections.append((self._ob.mark_rejected(row.n, _REASON_BAD_TOPIC, final=True),
                                     _Sent(row, now), _REASON_BAD_TOPIC))
            return True
        self.counts["sent"] += 1
        if not res.queued:
            # paho did not take it for sending now (not connected, or its queue is full). It may still hold
            # a copy that it sends on reconnect, so map the mid like an orphan; we resend from disk later.
            self.counts["refused"] += 1
            if res.mid:
                self._orphans[res.mid] = _Sent(row, now)
            self._retry_at = now + _REFUSED_RETRY_S
            self._cursor = min(self._cursor, row.n - 1)
            self._buffer.clear()
            return False
        self._orphans.pop(res.mid, None)
        self._inflight[res.mid] = _Sent(row, now)
        self._inflight_rows.add(row.n)
        return True
