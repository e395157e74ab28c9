"""Build Message objects for detection unit tests without the full parser (headers, addresses, body, urls)."""

from __future__ import annotations

import email
import email.policy
from email.utils import getaddresses

from mailmoat.model import Address, Message, Url
from mailmoat.urlcheck import domains as dom


def url(u: str, source: str = "href", anchor: str = "") -> Url:
    """A Url the way the parser fills it in (host, port, registrable domain, IP and IDN flags)."""
    from urllib.parse import urlsplit

    parts = urlsplit(u)
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return Url(
        url=u,
        scheme=parts.scheme.lower(),
        host=host,
        port=port,
        registrable_domain=dom.registrable(host) if host else "",
        source=source,
        anchor_text=anchor,
        is_ip=dom.is_ip(host),
        is_idn="xn--" in host or not host.isascii(),
    )


def _addr(value: str) -> Address:
    pairs = getaddresses([value])
    if not pairs:
        return Address()
    name, addr = pairs[0]
    return Address(display=name, addr=addr)


def message(raw: bytes, urls: list[Url] | None = None, html: str = "") -> Message:
    """A Message with raw bytes, decoded headers, From/Reply-To/To and the given urls/html."""
    em = email.message_from_bytes(raw, policy=email.policy.default)
    headers = [(k, str(v)) for k, v in em.items()]
    m = Message(raw=raw, headers=headers, subject=str(em.get("Subject", "")))
    m.from_ = _addr(str(em.get("From", "")))
    m.reply_to = [Address(display=n, addr=a) for n, a in getaddresses([str(v) for v in em.get_all("Reply-To", [])])]
    m.to = [Address(display=n, addr=a) for n, a in getaddresses([str(v) for v in em.get_all("To", [])])]
    m.urls = list(urls or [])
    m.html = html
    body = em.get_body(("plain",))
    if body is not None:
        m.text = str(body.get_content())
    return m


def simple(from_: str, subject: str = "Hello", body: str = "Hello there.\n", extra: str = "", to: str = "staff@example.com") -> bytes:
    """A small RFC 5322 message with CRLF line ends."""
    text = (
        f"From: {from_}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Mon, 02 Nov 2026 10:00:00 +0000\r\n"
        f"Message-ID: <t{abs(hash((from_, subject, body))) % 10**9}@test>\r\n{extra}"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body.replace("\n", "\r\n")
    )
    return text.encode("utf-8")
