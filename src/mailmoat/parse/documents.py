"""Attached documents read as their recipient reads them: PDF, Office, OpenDocument and RTF text and links, PDFs opened with the body's password."""

from __future__ import annotations

import ctypes
import logging
import time
from collections.abc import Iterator
from typing import Any

from mailmoat.model import Document, Message, Part
from mailmoat.parse.filetype import is_pdf, sniff
from mailmoat.parse.pdfium_lock import PDFIUM_LOCK
from mailmoat.parse.urls import make_url

log = logging.getLogger(__name__)

MAX_DOCUMENTS = 20
MAX_DOCUMENT_SIZE = 20 * 1024 * 1024
MAX_URLS = 300
MAX_PAGES = 10  # a lure says what it wants on its first pages
MAX_TEXT = 20_000  # characters kept per document
MAX_ATTACHED_DEPTH = 3
# Archives opened for the documents inside them: one level, small limits (the attachment engines
# unpack everything, deeper, for their own checks).
ARCHIVES = frozenset({"zip", "7z", "rar", "tar", "gz", "bz2", "xz"})
ARCHIVE_MAX_SIZE = 10 * 1024 * 1024
ARCHIVE_MAX_MEMBERS = 200
ARCHIVE_MAX_TOTAL = 64 * 1024 * 1024
ARCHIVE_SECONDS = 2.0
_OOXML = ("docx", "docm", "xlsx", "xlsm", "xlsb", "pptx", "pptm")
_PACKAGES = (*_OOXML, "odt", "ods", "odp")  # zip packages whose XML holds the text
_FPDF_ERR_PASSWORD = 4


def read_documents(message: Message) -> None:
    """Fill `message.documents` with the text of PDF, Office and RTF attachments (also those of
    attached messages, and those packed in an archive) and append their links to `message.urls`
    (sources "pdf" and "office"); never raises."""
    try:
        _read(message)
    except Exception:  # a hostile document must never break parsing
        log.exception("reading attached documents failed")
        message.defects.append("document reading failed")


def _parts(message: Message, depth: int = 0) -> Iterator[Part]:
    yield from message.parts
    if depth < MAX_ATTACHED_DEPTH:
        for inner in message.attached_messages:
            yield from _parts(inner, depth + 1)


def _kind(data: bytes, ext: str) -> str:
    """"pdf", "office" or "rtf" for a document whose words can be read (`ext`: its true type, from
    `parse.filetype`); "" otherwise."""
    if ext == "pdf" or (ext not in _PACKAGES and is_pdf(data)):
        return "pdf"
    if ext in _PACKAGES:
        return "office"
    if ext == "rtf":
        return "rtf"
    return ""


class _Reader:
    """Reads the documents of one message, with one budget of documents and links."""

    def __init__(self, message: Message) -> None:
        self.message = message
        self.seen_urls = {(u.url, u.part_path) for u in message.urls}
        self.links_added = 0
        self._passwords: list[str] | None = None

    @property
    def passwords(self) -> list[str]:
        """Passwords the mail announces, asked once, and only when something locked is met."""
        if self._passwords is None:
            from mailmoat.attach.archives import announced_passwords

            self._passwords = announced_passwords(self.message)
        return self._passwords

    @property
    def full(self) -> bool:
        return len(self.message.documents) >= MAX_DOCUMENTS

    def read(self, part: Part, name: str, data: bytes, kind: str) -> None:
        from mailmoat.attach import pdf
        from mailmoat.parse.doctext import office_text, ooxml_relationships, rtf_text

        doc = Document(part_path=part.path, filename=name, kind=kind)
        links: list[str] = []
        try:
            if kind == "pdf":
                report = pdf.inspect(data)
                # An encrypted PDF's strings are ciphertext to the structure scan (read as links, a
                # few bytes of it could pass for "h:..."); pdfium reads its links, with the password.
                links = [] if report.encrypted else report.uris
                links += _read_pdf(data, doc, self.passwords, self.message.defects)
            elif kind == "rtf":
                doc.text = rtf_text(data, MAX_TEXT)
            else:
                remote, hyperlinks = ooxml_relationships(data)
                links = hyperlinks + [t for _rt, t in remote]
                doc.text = office_text(data, MAX_TEXT)
        except Exception as exc:  # one damaged document must not cost the others
            self.message.defects.append(f"document:unreadable part={part.path} {type(exc).__name__}: {str(exc)[:80]}")
        self.message.documents.append(doc)
        for link in links:
            if self.links_added >= MAX_URLS:
                break
            url = make_url(link, kind, part_path=part.path)
            if url is None or (url.url, url.part_path) in self.seen_urls:
                continue
            self.seen_urls.add((url.url, url.part_path))
            self.message.urls.append(url)
            self.links_added += 1

    def archive(self, part: Part) -> None:
        """The documents packed in an archive: a lure zipped to pass the filters is read like one
        attached as it is (members of one level, within their own small budget)."""
        from mailmoat.attach.archives import Unpacker
        from mailmoat.attach.files import Budget, Event, Limits

        limits = Limits(
            max_depth=1, max_members=ARCHIVE_MAX_MEMBERS, max_total=ARCHIVE_MAX_TOTAL,
            max_member=MAX_DOCUMENT_SIZE, deadline=time.monotonic() + ARCHIVE_SECONDS,
        )
        events: list[Event] = []
        unpacker = Unpacker(Budget(limits), self.passwords, events, part.filename)
        try:
            for member in unpacker.members(part.payload, part.true_ext, part.filename):
                if self.full:
                    return
                if not member.data:
                    continue
                kind = _kind(member.data, sniff(member.data)[1])
                if kind:
                    self.read(part, f"{part.filename or 'part ' + part.path} > {member.name}", member.data, kind)
        except Exception as exc:  # limits and damaged archives: what was read is kept; the attachment engines report the rest
            self.message.defects.append(f"document:archive-unread part={part.path} {type(exc).__name__}: {str(exc)[:80]}")


def _read(message: Message) -> None:
    reader = _Reader(message)
    done = {d.part_path for d in message.documents}
    for part in _parts(message):
        if reader.full:
            break
        if part.path in done or not part.payload or len(part.payload) > MAX_DOCUMENT_SIZE:
            continue
        done.add(part.path)
        kind = _kind(part.payload, part.true_ext)
        if kind:
            reader.read(part, part.filename, part.payload, kind)
        elif part.true_ext in ARCHIVES and part.is_attachment and len(part.payload) <= ARCHIVE_MAX_SIZE:
            reader.archive(part)


def _read_pdf(data: bytes, doc: Document, passwords: list[str], defects: list[str]) -> list[str]:
    """Fill `doc` with the PDF's text; return the web links its pages carry (pdfium reads them also
    when the file is encrypted, which the structure scan cannot)."""
    import pypdfium2 as pdfium

    with PDFIUM_LOCK:
        pdf = _open(pdfium, data, doc, passwords, defects)
        if pdf is None:
            return []
        try:
            texts: list[str] = []
            links: list[str] = []
            size = 0
            for index in range(min(len(pdf), MAX_PAGES)):
                try:
                    page = pdf[index]
                    text = page.get_textpage().get_text_bounded()
                    links += _page_links(pdf, page)
                except Exception as exc:  # a damaged page: the others may still be read
                    defects.append(f"document:pdf-page-unreadable part={doc.part_path} page {index + 1}: {str(exc)[:80]}")
                    continue
                texts.append(text)
                size += len(text)
                if size >= MAX_TEXT:
                    break
            doc.text = "\n".join(texts)[:MAX_TEXT]
            return links
        finally:
            pdf.close()


def _open(pdfium: Any, data: bytes, doc: Document, passwords: list[str], defects: list[str]) -> Any:
    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if getattr(exc, "err_code", None) != _FPDF_ERR_PASSWORD:
            defects.append(f"document:pdf-unreadable part={doc.part_path}: {str(exc)[:80]}")
            return None
    doc.locked = True
    for password in passwords:
        try:
            opened = pdfium.PdfDocument(data, password=password)
        except pdfium.PdfiumError:
            continue
        doc.password = password
        return opened
    return None


def _page_links(pdf: Any, page: Any) -> list[str]:
    import pypdfium2.raw as pdfium_c

    links: list[str] = []
    pos = ctypes.c_int(0)
    link = pdfium_c.FPDF_LINK()
    while len(links) < MAX_URLS and pdfium_c.FPDFLink_Enumerate(page.raw, ctypes.byref(pos), ctypes.byref(link)):
        action = pdfium_c.FPDFLink_GetAction(link)
        if not action or pdfium_c.FPDFAction_GetType(action) != pdfium_c.PDFACTION_URI:
            continue
        size = pdfium_c.FPDFAction_GetURIPath(pdf.raw, action, None, 0)
        if not 0 < size <= 8192:
            continue
        buf = ctypes.create_string_buffer(size)
        pdfium_c.FPDFAction_GetURIPath(pdf.raw, action, buf, size)
        links.append(buf.value.decode("utf-8", "replace"))
    return links
