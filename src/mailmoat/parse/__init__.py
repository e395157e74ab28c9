"""Raw bytes → the Message model, once per message; never raises (problems become defects)."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Any

from mailmoat.config import QrSettings
from mailmoat.model import Document, Message
from mailmoat.parse import images as _images
from mailmoat.parse.charset import header_hint
from mailmoat.parse.documents import MAX_TEXT as MAX_DOCUMENT_TEXT
from mailmoat.parse.headers import fill_headers
from mailmoat.parse.html import HtmlInfo, ImageRef, analyse
from mailmoat.parse.mime import Budget, MimeResult, parse_bytes, walk
from mailmoat.parse.urls import UrlCollector

__all__ = ["MAX_MESSAGE_DEPTH", "MAX_RAW_SIZE", "current_thread", "parse"]

MAX_RAW_SIZE = 64 * 1024 * 1024  # bytes parsed of one message; the rest is ignored with a defect
MAX_MESSAGE_DEPTH = 4  # message/rfc822 (and .eml attachment) nesting
MAX_URLS = 2000
MAX_THREAD_CHARS = 200_000  # the current thread is what a reader sees first; no need to scan megabytes

_QUOTE_LINE = re.compile(
    r"^(?:-{2,}\s*(?:original message|forwarded message|原始邮件|原始郵件|转发邮件|轉寄郵件|以下为转发内容)\s*-{2,}"
    r"|-{5,}\s*(?:original|原始).*"
    r"|on\b.{1,200}\bwrote:|在.{1,120}(?:写道|寫道)[:：]?|.{1,120}于.{1,60}写道[:：]?"
    r"|le .{1,150} a écrit\s*:|am .{1,150} schrieb .{1,100}:|_{20,})$",
    re.I,
)
_FROM_LINE = re.compile(r"^(?:from|发件人|寄件者|von|de)\s*[:：]", re.I)
_SENT_LINE = re.compile(r"^(?:sent|date|发送时间|日期|寄件日期|gesendet|envoyé)\s*[:：]", re.I)


def current_thread(text: str) -> str:
    """Body text without quoted replies: cut at the first reply/forward marker, drop '>' lines."""
    if not text:
        return ""
    lines = text[:MAX_THREAD_CHARS].splitlines()
    out: list[str] = []
    for i, line in enumerate(lines):
        s = line.strip()
        if s.startswith(">"):
            continue
        if s and (
            _QUOTE_LINE.match(s)
            or (_FROM_LINE.match(s) and any(_SENT_LINE.match(x.strip()) for x in lines[i + 1 : i + 5]))
        ):
            break
        out.append(line)
    return "\n".join(out).strip()


def _fail(defects: list[str], stage: str, exc: BaseException) -> None:
    defects.append(f"parse:{stage}-failed {type(exc).__name__}: {str(exc)[:120]}")


def _build(raw: bytes, prefix: str, level: int, budget: Budget) -> Message:
    message = Message(raw=raw)
    defects = message.defects
    if not raw.strip():
        defects.append("input:empty")
    data = raw
    if len(raw) > MAX_RAW_SIZE:
        defects.append(f"limit:size {len(raw)}")
        data = raw[:MAX_RAW_SIZE]
    root = parse_bytes(data, defects)
    if root is None:
        return message
    try:
        mime = walk(root, prefix, budget)
    except Exception as exc:
        _fail(defects, "mime", exc)
        mime = MimeResult()
    try:
        fill_headers(message, list(root.raw_items()), defects, _header_hint(mime))
    except Exception as exc:  # one bad header must not cost the body
        _fail(defects, "headers", exc)
    message.parts = mime.parts
    defects.extend(mime.defects)
    urls = UrlCollector(MAX_URLS)
    message.text = "\n".join(t for _, t in mime.texts)
    message.html = "\n".join(h for _, h in mime.htmls)
    for path, text in mime.texts:
        urls.add_text(text, "text", path)
    refs: list[tuple[str, ImageRef]] = []
    html_texts: list[str] = []
    html_current: list[str] = []
    for path, html in mime.htmls:
        info = _html(html, defects, path)
        message.hidden_in_words += info.hidden_in_words
        html_texts.append(info.text)
        html_current.append(info.text if info.current is None else info.current)
        for url, source, anchor in info.links:
            urls.add(url, source, anchor, path)
        # mail clients turn bare URLs in the visible text into links too
        urls.add_text(info.text, "text", path)
        refs.extend((path, ref) for ref in info.images)
    message.html_text = "\n".join(t for t in html_texts if t)
    # The same part that `Message.body_text` reads.
    if message.reads_html:
        message.current_thread = current_thread("\n".join(t for t in html_current if t))
    else:
        message.current_thread = current_thread(message.text)
    for path, text, is_html in mime.text_attachments:
        if is_html:
            info = _html(text, defects, path)
            for url, _source, anchor in info.links:
                urls.add(url, "attachment", anchor, path)
            text = info.text
        else:
            urls.add_text(text, "attachment", path)
        part = message.part(path)
        filename = part.filename if part else ""
        message.documents.append(Document(path, filename, "html" if is_html else "text", text[:MAX_DOCUMENT_TEXT]))
    try:
        _images.build(message, refs, defects)
    except Exception as exc:
        _fail(defects, "images", exc)
    for path, sub_raw in mime.nested:
        if level + 1 > MAX_MESSAGE_DEPTH:
            defects.append(f"limit:message-depth part={path}")
            continue
        try:
            sub = _build(sub_raw, path, level + 1, budget)
        except Exception as exc:
            _fail(defects, "attached-message", exc)
            continue
        _images.add_attached(message, sub, path)
        message.attached_messages.append(sub)
        # A lure forwarded as an .eml is read by whoever opens it: its words count like a document's.
        part = message.part(path)
        said = "\n".join(t for t in (sub.from_.display, sub.subject, sub.body_text) if t)
        message.documents.append(Document(path, part.filename if part else "", "message", said[:MAX_DOCUMENT_TEXT]))
        message.documents.extend(sub.documents)
        for u in sub.urls:
            urls.add_url(u)
    if urls.overflow:
        defects.append(f"limit:urls {MAX_URLS}")
    message.urls = urls.urls
    return message


def _header_hint(mime: MimeResult) -> str | None:
    """The codec for raw 8-bit headers: the charset the first text part declares, when it is CJK."""
    for part in mime.parts:
        if part.charset and part.content_type.startswith("text/"):
            return header_hint(part.charset)
    return None


def _html(html: str, defects: list[str], path: str) -> HtmlInfo:
    try:
        info = analyse(html)
    except Exception as exc:  # lexbor or a selector surprise: keep the rest
        defects.append(f"html:parse-failed part={path} {type(exc).__name__}")
        return HtmlInfo()
    defects.extend(f"{d} part={path}" for d in info.defects)
    return info


# Enrichment hooks written in their own modules; resolved once per process.
_HOOKS: dict[str, Callable[..., Any] | BaseException | None] = {}


def _hook(module: str, attr: str) -> Callable[..., Any] | None:
    if module not in _HOOKS:
        try:
            _HOOKS[module] = getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as exc:
            _HOOKS[module] = None if exc.name == module else exc
        except Exception as exc:  # a broken hook module is reported on every message
            _HOOKS[module] = exc
    found = _HOOKS[module]
    if isinstance(found, BaseException):
        raise found
    return found


def _enrich(message: Message, name: str, module: str, attr: str, *args: Any) -> None:
    try:
        fn = _hook(module, attr)
        if fn is not None:
            fn(message, *args)
    except Exception as exc:  # enrichment must never lose the message
        message.defects.append(f"enrich:{name}:{type(exc).__name__}: {str(exc)[:200]}")


def parse(raw: bytes, qr: QrSettings | None = None) -> Message:
    """The parsed model of one raw message; any input (empty, binary, hostile) gives a Message with defects."""
    if not isinstance(raw, bytes):
        try:
            raw = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else bytes(raw)
        except Exception:
            return Message(defects=[f"input:not-bytes {type(raw).__name__}"])
    try:
        message = _build(raw, "", 0, Budget())
    except Exception as exc:  # last line of defence: parse never raises
        message = Message(raw=raw)
        _fail(message.defects, "message", exc)
    # Documents first: a locked PDF that the body's password opens is then read for QR codes too.
    _enrich(message, "documents", "mailmoat.parse.documents", "read_documents")
    if qr is not None and qr.enabled:
        _enrich(message, "qr", "mailmoat.parse.qr", "extract_qr", qr)
    return message
