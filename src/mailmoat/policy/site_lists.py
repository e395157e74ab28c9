"""Allow and deny lists kept in the store: entries checked and added, and each policy's view of them, read again every few seconds."""

from __future__ import annotations

import ipaddress
import logging
import math
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailmoat.intel.loaders import too_wide
from mailmoat.store.list_models import SenderListRow

log = logging.getLogger("mailmoat.policy")

LISTS = ("allow", "deny")
KINDS = ("sender", "domain", "ip")
# How soon an entry added on one node holds on every node.
RELOAD_EVERY = 10.0
# The longest an entry may be added for (0 = never expires): ten years, beyond which a time is
# more likely a typing slip (or `inf`) than a plan.
MAX_DAYS = 3650.0
_ADDRESS = re.compile(r"^[^@\s<>]{1,64}@([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+)$")
_DOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ListError(ValueError):
    """An entry that cannot be added (a value that is not of its kind, or one far too wide)."""


def normalise(kind: str, value: str) -> str:
    """The entry as it is kept and matched: lower case, an IP as a network in CIDR form."""
    v = value.strip().strip("<>").strip().lower()
    if kind == "sender":
        if not _ADDRESS.match(v):
            raise ListError(f"{value!r} is not an email address")
        return v
    if kind == "domain":
        from mailmoat.store.db import is_public_suffix

        v = v.lstrip("@").rstrip(".")
        if is_public_suffix(v):
            raise ListError(f"{v} is a public suffix: it would match every organisation registered under it")
        if not _DOMAIN.match(v):
            raise ListError(f"{value!r} is not a domain name")
        return v
    if kind == "ip":
        try:
            net = ipaddress.ip_network(v, strict=False)
        except ValueError as exc:
            raise ListError(f"{value!r} is not an IP address or network") from exc
        if why := too_wide("ip", str(net)):  # the limit threat indicators have too
            raise ListError(why)
        return str(net)
    raise ListError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")


def kind_of(value: str) -> str:
    """The kind a bare value is, as an exported list gives it: an address, "@domain" or a domain,
    an IP address or network."""
    v = value.strip().strip("<>").strip()
    if "@" in v and not v.startswith("@"):
        return "sender"
    try:
        ipaddress.ip_network(v, strict=False)
        return "ip"
    except ValueError:
        return "domain"


def entries(session: Session, now: float | None = None) -> list[SenderListRow]:
    """Every entry in force (not expired), allow list first, then by kind and value."""
    now = time.time() if now is None else now
    rows = session.scalars(select(SenderListRow).order_by(SenderListRow.list, SenderListRow.kind, SenderListRow.value)).all()
    return [r for r in rows if not r.expires_at or r.expires_at > now]


def check_days(days: float) -> None:
    """Raise ListError unless `days` is an expiry an entry may be added with: 0 (never expires) or
    more than 0 up to MAX_DAYS (`inf` or `nan` would store a time no listing can show)."""
    if not math.isfinite(days) or days < 0 or days > MAX_DAYS:
        raise ListError(f"days must be 0 (never expires) or more, up to {MAX_DAYS:g}, not {days!r}")


class Added(NamedTuple):
    row: SenderListRow
    new: bool
    was: dict[str, Any] | None  # the entry as it was, when it was already on its list (else None)


def add(session: Session, list_: str, kind: str, value: str, *, note: str = "", by: str = "", days: float = 0.0,
        may_remove: bool = False, now: float | None = None) -> Added:
    """Add an entry, or add to one already there (an expired one is in force again).

    Only those who may remove entries (`may_remove`: an administrator, the command line) may
    replace an entry in force: its note, expiry and author become theirs. Anyone else's addition
    must not undo it, since a shorter expiry is a removal in a few seconds' time and another author
    hides who decided: their expiry only lengthens the entry's (no expiry is the longest), and
    their note is added to the entry's, which keeps its author."""
    if list_ not in LISTS:
        raise ListError(f"list must be allow or deny, not {list_!r}")
    check_days(days)
    v = normalise(kind, value)
    now = time.time() if now is None else now
    expires = now + days * 86400.0 if days else 0.0
    row = session.scalar(select(SenderListRow).where(SenderListRow.list == list_, SenderListRow.kind == kind, SenderListRow.value == v))
    if row is None:
        row = SenderListRow(list=list_, kind=kind, value=v, note=note[:500], created_by=by[:128], created_at=now, expires_at=expires)
        session.add(row)
        session.flush()  # its id
        return Added(row, True, None)
    was = entry_dict(row)
    in_force = not row.expires_at or row.expires_at > now
    if may_remove or not in_force:
        row.note, row.expires_at, row.created_by, row.created_at = note[:500], expires, by[:128], now
        return Added(row, False, was)
    if row.expires_at and (not expires or expires > row.expires_at):
        row.expires_at = expires
    addition = f"{by}: {note}" if by else note
    if note and addition not in row.note:
        row.note = (f"{row.note} | {addition}" if row.note else addition)[:500]
    return Added(row, False, was)


def add_to_store(store: Any, list_: str, kind: str, value: str, *, note: str = "", by: str = "",
                 days: float = 0.0, may_remove: bool = False) -> tuple[dict[str, Any], bool]:
    """`add` in a session of its own: (the entry as a dict, whether it is new); an entry that was
    already there also says how it was (`was`), for the audit log. Two people adding the same
    entry at once meet the unique constraint; the loser tries again and adds to it."""
    from sqlalchemy.exc import IntegrityError

    def once() -> tuple[dict[str, Any], bool]:
        with store.session() as s:
            row, new, was = add(s, list_, kind, value, note=note, by=by, days=days, may_remove=may_remove)
            return {**entry_dict(row), **({"was": was} if was is not None else {})}, new

    try:
        return once()
    except IntegrityError:
        return once()


def purge_expired(store: Any, now: float | None = None) -> int:
    """Remove the entries that have expired (they no longer apply anywhere), each audited as
    `list.expired` with what it was; how many. Run with the hourly retention purge."""
    from mailmoat.store.audit import audit

    now = time.time() if now is None else now
    with store.session() as s:
        rows = s.scalars(select(SenderListRow).where(SenderListRow.expires_at > 0, SenderListRow.expires_at <= now)).all()
        for r in rows:
            entry = entry_dict(r)
            audit(s, "system", "list.expired", audit_target(entry), detail=entry)
            s.delete(r)
        s.commit()
        return len(rows)


def audit_target(entry: dict[str, Any]) -> str:
    """How the audit log names an entry: `list:kind:value` (searchable with `--target`)."""
    return f"{entry['list']}:{entry['kind']}:{entry['value']}"


def entry_dict(r: SenderListRow) -> dict[str, Any]:
    return {"id": r.id, "list": r.list, "kind": r.kind, "value": r.value, "note": r.note, "created_by": r.created_by,
            "created_at": r.created_at, "expires_at": r.expires_at}


@dataclass(frozen=True)
class SiteLists:
    """The store's entries in force, as the policy matches them."""

    allow_senders: frozenset[str] = frozenset()
    allow_domains: frozenset[str] = frozenset()
    allow_ips: tuple[Network, ...] = ()
    deny_senders: frozenset[str] = frozenset()
    deny_domains: frozenset[str] = frozenset()
    deny_ips: tuple[Network, ...] = ()

    @classmethod
    def of(cls, rows: list[SenderListRow]) -> SiteLists:
        def values(list_: str, kind: str) -> list[str]:
            return [r.value for r in rows if r.list == list_ and r.kind == kind]

        def nets(list_: str) -> tuple[Network, ...]:
            return tuple(ipaddress.ip_network(v, strict=False) for v in values(list_, "ip"))

        return cls(frozenset(values("allow", "sender")), frozenset(values("allow", "domain")), nets("allow"),
                   frozenset(values("deny", "sender")), frozenset(values("deny", "domain")), nets("deny"))


class StoreLists:
    """A policy's view of the store's lists, read again at most every `every` seconds; when a read
    fails the last view stays (a store that hiccups must not drop every deny entry at once)."""

    def __init__(self, store: Any, every: float | None = None) -> None:
        self.store = store
        self.every = RELOAD_EVERY if every is None else every
        self._lists = SiteLists()
        self._read_at = float("-inf")
        self._lock = threading.Lock()

    def __call__(self) -> SiteLists:
        now = time.monotonic()
        if now - self._read_at < self.every:
            return self._lists
        with self._lock:
            if now - self._read_at >= self.every:
                self._read_at = now
                try:
                    with self.store.session() as s:
                        self._lists = SiteLists.of(entries(s))
                except Exception:
                    log.exception("allow and deny lists: cannot read the store; the last lists stay")
        return self._lists
