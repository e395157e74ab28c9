"""Sender facts from the header block: addresses, Received hops, ids, dates, mailer and List-* headers."""

from __future__ import annotations

import calendar
import re
import socket
from email.utils import getaddresses, mktime_tz, parsedate_tz

from mailmoat.model import Address, Message, ReceivedHop
from mailmoat.parse.charset import decode_header, unfold

MAX_HEADERS = 2000
# Fields read past MAX_HEADERS (at most _ALWAYS_READ_MAX of them): who sent it, to whom, about what.
_ALWAYS_READ = frozenset({
    "from", "sender", "reply-to", "to", "cc", "subject", "date", "message-id", "return-path",
    "in-reply-to", "references", "list-id", "list-unsubscribe", "content-type", "mime-version",
})
_ALWAYS_READ_MAX = 50
MAX_ADDRESSES = 1000

_MONTHS = {m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
_DATE = re.compile(
    r"(\d{1,2})\s+([A-Za-z]{3})[a-z]*\s+(\d{2,4})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?(?:\.\d+)?\s*([+-]\d{4})?"
)
_TOKEN = re.compile(r"\s*([^\s;()]+)")
_BRACKET_IP = re.compile(r"\[(?:IPv6:)?([0-9A-Fa-f:.]{2,45})\]", re.I)
_BARE_IPV4 = re.compile(r"\b(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})\b(?!\.\d)")
_PAREN_IPV6 = re.compile(r"\(\s*(?:IPv6:)?([0-9A-Fa-f]*:[0-9A-Fa-f:.]+)\s*\)")
_HELO = re.compile(r"(?i:helo\s*=\s*|\b(?:he|eh)lo\s+)([^\s)\]]+)")
_IP_CHARS = re.compile(r"^[0-9A-Fa-f:.]+$")
_ANGLE = re.compile(r"<\s*([^<>\s]*@[^<>\s]*)\s*>")
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
_COMMENT = re.compile(r"\((?:[^()\\]|\\.)*\)")
_RDNS = re.compile(r"\(\s*([A-Za-z0-9][A-Za-z0-9.\-_]*\.[A-Za-z0-9\-_]+)\.?\s+\[", re.I)


def parse_date(value: str) -> float | None:
    """Epoch seconds of an RFC 5322 date, or None; a fast path for the usual shape first."""
    m = _DATE.search(value)
    if m is not None:
        day, mon, year, hh, mm, ss, tz = m.groups()
        month = _MONTHS.get(mon.lower())
        if month is not None:
            y = int(year)
            if y < 100:
                y += 2000 if y < 50 else 1900
            try:
                ts = calendar.timegm((y, month, int(day), int(hh), int(mm), int(ss or 0), 0, 0, 0))
            except (ValueError, OverflowError):
                return None
            if tz:
                offset = (int(tz[1:3]) * 60 + int(tz[3:5])) * 60
                ts -= offset if tz[0] == "+" else -offset
            return float(ts)
    try:
        parsed = parsedate_tz(value)
        return float(mktime_tz(parsed)) if parsed else None
    except (ValueError, OverflowError, TypeError, IndexError):
        return None


def _valid_ip(text: str) -> str:
    """Canonical text of an IPv4/IPv6 address, or "" (inet_pton/ntop: far cheaper than ipaddress)."""
    if not text or not _IP_CHARS.match(text):
        return ""
    family = socket.AF_INET6 if ":" in text else socket.AF_INET
    try:
        return socket.inet_ntop(family, socket.inet_pton(family, text))
    except (OSError, ValueError):
        return ""


def _keyword(low: str, word: str, start: int = 0) -> int:
    """Index just after `word ` standing alone (after a blank or ')'), or -1; str.find beats a regex here."""
    i = low.find(word, start)
    while i != -1:
        if (i == 0 or low[i - 1] in " \t)") and low[i + len(word) : i + len(word) + 1] in (" ", "\t"):
            return i + len(word) + 1
        i = low.find(word, i + 1)
    return -1


def _token(text: str, at: int) -> str:
    m = _TOKEN.match(text, at)
    return m.group(1) if m else ""


def parse_received(value: str) -> ReceivedHop:
    """One Received header: from host (reverse DNS when given), HELO, client IP, by host, protocol, time."""
    raw = unfold(value)
    hop = ReceivedHop(raw=raw)
    body, _, when = raw.rpartition(";")
    if not body:
        body, when = raw, ""
    low = body.lower()
    from_at = 5 if low.startswith(("from ", "from\t")) else -1
    by_at = _keyword(low, "by", from_at if from_at != -1 else 0)
    if by_at != -1:
        hop.by_host = _token(body, by_at).lower().rstrip(".")
    with_at = _keyword(low, "with", by_at if by_at != -1 else 0)
    if with_at != -1:
        proto = _token(body, with_at)
        if proto.lower() == "microsoft" and low.startswith("microsoft smtp server", with_at):
            proto = body[with_at : with_at + 21]
        hop.protocol = proto
    if from_at != -1:
        from_clause = body[from_at : by_at - 3 if by_at != -1 and by_at > from_at else len(body)].strip()
        first = from_clause.split(None, 1)[0] if from_clause else ""
        m = _BRACKET_IP.search(from_clause) if "[" in from_clause else None
        ip = _valid_ip(m.group(1)) if m else ""
        if not ip and "(" in from_clause:
            m6 = _PAREN_IPV6.search(from_clause)
            ip = _valid_ip(m6.group(1)) if m6 else ""
        if not ip:
            m4 = _BARE_IPV4.search(from_clause)
            ip = _valid_ip(m4.group(1)) if m4 else ""
        hop.ip = ip
        clause_low = from_clause.lower()
        helo_m = _HELO.search(from_clause) if ("helo" in clause_low or "ehlo" in clause_low) else None
        rdns_m = _RDNS.search(from_clause) if "(" in from_clause else None
        first_name = first.strip("[]()").rstrip(".")
        hop.helo = helo_m.group(1).rstrip(".") if helo_m else first_name
        rdns = rdns_m.group(1).rstrip(".").lower() if rdns_m else ""
        if rdns and rdns != "unknown":
            hop.from_host = rdns
        elif first_name and not first.startswith("[") and not _valid_ip(first_name):
            hop.from_host = first_name.lower()
    if when.strip():
        hop.timestamp = parse_date(when)
    return hop


def from_writing_defects(raw: str) -> list[str]:
    """How a From line is written as no mail software writes it, as parse defects. Both read the
    line with its quoted strings and comments taken out, so that is done once:
    - "header:from-unquoted-comma": one `display <addr>` whose display holds a comma or semicolon
      outside quotes and comments ("Gutschein, jehd <a@b>"): to a mail server that is a list whose
      first mailbox has no address. Mail software quotes such names ("Doe, John" <j@b>).
    - "header:from-address-in-comment": the only address is written inside a comment
      ("Paket-Service,(<noreply@dhl.de>)"): a mail client may show it, but to a mail server the
      From holds none, so there is no domain for DMARC to check."""
    unquoted = _QUOTED.sub('""', raw)
    bare = _COMMENT.sub("", unquoted) if "(" in unquoted else unquoted
    out: list[str] = []
    if bare.count("<") == 1 and bare.count("@") == 1:
        shown = bare.split("<", 1)[0]
        if "," in shown or ";" in shown:
            out.append("header:from-unquoted-comma")
    if "@" not in bare and "<" in unquoted and "@" in unquoted:
        out.append("header:from-address-in-comment")
    return out


def _mailbox(raw: str, defects: list[str], hint: str | None = None) -> Address | None:
    """A single `display <addr>` mailbox read the way mail clients show it, even with broken quoting."""
    m = _ANGLE.search(raw)
    if m is None or _ANGLE.search(raw, m.end()) is not None:
        return None
    display = raw[: m.start()].strip().strip('"').strip()
    if '\\"' in display:
        display = display.replace('\\"', '"')
    return Address(
        display=decode_header(display, defects, hint) if display else "", addr=decode_header(m.group(1), defects)
    )


def _addresses(raw_values: list[str], defects: list[str], hint: str | None = None) -> list[Address]:
    out: list[Address] = []
    try:
        pairs = getaddresses(raw_values)
    except Exception:  # stdlib parser bugs on hostile input
        defects.append("header:bad-address")
        return out
    for display, addr in pairs[:MAX_ADDRESSES]:
        if not display and not addr:
            continue
        out.append(
            Address(display=decode_header(display, defects, hint) if display else "", addr=decode_header(addr, defects))
        )
    return out


def fill_headers(
    message: Message, raw_headers: list[tuple[str, str]], defects: list[str], hint: str | None = None
) -> None:
    """Decode every header in order and the sender facts analyzers read directly; `hint` is the
    codec tried first on raw 8-bit header bytes (`charset.header_hint` of the text's charset)."""
    if len(raw_headers) > MAX_HEADERS:
        defects.append(f"limit:headers {len(raw_headers)}")
        # Past the limit the fields the analyzers and the record read are still kept: thousands of
        # junk fields ahead of From and Subject must not hide the sender from the scan.
        raw_headers = raw_headers[:MAX_HEADERS] + [
            (n, v) for n, v in raw_headers[MAX_HEADERS:] if n.strip().lower() in _ALWAYS_READ][:_ALWAYS_READ_MAX]
    decoded: list[tuple[str, str]] = []
    by_name: dict[str, list[int]] = {}
    for i, (name, value) in enumerate(raw_headers):
        if not isinstance(value, str):  # compat32 may hold Header objects for synthesised values
            value = str(value)
        name = name.strip()  # "Subject :" is still the subject to a mail client
        decoded.append((name, decode_header(value, defects, hint)))
        by_name.setdefault(name.lower(), []).append(i)
    message.headers = decoded

    def first(name: str) -> str:
        idx = by_name.get(name)
        return decoded[idx[0]][1] if idx else ""

    def raws(name: str) -> list[str]:
        return [unfold(raw_headers[i][1]) for i in by_name.get(name, ())]

    message.subject = first("subject")
    from_raw = raws("from")
    if from_raw:
        defects.extend(from_writing_defects(from_raw[0]))
    single = _mailbox(from_raw[0], defects, hint) if from_raw else None
    from_list = [single] if single is not None else _addresses(from_raw[:1], defects, hint)
    if from_list:
        message.from_ = from_list[0]
        if len(from_list) > 1:
            defects.append("header:multiple-from-addresses")
    if "from" not in by_name:
        defects.append("header:missing-from")
    elif len(by_name["from"]) > 1:
        defects.append("header:duplicate-from")
    message.reply_to = _addresses(raws("reply-to"), defects, hint)
    message.to = _addresses(raws("to"), defects, hint)
    message.cc = _addresses(raws("cc"), defects, hint)
    if "sender" in by_name:
        sender_raw = raws("sender")[:1]
        single = _mailbox(sender_raw[0], defects, hint) if sender_raw else None
        senders = [single] if single is not None else _addresses(sender_raw, defects, hint)
        message.sender = senders[0] if senders else None
    message.return_path = first("return-path").strip().strip("<>").strip()
    message.message_id = first("message-id").strip()
    if not message.message_id:
        defects.append("header:missing-message-id")
    message.date = first("date").strip()
    if not message.date:
        defects.append("header:missing-date")
    message.x_mailer = first("x-mailer") or first("user-agent")
    message.list_headers = {name: decoded[idx[0]][1] for name, idx in by_name.items() if name.startswith("list-")}
    message.received = [parse_received(decoded[i][1]) for i in by_name.get("received", ())]
