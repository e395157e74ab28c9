"""Warning banners at the top of a delivered message's text: why a tagged message is suspect, or that it came from outside."""

from __future__ import annotations

import base64
import binascii
import html
import itertools
import logging
import quopri
import re
from email.message import Message

from mailmoat.config import Settings
from mailmoat.deliver.headers import header_fields, split_header, strip_fields
from mailmoat.deliver.own_mail import OWN_LISTENERS
from mailmoat.model import Action, Direction, Envelope, Verdict
from mailmoat.policy.categories import categories

log = logging.getLogger("mailmoat.deliver")

# What the banner says, per language: the warning on tagged mail, its reasons per threat category,
# and the notice on other mail from outside.
_TEXT: dict[str, dict[str, str]] = {
    "en": {
        "warning": "Caution: this message looks suspicious.",
        "advice": "Do not scan its QR codes, open its links or attachments, or give passwords or payment "
                  "details before you have confirmed the sender another way.",
        "phishing": "It links to a site that may be a phishing page.",
        "impersonation": "The sender's name claims a department or person of your organisation, but the message "
                         "comes from outside.",
        "qr": "It contains a QR code, a common way to lead people to fake sites.",
        "malware": "An attachment may be harmful.",
        "spam": "It looks like unsolicited bulk mail.",
        "external": "This message comes from outside your organisation. Be careful with its links, QR codes "
                    "and attachments.",
        "report": "If you think it is phishing, forward it as an attachment to {address}.",
    },
    "zh": {
        "warning": "【安全提示】此邮件可疑。",
        "advice": "在通过其他途径确认发件人之前，请勿扫描其中的二维码、点击链接或打开附件，也不要提供账号密码或付款信息。",
        "phishing": "邮件中的链接可能指向钓鱼网站。",
        "impersonation": "发件人名称自称本单位的部门或人员，但邮件来自外部。",
        "qr": "邮件含有二维码，这是引导到虚假网站的常见手段。",
        "malware": "附件可能有害。",
        "spam": "邮件像是群发的垃圾邮件。",
        "external": "【外部邮件】此邮件来自单位外部，请谨慎对待其中的链接、二维码和附件。",
        "report": "如认为这是钓鱼邮件，请以附件形式转发至 {address}。",
    },
}
_REASONS = ("impersonation", "phishing", "qr", "malware", "spam")
_HTML_STYLE = {
    "warning": "border:2px solid #b42318;background:#fef3f2;color:#7a271a;",
    "external": "border:1px solid #b54708;background:#fffaeb;color:#7a2e0e;",
}
# Signed or encrypted mail is left whole: a changed body would break its signature.
_UNTOUCHABLE = ("multipart/signed", "multipart/encrypted", "application/pkcs7-mime", "application/x-pkcs7-mime")
# Read (and written) as their superset, which many senders labelled GB2312 really use.
_SUPERSETS = {"gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "gb_2312-80": "gb18030"}
_MAX_DEPTH = 6
# Bounded, and looked for near the top only: a page of "<body" with no ">" must not cost seconds.
_BODY_TAG = re.compile(r"<body\b[^>]{0,1000}>", re.I)
_HTML_TAG = re.compile(r"<html\b[^>]{0,1000}>", re.I)
_TAG_WINDOW = 256 * 1024


def banner_lines(settings: Settings, envelope: Envelope, verdict: Verdict) -> tuple[str, list[str]] | None:
    """(kind, lines) of the banner a copy of this message gets, or None: a warning on tagged mail
    from outside, saying why, and with `banner.external` a notice on the rest of it."""
    cfg = settings.banner
    if not cfg.enabled or envelope.direction != Direction.INBOUND or envelope.listener in OWN_LISTENERS:
        return None
    words = _TEXT[cfg.language]
    if verdict.action == Action.TAG:
        found = categories(envelope.direction.value, verdict.action.value, "", [f.to_dict() for f in verdict.findings])
        lines = [words["warning"], *(words[c] for c in _REASONS if c in found), words["advice"]]
        if settings.policy.report_addresses:  # where colleagues report it (docs/operations.md, "Reported mail")
            lines.append(words["report"].format(address=settings.policy.report_addresses[0]))
        return "warning", lines
    if verdict.action == Action.DELIVER and cfg.external:
        return "external", [words["external"]]
    return None


def add_banner(raw: bytes, kind: str, lines: list[str]) -> bytes:
    """The message with the banner above the text of its body (plain and HTML); the message as it
    was when there is no body text to put it in, the message is signed or encrypted, or its MIME
    cannot be followed."""
    try:
        out = _entity(raw, kind, lines, 0)
    except Exception:  # a banner is a courtesy: never at the cost of the message
        log.exception("banner: left out (the message's MIME could not be followed)")
        return raw
    return raw if out is None else out


_MIME_FIELDS = (b"content-type", b"content-transfer-encoding", b"content-disposition")


def _header_of(header: bytes) -> Message:
    """The MIME fields of a header block, read field by field as `split_header` cut it (a parser
    that stops at a malformed line would miss a Content-Type below it)."""
    info = Message()
    for f in header_fields(header):
        name, _, value = f.partition(b":")
        if name.strip().lower() in _MIME_FIELDS and name.strip().decode("ascii", "replace") not in info:
            info[name.strip().decode("ascii", "replace")] = re.sub(rb"\r?\n[ \t]*", b" ", value).strip().decode("ascii", "replace")
    return info


def _entity(raw: bytes, kind: str, lines: list[str], depth: int, in_digest: bool = False) -> bytes | None:
    """One MIME entity (header and body) with the banner added to its text; None when unchanged.
    `in_digest`: a part of a multipart/digest, which is a message unless its header says otherwise."""
    header, rest = split_header(raw)
    info = _header_of(header)
    if in_digest and "Content-Type" not in info:
        return None
    ctype = info.get_content_type()
    if ctype in _UNTOUCHABLE or depth > _MAX_DEPTH:
        return None
    if info.get_content_maintype() == "multipart":
        boundary = info.get_boundary()
        if not boundary:
            return None
        body = _multipart(rest, boundary.encode("ascii", "replace"), ctype, kind, lines, depth)
        return None if body is None else header + body
    if ctype not in ("text/plain", "text/html") or (info.get("Content-Disposition") or "").strip().lower().startswith("attachment"):
        return None
    return _leaf(header, rest, info, kind, lines)


def _multipart(rest: bytes, boundary: bytes, ctype: str, kind: str, lines: list[str], depth: int) -> bytes | None:
    """The body of a multipart with the banner in its first part (in each of the first plain and
    HTML parts of an alternative); None when unchanged."""
    marks = list(re.finditer(rb"(?:\A|\r?\n)--" + re.escape(boundary) + rb"(--)?[ \t]*(?:\r?\n|\Z)", rest))
    if len(marks) < 2:
        return None
    parts = []
    for a, b in itertools.pairwise(marks):
        if a.group(1):  # the closing delimiter: what follows is the epilogue
            break
        parts.append((a.end(), b.start()))
    # An alternative's views are its first few parts; a crafted one with thousands is not read through.
    chosen = parts[:16] if ctype == "multipart/alternative" else parts[:1]
    out, at, changed, seen = [], 0, False, set()
    for start, end in chosen:
        part = rest[start:end]
        sub = _header_of(split_header(part)[0]).get_content_type()
        if ctype == "multipart/alternative":
            if sub in seen or sub not in ("text/plain", "text/html", "multipart/related", "multipart/alternative"):
                continue
            seen.add(sub)
        new = _entity(part, kind, lines, depth + 1, in_digest=ctype == "multipart/digest")
        if new is not None:
            out += [rest[at:start], new]
            at, changed = end, True
    if not changed:
        return None
    return b"".join(out) + rest[at:]


def _decoded(info: Message, body: bytes) -> bytes | None:
    cte = (info.get("Content-Transfer-Encoding") or "").strip().lower()
    if cte == "base64":
        try:
            return base64.b64decode(re.sub(rb"[^A-Za-z0-9+/=]", b"", body), validate=False)
        except (binascii.Error, ValueError):
            return None
    if cte == "quoted-printable":
        return quopri.decodestring(body)
    if cte in ("", "7bit", "8bit", "binary"):
        return body
    return None


def _leaf(header: bytes, rest: bytes, info: Message, kind: str, lines: list[str]) -> bytes | None:
    """A text part with the banner at its top, in its own charset and transfer encoding where they can carry it."""
    blank = re.match(rb"\r?\n", rest)
    if blank is None:
        return None
    eol = blank.group(0)
    body = rest[blank.end():]
    data = _decoded(info, body)
    if data is None:
        return None
    declared = info.get_content_charset()
    charset = (declared or "us-ascii").lower()
    text = codec = None
    # Undeclared text is often UTF-8 (HTML saying so in a <meta>): read as such, it is written back the same.
    for codec in dict.fromkeys((charset, _SUPERSETS.get(charset, charset), *(() if declared else ("utf-8",)))):
        try:
            text = data.decode(codec)
            break
        except (LookupError, UnicodeDecodeError):
            continue
    if text is None or codec is None:
        return None  # text we cannot read back exactly is not rewritten
    nl = "\r\n" if "\r\n" in text else "\n"
    if info.get_content_type() == "text/html":
        text = _into_html(text, kind, lines)
    else:
        text = nl.join(lines) + nl + nl + text
    try:
        encoded = text.encode(codec)
    except UnicodeEncodeError:
        charset = "utf-8"
        encoded = text.encode(charset)
    cte = (info.get("Content-Transfer-Encoding") or "").strip().lower()
    if cte == "base64":
        new_body = eol.join(base64.encodebytes(encoded).splitlines()) + eol
    elif cte == "quoted-printable" or (not encoded.isascii() and cte in ("", "7bit")):
        cte = "quoted-printable"
        qp = quopri.encodestring(encoded)
        # quopri leaves a CR before LF as it is: spelt =0D where lines end in LF alone, so it survives.
        if eol == b"\n":
            new_body = qp.replace(b"=\r\n", b"=\n").replace(b"\r\n", b"=0D\n")  # soft breaks first
        else:
            new_body = re.sub(rb"(?<!\r)\n", b"\r\n", qp)
    else:
        new_body = encoded
    return _with_fields(header, info, charset, cte) + eol + new_body


def _into_html(text: str, kind: str, lines: list[str]) -> str:
    paragraphs = "".join(f'<p style="margin:0 0 4px 0;{"font-weight:bold;" if i == 0 else ""}">{html.escape(ln)}</p>'
                         for i, ln in enumerate(lines))
    box = (f'<div class="mailmoat-banner" style="{_HTML_STYLE[kind]}padding:8px 12px;margin:0 0 12px 0;'
           f'font-family:sans-serif;font-size:14px;">{paragraphs}</div>')
    for tag in (_BODY_TAG, _HTML_TAG):
        if m := tag.search(text, 0, _TAG_WINDOW):
            return text[: m.end()] + box + text[m.end():]
    return box + text


def _with_fields(header: bytes, info: Message, charset: str, cte: str) -> bytes:
    """The part's header with its charset and transfer encoding set (other fields and parameters kept)."""
    old_charset = (info.get_content_charset() or "us-ascii").lower()
    old_cte = (info.get("Content-Transfer-Encoding") or "").strip().lower()
    if charset == old_charset and cte == old_cte:
        return header
    fields = []
    if charset != old_charset:
        info.set_param("charset", charset)
        fields.append(("Content-Type", str(info["Content-Type"])))
    if cte != old_cte:
        fields.append(("Content-Transfer-Encoding", cte))
    names = {n.lower().encode() for n, _ in fields}
    kept = strip_fields(header, lambda name, _f: name in names)
    eol = b"\r\n" if kept.endswith(b"\r\n") or not kept else b"\n"
    return kept + b"".join(f"{n}: {v}".encode("ascii", "replace") + eol for n, v in fields)
