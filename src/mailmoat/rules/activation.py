"""The message model as plain data for rule expressions; only the fields the loaded rules use are built."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mailmoat.model import Address, Envelope, Finding, Message, Part
from mailmoat.parse.qr import leads_somewhere
from mailmoat.rules.functions import ext, is_freemail

# What makes a sender "suspect" for the business-email-compromise rules: an impersonation check
# flagged the From (an executive's or a department's name from outside, a name this colleague
# never used, a lookalike of our domain). Kept here so every rule means the same by it.
SUSPECT_SENDER_FINDINGS = frozenset(
    {"IMPERSONATION_EXECUTIVE", "IMPERSONATION_DEPARTMENT", "INTERNAL_UNUSUAL_DISPLAY_NAME", "FROM_LOOKALIKE_PROTECTED"}
)


def _addr(a: Address) -> dict[str, str]:
    return {"addr": a.addr.lower(), "domain": a.domain, "local": a.local.lower(), "display": a.display}


def _part(p: Part) -> dict[str, Any]:
    return {
        "name": p.filename,
        "ext": ext(p.filename),
        "declared_type": p.content_type,
        "true_type": p.true_type,
        "true_ext": p.true_ext,
        "sha256": p.sha256,
        "size": p.size,
        "disposition": p.disposition,
        "content_id": p.content_id,
    }


def _headers(m: Message) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in m.headers:
        out.setdefault(k.lower(), v)
    return out


def _header_values(m: Message) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in m.headers:
        out.setdefault(k.lower(), []).append(v)
    return out


def _urls(m: Message) -> list[dict[str, Any]]:
    # Converting containers into CEL costs about 1 µs per string, so repeated links are given once
    # and the list is capped: a rule sees every distinct (url, source) pair up to MAX_URLS.
    out: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for u in m.urls:
        key = (u.url, u.source)
        if key in seen:
            continue
        seen.add(key)
        out.append(
            {
                "url": u.url,
                "scheme": u.scheme,
                "host": u.host.lower(),
                "domain": (u.registrable_domain or u.host).lower(),
                "source": u.source,
                "anchor_text": u.anchor_text,
                "is_ip": u.is_ip,
                "is_idn": u.is_idn,
            }
        )
        if len(out) >= MAX_URLS:
            break
    return out


def _mail_from_domain(e: Envelope) -> str:
    return e.mail_from.rpartition("@")[2].lower() if "@" in e.mail_from else ""


MAX_URLS = 200

Builder = Callable[[Message, Envelope, list[Finding]], Any]

# name -> (builder, one-line description for `docs/rules.md` and `mailmoat rules list`)
FIELDS: dict[str, tuple[Builder, str]] = {
    "subject": (lambda m, e, f: m.subject, "decoded Subject"),
    "from": (lambda m, e, f: _addr(m.from_), "From: {addr, domain, local, display}"),
    "display_name": (lambda m, e, f: m.from_.display, "display name of From"),
    "sender_domain": (lambda m, e, f: m.from_.domain, "domain of the From address"),
    "mail_from": (lambda m, e, f: e.mail_from.lower(), "envelope MAIL FROM"),
    "mail_from_domain": (lambda m, e, f: _mail_from_domain(e), "domain of MAIL FROM"),
    "reply_to": (
        lambda m, e, f: [_addr(a) for a in m.reply_to],
        "Reply-To addresses (list of {addr, domain, local, display})",
    ),
    "to": (lambda m, e, f: [_addr(a) for a in m.to], "To addresses"),
    "cc": (lambda m, e, f: [_addr(a) for a in m.cc], "Cc addresses"),
    "recipients": (lambda m, e, f: [r.lower() for r in e.rcpt_tos], "envelope recipients"),
    "body": (lambda m, e, f: m.body_text, "the text a reader sees (the plain text or the visible HTML text, whichever says more)"),
    "text": (lambda m, e, f: m.text, "text/plain bodies"),
    "html": (lambda m, e, f: m.html, "raw text/html bodies"),
    "html_text": (lambda m, e, f: m.html_text, "visible text of the HTML"),
    "current_thread": (lambda m, e, f: m.current_thread, "body without quoted replies"),
    "documents": (
        lambda m, e, f: [
            {"filename": d.filename, "kind": d.kind, "text": d.text, "locked": d.locked, "opened": bool(d.password)}
            for d in m.documents
        ],
        "attached documents as their reader opens them: {filename, kind (pdf, office, rtf, text, html, message), text, locked, opened} (opened: with a password from the body)",
    ),
    "urls": (
        lambda m, e, f: _urls(m),
        f"URLs (distinct, first {MAX_URLS}): {{url, scheme, host, domain (registrable), source, anchor_text, is_ip, is_idn}}",
    ),
    "web_links": (
        lambda m, e, f: len({u.url for u in m.urls if u.source in ("href", "text") and u.scheme.lower() in ("http", "https")}),
        "number of distinct web links a reader can click (http/https, in the text or as HTML links); cheaper than urls",
    ),
    "url_domains": (
        lambda m, e, f: sorted({(u.registrable_domain or u.host).lower() for u in m.urls if u.host}),
        "distinct registrable domains of all URLs",
    ),
    "attachments": (
        lambda m, e, f: [_part(p) for p in m.attachments],
        "attachments: {name, ext, declared_type, true_type, true_ext, sha256, size, disposition, content_id}",
    ),
    "parts": (lambda m, e, f: [_part(p) for p in m.parts], "every MIME part, same fields as attachments"),
    "qr": (lambda m, e, f: [q.payload for q in m.qr_codes], "decoded QR/barcode payloads"),
    "qr_links": (
        lambda m, e, f: [q.payload for q in m.qr_codes if leads_somewhere(q.payload)],
        "payloads of the codes a phone would act on: a web, app, payment, phone or mail link (not data such as invoice fields or a parcel number)",
    ),
    "qr_codes": (
        lambda m, e, f: [
            {"payload": q.payload, "source": q.source, "filename": q.filename} for q in m.qr_codes
        ],
        "QR codes: {payload, source, filename}",
    ),
    "images_count": (lambda m, e, f: len(m.images), "number of renderable images"),
    "headers": (lambda m, e, f: _headers(m), "header name (lower-case) -> first value"),
    "header_values": (lambda m, e, f: _header_values(m), "header name (lower-case) -> every value"),
    "message_id": (lambda m, e, f: m.message_id, "Message-ID"),
    "date": (lambda m, e, f: m.date, "Date header"),
    "received_count": (lambda m, e, f: len(m.received), "number of Received hops"),
    "received_ips": (
        lambda m, e, f: [h.ip for h in m.received if h.ip],
        "client IPs of Received hops, newest first",
    ),
    "defects": (lambda m, e, f: list(m.defects), "parse defects"),
    "direction": (
        lambda m, e, f: str(e.direction.value if hasattr(e.direction, "value") else e.direction),
        "inbound, internal or outbound",
    ),
    "peer_ip": (lambda m, e, f: e.peer_ip, "SMTP client IP"),
    "findings": (
        lambda m, e, f: sorted({x.symbol for x in f}),
        "symbols raised by earlier analyzers, and by the rules whose symbols the rule names",
    ),
    "suspect_sender": (
        lambda m, e, f: is_freemail(m.from_.domain) or any(x.symbol in SUSPECT_SENDER_FINDINGS for x in f),
        "the From is a free-mail address, or an impersonation check flagged it "
        "(IMPERSONATION_EXECUTIVE, IMPERSONATION_DEPARTMENT, INTERNAL_UNUSUAL_DISPLAY_NAME, FROM_LOOKALIKE_PROTECTED)",
    ),
    "finding_evidence": (
        lambda m, e, f: {x.symbol: x.evidence for x in f},
        "symbol -> evidence of earlier findings (also of the rules the rule names)",
    ),
}


# The fields built from the findings: the only ones that change when a rule reads another rule's symbol.
FROM_FINDINGS = frozenset({"findings", "suspect_sender", "finding_evidence"})


def build(
    message: Message, envelope: Envelope, prior: list[Finding], names: frozenset[str] | set[str]
) -> dict[str, Any]:
    """The activation for one message, limited to the given field names."""
    return {n: FIELDS[n][0](message, envelope, prior) for n in names if n in FIELDS}
