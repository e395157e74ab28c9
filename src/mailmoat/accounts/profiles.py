"""Per-account sending profiles kept in the store, learnt from each internal/outbound message at its own time."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mailmoat.config import Settings
from mailmoat.model import Direction, Envelope, Message
from mailmoat.store.accounts_models import AccountEventRow, AccountProfileRow
from mailmoat.urlcheck import domains as dom

MAX_ITEMS = 500  # per profile dict: the most recently used entries are kept
_WS = re.compile(r"\s+")


@dataclass
class Facts:
    """What one sent message tells about its account."""

    account: str
    at: float
    message_id: str
    direction: str
    client_ip: str = ""
    host: str = ""
    display: str = ""
    internal_rcpts: list[str] = field(default_factory=list)
    external_domains: list[str] = field(default_factory=list)
    n_rcpts: int = 0
    fingerprint: str = ""
    urls: list[str] = field(default_factory=list)
    qrs: list[str] = field(default_factory=list)
    link_domains: list[str] = field(default_factory=list)  # where its links and codes lead, outside the organisation


def _norm_domain(d: str) -> str:
    d = d.strip().rstrip(".").lower()
    try:
        return d.encode("idna").decode("ascii")
    except UnicodeError:
        return d


def protected_domains(settings: Settings) -> set[str]:
    return {_norm_domain(d) for d in settings.server.domains}


def is_internal(addr: str, domains: set[str]) -> bool:
    return "@" in addr and _norm_domain(addr.rpartition("@")[2]) in domains


def account_of(envelope: Envelope, message: Message, settings: Settings) -> str:
    """The sending account: the authenticated user, else the envelope sender, else From — in our domains only."""
    if envelope.auth_user.strip():
        return envelope.auth_user.strip().lower()  # a bare login name is still one account
    domains = protected_domains(settings)
    for cand in (envelope.mail_from, message.from_.addr):
        c = cand.strip().lower()
        if c and is_internal(c, domains):
            return c
    return ""


def submission_hop(message: Message, settings: Settings) -> tuple[str, str]:
    """(client IP, submission host) from the trusted Received header the mail system added."""
    own = settings.server.hostname.lower()
    hops = [h for h in message.received if h.by_host != own]
    hosts = {h.strip().lower().rstrip(".") for h in settings.accounts.submission_hosts}
    if hosts:
        for h in hops:
            if h.by_host in hosts:
                return h.ip, h.by_host
        return "", ""
    i = settings.accounts.trusted_hop
    if 0 <= i < len(hops):
        return hops[i].ip, hops[i].by_host
    return "", ""


def fingerprint(message: Message) -> str:
    """A hash of the visible text (whitespace and case folded), shared by copies of one message."""
    text = message.text or message.html_text or ""
    norm = _WS.sub(" ", text).strip().lower()[:4000]
    if not norm:
        return ""
    return hashlib.sha256(norm.encode("utf-8", "replace")).hexdigest()


def facts_of(envelope: Envelope, message: Message, settings: Settings, at: float | None = None) -> Facts | None:
    """The facts of one internal/outbound message, or None when it is not sent by one of our accounts."""
    if envelope.direction is Direction.INBOUND:
        return None
    account = account_of(envelope, message, settings)
    if not account:
        return None
    domains = protected_domains(settings)
    internal = sorted({r.strip().lower() for r in envelope.rcpt_tos if is_internal(r, domains)})
    external = sorted({_norm_domain(r.rpartition("@")[2]) for r in envelope.rcpt_tos if "@" in r and not is_internal(r, domains)})
    ip, host = submission_hop(message, settings)
    return Facts(
        account=account,
        at=envelope.received_at if at is None else at,
        message_id=envelope.id,
        direction=envelope.direction.value,
        client_ip=ip,
        host=host,
        display=message.from_.display.strip()[:200],
        internal_rcpts=internal,
        external_domains=external,
        n_rcpts=len(envelope.rcpt_tos),
        fingerprint=fingerprint(message),
        urls=sorted({u.url for u in message.urls})[:20],
        qrs=sorted({q.payload for q in message.qr_codes})[:10],
        link_domains=link_domains(message, domains),
    )


# Where a reader can be sent: links, codes and documents' links, not images or style sheets.
_LINK_SOURCES = frozenset({"href", "text", "qr", "pdf", "attachment", "form"})


def link_domains(message: Message, own: set[str]) -> list[str]:
    """Registrable domains the message's links lead to, outside the organisation and its network."""
    out: set[str] = set()
    for u in message.urls:
        if u.source not in _LINK_SOURCES or not u.host or u.is_ip or dom.is_ip(u.host):
            continue
        d = _norm_domain(u.registrable_domain or dom.registrable(u.host))
        if d and not dom.in_domains(dom.to_ascii(u.host), own):
            out.add(d)
    return sorted(out)[:20]


def same_network(a: str, b: str) -> bool:
    """Same /24 (IPv4) or /48 (IPv6): a dynamic address from the same office or provider line."""
    try:
        x, y = ipaddress.ip_address(a), ipaddress.ip_address(b)
    except ValueError:
        return False
    if x.version != y.version:
        return False
    prefix = 24 if x.version == 4 else 48
    return ipaddress.ip_network(f"{a}/{prefix}", strict=False) == ipaddress.ip_network(f"{b}/{prefix}", strict=False)


def usual(items: dict[str, Any], value: str, now: float, learn_after: float) -> bool:
    """True when value (or, for IPs, its network) was first seen at least learn_after ago."""
    e = items.get(value)
    return bool(isinstance(e, dict) and float(e.get("first", now)) <= now - learn_after)


def usual_ip(profile: AccountProfileRow, ip: str, now: float, learn_after: float) -> bool:
    ips = profile.ips or {}
    if usual(ips, ip, now, learn_after):
        return True
    return any(
        same_network(ip, other) and isinstance(e, dict) and float(e.get("first", now)) <= now - learn_after
        for other, e in ips.items()
    )


def get_profile(session: Session, account: str) -> AccountProfileRow | None:
    return session.get(AccountProfileRow, account)


def _bump(items: dict[str, Any] | None, value: str, at: float) -> dict[str, Any]:
    out = dict(items or {})
    if not value:
        return out
    e = dict(out.get(value) or {"n": 0, "first": at, "last": at})
    e["n"] = int(e.get("n", 0)) + 1
    e["first"] = min(float(e.get("first", at)), at)
    e["last"] = max(float(e.get("last", at)), at)
    out[value] = e
    if len(out) > MAX_ITEMS:
        keep = sorted(out.items(), key=lambda kv: float(kv[1].get("last", 0.0)), reverse=True)[:MAX_ITEMS]
        out = dict(keep)
    return out


def learn(session: Session, facts: Facts) -> AccountProfileRow:
    """Add one message to its account's profile (at the message's own time: replays need no waiting)."""
    p = session.get(AccountProfileRow, facts.account)
    if p is None:
        p = AccountProfileRow(account=facts.account, first_seen=facts.at, last_seen=facts.at, messages=0,
                              recipients_total=0, hours=[0] * 24, ips={}, hosts={}, names={}, recipients={}, ext_domains={},
                              link_domains={})
        session.add(p)
    p.first_seen = min(p.first_seen or facts.at, facts.at)
    p.last_seen = max(p.last_seen or 0.0, facts.at)
    p.messages = (p.messages or 0) + 1
    p.recipients_total = (p.recipients_total or 0) + facts.n_rcpts
    hours = list(p.hours or [0] * 24)
    hours[int(facts.at // 3600) % 24] += 1
    p.hours = hours
    p.ips = _bump(p.ips, facts.client_ip, facts.at)
    p.hosts = _bump(p.hosts, facts.host, facts.at)
    p.names = _bump(p.names, facts.display, facts.at)
    rc = dict(p.recipients or {})
    for r in facts.internal_rcpts:
        rc = _bump(rc, r, facts.at)
    p.recipients = rc
    ed = dict(p.ext_domains or {})
    for d in facts.external_domains:
        ed = _bump(ed, d, facts.at)
    p.ext_domains = ed
    ld = dict(p.link_domains or {})
    for d in facts.link_domains:
        ld = _bump(ld, d, facts.at)
    p.link_domains = ld
    return p


def record_event(session: Session, facts: Facts, *, action: str, content_threat: bool, new_ip: bool, new_name: bool) -> AccountEventRow:
    row = AccountEventRow(
        account=facts.account, at=facts.at, message_id=facts.message_id, direction=facts.direction,
        client_ip=facts.client_ip, host=facts.host, display=facts.display, internal_rcpts=facts.internal_rcpts,
        external_domains=facts.external_domains, n_rcpts=facts.n_rcpts, fingerprint=facts.fingerprint,
        urls=facts.urls, qrs=facts.qrs, action=action, content_threat=content_threat, new_ip=new_ip, new_name=new_name,
    )
    session.add(row)
    return row


def events_since(session: Session, account: str, since: float) -> list[AccountEventRow]:
    return list(
        session.scalars(
            select(AccountEventRow).where(AccountEventRow.account == account, AccountEventRow.at >= since).order_by(AccountEventRow.at)
        )
    )


def prune(session: Session, before: float) -> None:
    session.execute(delete(AccountEventRow).where(AccountEventRow.at < before))


def usual_hours(profile: AccountProfileRow) -> list[int]:
    """Hours of day (UTC) in which the account sends at least 2% of its mail."""
    hours = list(profile.hours or [0] * 24)
    total = sum(hours) or 1
    return [h for h, n in enumerate(hours) if n / total >= 0.02]


def learn_many(session: Session, settings: Settings, mails: list[tuple[Envelope, Message]]) -> int:
    """Build profiles from already-trusted mail (an import or a replay of past traffic), each at its own time."""
    n = 0
    for envelope, message in sorted(mails, key=lambda m: m[0].received_at):
        facts = facts_of(envelope, message, settings)
        if facts is None:
            continue
        record_event(session, facts, action="deliver", content_threat=False, new_ip=False, new_name=False)
        learn(session, facts)
        n += 1
    return n
