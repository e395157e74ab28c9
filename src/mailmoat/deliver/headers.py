"""Minimal edits of the raw header block: strip forged X-Mailmoat-*, add tracking/verdict/auth headers, tag the subject."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable

from mailmoat.model import Action, Finding, Verdict

_KEYWORD = re.compile(r"[^A-Za-z0-9_.-]")
_PTYPE_PROP = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_.-]+$")
_TOKEN_SAFE = re.compile(r"^[!#$%&'*+\-./0-9=?@A-Z^_`a-z{|}~]+$")


def _eol(raw: bytes) -> bytes:
    """The line ending the message uses (CRLF on the wire, LF in some files)."""
    i = raw.find(b"\n")
    return b"\r\n" if i > 0 and raw[i - 1 : i] == b"\r" else b"\n"


# Where the parser (stdlib email.feedparser) ends the header block: at the first line that is empty
# once its ending (CRLF, LF or a bare CR) is taken off, i.e. after an LF followed by CR or LF, or a
# bare CR followed by CR. The Maildir file (CRLF turned LF) and the mail system read "\n\r\n" and
# "\r\n\n" as the blank line too. Splitting anywhere else edits body lines as header fields. A line
# that is no field (no colon) does not end it here, although the stdlib stops there: mail stores and
# clients read on, so forged fields below it are still headers to the recipient.
_BLANK_LINE = re.compile(rb"\n[\r\n]|\r\r")


def split_header(raw: bytes) -> tuple[bytes, bytes]:
    """(header block including its final line ending, rest starting with the blank line or empty).

    The one place the gateway decides where headers end: every header edit goes through it."""
    if raw.startswith((b"\r", b"\n")):
        return b"", raw
    m = _BLANK_LINE.search(raw)
    if m is None:
        return raw, b""
    return raw[: m.start() + 1], raw[m.start() + 1 :]


def header_fields(header: bytes) -> list[bytes]:
    """Header fields, each with its continuation lines and line endings."""
    lines = header.splitlines(keepends=True)
    fields: list[bytes] = []
    for line in lines:
        if fields and line[:1] in (b" ", b"\t"):
            fields[-1] += line
        else:
            fields.append(line)
    return fields


def _name(field: bytes) -> bytes:
    name, sep, _ = field.partition(b":")
    return name.strip().lower() if sep else b""


def strip_fields(raw: bytes, drop: Callable[[bytes, bytes], bool]) -> bytes:
    """Remove header fields for which drop(lower-case name, field bytes) is true; the body is untouched."""
    header, rest = split_header(raw)
    kept = [f for f in header_fields(header) if not drop(_name(f), f)]
    return b"".join(kept) + rest


# RFC 2045 tspecials: with space and controls, what ends a token.
_TSPECIALS = frozenset(b'()<>@,;:\\"/[]?=')


def claimed_authserv_id(value: bytes) -> bytes | None:
    """The authserv-id an Authentication-Results value claims, lower-case and without a trailing
    dot; None when it names none.

    RFC 8601 2.2: `[CFWS] authserv-id`, a token or a quoted-string. Comments (nested, with quoted
    pairs) and folding may come before it, so "(c) gw.example" and a folded "GW.EXAMPLE." claim
    "gw.example" as much as "gw.example" does, for a reader that follows the RFC."""
    s = re.sub(rb"\r\n|\r|\n", b"", value)  # unfold
    i, n = 0, len(s)
    while i < n and s[i] in b" \t(":
        if s[i] != ord("("):
            i += 1
            continue
        depth = 0
        while True:
            if i >= n:
                return None  # a comment never closed: no authserv-id
            c = s[i]
            i += 2 if c == ord("\\") else 1
            depth += (c == ord("(")) - (c == ord(")"))
            if depth == 0:
                break
    if i < n and s[i] == ord('"'):
        ident = bytearray()
        i += 1
        while i < n and s[i] != ord('"'):
            if s[i] == ord("\\") and i + 1 < n:
                i += 1
            ident.append(s[i])
            i += 1
        if i >= n:
            return None  # a quoted-string never closed
    else:
        start = i
        while i < n and 0x20 < s[i] < 0x7F and s[i] not in _TSPECIALS:
            i += 1
        ident = bytearray(s[start:i])
    # Domain names compare without case, and "gw.example." is the same name written absolute.
    return bytes(ident).strip().rstrip(b".").lower() or None


def _own_id(authserv_id: str) -> str:
    """The authserv-id the gateway writes (and so the one forged copies claim)."""
    return _KEYWORD.sub("", authserv_id) or "mailmoat"


def strip_incoming(raw: bytes, authserv_id: str) -> bytes:
    """Drop X-Mailmoat-* (senders can forge a tracking id) and every Authentication-Results claiming
    our authserv-id (RFC 8601 section 5: a border MTA removes them, or readers trust the forgery)."""
    ours = _own_id(authserv_id).lower().rstrip(".").encode()

    def drop(name: bytes, field: bytes) -> bool:
        if name.startswith(b"x-mailmoat-"):
            return True
        if name == b"authentication-results":
            return claimed_authserv_id(field.partition(b":")[2]) == ours
        return False

    return strip_fields(raw, drop)


def prepend(raw: bytes, fields: Iterable[tuple[str, str]]) -> bytes:
    """Add header fields at the top, in the given order, with the message's own line ending."""
    eol = _eol(raw)
    out = b"".join(name.encode() + b": " + _fold_value(value, eol) + eol for name, value in fields)
    return out + raw


def _fold_value(value: str, eol: bytes) -> bytes:
    # Pre-folded values use "\n" between lines; never let a bare CR/LF inject a header.
    lines = [ln.strip("\r") for ln in value.split("\n")]
    return (eol + b"\t").join(ln.strip().encode("utf-8", "replace") for ln in lines if ln.strip())


def _quote(value: str) -> str:
    value = value.replace("\r", " ").replace("\n", " ").strip()
    if value and _TOKEN_SAFE.match(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def authentication_results(authserv_id: str, findings: Iterable[Finding]) -> str:
    """RFC 8601 Authentication-Results value from findings that carry data["authres"] ("none" when none do)."""
    parts: list[str] = []
    seen: set[str] = set()
    for f in findings:
        ar = f.data.get("authres") if isinstance(f.data, dict) else None
        if not isinstance(ar, dict):
            continue
        method = _KEYWORD.sub("", str(ar.get("method", ""))).lower()
        result = _KEYWORD.sub("", str(ar.get("result", ""))).lower()
        if not method or not result:
            continue
        item = f"{method}={result}"
        reason = ar.get("reason")
        if reason:
            item += f" reason={_quote(str(reason))}"
        props = ar.get("props") or {}
        if isinstance(props, dict):
            for k, v in props.items():
                key = str(k).strip()
                if _PTYPE_PROP.match(key) and v not in (None, ""):
                    item += f" {key}={_quote(str(v))}"
        if item not in seen:
            seen.add(item)
            parts.append(item)
    head = _own_id(authserv_id)
    if not parts:
        return f"{head}; none"
    return f"{head};\n" + ";\n".join(parts)


def verdict_value(verdict: Verdict) -> str:
    """`action=...; score=...; symbols=A,B` (symbols by descending score), folded after commas."""
    syms = sorted(verdict.symbols.items(), key=lambda kv: (-kv[1], kv[0]))
    names = [_KEYWORD.sub("", n) for n, _ in syms if n]
    line = f"action={verdict.action.value}; score={verdict.score:.2f}; symbols="
    out: list[str] = []
    width = len("X-Mailmoat-Verdict: ") + len(line)
    for i, n in enumerate(names):
        piece = n + ("," if i < len(names) - 1 else "")
        if width + len(piece) > 76 and (out or i):
            out.append("\n")
            width = 1
        out.append(piece)
        width += len(piece)
    return line + "".join(out)


def _encode_word(text: str) -> bytes:
    try:
        return text.encode("ascii")
    except UnicodeEncodeError:
        return b"=?utf-8?b?" + base64.b64encode(text.encode("utf-8")) + b"?="


def prefix_subject(raw: bytes, prefix: str) -> bytes:
    """Put `prefix` in front of the Subject (added when missing); a subject that has it already is kept."""
    prefix = prefix.strip()
    if not prefix:
        return raw
    header, rest = split_header(raw)
    fields = header_fields(header)
    enc = _encode_word(prefix)
    for i, f in enumerate(fields):
        if _name(f) == b"subject":
            name, _, value = f.partition(b":")
            stripped = value.lstrip(b" \t")
            if stripped.startswith(enc):
                return raw
            fields[i] = name + b": " + enc + b" " + stripped if stripped.strip() else name + b": " + enc + value[len(value.rstrip(b"\r\n")) :]
            return b"".join(fields) + rest
    eol = _eol(raw)
    return b"Subject: " + enc + eol + header + rest


def prepare_base(raw: bytes, verdict: Verdict, *, authserv_id: str, subject_prefix: str = "") -> bytes:
    """The copy every recipient shares: forged headers removed, auth and verdict headers, tagged subject."""
    out = strip_incoming(raw, authserv_id)
    if verdict.action == Action.TAG and subject_prefix:
        out = prefix_subject(out, subject_prefix)
    return prepend(
        out,
        [
            ("X-Mailmoat-Verdict", verdict_value(verdict)),
            ("Authentication-Results", authentication_results(authserv_id, verdict.findings)),
        ],
    )


def stamp(base: bytes, tracking_id: str) -> bytes:
    """One recipient's copy: the shared base with its own X-Mailmoat-Id on top."""
    return prepend(base, [("X-Mailmoat-Id", tracking_id)])
