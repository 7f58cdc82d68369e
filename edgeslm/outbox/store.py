"""The durable outbox: a SQLite (WAL, synchronous=FULL) queue of everything we publish.

One writer thread owns every write and groups whatever is waiting (puts from several threads, the
forwarder's acks and rejections, expiry) into one transaction: one fsync per batch instead of one per
message. `put()` returns only after its batch has committed, so a returned id survives `kill -9`.

Accounting lives in the same transactions as the rows it counts, so it is exact across crashes:
    produced == delivered + dropped + expired + dead_lettered + queued
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

import structlog
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from edgeslm.ids import uuid7
from edgeslm.settings.outbox import OutboxSettings

log = structlog.get_logger("edgeslm.outbox")

SCHEMA_VERSION = 1
# queue.n comes from the persistent counter "next_n", never from SQLite's max(rowid)+1, which restarts
# once the queue empties and would hide new rows from the forwarder's "everything after n" cursor.
# Per-topic seqs live in the same counters table ("seq/<topic>"): every commit touches few pages
# (queue leaf, index leaf, counters), which is what the flash pays for.
_PUT_TIMEOUT_S = 30.0  # a put that waits longer than this on the writer is reported as failed
_EXPIRE_EVERY_S = 1.0
_INSERT_CHUNK = 100  # rows per multi-row INSERT (9 parameters each, far below SQLite's limit)
_DELETE_CHUNK = 500
_SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_CANTOPEN, _SQLITE_FULL, _SQLITE_NOTADB = 8, 10, 11, 14, 13, 26
_UNREADABLE = {_SQLITE_READONLY, _SQLITE_CORRUPT, _SQLITE_NOTADB, _SQLITE_CANTOPEN}
_NEARLY_FULL_BYTES = 1024 * 1024  # below this, an I/O error at open means "disk full", not "corrupt"

_SCHEMA = """
CREATE TABLE queue(
  n INTEGER PRIMARY KEY, id TEXT NOT NULL, topic TEXT NOT NULL, seq INTEGER NOT NULL,
  cls INTEGER NOT NULL, retain INTEGER NOT NULL, created REAL NOT NULL, size INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  payload BLOB NOT NULL);
CREATE INDEX queue_cls ON queue(cls, n);
CREATE TABLE counters(name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE dead_letter(
  n INTEGER PRIMARY KEY, id TEXT NOT NULL, topic TEXT NOT NULL, seq INTEGER NOT NULL, cls INTEGER NOT NULL,
  retain INTEGER NOT NULL, created REAL NOT NULL, attempts INTEGER NOT NULL, reason INTEGER NOT NULL,
  dead_at REAL NOT NULL, payload BLOB NOT NULL);
"""


class MessageClass(IntEnum):
    """What a message is; the value is its keep-priority (lowest is dropped first when full)."""

    STATUS = 1
    ADVICE = 2
    ALERT = 3

    @property
    def label(self) -> str:
        return self.name.lower()


class OutboxError(Exception):
    """The outbox could not do what was asked; for `put`, the message was NOT stored."""


class OutboxFull(OutboxError):
    """`put` did not store the message. `accounted` is True when it was counted as dropped (queue full of
    more important messages, or larger than max_bytes); False when nothing could be written (disk full),
    in which case only the in-memory `unstored` counter knows about it."""

    def __init__(self, message: str, *, accounted: bool) -> None:
        super().__init__(message)
        self.accounted = accounted


class OutboxClosed(OutboxError):
    pass


@dataclass(frozen=True, slots=True)
class QueuedRow:
    n: int  # queue position (SQLite rowid): FIFO order
    id: str
    topic: str
    seq: int
    cls: MessageClass
    retain: bool
    created: float
    payload: bytes
    attempts: int


@dataclass(frozen=True, slots=True)
class RejectOutcome:
    state: str  # "retry", "dead" (moved to the dead-letter table) or "gone" (no longer queued)
    attempts: int


@dataclass(slots=True)
class _Put:
    id: str
    topic: str
    body: bytes  # the payload without id/seq: `{...}`
    cls: MessageClass
    retain: bool
    created: float
    fut: Future[int] = field(default_factory=Future)


@dataclass(slots=True)
class _Call:
    fn: Callable[[_Txn], Any]
    fut: Future[Any] = field(default_factory=Future)


_STOP = object()


class _Txn:
    """One batch transaction: the connection plus counter and sequence changes applied only on COMMIT."""

    def __init__(self, ob: Outbox, conn: sqlite3.Connection, disk_low: bool) -> None:
        self.ob = ob
        self.conn = conn
        self.disk_low = disk_low
        self.delta: Counter[str] = Counter()
        self.seqs: dict[str, int] = {}
        self.pending: list[tuple[Any, ...]] = []  # rows to insert, in queue order

    def flush(self) -> None:
        """Insert pending rows with one statement per chunk. Every SQLite call releases the GIL and may wait
        up to a switch interval (5 ms) to get it back from a busy thread, so the writer makes few calls."""
        for i in range(0, len(self.pending), _INSERT_CHUNK):
            chunk = self.pending[i:i + _INSERT_CHUNK]
            self.conn.execute("INSERT INTO queue(n, id, topic, seq, cls, retain, created, size, payload) VALUES "
                              + ",".join(["(?,?,?,?,?,?,?,?,?)"] * len(chunk)),
                              [v for row in chunk for v in row])
        self.pending.clear()

    @property
    def rows(self) -> int:
        return self.ob._counters["queued_rows"] + self.delta["queued_rows"]

    @property
    def bytes(self) -> int:
        return self.ob._counters["queued_bytes"] + self.delta["queued_bytes"]

    def removed(self, size: int, *keys: str) -> None:
        self.delta["queued_rows"] -= 1
        self.delta["queued_bytes"] -= size
        for k in keys:
            self.delta[k] += 1

    def next_seq(self, topic: str) -> int:
        seq = self.seqs.get(topic)
        if seq is None:
            seq = self.ob._seqs.get(topic)
        if seq is None:
            row = self.conn.execute("SELECT value FROM counters WHERE name=?", ("seq/" + topic,)).fetchone()
            seq = row[0] if row else 0
        self.seqs[topic] = seq + 1
        return seq + 1

    def next_n(self) -> int:
        self.delta["next_n"] += 1
        return self.ob._counters["next_n"] + self.delta["next_n"]


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, allow_nan=False, separators=(",", ":"), ensure_ascii=False).encode()


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _errcode(e: BaseException) -> int:
    return int(getattr(e, "sqlite_errorcode", 0) or 0) & 0xFF


class Outbox:
    """Opens (recovering if needed) the queue at `path`; `put` is thread-safe and durable on return."""

    def __init__(self, path: Path, settings: OutboxSettings) -> None:
        self.path = Path(path)
        self.settings = settings
        self.recovered_from: Path | None = None
        self._counters: Counter[str] = Counter()
        self._seqs: dict[str, int] = {}
        self._stats_lock = threading.Lock()
        self._unstored = 0  # put() failures that never reached the disk (disk full): memory only
        self._q: queue.Queue[Any] = queue.Queue()
        self._closed = False
        self._submit_lock = threading.Lock()
        self._disk_low_logged = 0.0
        self._listeners: list[Callable[[], None]] = []
        self._last_puts = 0
        t0 = time.monotonic()
        self._conn = self._open()
        self._reader = self._connect()
        self._reader_lock = threading.Lock()
        self._load_counters()
        self._writer = threading.Thread(target=self._run, name="outbox-writer", daemon=True)
        self._writer.start()
        log.info("outbox_opened", path=str(self.path), queued=self._counters["queued_rows"],
                 recovered_from=str(self.recovered_from) if self.recovered_from else None,
                 open_ms=round((time.monotonic() - t0) * 1000, 1))

    # --- opening and recovery -----------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=5.0)
        conn.execute("PRAGMA busy_timeout=5000")
        return conn

    def _open(self) -> sqlite3.Connection:
        # A full disk can make SQLite fail to create the -wal/-shm files. That is transient and the file is
        # healthy: retry with backoff (never move it aside), then give up with a clear error.
        retrying = Retrying(retry=retry_if_exception_type(_DiskFull), reraise=True,
                            wait=wait_exponential(multiplier=0.5, max=10),
                            stop=stop_after_delay(self.settings.open_retry_s),
                            before_sleep=lambda rs: log.error("outbox_disk_full_at_start", path=str(self.path),
                                                              attempt=rs.attempt_number))
        try:
            return retrying(self._open_or_recover)
        except _DiskFull as e:
            raise OutboxError(f"cannot open outbox {self.path}: disk full ({e})") from e
        except OSError as e:
            raise OutboxError(f"cannot open outbox {self.path}: {e.strerror or e}") from e

    def _disk_nearly_full(self) -> bool:
        try:
            st = os.statvfs(self.path.parent)
        except OSError:
            return False
        return st.f_bavail * st.f_frsize < _NEARLY_FULL_BYTES

    def _open_or_recover(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            self._create_fresh()
        try:
            return self._open_checked()
        except sqlite3.DatabaseError as e:
            code = _errcode(e)
            if code in (_SQLITE_IOERR, _SQLITE_CANTOPEN, _SQLITE_FULL) and self._disk_nearly_full():
                raise _DiskFull(str(e)) from e
            if code not in _UNREADABLE and not isinstance(e, _Unusable) and code != _SQLITE_IOERR:
                raise OutboxError(f"cannot open outbox {self.path}: {e}") from e
            reason = str(e)
        self.recovered_from = self._move_aside(reason)
        self._create_fresh()
        try:
            return self._open_checked()
        except sqlite3.DatabaseError as e:
            raise OutboxError(f"cannot open a fresh outbox at {self.path}: {e}") from e

    def _open_checked(self) -> sqlite3.Connection:
        if self.path.stat().st_size == 0:
            raise _Unusable("empty file")  # we never leave an empty file (fresh ones are built aside)
        conn = self._connect()
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise _Unusable(f"journal_mode stays {mode}")
            conn.execute("PRAGMA synchronous=FULL")
            check = conn.execute("PRAGMA quick_check").fetchall()
            if check != [("ok",)]:
                raise _Unusable("quick_check: " + "; ".join(str(r[0]) for r in check[:3]))
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version != SCHEMA_VERSION:
                raise _Unusable(f"schema version {version}, expected {SCHEMA_VERSION}")
            try:  # write probe: a read-only file fails here, before we report ready
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO counters(name, value) VALUES('opened', 1) "
                             "ON CONFLICT(name) DO UPDATE SET value=value+1")
                conn.execute("COMMIT")
            except sqlite3.OperationalError as e:
                if _errcode(e) != _SQLITE_FULL:
                    raise
                # A full disk is not a broken database: start anyway (no crash loop); puts fail with
                # OutboxFull until space returns, then resume by themselves.
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                log.error("outbox_disk_full_at_start", path=str(self.path))
        except BaseException:
            conn.close()
            raise
        return conn

    def _create_fresh(self) -> None:
        """Build the schema in a side file and rename it in: a crash never leaves a half-made database."""
        for suffix in ("-wal", "-shm"):  # a stray WAL without its database would be replayed into the new one
            stray = Path(str(self.path) + suffix)
            if stray.exists():
                self._move_aside("stray " + suffix, only=stray)
        tmp = self.path.with_name(self.path.name + ".new")
        for p in (tmp, Path(str(tmp) + "-journal")):
            p.unlink(missing_ok=True)
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=DELETE")
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(_SCHEMA)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        finally:
            conn.close()
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)

    def _move_aside(self, reason: str, only: Path | None = None) -> Path:
        """Rename the unusable database (and its -wal/-shm) to `<name>.corrupt-<UTC time>`: never deleted."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        base = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        i = 1
        while any(Path(str(base) + s).exists() for s in ("", "-wal", "-shm")):
            base = self.path.with_name(f"{self.path.name}.corrupt-{stamp}.{i}")
            i += 1
        sources = [only] if only is not None else [Path(str(self.path) + s) for s in ("", "-wal", "-shm")]
        try:
            for src in sources:
                if src.exists():
                    os.replace(src, Path(str(base) + src.name.removeprefix(self.path.name)))
        except OSError as e:
            raise OutboxError(f"outbox {self.path} is unusable ({reason}) and cannot be moved aside: "
                              f"{e.strerror or e}") from e
        _fsync_dir(self.path.parent)
        log.error("outbox_moved_aside", path=str(self.path), moved_to=str(base), reason=reason)
        return base

    def _load_counters(self) -> None:
        c = self._conn
        self._counters = Counter(dict(c.execute("SELECT name, value FROM counters WHERE name NOT LIKE 'seq/%'")
                                      .fetchall()))
        top = c.execute("SELECT max(n) FROM queue").fetchone()[0] or 0
        # max(n) never exceeds next_n with our writes; this keeps n monotonic if the file was edited.
        self._counters["next_n"] = max(self._counters["next_n"], top)
        rows, size = c.execute("SELECT count(*), coalesce(sum(size), 0) FROM queue").fetchone()
        if (rows, size) != (self._counters["queued_rows"], self._counters["queued_bytes"]):
            # Only possible if someone edited the file: the counters share every transaction with the rows.
            log.error("outbox_counters_repaired", rows=rows, bytes=size, counted_rows=self._counters["queued_rows"],
                      counted_bytes=self._counters["queued_bytes"])
            c.execute("INSERT OR REPLACE INTO counters(name, value) VALUES('queued_rows', ?), ('queued_bytes', ?)",
                      (rows, size))
            self._counters["queued_rows"], self._counters["queued_bytes"] = rows, size

    # --- public API ---------------------------------------------------------------------------------
    def put(self, topic: str, payload: dict[str, Any], cls: MessageClass, *, retain: bool = False) -> str:
        """Store a message; returns its id once committed. Sets payload["id"] and payload["seq"].

        Raises OutboxFull (not stored; see `accounted`), OutboxClosed, OutboxError, or ValueError /
        TypeError for a payload that is not strict JSON (NaN, Infinity, non-serialisable values).
        """
        op = self._put_op(topic, payload, cls, retain)
        try:
            seq = op.fut.result(timeout=_PUT_TIMEOUT_S)
        except FutureTimeout:
            raise OutboxError(f"outbox writer did not commit within {_PUT_TIMEOUT_S} s") from None
        payload["id"] = op.id
        payload["seq"] = seq
        return op.id

    def put_async(self, topic: str, payload: dict[str, Any], cls: MessageClass, *,
                  retain: bool = False) -> Future[int]:
        """Like `put` without waiting: the message is durable when the future resolves (to its seq).

        For one thread with a burst to store: submit them all, then wait on the futures, so they share
        commits. Sets payload["id"] now; the future raises what `put` would.
        """
        op = self._put_op(topic, payload, cls, retain)
        payload["id"] = op.id
        return op.fut

    def _put_op(self, topic: str, payload: dict[str, Any], cls: MessageClass, retain: bool) -> _Put:
        cls = MessageClass(cls)
        body = _dumps({k: v for k, v in payload.items() if k not in ("id", "seq")})
        op = _Put(uuid7(), topic, body, cls, bool(retain), time.time())
        self._submit(op)
        return op

    def stats(self) -> dict[str, Any]:
        """Exact, persistent counters: produced == delivered + dropped + expired + dead_lettered + queued."""
        with self._stats_lock:
            c = Counter(self._counters)
            unstored = self._unstored
        return _stats_from(c, unstored)

    def pending(self, after: int, limit: int) -> list[QueuedRow]:
        """Queued rows after position `after`, oldest first (the forwarder's read path)."""
        with self._reader_lock:
            rows = self._reader.execute(
                "SELECT n, id, topic, seq, cls, retain, created, payload, attempts FROM queue WHERE n > ? "
                "ORDER BY n LIMIT ?", (after, limit)).fetchall()
        return [QueuedRow(r[0], r[1], r[2], r[3], MessageClass(r[4]), bool(r[5]), r[6], bytes(r[7]), r[8])
                for r in rows]

    def mark_delivered(self, ns: list[int]) -> Future[int]:
        """Delete acknowledged rows (PUBACK < 0x80); resolves to how many were still queued."""
        return self._call(lambda t: _deliver(t, ns))

    def mark_rejected(self, n: int, reason: int, *, final: bool = False) -> Future[RejectOutcome]:
        """Count a rejected delivery; after max_attempts (or at once if `final`) the row is dead-lettered."""
        return self._call(lambda t: _reject(t, n, reason, final))

    def add_listener(self, cb: Callable[[], None]) -> None:
        """`cb()` runs on the writer thread after each commit that stored new messages; keep it tiny."""
        self._listeners.append(cb)

    def dead_letters(self, limit: int = 100) -> list[dict[str, Any]]:
        with self._reader_lock:
            rows = self._reader.execute("SELECT id, topic, seq, cls, attempts, reason, dead_at FROM dead_letter "
                                        "ORDER BY n DESC LIMIT ?", (limit,)).fetchall()
        return [{"id": r[0], "topic": r[1], "seq": r[2], "class": MessageClass(r[3]).label, "attempts": r[4],
                 "reason": r[5], "dead_at": r[6]} for r in rows]

    def close(self, timeout: float = 10.0) -> None:
        """Finish queued writes, checkpoint the WAL into the database, close."""
        with self._submit_lock:
            if self._closed:
                return
            self._closed = True
            self._q.put(_STOP)
        self._writer.join(timeout)
        if self._writer.is_alive():
            log.error("outbox_writer_stuck", timeout_s=timeout)
            return
        with contextlib.suppress(sqlite3.Error):
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        with self._reader_lock:
            self._reader.close()
        self._conn.close()
        log.info("outbox_closed", **{k: v for k, v in self.stats().items() if isinstance(v, int)})

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writer -------------------------------------------------------------------------------------
    def _call(self, fn: Callable[[_Txn], Any]) -> Future[Any]:
        op = _Call(fn)
        self._submit(op)
        return op.fut

    def _submit(self, op: _Put | _Call) -> None:
        with self._submit_lock:
            if self._closed:
                raise OutboxClosed("outbox is closed")
            self._q.put(op)

    def _run(self) -> None:
        next_expire = time.monotonic() + _EXPIRE_EVERY_S
        stopping = False
        while not stopping:
            try:
                first = self._q.get(timeout=_EXPIRE_EVERY_S)
            except queue.Empty:
                first = None
            batch: list[_Put | _Call] = []
            if first is _STOP:
                stopping = True
            elif first is not None:
                batch.append(first)
            while not stopping and len(batch) < self.settings.batch_max:
                try:
                    item = self._q.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                else:
                    batch.append(item)
            if not stopping and self._last_puts >= 2 and self.settings.commit_delay_ms > 0:
                stopping = self._linger(batch)
            self._last_puts = sum(isinstance(op, _Put) for op in batch)
            if time.monotonic() >= next_expire:
                next_expire = time.monotonic() + _EXPIRE_EVERY_S
                batch.append(_Call(lambda t: _expire(t, time.time())))
            if batch:
                try:
                    self._run_batch(batch)
                except Exception as e:  # never let the writer die: later puts must still get an answer
                    log.exception("outbox_writer_error")
                    self._rollback()
                    for op in batch:
                        if not op.fut.done():
                            op.fut.set_exception(OutboxError(str(e)))

    def _linger(self, batch: list[_Put | _Call]) -> bool:
        """Group-commit delay: producers were concurrent last time, so wait a moment for the rest of them
        (one fsync for all instead of one each; PostgreSQL's commit_delay). Returns True on stop."""
        deadline = time.monotonic() + self.settings.commit_delay_ms / 1000
        while len(batch) < self.settings.batch_max:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                item = self._q.get(timeout=left)
            except queue.Empty:
                return False
            if item is _STOP:
                return True
            batch.append(item)
        return False

    def _disk_low(self) -> bool:
        floor = self.settings.min_free_disk_mb * 1024 * 1024
        if floor <= 0:
            return False
        try:
            st = os.statvfs(self.path.parent)
        except OSError:
            return False
        free = st.f_bavail * st.f_frsize
        if free >= floor:
            return False
        now = time.monotonic()
        if now - self._disk_low_logged > 60:
            self._disk_low_logged = now
            log.warning("outbox_disk_low", free_mb=round(free / 1048576, 1), floor_mb=self.settings.min_free_disk_mb)
        return True

    def _run_batch(self, batch: list[_Put | _Call]) -> None:
        txn = _Txn(self, self._conn, self._disk_low())
        results: list[Any] = []
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            for op in batch:
                if isinstance(op, _Put):
                    results.append(_insert(txn, op))
                else:
                    txn.flush()
                    results.append(op.fn(txn))
            txn.flush()
            if txn.seqs:
                self._upsert([("seq/" + t, v) for t, v in txn.seqs.items()], "excluded.value")
            changed = [(k, v) for k, v in txn.delta.items() if v]
            if changed:
                self._upsert(changed, "value+excluded.value")
            self._conn.execute("COMMIT")
        except sqlite3.Error as e:
            self._rollback()
            code = _errcode(e)
            puts = sum(isinstance(op, _Put) for op in batch)
            with self._stats_lock:
                self._unstored += puts
            if code == _SQLITE_FULL:
                err: OutboxError = OutboxFull("disk full: message not stored", accounted=False)
                log.error("outbox_disk_full", not_stored=puts, error=str(e))
            else:
                err = OutboxError(f"outbox write failed: {e}")
                log.error("outbox_write_failed", not_stored=puts, error=str(e), code=code)
            for op in batch:
                op.fut.set_exception(err)
            return
        with self._stats_lock:
            self._counters.update(txn.delta)
            self._seqs.update(txn.seqs)
        if txn.disk_low:
            # Below the floor the WAL must not grow either: fold it into the database and truncate it now.
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        for op, res in zip(batch, results, strict=True):
            if isinstance(res, BaseException):
                op.fut.set_exception(res)
            else:
                op.fut.set_result(res)
        if txn.delta["produced"]:
            for cb in self._listeners:
                try:
                    cb()
                except Exception:
                    log.exception("outbox_listener_error")

    def _upsert(self, pairs: list[tuple[str, int]], value: str) -> None:
        for i in range(0, len(pairs), _INSERT_CHUNK):
            chunk = pairs[i:i + _INSERT_CHUNK]
            self._conn.execute("INSERT INTO counters(name, value) VALUES " + ",".join(["(?,?)"] * len(chunk))
                               + f" ON CONFLICT(name) DO UPDATE SET value={value}", [v for p in chunk for v in p])

    def _rollback(self) -> None:
        try:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        except sqlite3.Error as e:
            # A connection that cannot even roll back is replaced; SQLite's journal makes that safe.
            log.error("outbox_reopen_after_failed_rollback", error=str(e))
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = self._connect()
            self._conn.execute("PRAGMA synchronous=FULL")


class _DiskFull(Exception):
    pass


class _Unusable(sqlite3.DatabaseError):
    """The file opened but is not a usable outbox (empty, wrong schema, failed check)."""


# --- operations run inside the writer's transaction -----------------------------------------------------
def _insert(t: _Txn, op: _Put) -> int | OutboxFull:
    s = t.ob.settings
    seq = t.next_seq(op.topic)
    head = b'{"id":"' + op.id.encode() + b'","seq":' + str(seq).encode()
    payload = head + (b"}" if op.body == b"{}" else b"," + op.body[1:])
    size = len(payload)
    t.delta["produced"] += 1
    label = op.cls.label
    if op.cls is MessageClass.STATUS and s.coalesce_status:
        t.flush()
        for (vsize,) in t.conn.execute("DELETE FROM queue WHERE cls=? AND topic=? RETURNING size",
                                       (int(MessageClass.STATUS), op.topic)).fetchall():
            t.removed(vsize, "dropped/status/superseded")
    if size > s.max_bytes:
        t.delta[f"dropped/{label}/too_large"] += 1
        return OutboxFull(f"{label} message of {size} bytes exceeds outbox.max_bytes", accounted=True)
    # Make room: the oldest message of the least important class (never more important than this one).
    reason = "full"
    need = size if t.disk_low else 0  # below the disk floor the queue may not grow on disk
    freed = 0
    while t.rows + 1 > s.max_rows or t.bytes + size > s.max_bytes or freed < need:
        t.flush()
        if t.disk_low and freed < need:
            reason = "disk_low"
        victim = None
        for cls in MessageClass:
            if cls > op.cls:
                break
            victim = t.conn.execute("SELECT n, size, cls FROM queue WHERE cls=? ORDER BY n LIMIT 1",
                                    (int(cls),)).fetchone()
            if victim:
                break
        if victim is None:
            t.delta[f"dropped/{label}/{reason}"] += 1
            return OutboxFull(f"outbox {reason}: only more important messages queued; {label} dropped",
                              accounted=True)
        t.conn.execute("DELETE FROM queue WHERE n=?", (victim[0],))
        t.removed(victim[1], f"dropped/{MessageClass(victim[2]).label}/{reason}")
        freed += victim[1]
    t.pending.append((t.next_n(), op.id, op.topic, seq, int(op.cls), int(op.retain), op.created, size, payload))
    t.delta["queued_rows"] += 1
    t.delta["queued_bytes"] += size
    return seq


def _deliver(t: _Txn, ns: list[int]) -> int:
    count = 0
    for i in range(0, len(ns), _DELETE_CHUNK):
        chunk = ns[i:i + _DELETE_CHUNK]
        where = "n IN (" + ",".join("?" * len(chunk)) + ")"
        # Rows already gone (dropped, expired, a duplicate ack) are not counted again: they were counted
        # where they went.
        rows, size = t.conn.execute(f"SELECT count(*), coalesce(sum(size), 0) FROM queue WHERE {where}",
                                    chunk).fetchone()
        if rows:
            t.conn.execute(f"DELETE FROM queue WHERE {where}", chunk)
            t.delta["queued_rows"] -= rows
            t.delta["queued_bytes"] -= size
            t.delta["delivered"] += rows
            count += rows
    return count


def _reject(t: _Txn, n: int, reason: int, final: bool) -> RejectOutcome:
    row = t.conn.execute("UPDATE queue SET attempts=attempts+1 WHERE n=? RETURNING attempts, size", (n,)).fetchone()
    if row is None:
        return RejectOutcome("gone", 0)
    attempts, size = row
    if attempts < t.ob.settings.max_attempts and not final:
        return RejectOutcome("retry", attempts)
    t.conn.execute("INSERT INTO dead_letter(id, topic, seq, cls, retain, created, attempts, reason, dead_at, payload) "
                   "SELECT id, topic, seq, cls, retain, created, attempts, ?, ?, payload FROM queue WHERE n=?",
                   (reason, time.time(), n))
    t.conn.execute("DELETE FROM queue WHERE n=?", (n,))
    t.removed(size, "dead_lettered")
    t.conn.execute("DELETE FROM dead_letter WHERE n <= (SELECT max(n) FROM dead_letter) - ?",
                   (t.ob.settings.dead_letter_max_rows,))
    return RejectOutcome("dead", attempts)


def _expire(t: _Txn, now: float) -> int:
    s = t.ob.settings
    ttl = {MessageClass.STATUS: s.ttl_status_s, MessageClass.ADVICE: s.ttl_advice_s, MessageClass.ALERT: s.ttl_alert_s}
    count = 0
    for cls, limit in ttl.items():
        cutoff = now - limit
        while True:  # queue order is creation order, so stop at the first one still fresh
            rows = t.conn.execute("SELECT n, size, created FROM queue WHERE cls=? ORDER BY n LIMIT 200",
                                  (int(cls),)).fetchall()
            old = [r for r in rows if r[2] < cutoff]
            for n, size, _ in old:
                t.conn.execute("DELETE FROM queue WHERE n=?", (n,))
                t.removed(size, f"expired/{cls.label}")
            count += len(old)
            if len(old) < len(rows) or len(rows) < 200:
                break
    if count:
        log.warning("outbox_expired", count=count)
    return count


def _stats_from(c: Counter[str], unstored: int) -> dict[str, Any]:
    dropped_by: dict[str, dict[str, int]] = {}
    expired_by: dict[str, int] = {}
    for k, v in c.items():
        if k.startswith("dropped/") and v:
            _, cls, reason = k.split("/", 2)
            dropped_by.setdefault(cls, {})[reason] = v
        elif k.startswith("expired/") and v:
            expired_by[k.split("/", 1)[1]] = v
    return {
        "produced": c["produced"],
        "delivered": c["delivered"],
        "dropped": sum(sum(d.values()) for d in dropped_by.values()),
        "expired": sum(expired_by.values()),
        "dead_lettered": c["dead_lettered"],
        "queued": c["queued_rows"],
        "queued_bytes": c["queued_bytes"],
        "dropped_by": dropped_by,
        "expired_by": expired_by,
        "unstored": unstored,
    }


def outbox_stats(path: Path | str) -> dict[str, Any]:
    """Counters of an outbox file, read without recovering or changing it (for `edgeslm outbox stats`)."""
    p = Path(path)
    if not p.is_file():
        raise OutboxError(f"no outbox database at {p}")
    try:
        conn = sqlite3.connect(f"file:{p}?mode=ro", uri=True, timeout=5.0)
    except sqlite3.Error as e:
        raise OutboxError(f"cannot open {p}: {e}") from e
    try:
        c = Counter(dict(conn.execute("SELECT name, value FROM counters WHERE name NOT LIKE 'seq/%'").fetchall()))
        oldest = conn.execute("SELECT min(created) FROM queue").fetchone()[0]
        dead = conn.execute("SELECT count(*) FROM dead_letter").fetchone()[0]
    except sqlite3.Error as e:
        raise OutboxError(f"{p} is not a readable outbox: {e}") from e
    finally:
        conn.close()
    out = _stats_from(c, 0)
    del out["unstored"]
    out["oldest_queued_age_s"] = round(time.time() - oldest, 1) if oldest is not None else None
    out["dead_letter_rows"] = dead
    out["path"] = str(p)
    return out


def iter_queued_ids(path: Path | str) -> Iterator[str]:
    """Ids still queued in an outbox file (tests and diagnostics)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    try:
        yield from (r[0] for r in conn.execute("SELECT id FROM queue ORDER BY n"))
    finally:
        conn.close()
