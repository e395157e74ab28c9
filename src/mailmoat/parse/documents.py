"""Links inside attached documents (PDF link annotations, Office hyperlinks) appended to message.urls."""

from __future__ import annotations

import logging

from mailmoat.model import Message
from mailmoat.parse.urls import make_url

log = logging.getLogger(__name__)

MAX_DOCUMENTS = 20
MAX_DOCUMENT_SIZE = 20 * 1024 * 1024
MAX_URLS = 300
_OOXML = ("docx", "docm", "xlsx", "xlsm", "xlsb", "pptx", "pptm")


def extract_document_urls(message: Message) -> None:
    """Append URIs of PDF attachments (source "pdf") and Office hyperlinks (source "office"); never raises."""
    try:
        _extract(message)
    except Exception:  # a hostile document must never break parsing
        log.exception("document URL extraction failed")
        message.defects.append("document URL extraction failed")


def _extract(message: Message) -> None:
    from mailmoat.attach import pdf
    from mailmoat.attach.office import ooxml_relationships
    from mailmoat.attach.sniff import sniff

    seen = {(u.url, u.part_path) for u in message.urls}
    added = 0
    docs = 0
    for part in message.parts:
        if docs >= MAX_DOCUMENTS or added >= MAX_URLS:
            break
        data = part.payload
        if not data or len(data) > MAX_DOCUMENT_SIZE:
            continue
        ext = part.true_ext
        if ext not in ("pdf", *_OOXML):
            if b"%PDF-" in data[:1024]:
                ext = "pdf"
            elif data.startswith(b"PK\x03\x04"):
                ext = sniff(data)
        if ext == "pdf":
            docs += 1
            links, source = pdf.inspect(data).uris, "pdf"
        elif ext in _OOXML:
            docs += 1
            remote, hyperlinks = ooxml_relationships(data)
            links, source = hyperlinks + [t for _rt, t in remote], "office"
        else:
            continue
        for link in links:
            if added >= MAX_URLS:
                break
            url = make_url(link, source, part_path=part.path)
            if url is None or (url.url, url.part_path) in seen:
                continue
            seen.add((url.url, url.part_path))
            message.urls.append(url)
            added += 1
