"""Attached documents read as their recipient reads them: PDF, Office, OpenDocument and RTF text and links, PDFs opened with the body's password."""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Iterator
from typing import Any

from mailmoat.model import Document, Message, Part
from mailmoat.parse.pdfium_lock import PDFIUM_LOCK
from mailmoat.parse.urls import make_url

log = logging.getLogger(__name__)

MAX_DOCUMENTS = 20
MAX_DOCUMENT_SIZE = 20 * 1024 * 1024
MAX_URLS = 300
MAX_PAGES = 10  # a lure says what it wants on its first pages
MAX_TEXT = 20_000  # characters kept per document
MAX_ATTACHED_DEPTH = 3
_OOXML = ("docx", "docm", "xlsx", "xlsm", "xlsb", "pptx", "pptm")
_PACKAGES = (*_OOXML, "odt", "ods", "odp")  # zip packages whose XML holds the text
_FPDF_ERR_PASSWORD = 4


def read_documents(message: Message) -> None:
    """Fill `message.documents` with the text of PDF and Office attachments (also those of attached
    messages) and append their links to `message.urls` (sources "pdf" and "office"); never raises."""
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


def _kind(part: Part) -> str:
    from mailmoat.attach.sniff import sniff

    data = part.payload
    ext = part.true_ext
    if ext == "pdf" or (ext not in _PACKAGES and b"%PDF-" in data[:1024]):
        return "pdf"
    if ext in _PACKAGES or (data.startswith(b"PK\x03\x04") and sniff(data) in _PACKAGES):
        return "office"
    if ext == "rtf" or data[:64].lstrip().startswith(b"{\\rtf"):
        return "rtf"
    return ""


def _read(message: Message) -> None:
    from mailmoat.attach import pdf
    from mailmoat.attach.archives import passwords_from_text
    from mailmoat.attach.doctext import office_text, rtf_text
    from mailmoat.attach.office import ooxml_relationships

    seen_urls = {(u.url, u.part_path) for u in message.urls}
    read = {d.part_path for d in message.documents}
    passwords: list[str] | None = None
    added = 0
    for part in _parts(message):
        if len(read) >= MAX_DOCUMENTS:
            break
        if part.path in read or not part.payload or len(part.payload) > MAX_DOCUMENT_SIZE:
            continue
        kind = _kind(part)
        if not kind:
            continue
        read.add(part.path)
        doc = Document(part_path=part.path, filename=part.filename, kind=kind)
        links: list[str] = []
        try:
            if kind == "pdf":
                if passwords is None:  # asked once, and only when there is a PDF to open
                    passwords = passwords_from_text("\n".join((message.subject, message.body_text)))
                links = pdf.inspect(part.payload).uris
                links += _read_pdf(part.payload, doc, passwords, message.defects)
            elif kind == "rtf":
                doc.text = rtf_text(part.payload, MAX_TEXT)
            else:
                remote, hyperlinks = ooxml_relationships(part.payload)
                links = hyperlinks + [t for _rt, t in remote]
                doc.text = office_text(part.payload, MAX_TEXT)
        except Exception as exc:  # one damaged document must not cost the others
            message.defects.append(f"document:unreadable part={part.path} {type(exc).__name__}: {str(exc)[:80]}")
        message.documents.append(doc)
        for link in links:
            if added >= MAX_URLS:
                break
            url = make_url(link, kind, part_path=part.path)
            if url is None or (url.url, url.part_path) in seen_urls:
                continue
            seen_urls.add((url.url, url.part_path))
            message.urls.append(url)
            added += 1


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
