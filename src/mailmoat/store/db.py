"""The Store facade: engine and sessions, retained raw messages, message records and delivery bookkeeping."""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import pkgutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Engine, create_engine, delete, event, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

import mailmoat.store as store_pkg
from mailmoat.model import Action, Envelope, Message, Verdict
from mailmoat.store.base import Base  # noqa: F401  (re-exported: `from mailmoat.store.db import Base`)
from mailmoat.store.models import DeliveryRow, IndicatorRow, MessageRow

# Delivery states: "sending" is a claim by one worker; its next_attempt is the lease end.
PENDING = "pending"
SENDING = "sending"
DELIVERED = "delivered"
DEFERRED = "deferred"
FAILED = "failed"
HELD = "held"

_INDICATOR_MAX = 2048


def normalise_url(url: str) -> str:
    """SQLAlchemy URL with a driver that is installed (psycopg 3 for PostgreSQL)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _load_table_modules() -> None:
    """Import every `store/*models.py` so that create_all knows each area's tables."""
    for info in pkgutil.iter_modules(store_pkg.__path__):
        if info.name.endswith("models"):
            importlib.import_module(f"mailmoat.store.{info.name}")


_tld: Any = None


def registrable_domain(host: str) -> str:
    """eTLD+1 of a host name (offline public suffix list); the host itself when it has none."""
    global _tld
    host = host.strip().strip(".").lower()
    if not host:
        return ""
    if _tld is None:
        import tldextract

        _tld = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    try:
        ext = _tld(host)
    except Exception:  # pragma: no cover - tldextract never raises on strings, but be safe
        return host
    domain: str = ext.top_domain_under_public_suffix if hasattr(ext, "top_domain_under_public_suffix") else ext.registered_domain
    return domain or host


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
    for u in message.urls:
        add("url", u.url)
        add("url_domain", u.registrable_domain.lower() or registrable_domain(u.host))
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
        if self.is_sqlite:
            db_path = self.url.split(":///", 1)[1] if ":///" in self.url else ""
            if db_path and db_path != ":memory:":
                Path(db_path).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
            if not db_path or db_path == ":memory:":
                kwargs["poolclass"] = StaticPool  # one in-memory database shared by every thread
        else:
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(self.url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        if create:
            from mailmoat.store.migrate import upgrade

            upgrade(self.url, self.engine)  # Alembic to head, once across nodes starting together

    def close(self) -> None:
        self.engine.dispose()

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
        base = Path(raw_dir) if raw_dir is not None else self.raw_dir
        if base is None:
            raise ValueError("no raw_dir given to Store or retain_raw")
        day = datetime.fromtimestamp(envelope.received_at, UTC).strftime("%Y-%m-%d")
        folder = base / day
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"{envelope.id}.eml"
        if final.exists() and final.stat().st_size == len(raw):
            return str(final.resolve())
        tmp = folder / f".{envelope.id}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        try:
            view = memoryview(raw)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        _fsync_dir(folder)
        return str(final.resolve())

    # -- messages ------------------------------------------------------------------------
    def record_message(
        self, envelope: Envelope, message: Message, verdict: Verdict, raw_path: str | None = ""
    ) -> None:
        """Insert or update (by envelope id) the record of one message with its indicators."""
        now = time.time()
        for attempt in range(2):
            try:
                with self.session() as s:
                    row = s.get(MessageRow, envelope.id)
                    if row is None:
                        row = MessageRow(id=envelope.id)
                        s.add(row)
                        old_status = ""
                    else:
                        old_status = row.status
                    _fill_envelope(row, envelope)
                    row.from_addr = clean_text(message.from_.addr.strip()[:320])
                    row.from_display = clean_text(message.from_.display[:512])
                    row.from_domain = clean_text(message.from_.domain[:255])
                    row.subject = clean_text(message.subject)
                    row.message_id = clean_text(message.message_id.strip()[:998])
                    row.size = envelope.size or len(message.raw)
                    _fill_verdict(row, verdict)
                    row.headers = clean_json([[k, v] for k, v in message.headers])
                    if raw_path:
                        row.raw_path = raw_path
                    elif row.raw_path is None:
                        row.raw_path = ""
                    if old_status in ("released", "deleted"):
                        row.status = old_status
                    else:
                        row.status = "quarantined" if verdict.action == Action.QUARANTINE else "processed"
                    row.scanned_at = now
                    s.flush()
                    s.execute(delete(IndicatorRow).where(IndicatorRow.message_id == envelope.id))
                    ind = extract_indicators(envelope, message, verdict)
                    if ind:
                        s.execute(
                            insert(IndicatorRow),
                            [{"message_id": envelope.id, "kind": k, "value": v} for k, v in ind],
                        )
                return
            except IntegrityError:
                if attempt:  # a concurrent insert of the same id won twice: give up loudly
                    raise

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
        for attempt in range(3):
            try:
                return self._claim(message_id, copies, lease_until, claimable, stale_before, initial, ensure)
            except IntegrityError:
                # Another worker inserted the same rows meanwhile: now they exist, claim them by update.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _claim(
        self,
        message_id: str,
        copies: Sequence[tuple[int, str, str, str]],
        lease_until: float,
        claimable: Sequence[str],
        stale_before: float | None,
        initial: str,
        ensure: tuple[Envelope, Verdict] | None,
    ) -> list[Claim]:
        now = time.time()
        states: list[ColumnElement[bool]] = [DeliveryRow.status.in_(list(claimable))]
        if stale_before is not None:
            states.append((DeliveryRow.status == SENDING) & (DeliveryRow.next_attempt <= stale_before))
        out: list[Claim] = []
        with self.session() as s:
            if ensure is not None and s.get(MessageRow, message_id) is None:
                s.add(_minimal_row(*ensure))
                s.flush()
            existing = {
                r.tracking_id: r
                for r in s.scalars(select(DeliveryRow).where(DeliveryRow.message_id == message_id))
            }
            for idx, rcpt, mailbox, tid in copies:
                row = existing.get(tid)
                if row is None:
                    s.add(
                        DeliveryRow(
                            message_id=message_id, recipient=clean_text(rcpt[:320]), mailbox=clean_text(mailbox[:320]),
                            tracking_id=tid,
                            status=initial, attempts=0, next_attempt=lease_until if initial == SENDING else 0.0,
                            reply="", location="", delivered_at=0.0, updated_at=now,
                        )
                    )
                    out.append(Claim(idx, rcpt, mailbox, tid, initial == SENDING, True, initial, 0))
                    continue
                res = s.execute(
                    update(DeliveryRow)
                    .where(DeliveryRow.tracking_id == tid, or_(*states))
                    .values(status=SENDING, next_attempt=lease_until, updated_at=now)
                    .execution_options(synchronize_session=False)
                )
                if getattr(res, "rowcount", 0):
                    out.append(Claim(idx, row.recipient, row.mailbox or mailbox, tid, True, False, SENDING, row.attempts))
                else:
                    out.append(
                        Claim(idx, row.recipient, row.mailbox, tid, False, False, row.status, row.attempts, row.reply, row.location)
                    )
        return out

    def finish(self, results: Sequence[dict[str, Any]]) -> None:
        """Write the outcome of claimed copies in one transaction.

        Each dict: tracking_id, status and any of reply, location, next_attempt, attempts, delivered_at.
        """
        if not results:
            return
        now = time.time()
        with self.session() as s:
            for r in results:
                values = {k: clean_text(v) if isinstance(v, str) else v for k, v in r.items() if k != "tracking_id"}
                values["updated_at"] = now
                s.execute(update(DeliveryRow).where(DeliveryRow.tracking_id == r["tracking_id"]).values(**values))

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
    row = MessageRow(id=envelope.id, raw_path="", status="processed", scanned_at=time.time())
    _fill_envelope(row, envelope)
    _fill_verdict(row, verdict)
    row.size = envelope.size
    if verdict.action == Action.QUARANTINE:
        row.status = "quarantined"
    return row


def _fill_envelope(row: MessageRow, envelope: Envelope) -> None:
    row.received_at = envelope.received_at
    row.direction = envelope.direction.value
    row.mail_from = clean_text(envelope.mail_from[:320])
    row.rcpt_tos = clean_json(list(envelope.rcpt_tos))
    row.peer_ip = clean_text(envelope.peer_ip[:64])
    row.helo = clean_text(envelope.helo[:255])
    row.auth_user = clean_text(envelope.auth_user[:320])


def _fill_verdict(row: MessageRow, verdict: Verdict) -> None:
    row.action = verdict.action.value
    row.score = float(verdict.score)
    row.symbols = clean_json(verdict.symbols)
    row.findings = clean_json([f.to_dict() for f in verdict.findings])
    row.reasons = clean_json(list(verdict.reasons))


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


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
