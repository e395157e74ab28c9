"""MIME tree walk (stdlib email, compat32): parts with paths, payloads, true types, bodies and attached messages."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message as EmailMessage
from email.parser import BytesParser
from email.policy import compat32
from email.utils import decode_params, unquote

from mailmoat.model import Part
from mailmoat.parse import filetype
from mailmoat.parse.charset import (
    decode_bytes,
    decode_header,
    decode_param,
    header_bytes,
    no_surrogates,
    unfold,
)
from mailmoat.parse.folds import mend_blank_fold, mend_split_words
from mailmoat.parse.html import meta_charset

MAX_PARTS = 1000  # MIME parts per message, attached messages included
MAX_DEPTH = 30  # multipart nesting inside one message
MAX_DECODED = 128 * 1024 * 1024  # decoded bytes kept per message, attached messages included
MAX_TEXT_BYTES = 4 * 1024 * 1024  # of one text body decoded to str
MAX_TEXT_ATTACHMENT = 2 * 1024 * 1024  # text/HTML attachments scanned for URLs

_BOUNDARY_LINE = re.compile(r"^--([^\s\"]{1,200}?)(?:--)?[ \t]*\r?$", re.M)
# An XML property list (an unsigned Apple configuration profile) is text, and its links are read.
_TEXTUAL_TRUE_TYPES = frozenset({"text/html", "text/plain", "image/svg+xml", "application/xml", "application/x-plist", "application/hta"})
_BODY_TYPES = ("text/plain", "text/html")
# Bytes a base64 body holds: its alphabet, padding and line breaks.
_BASE64_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\r\n"


def _not_base64(raw: bytes) -> bool:
    """A body labelled base64 that is plain text: decoding would drop every byte outside the
    alphabet and read the letters left as base64, which gives noise. Real base64 has no spaces
    inside its lines, and a few stray bytes (damage in transit, blanks at line ends) stay far
    below a tenth; text has spaces, punctuation or 8-bit bytes."""
    sample = raw[:8192]
    stray = len(sample.translate(None, _BASE64_BYTES))
    dense = len(sample.translate(None, b"\r\n"))
    return stray >= 8 and stray * 10 > dense


@dataclass
class Budget:
    """Limits shared by a message and every message attached to it."""

    parts: int = 0
    decoded: int = 0
    max_parts: int = MAX_PARTS
    max_decoded: int = MAX_DECODED
    parts_exceeded: bool = False


@dataclass
class MimeResult:
    parts: list[Part] = field(default_factory=list)
    texts: list[tuple[str, str]] = field(default_factory=list)  # (part path, text/plain body)
    htmls: list[tuple[str, str]] = field(default_factory=list)  # (part path, text/html body)
    text_attachments: list[tuple[str, str, bool]] = field(default_factory=list)  # (path, text, is_html)
    nested: list[tuple[str, bytes]] = field(default_factory=list)  # (part path, raw attached message)
    defects: list[str] = field(default_factory=list)


def parse_bytes(data: bytes, defects: list[str]) -> EmailMessage | None:
    """The stdlib tree (compat32: about 7x faster than policy.default); headers only if the body defeats it."""
    data = mend_blank_fold(mend_split_words(data, defects), defects)
    try:
        return message_from_bytes(data, policy=compat32)
    except Exception as exc:  # RecursionError on absurd nesting, parser bugs
        defects.append(f"mime:parser-failed {type(exc).__name__}")
    try:
        return BytesParser(policy=compat32).parsebytes(data, headersonly=True)
    except Exception as exc:
        defects.append(f"mime:header-parser-failed {type(exc).__name__}")
        return None


def raw_header(node: EmailMessage, name: str) -> str | None:
    """First raw value of a header (str with surrogate escapes), without compat32's Header wrapping."""
    lname = name.lower()
    for k, v in node.raw_items():
        if k.lower() == lname:
            return v if isinstance(v, str) else str(v)
    return None


def _transfer_encoding(node: EmailMessage) -> str:
    """The Content-Transfer-Encoding a part declares, lower-case ("" when none)."""
    return (raw_header(node, "content-transfer-encoding") or "").strip().lower()


def _split_params(value: str) -> list[tuple[str, str]]:
    """`a; b=1; c="x;y"` → [("a", ""), ("b", "1"), ("c", '"x;y"')], honouring quotes."""
    out: list[tuple[str, str]] = []
    rest = value
    while True:
        end = rest.find(";")
        while end > 0 and (rest.count('"', 0, end) - rest.count('\\"', 0, end)) % 2:
            end = rest.find(";", end + 1)
        item = rest if end < 0 else rest[:end]
        name, sep, val = item.partition("=")
        out.append((name.strip().lower(), val.strip() if sep else ""))
        if end < 0:
            return out
        rest = rest[end + 1 :]


def get_param(node: EmailMessage, header: str, name: str) -> str | tuple[str, str, str] | None:
    """A MIME parameter read from the raw header (8-bit bytes intact), RFC 2231 continuations joined."""
    raw = raw_header(node, header)
    if not raw or name not in raw.lower():
        return None
    params = decode_params(_split_params(unfold(raw)))
    for key, val in params[1:]:
        if key.lower() == name:
            if isinstance(val, tuple):
                return (str(val[0] or ""), str(val[1] or ""), unquote(str(val[2])))
            return unquote(val)
    return None


def _child_path(parent: str, index: int) -> str:
    return f"{parent}.{index}" if parent else str(index)


def _as_bytes(node: EmailMessage) -> bytes:
    try:
        return node.as_bytes()
    except Exception:  # generator trips on some damaged trees; keep what we can
        try:
            return node.as_string().encode("utf-8", "surrogateescape")
        except Exception:
            return b""


def _transfer_decode(data: bytes, cte: str) -> bytes:
    """Body of a message/* part that was transfer-encoded (the stdlib parses it as if it were not)."""
    probe = EmailMessage()
    probe["Content-Transfer-Encoding"] = cte
    probe.set_payload(data.decode("ascii", "surrogateescape"))
    decoded = probe.get_payload(decode=True)
    return decoded if isinstance(decoded, bytes) else data


class _Walker:
    def __init__(self, budget: Budget, result: MimeResult) -> None:
        self.budget = budget
        self.res = result

    def defect(self, text: str, part: Part | None = None) -> None:
        self.res.defects.append(text)
        if part is not None:
            part.defects.append(text)

    def walk(self, node: EmailMessage, path: str, depth: int, root: bool = False) -> None:
        """Walk node; for the root, path is the prefix and a single body sits at prefix.1."""
        budget = self.budget
        if budget.parts >= budget.max_parts:
            if not budget.parts_exceeded:
                budget.parts_exceeded = True
                self.defect(f"limit:parts {budget.max_parts}")
            return
        if depth > MAX_DEPTH:
            self.defect(f"limit:depth part={path}")
            return
        where = "" if root else f" part={path}"
        own = _child_path(path, 1) if root else path
        for d in getattr(node, "defects", ()):
            self.defect(f"mime:{type(d).__name__}{where}")
        try:
            ctype = no_surrogates(node.get_content_type())[:100]
        except Exception:
            ctype = "text/plain"
            self.defect(f"mime:bad-content-type{where}")
        payload = node.get_payload()
        if ctype.startswith("message/"):
            budget.parts += 1
            self._message_part(node, own, depth, ctype, payload)
            return
        if isinstance(payload, list):
            if not root:
                budget.parts += 1
                self.res.parts.append(Part(path=path, content_type=ctype, depth=path.count("."), disposition=_disposition(node)))
            for i, child in enumerate(payload, 1):
                if isinstance(child, EmailMessage):
                    self.walk(child, _child_path(path, i), depth + 1)
            return
        broken = ctype.startswith("multipart/") and isinstance(payload, str)
        if broken and isinstance(payload, str) and self._recover(node, payload, path, depth, root):
            return
        budget.parts += 1
        # a multipart that cannot be split is shown by mail clients as its raw text: read it as text/plain
        self._leaf(node, own, depth, ctype, payload, "text/plain" if broken else ctype)

    def _recover(self, node: EmailMessage, body: str, path: str, depth: int, root: bool) -> bool:
        """A multipart whose declared boundary never appears: parse it with the boundary its body uses."""
        m = _BOUNDARY_LINE.search(body)
        where = "" if root else f" part={path}"
        if m is None:
            self.defect(f"mime:broken-multipart{where}")
            return False
        boundary = m.group(1)
        data = header_bytes(f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n{body}')
        if data is None:
            return False
        sub = parse_bytes(data, self.res.defects)
        if sub is None or not isinstance(sub.get_payload(), list):
            self.defect(f"mime:broken-multipart{where}")
            return False
        self.defect(f"mime:boundary-recovered{where}")
        if not root:
            self.budget.parts += 1
            self.res.parts.append(Part(path=path, content_type=no_surrogates(node.get_content_type())[:100], depth=path.count(".")))
        for i, child in enumerate(sub.get_payload(), 1):
            if isinstance(child, EmailMessage):
                self.walk(child, _child_path(path, i), depth + 1)
        return True

    def _meta(self, node: EmailMessage, path: str, depth: int, ctype: str) -> Part:
        part = Part(path=path, content_type=ctype, depth=path.count("."))
        try:
            part.disposition = _disposition(node)
            fname = get_param(node, "content-disposition", "filename")
            if not fname:
                fname = get_param(node, "content-type", "name")
            if fname:
                part.filename = decode_param(fname, part.defects).strip().replace("\x00", "")[:500]
            cid = raw_header(node, "content-id")
            if cid:
                part.content_id = decode_header(cid).strip().strip("<>").strip()[:500]
            cs = get_param(node, "content-type", "charset")
            if cs:
                part.charset = decode_param(cs).strip().lower()[:60]
        except Exception as exc:  # hostile parameters must not cost the part
            self.defect(f"mime:bad-parameters part={path} {type(exc).__name__}", part)
        return part

    def _take(self, part: Part, data: bytes, opened: bool = False) -> None:
        """Keep the decoded payload and its true type; `opened` for a file the recipient opens (an
        attachment), whose text a browser renders as a page when HTML tags stand anywhere in its
        first kilobyte, while a body that talks about tags stays text."""
        if self.budget.decoded + len(data) > self.budget.max_decoded:
            self.defect(f"limit:decoded-size part={part.path}", part)
            part.size = len(data)
            return
        self.budget.decoded += len(data)
        part.payload = data
        part.size = len(data)
        part.sha256 = hashlib.sha256(data).hexdigest()
        part.true_type, part.true_ext = filetype.sniff(data, html_anywhere=opened)

    def _message_part(self, node: EmailMessage, path: str, depth: int, ctype: str, payload: object) -> None:
        part = self._meta(node, path, depth, ctype)
        if isinstance(payload, list):
            data = b"".join(_as_bytes(m) for m in payload if isinstance(m, EmailMessage))
        elif isinstance(payload, str):
            data = payload.encode("ascii", "surrogateescape") if header_bytes(payload) is not None else payload.encode("utf-8")
        else:
            data = b""
        cte = _transfer_encoding(node)
        if cte in ("base64", "quoted-printable"):
            data = _transfer_decode(data, cte)
        self._take(part, data)
        self.res.parts.append(part)
        if ctype in ("message/rfc822", "message/global") or (part.true_ext == "eml" and ctype != "message/delivery-status"):
            part.is_attachment = True
            part.true_type, part.true_ext = "message/rfc822", "eml"
            self.res.nested.append((path, part.payload or data))
        elif part.payload:
            self._maybe_text_attachment(part)

    def _leaf(self, node: EmailMessage, path: str, depth: int, ctype: str, payload: object, shown_as: str) -> None:
        part = self._meta(node, path, depth, ctype)
        self.res.parts.append(part)
        raw_len = len(payload) if isinstance(payload, str | bytes) else 0
        if self.budget.decoded + raw_len * 3 // 4 > self.budget.max_decoded:
            self.defect(f"limit:decoded-size part={path}", part)
            part.size = raw_len
            return
        body = shown_as in _BODY_TYPES and part.disposition != "attachment" and not part.filename
        # The payload as parsed, 8-bit bytes still surrogate-escaped (get_payload() would decode them).
        kept = getattr(node, "_payload", None)
        raw = header_bytes(kept) if body and isinstance(kept, str) and _transfer_encoding(node) == "base64" else None
        if raw and _not_base64(raw):
            # What the sender's mailer wrote as 8bit text under a base64 label: read as written.
            self.defect(f"mime:not-base64 part={path}", part)
            data = raw
        else:
            try:
                decoded = node.get_payload(decode=True)
                data = decoded if isinstance(decoded, bytes) else b""
            except Exception as exc:  # damaged transfer encodings
                self.defect(f"mime:undecodable-payload part={path} {type(exc).__name__}", part)
                data = (header_bytes(kept) if isinstance(kept, str) else None) or b""
        part.is_attachment = not body and _is_attachment(part)
        self._take(part, data, opened=part.is_attachment)
        if body:
            self._body(part, data, shown_as)
        elif part.is_attachment and part.payload:
            self._maybe_text_attachment(part)
            if part.true_ext == "eml" or part.filename.lower().endswith(".eml"):
                self.res.nested.append((path, part.payload))

    def _decode_text(self, part: Part, data: bytes, html: bool) -> str:
        if len(data) > MAX_TEXT_BYTES:
            self.defect(f"limit:text-size part={part.path}", part)
            # cut at a line end: no multi-byte character in any mail charset contains a \n byte
            cut = data.rfind(b"\n", 0, MAX_TEXT_BYTES)
            data = data[: cut + 1 if cut > MAX_TEXT_BYTES // 2 else MAX_TEXT_BYTES]
        label = part.charset or (meta_charset(data) if html else None)
        text, _used = decode_bytes(data, label, part.defects)
        if part.defects:
            where = f" part={part.path}"
            for d in part.defects:
                if d.startswith("charset:") and not d.endswith(where):
                    self.res.defects.append(d + where)
        return text

    def _body(self, part: Part, data: bytes, ctype: str) -> None:
        is_html = ctype == "text/html"
        text = self._decode_text(part, data, is_html)
        (self.res.htmls if is_html else self.res.texts).append((part.path, text))

    def _maybe_text_attachment(self, part: Part) -> None:
        textual = part.content_type.startswith("text/") or part.true_type in _TEXTUAL_TRUE_TYPES
        if not textual or part.true_type not in ("", *_TEXTUAL_TRUE_TYPES) or part.size > MAX_TEXT_ATTACHMENT:
            return
        is_html = part.true_type in ("text/html", "image/svg+xml", "application/hta") or part.content_type == "text/html"
        text = self._decode_text(part, part.payload, is_html)
        self.res.text_attachments.append((part.path, text, is_html))


def _disposition(node: EmailMessage) -> str:
    value = raw_header(node, "content-disposition")
    if not value:
        return ""
    return decode_header(value.split(";", 1)[0]).strip().lower()[:40]


def _is_attachment(part: Part) -> bool:
    if part.disposition == "attachment" or part.filename:
        return True
    if part.content_type.startswith(("text/", "multipart/")):
        return False
    # an unnamed embedded resource (an image referenced by its Content-ID) is not something a reader opens
    return not part.content_id


def walk(root: EmailMessage, prefix: str, budget: Budget) -> MimeResult:
    """Parts of one message; paths are IMAP body section numbers under prefix ("2" → "2.1", "2.2" ...)."""
    result = MimeResult()
    _Walker(budget, result).walk(root, prefix, 0, root=True)
    return result
