"""Signals of a taken-over account: bursts, new client IP, new department/executive name, same-content fan-out, spam relay."""

from __future__ import annotations

import functools
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from mailmoat.accounts.profiles import Facts, events_since, get_profile, usual, usual_ip
from mailmoat.config import Settings
from mailmoat.parse.names import fold, written_apart
from mailmoat.store.accounts_models import AccountEventRow, AccountProfileRow
from mailmoat.urlcheck.links import abused_tld, free_hosting, is_shortener

RELAY_WINDOW = 3600.0  # outbound rate and spam-relay counts are per hour


@dataclass
class Signals:
    """Everything known about one account at the time of one of its messages."""

    account: str
    mature: bool = False
    history: int = 0
    client_ip: str = ""
    new_ip: bool = False
    new_host: bool = False
    display: str = ""
    new_name: bool = False
    name_kind: str = ""  # "department", "executive" or "" (an ordinary name)
    burst_recipients: int = 0
    burst: bool = False
    fanout_recipients: int = 0
    fanout: bool = False
    fanout_on: list[str] = field(default_factory=list)
    external_domains: int = 0
    spam_relay: bool = False
    outbound_recipients: int = 0
    rate_limited: bool = False
    content_threats: int = 0
    anomaly_events: int = 0  # messages in the window with a new IP or a new department/executive name
    first_suspect_at: float = 0.0
    first_suspect_message: str = ""
    window_messages: list[str] = field(default_factory=list)
    # Every place the message's links and codes lead to, when the account has linked there before
    # (empty when one of them is new, or the message links nowhere outside).
    usual_links: list[str] = field(default_factory=list)

    def anomalies(self) -> list[str]:
        out = []
        if self.new_ip or self.anomaly_events:
            out.append("new client IP" if self.new_ip else "anomalous messages in the window")
        if self.new_name and self.name_kind:
            out.append(f"new {self.name_kind} display name {self.display!r}")
        return out

    @property
    def anomalous(self) -> bool:
        return bool(self.new_ip or (self.new_name and self.name_kind) or self.anomaly_events)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["window_messages"] = len(self.window_messages)
        return d


def _fold(s: str) -> str:
    # Read as the impersonation checks read it: 財務部, 财\u200b务部 and 财 务 部 are 财务部.
    return fold(s).casefold()


@functools.lru_cache(maxsize=64)
def _folded(names: tuple[str, ...]) -> tuple[str, ...]:
    """The organisation's names as matched, folded once rather than for every message (only these
    short configured lists are kept; a display name, which may be as long as a header, is not)."""
    return tuple(f for f in map(_fold, names) if f)


def name_kind(display: str, settings: Settings) -> str:
    """'department' or 'executive' when the display name claims one of the organisation's own."""
    d = _fold(display)
    if not d:
        return ""
    for kind, names in (("executive", settings.org.executives), ("department", settings.org.departments)):
        for f in _folded(tuple(names)):
            if d == f:
                return kind
            if f.isascii():
                if re.search(rf"(?<![a-z0-9]){re.escape(f)}(?![a-z0-9])", d):
                    return kind
            elif f in d or written_apart(f, d):
                return kind
    return ""


def _shares(e: AccountEventRow, facts: Facts) -> list[str]:
    out = []
    if facts.fingerprint and e.fingerprint == facts.fingerprint:
        out.append("body")
    if facts.urls and set(e.urls or ()) & set(facts.urls):
        out.append("url")
    if facts.qrs and set(e.qrs or ()) & set(facts.qrs):
        out.append("qr")
    return out


# Links the account sent at least this often before, the first at least accounts.learn_after ago.
USUAL_LINK_TIMES = 2


def _usual_link(profile: AccountProfileRow, domain: str, now: float, learn_after: float) -> bool:
    """The account has linked to this domain before, and it is not a platform where anyone can
    publish: a stolen account's phishing page on a file-sharing or form site must earn no trust."""
    if free_hosting(domain) or is_shortener(domain) or abused_tld(domain):
        return False
    items = profile.link_domains or {}
    e = items.get(domain)
    return usual(items, domain, now, learn_after) and isinstance(e, dict) and int(e.get("n", 0)) >= USUAL_LINK_TIMES


def compute(session: Session, settings: Settings, facts: Facts, *, current_threat: bool = False) -> Signals:
    """Signals at the time of `facts` from the stored profile and recent events (the message itself included)."""
    cfg = settings.accounts
    now = facts.at
    sig = Signals(account=facts.account, client_ip=facts.client_ip, display=facts.display)
    profile: AccountProfileRow | None = get_profile(session, facts.account)
    # The profile counts only what was learnt before this message: a first sight of a value is not "usual".
    sig.history = int(profile.messages or 0) if profile is not None else 0
    sig.mature = sig.history >= cfg.min_history
    if profile is not None and sig.mature:
        if facts.client_ip and not usual_ip(profile, facts.client_ip, now, cfg.learn_after):
            sig.new_ip = True
        if facts.host and not usual(profile.hosts or {}, facts.host, now, cfg.learn_after):
            sig.new_host = True
        if facts.display and not usual(profile.names or {}, facts.display, now, cfg.learn_after):
            sig.new_name = True
            sig.name_kind = name_kind(facts.display, settings)
        if facts.link_domains and all(_usual_link(profile, d, now, cfg.learn_after) for d in facts.link_domains):
            sig.usual_links = list(facts.link_domains)
    lookback = max(cfg.burst_window, RELAY_WINDOW, cfg.suspect_window)
    events = [e for e in events_since(session, facts.account, now - lookback) if e.message_id != facts.message_id and e.at <= now]
    burst_events = [e for e in events if e.at >= now - cfg.burst_window]
    rcpts = set(facts.internal_rcpts)
    fan: set[str] = set(facts.internal_rcpts) if (facts.fingerprint or facts.urls or facts.qrs) else set()
    on: set[str] = set()
    for e in burst_events:
        rcpts.update(e.internal_rcpts or ())
        shared = _shares(e, facts)
        if shared:
            fan.update(e.internal_rcpts or ())
            on.update(shared)
    sig.burst_recipients = len(rcpts)
    sig.burst = len(rcpts) >= cfg.burst_recipients
    sig.fanout_recipients = len(fan)
    sig.fanout = len(fan) >= cfg.fanout_recipients
    sig.fanout_on = sorted(on)
    hour = [e for e in events if e.at >= now - RELAY_WINDOW and e.direction == "outbound"]
    domains = set(facts.external_domains)
    out_rcpts = len(facts.external_domains) and facts.n_rcpts - len(facts.internal_rcpts)
    for e in hour:
        domains.update(e.external_domains or ())
        out_rcpts += max(0, e.n_rcpts - len(e.internal_rcpts or ()))
    sig.external_domains = len(domains)
    sig.spam_relay = len(domains) >= cfg.external_domains
    sig.outbound_recipients = int(out_rcpts)
    sig.rate_limited = facts.direction == "outbound" and out_rcpts > cfg.outbound_rate_per_hour
    suspect = [e for e in events if e.at >= now - cfg.suspect_window]
    sig.content_threats = sum(1 for e in suspect if e.content_threat) + (1 if current_threat else 0)
    sig.anomaly_events = sum(1 for e in suspect if e.new_ip or e.new_name)
    flagged = [e for e in suspect if e.new_ip or e.new_name or e.content_threat]
    if flagged:
        sig.first_suspect_at, sig.first_suspect_message = flagged[0].at, flagged[0].message_id
    elif sig.anomalous or current_threat:
        sig.first_suspect_at, sig.first_suspect_message = now, facts.message_id
    else:
        same = [e for e in burst_events if _shares(e, facts)]
        first = same[0] if same else None
        sig.first_suspect_at = first.at if first else now
        sig.first_suspect_message = first.message_id if first else facts.message_id
    sig.window_messages = [e.message_id for e in suspect if e.at >= sig.first_suspect_at] + [facts.message_id]
    return sig


def judge(sig: Signals) -> list[str]:
    """Why the account is judged compromised (empty: it is not).

    An unusual origin alone (travel, a new laptop) or volume alone (an announcement) is normal;
    the two together, or phishing sent to many, is a taken-over account.
    """
    strong: list[str] = []
    if sig.fanout:
        strong.append(f"same {'/'.join(sig.fanout_on) or 'content'} sent to {sig.fanout_recipients} colleagues")
    if sig.burst:
        strong.append(f"{sig.burst_recipients} distinct colleagues within the burst window")
    if sig.spam_relay:
        strong.append(f"mail to {sig.external_domains} external domains within an hour")
    if sig.content_threats:
        strong.append(f"{sig.content_threats} message(s) quarantined by the content engines")
    anomalies = sig.anomalies()
    if anomalies and strong:
        return anomalies + strong
    if sig.content_threats and (sig.fanout or sig.burst or sig.spam_relay):
        return strong
    if sig.content_threats >= 3:
        return strong
    return []
