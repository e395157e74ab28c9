"""The Store facade: engine and sessions, retained raw messages, message records and delivery bookkeeping."""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import math
import os
import pkgutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Executable,
    Table,
    bindparam,
    create_engine,
    delete,
    event,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

import mailmoat.store as store_pkg
from mailmoat.durable import absolute, write_file
from mailmoat.model import Action, Envelope, Message, Url, Verdict
from mailmoat.store.base import Base  # noqa: F401  (re-exported: `from mailmoat.store.db import Base`)
from mailmoat.store.models import DeliveryRow, IndicatorRow, MessageRow
from mailmoat.urlcheck.links import MAX_TARGETS, host_of, redirect_targets, shared_page

# Delivery states: "sending" is a claim by one worker; its next_attempt is the lease end.
PENDING = "pending"
SENDING = "sending"
DELIVERED = "delivered"
DEFERRED = "deferred"
FAILED = "failed"
HELD = "held"
WITHHELD = "withheld"  # queued when its message was recalled or marked a threat: not delivered (recall/withheld.py)

_INDICATOR_MAX = 2048

_MESSAGES = cast(Table, MessageRow.__table__)
_DELIVERIES = cast(Table, DeliveryRow.__table__)
_INDICATORS = cast(Table, IndicatorRow.__table__)

T = TypeVar("T")

# Statements on the path of every message, built once: building one costs more CPU than running it.
_INSERT_INDICATORS = insert(_INDICATORS)
_INSERT_DELIVERIES = insert(_DELIVERIES)
_UPDATE_DELIVERY = update(_DELIVERIES).where(_DELIVERIES.c.tracking_id == bindparam("b_tracking_id"))
_UPSERTS: dict[str, Executable] = {}  # INSERT ... ON CONFLICT DO NOTHING into messages, per dialect


def normalise_url(url: str) -> str:
    """SQLAlchemy URL with a driver that is installed (psycopg 3 for PostgreSQL)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def sqlite_file(url: str) -> Path | None:
    """The file of an SQLite URL (its query string left out), or None: another database, or in memory."""
    if not url.startswith("sqlite"):
        return None
    db = url.split(":///", 1)[1] if ":///" in url else ""
    db = db.split("?", 1)[0]
    if not db or db == ":memory:":
        return None
    return Path(db)


def _load_table_modules() -> None:
    """Import every `store/*models.py` so that create_all knows each area's tables."""
    for info in pkgutil.iter_modules(store_pkg.__path__):
        if info.name.endswith("models"):
            importlib.import_module(f"mailmoat.store.{info.name}")


_tld: Any = None


def _extract(host: str) -> Any:
    global _tld
    if _tld is None:
        import tldextract

        _tld = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    return _tld(host)


def registrable_domain(host: str) -> str:
    """eTLD+1 of a host name (offline public suffix list); the host itself when it has none."""
    host = host.strip().strip(".").lower()
    if not host:
        return ""
    try:
        ext = _extract(host)
    except Exception:  # pragma: no cover - tldextract never raises on strings, but be safe
        return host
    domain: str = ext.top_domain_under_public_suffix if hasattr(ext, "top_domain_under_public_suffix") else ext.registered_domain
    return domain or host


def is_public_suffix(host: str) -> bool:
    """Whether a host name is itself a public suffix ("com", "co.uk"), under which
    unrelated parties register their names."""
    host = host.strip().strip(".").lower()
    return bool(host) and str(_extract(host).suffix) == host


def clean_text(value: str) -> str:
    """Text any database accepts: no NUL (PostgreSQL refuses it), no lone surrogates (not UTF-8)."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def clean_json(value: Any) -> Any:
    """A JSON-safe copy: clean text, bytes decoded, sets as lists, NaN as null, anything else as str."""
    if isinstance(value, str):
        return clean_text(value)
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {clean_text(str(k)): clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    if isinstance(value, set | frozenset):
        return [clean_json(v) for v in sorted(value, key=str)]
    if isinstance(value, bytes | bytearray):
        return clean_text(bytes(value).decode("utf-8", "replace"))
    return clean_text(str(value))


def _domain_of(addr: str) -> str:
    return addr.rpartition("@")[2].strip().lower() if "@" in addr else ""


def url_domain_of(u: Url) -> str:
    """The registrable domain recorded for a link (indicator kind "url_domain")."""
    return u.registrable_domain.lower() or registrable_domain(u.host)


def url_host_of(host: str, registrable: str) -> str:
    """The host recorded for a link (indicator kind "url_host") when it is not its registrable
    domain ("" otherwise): a recall by `login.evil.example` or by `evil-login.web.app` (whose
    registrable domain is the platform's) finds the mail that linked exactly that host."""
    host = host.strip().strip(".").lower()
    return host if host != registrable else ""


def link_and_targets(url: str, host: str, reg: str) -> list[tuple[str, str, str]]:
    """A link and where it redirects (a click tracker's or an open redirect's targets), each as
    (url, host, registrable domain): the links the store records for it, which the link history
    is asked about."""
    out = [(url, host, reg)]
    for target in redirect_targets(url)[:MAX_TARGETS]:
        thost = host_of(target)
        out.append((target, thost, registrable_domain(thost)))
    return out


def extract_indicators(envelope: Envelope, message: Message, verdict: Verdict) -> list[tuple[str, str]]:
    """Searchable facts of one message, without repeats: senders, URLs and domains, hashes, QR, symbols."""
    out: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()

    def add(kind: str, value: str) -> None:
        value = clean_text(value.strip()[:_INDICATOR_MAX])
        if value and (kind, value) not in seen:
            seen.add((kind, value))
            out.append((kind, value))

    mail_from = envelope.mail_from.strip().lower()
    add("mail_from", mail_from)
    from_addr = message.from_.addr.strip().lower()
    add("from_addr", from_addr)
    add("sender_domain", _domain_of(from_addr))
    add("sender_domain", _domain_of(mail_from))

    def add_link(url: str, host: str, reg: str) -> None:
        add("url", url)
        add("url_domain", reg)
        add("url_host", url_host_of(host, reg))
        add("url_page", shared_page(host, url))

    # Where a click tracker or an open redirect sends the reader is a link of its own: a recall, a
    # threat indicator or a wave by that domain finds the mail that wrapped it.
    for u in message.urls:
        for link in link_and_targets(u.url, u.host, url_domain_of(u)):
            add_link(*link)
    for p in message.parts:
        if p.sha256 and (p.is_attachment or p.filename):
            add("sha256", p.sha256.lower())
    for q in message.qr_codes:
        add("qr", q.payload)
    for f in verdict.findings:
        add("symbol", f.symbol)
        # The attachment scanner reports every file it unpacked (archive members too) with hashes.
        files = f.data.get("files") if f.symbol == "ATTACHMENT_HASHES" else None
        for item in files if isinstance(files, list) else []:
            if isinstance(item, dict):
                add("sha256", str(item.get("sha256", "")).lower())
                add("ssdeep", str(item.get("ssdeep", "")))
        # Codes an analyzer found where the parser does not look (QR_IN_ARCHIVE): payload and URLs.
        codes = f.data.get("codes") if f.symbol == "QR_IN_ARCHIVE" else None
        for code in codes if isinstance(codes, list) else []:
            if isinstance(code, dict):
                add("qr", str(code.get("payload", "")))
                for url in code.get("urls") or []:
                    host = host_of(str(url))
                    for link in link_and_targets(str(url), host, registrable_domain(host)):
                        add_link(*link)
    add("message_id", message.message_id.strip().strip("<>"))
    return out


@dataclass
class Claim:
    """One copy a caller may now deliver (status "sending"), or the state that stopped it."""

    rcpt_index: int
    recipient: str
    mailbox: str
    tracking_id: str
    claimed: bool
    fresh: bool  # the row did not exist before: nothing can have been delivered yet
    status: str
    attempts: int
    reply: str = ""
    location: str = ""


class Store:
    """Engine + sessions over SQLite (WAL) or PostgreSQL, and the record/delivery operations on top."""

    def __init__(self, url: str, *, raw_dir: str | os.PathLike[str] | None = None, create: bool = True) -> None:
        self.url = normalise_url(url)
        self.raw_dir = Path(raw_dir) if raw_dir is not None else None
        self.is_sqlite = self.url.startswith("sqlite")
        kwargs: dict[str, Any] = {}
        db_file = sqlite_file(self.url)
        if self.is_sqlite:
            if db_file is not None:
                db_file.parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
            if db_file is None:
                kwargs["poolclass"] = StaticPool  # one in-memory database shared by every thread
        else:
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(self.url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Record, claim and finish of concurrent messages share transactions (one commit each batch).
        self._writes = GroupCommit(self._write_tx)
        # Writers of one SQLite file queue on a file lock: SQLite's own busy handler polls with
        # sleeps of up to 100 ms, so processes waiting for its lock idle long after it is free.
        self._writer_lock: Path | None = None if db_file is None else Path(f"{db_file}-writer.lock")
        self._writer_fd: int | None = None
        if create:
            from mailmoat.store.migrate import upgrade

            upgrade(self.url, self.engine)  # Alembic to head, once across nodes starting together

    def close(self) -> None:
        self.engine.dispose()
        if self._writer_fd is not None:
            os.close(self._writer_fd)
            self._writer_fd = None

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits when the block ends normally and rolls back on an exception."""
        s = self._sessions()
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()

    # -- raw messages --------------------------------------------------------------------
    def retain_raw(self, envelope: Envelope, raw: bytes, raw_dir: str | os.PathLike[str] | None = None) -> str:
        """Keep the raw message for re-scan, release and retry: `<raw_dir>/<YYYY-MM-DD>/<id>.eml`, durably."""
        return str(write_file(self.raw_folder(envelope, raw_dir), f"{envelope.id}.eml", raw))

    def raw_folder(self, envelope: Envelope, raw_dir: str | os.PathLike[str] | None = None) -> Path:
        """The day folder that holds a message's retained copy (a written `.eml` or a kept spool entry)."""
        base = Path(raw_dir) if raw_dir is not None else self.raw_dir
        if base is None:
            raise ValueError("no raw_dir given to Store or retain_raw")
        day = datetime.fromtimestamp(envelope.received_at, UTC).strftime("%Y-%m-%d")
        return absolute(base) / day

    # -- messages ------------------------------------------------------------------------
    def record_message(
        self, envelope: Envelope, message: Message, verdict: Verdict, raw_path: str | None = ""
    ) -> None:
        """Insert or update (by envelope id) the record of one message with its indicators."""
        now = time.time()
        self._writes.run(lambda conn: _record_tx(conn, envelope, message, verdict, raw_path, now))

    def record_and_claim(
        self,
        envelope: Envelope,
        message: Message,
        verdict: Verdict,
        raw_path: str | None,
        copies: Sequence[tuple[int, str, str, str]],
        *,
        lease_until: float,
        claimable: Sequence[str] = (PENDING,),
        stale_before: float | None = None,
        initial: str = SENDING,
        results: Sequence[dict[str, Any]] = (),
    ) -> list[Claim]:
        """`record_message` and `claim` in one transaction: the copies hang off the row just written.

        One commit instead of two on the path of every message; the guarantees are those of the
        two calls (a claimed copy always has its message record, committed together).
        `results` (as for `finish`): copies already written on a first attempt, whose outcome is
        committed in the same transaction too; a copy that was claimed already keeps its row.
        """
        now = time.time()

        def job(conn: Connection) -> list[Claim]:
            fresh = _record_tx(conn, envelope, message, verdict, raw_path, now)
            claims = _claim_tx(
                conn, envelope.id, copies, lease_until, claimable, stale_before, initial, None, now, no_copies=fresh
            )
            if results:
                mine = {c.tracking_id for c in claims if c.claimed}
                _finish_tx(conn, [r for r in results if r["tracking_id"] in mine], now)
            return claims

        return self._writes.run(job)

    def ensure_message(self, envelope: Envelope, verdict: Verdict) -> MessageRow:
        """The message row, created minimally when delivery runs before the full record."""
        with self.session() as s:
            row = s.get(MessageRow, envelope.id)
            if row is not None:
                return row
        try:
            with self.session() as s:
                row = _minimal_row(envelope, verdict)
                s.add(row)
            return row
        except IntegrityError:
            with self.session() as s:
                got = s.get(MessageRow, envelope.id)
                assert got is not None
                return got

    def get_message(self, message_id: str) -> MessageRow | None:
        with self.session() as s:
            return s.get(MessageRow, message_id)

    def set_message_fields(self, message_id: str, **fields: Any) -> None:
        with self.session() as s:
            s.execute(update(MessageRow).where(MessageRow.id == message_id).values(**fields))

    # -- deliveries ----------------------------------------------------------------------
    def deliveries(self, message_id: str) -> list[DeliveryRow]:
        with self.session() as s:
            return list(
                s.scalars(select(DeliveryRow).where(DeliveryRow.message_id == message_id).order_by(DeliveryRow.id))
            )

    def get_delivery(self, tracking_id: str) -> DeliveryRow | None:
        with self.session() as s:
            return s.scalars(select(DeliveryRow).where(DeliveryRow.tracking_id == tracking_id)).first()

    def claim(
        self,
        message_id: str,
        copies: Sequence[tuple[int, str, str, str]],
        *,
        lease_until: float,
        claimable: Sequence[str] = (PENDING,),
        stale_before: float | None = None,
        initial: str = SENDING,
        ensure: tuple[Envelope, Verdict] | None = None,
    ) -> list[Claim]:
        """Claim copies (rcpt_index, recipient, mailbox, tracking_id) for delivery, in one transaction.

        A missing row is created (status `initial`); an existing one is taken over only from a
        `claimable` state, or from "sending" whose lease ended before `stale_before` (its worker
        died). Everything else is reported as it stands, so a copy is never sent by two workers.
        With `ensure`, a missing message row is created first (delivery before the full record).
        """
        now = time.time()
        return self._writes.run(
            lambda conn: _claim_tx(conn, message_id, copies, lease_until, claimable, stale_before, initial, ensure, now)
        )

    def finish(self, results: Sequence[dict[str, Any]]) -> None:
        """Write the outcome of claimed copies in one transaction.

        Each dict: tracking_id, status and any of reply, location, next_attempt, attempts, delivered_at.
        """
        if not results:
            return
        now = time.time()
        self._writes.run(lambda conn: _finish_tx(conn, results, now))

    @contextlib.contextmanager
    def _write_tx(self) -> Iterator[Connection]:
        """One write transaction; on SQLite it takes the write lock at once (BEGIN IMMEDIATE).

        Deferred SQLite transactions that read first and write later fail with "database is
        locked" when another process committed in between; IMMEDIATE waits for the lock instead.
        """
        with contextlib.ExitStack() as stack:
            if self._writer_lock is not None and self._writer_fd is None:
                try:
                    self._writer_fd = os.open(self._writer_lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                except OSError:  # e.g. a read-only directory: SQLite's own locking still applies
                    self._writer_lock = None
            if self._writer_fd is not None:
                fd = self._writer_fd
                fcntl.flock(fd, fcntl.LOCK_EX)  # the kernel wakes the next writer as soon as it is free
                stack.callback(fcntl.flock, fd, fcntl.LOCK_UN)
            conn = stack.enter_context(self.engine.connect())
            if self.is_sqlite:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.commit()
            except BaseException:
                conn.rollback()
                raise

    def due_deliveries(self, now: float, *, stale_before: float, limit: int = 500) -> list[DeliveryRow]:
        """Deferred copies whose next attempt is due, and claims whose worker died (lease ended)."""
        with self.session() as s:
            return list(
                s.scalars(
                    select(DeliveryRow)
                    .where(
                        or_(
                            (DeliveryRow.status == DEFERRED) & (DeliveryRow.next_attempt <= now),
                            (DeliveryRow.status == SENDING) & (DeliveryRow.next_attempt <= stale_before),
                        )
                    )
                    .order_by(DeliveryRow.next_attempt)
                    .limit(limit)
                )
            )

    def next_due(self) -> float | None:
        """When the earliest deferred copy is due (None when the queue is empty)."""
        with self.session() as s:
            v = s.scalar(
                select(DeliveryRow.next_attempt)
                .where(DeliveryRow.status.in_([DEFERRED, SENDING]))
                .order_by(DeliveryRow.next_attempt)
                .limit(1)
            )
            return float(v) if v is not None else None

    # -- queries -------------------------------------------------------------------------
    def trace(self, **kwargs: Any) -> list[dict[str, Any]]:
        """Recorded messages with their deliveries; see `mailmoat.store.queries.trace`."""
        from mailmoat.store.queries import trace

        with self.session() as s:
            return trace(s, **kwargs)


class _Job(Generic[T]):
    __slots__ = ("done", "error", "fn", "value")

    def __init__(self, fn: Callable[[Connection], T]) -> None:
        self.fn = fn
        self.done = False
        self.value: T | None = None
        self.error: BaseException | None = None

    def result(self) -> T:
        if self.error is not None:
            raise self.error
        return cast(T, self.value)


class GroupCommit:
    """Group commit: write jobs from many threads run in shared transactions, one commit per batch.

    Every committed transaction costs one fsync (SQLite `synchronous=FULL`, PostgreSQL
    `synchronous_commit`), and with SQLite every writer of the machine waits for the one lock.
    The first caller becomes the leader: it runs every job queued at that moment in one
    transaction and commits once; callers arriving meanwhile queue up for the next batch. A call
    returns only after the transaction holding its job has committed, so each caller keeps the
    durability of its own commit. When a batch fails, each of its jobs runs again alone, so one
    bad job never fails (or commits half of) another's work.
    """

    RETRIES = 3  # a job alone, on IntegrityError: a concurrent node inserted the same rows

    def __init__(self, transaction: Callable[[], contextlib.AbstractContextManager[Connection]]) -> None:
        self._transaction = transaction
        self._cond = threading.Condition()
        self._pending: list[_Job[Any]] = []
        self._busy = False
        self.batches = 0  # committed batches (for tests and figures)
        self.jobs = 0

    def run(self, fn: Callable[[Connection], T]) -> T:
        job: _Job[T] = _Job(fn)
        with self._cond:
            self._pending.append(job)
            while self._busy and not job.done:
                self._cond.wait()
            if job.done:
                return job.result()
            self._busy = True
            batch, self._pending = self._pending, []
        try:
            self._execute(batch)
        finally:
            with self._cond:
                for j in batch:
                    if not j.done:  # the leader was interrupted (BaseException): nothing was committed
                        j.error = RuntimeError("write batch aborted")
                        j.done = True
                self._busy = False
                self._cond.notify_all()
        return job.result()

    def _execute(self, batch: list[_Job[Any]]) -> None:
        if len(batch) > 1:
            try:
                with self._transaction() as conn:
                    values = [j.fn(conn) for j in batch]
            except Exception:  # each job runs again alone below, where its own error is kept
                pass
            else:
                self.batches += 1
                self.jobs += len(batch)
                for j, v in zip(batch, values, strict=True):
                    j.value, j.done = v, True
                return
        for j in batch:
            self._execute_one(j)

    def _execute_one(self, job: _Job[Any]) -> None:
        for attempt in range(self.RETRIES):
            try:
                with self._transaction() as conn:
                    job.value = job.fn(conn)
            except IntegrityError as exc:
                if attempt + 1 < self.RETRIES:
                    continue
                job.error = exc
            except Exception as exc:
                job.error = exc
            else:
                self.batches += 1
                self.jobs += 1
            job.done = True
            return


def _message_values(envelope: Envelope, message: Message, verdict: Verdict, now: float) -> dict[str, Any]:
    return {
        **_envelope_values(envelope),
        "from_addr": clean_text(message.from_.addr.strip()[:320]),
        "from_display": clean_text(message.from_.display[:512]),
        "from_domain": clean_text(message.from_.domain[:255]),
        "subject": clean_text(message.subject),
        "message_id": clean_text(message.message_id.strip()[:998]),
        "size": envelope.size or len(message.raw),
        **_verdict_values(verdict),
        "headers": clean_json([[k, v] for k, v in message.headers]),
        "scanned_at": now,
    }


def _record_tx(
    conn: Connection, envelope: Envelope, message: Message, verdict: Verdict, raw_path: str | None, now: float
) -> bool:
    """Write the message row and its indicators; True when the row is new (so it has no copies yet)."""
    m = _MESSAGES
    values = _message_values(envelope, message, verdict, now)
    status = "quarantined" if verdict.action == Action.QUARANTINE else "processed"
    fresh = {**values, "id": envelope.id, "raw_path": raw_path or "", "status": status}
    if _insert_new(conn, m, fresh):
        old = None
    else:
        old = conn.execute(select(m.c.status, m.c.raw_path).where(m.c.id == envelope.id)).first()
        if old is None:  # no upsert on this database
            conn.execute(insert(m), fresh)
    if old is not None:
        if raw_path:
            values["raw_path"] = raw_path
        elif old.raw_path is None:
            values["raw_path"] = ""
        # A released, condemned or deleted message stays so when it is recorded again (a re-scan
        # must not undo an administrator's verdict).
        values["status"] = old.status if old.status in ("released", "condemned", "deleted") else status
        conn.execute(update(m).where(m.c.id == envelope.id), values)
        conn.execute(delete(_INDICATORS).where(_INDICATORS.c.message_id == envelope.id))
    ind = extract_indicators(envelope, message, verdict)
    if ind:
        conn.execute(_INSERT_INDICATORS, [{"message_id": envelope.id, "kind": k, "value": v} for k, v in ind])
    return old is None


def _insert_new(conn: Connection, table: Table, values: dict[str, Any]) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING: True when the row was inserted, False when it existed
    (or the database has no such statement). Saves a SELECT on the path of every new message."""
    name = conn.dialect.name
    stmt = _UPSERTS.get(name) if table is _MESSAGES else None
    if stmt is None:
        if name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as upsert
        elif name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as upsert  # type: ignore[assignment]
        else:
            return False
        # RETURNING, not the row count: PostgreSQL's driver reports -1 rows for this statement,
        # which read as "inserted" recorded an existing message again (its copies then violated
        # uq_deliveries_message_rcpt, and a recovered spool entry failed for ever).
        stmt = upsert(table).on_conflict_do_nothing().returning(*table.primary_key.columns)
        if table is _MESSAGES:
            _UPSERTS[name] = stmt
    return conn.execute(stmt, values).first() is not None


def _claim_tx(
    conn: Connection,
    message_id: str,
    copies: Sequence[tuple[int, str, str, str]],
    lease_until: float,
    claimable: Sequence[str],
    stale_before: float | None,
    initial: str,
    ensure: tuple[Envelope, Verdict] | None,
    now: float,
    *,
    no_copies: bool = False,
) -> list[Claim]:
    d = _DELIVERIES
    if ensure is not None and conn.execute(select(_MESSAGES.c.id).where(_MESSAGES.c.id == message_id)).first() is None:
        conn.execute(insert(_MESSAGES), _minimal_values(*ensure))
    cols = (d.c.tracking_id, d.c.recipient, d.c.mailbox, d.c.status, d.c.attempts, d.c.reply, d.c.location)
    existing = {} if no_copies else {r.tracking_id: r for r in conn.execute(select(*cols).where(d.c.message_id == message_id))}
    states: list[ColumnElement[bool]] = []
    if existing:  # built only when there is a row to take over (never for a new message)
        states.append(d.c.status.in_(list(claimable)))
        if stale_before is not None:
            states.append((d.c.status == SENDING) & (d.c.next_attempt <= stale_before))
    out: list[Claim] = []
    fresh: list[dict[str, Any]] = []
    for idx, rcpt, mailbox, tid in copies:
        row = existing.get(tid)
        if row is None:
            fresh.append(
                {
                    "message_id": message_id, "recipient": clean_text(rcpt[:320]), "mailbox": clean_text(mailbox[:320]),
                    "tracking_id": tid, "status": initial, "attempts": 0,
                    "next_attempt": lease_until if initial == SENDING else 0.0,
                    "reply": "", "location": "", "delivered_at": 0.0, "updated_at": now,
                }
            )
            out.append(Claim(idx, rcpt, mailbox, tid, initial == SENDING, True, initial, 0))
            continue
        res = conn.execute(
            update(d).where(d.c.tracking_id == tid, or_(*states)).values(status=SENDING, next_attempt=lease_until, updated_at=now)
        )
        if res.rowcount:
            out.append(Claim(idx, row.recipient, row.mailbox or mailbox, tid, True, False, SENDING, row.attempts))
        else:
            out.append(Claim(idx, row.recipient, row.mailbox, tid, False, False, row.status, row.attempts, row.reply, row.location))
    if fresh:
        conn.execute(_INSERT_DELIVERIES, fresh)
    return out


def _finish_tx(conn: Connection, results: Sequence[dict[str, Any]], now: float) -> None:
    # The SET clause comes from each parameter set's keys (SQLAlchemy caches one form per key set).
    for r in results:
        values = {k: clean_text(v) if isinstance(v, str) else v for k, v in r.items() if k != "tracking_id"}
        values["updated_at"] = now
        values["b_tracking_id"] = r["tracking_id"]
        conn.execute(_UPDATE_DELIVERY, values)


def _envelope_values(envelope: Envelope) -> dict[str, Any]:
    return {
        "received_at": envelope.received_at,
        "direction": envelope.direction.value,
        "mail_from": clean_text(envelope.mail_from[:320]),
        "rcpt_tos": clean_json(list(envelope.rcpt_tos)),
        "peer_ip": clean_text(envelope.peer_ip[:64]),
        "helo": clean_text(envelope.helo[:255]),
        "auth_user": clean_text(envelope.auth_user[:320]),
    }


def _verdict_values(verdict: Verdict) -> dict[str, Any]:
    return {
        "action": verdict.action.value,
        "score": float(verdict.score),
        "symbols": clean_json(verdict.symbols),
        "findings": clean_json([f.to_dict() for f in verdict.findings]),
        "reasons": clean_json(list(verdict.reasons)),
    }


def _minimal_values(envelope: Envelope, verdict: Verdict) -> dict[str, Any]:
    """The message row written when delivery runs before the full record."""
    return {
        "id": envelope.id, "raw_path": "", "scanned_at": time.time(), **_envelope_values(envelope),
        **_verdict_values(verdict), "size": envelope.size,
        "status": "quarantined" if verdict.action == Action.QUARANTINE else "processed",
    }


def envelope_from_row(row: MessageRow) -> Envelope:
    """The envelope a message row was recorded from."""
    from mailmoat.model import Direction

    try:
        direction = Direction(row.direction)
    except ValueError:
        direction = Direction.INBOUND
    return Envelope(
        id=row.id, mail_from=row.mail_from or "", rcpt_tos=list(row.rcpt_tos or []), peer_ip=row.peer_ip or "",
        helo=row.helo or "", received_at=float(row.received_at or 0.0), direction=direction,
        auth_user=row.auth_user or "", size=int(row.size or 0),
    )


def verdict_from_row(row: MessageRow) -> Verdict:
    """The verdict a message row was recorded with (findings keep their evidence and data)."""
    from mailmoat.model import Finding

    try:
        action = Action(row.action)
    except ValueError:
        action = Action.DELIVER
    findings = []
    for f in row.findings or []:
        with contextlib.suppress(KeyError, TypeError, ValueError):
            findings.append(Finding.from_dict(f))
    return Verdict(action=action, score=float(row.score or 0.0), findings=findings, reasons=list(row.reasons or []))


def _minimal_row(envelope: Envelope, verdict: Verdict) -> MessageRow:
    return MessageRow(**_minimal_values(envelope, verdict))


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    try:
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        # FULL: a committed delivery state (the retry queue) survives power loss, not only crashes.
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
    finally:
        cur.close()


