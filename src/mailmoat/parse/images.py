"""Images a mail client could render (parts by their bytes, cid references, data: URIs) and the cid map."""

from __future__ import annotations

import binascii
from urllib.parse import unquote, unquote_to_bytes

from mailmoat.model import Image, Message, Part
from mailmoat.parse import filetype
from mailmoat.parse.html import ImageRef, attrs_summary

MAX_IMAGES = 500
MAX_DATA_URI = 20 * 1024 * 1024  # characters of one data: URI decoded


def decode_data_uri(uri: str) -> tuple[str, bytes]:
    """(declared media type, bytes) of a data: URI; (type, b"") when it does not decode."""
    head, sep, body = uri[5:].partition(",")
    if not sep:
        return "", b""
    meta = head.lower().split(";")
    mediatype = meta[0].strip()
    try:
        if "base64" in meta[1:]:
            text = unquote(body) if "%" in body else body
            return mediatype, binascii.a2b_base64(text.encode("ascii", "ignore"))
        return mediatype, unquote_to_bytes(body)
    except (binascii.Error, ValueError):
        return mediatype, b""


def _cid_of(ref: str) -> str:
    cid = ref[4:]
    if "%" in cid:
        cid = unquote(cid)
    return cid.strip().strip("<>").strip()


def build(message: Message, refs: list[tuple[str, ImageRef]], defects: list[str]) -> None:
    """Fill message.images and message.cid_map from the parts and the HTML image references (in layout order)."""
    by_cid: dict[str, Part] = {}
    by_cid_lower: dict[str, Part] = {}
    for part in message.parts:
        if part.content_id:
            by_cid.setdefault(part.content_id, part)
            by_cid_lower.setdefault(part.content_id.lower(), part)
    first_ref: dict[str, tuple[int, ImageRef]] = {}
    images: list[Image] = []
    unresolved: set[str] = set()
    for index, (html_path, ref) in enumerate(refs):
        low = ref.ref[:5].lower()
        if low.startswith("cid:"):
            cid = _cid_of(ref.ref)
            found = by_cid.get(cid) or by_cid_lower.get(cid.lower())
            if found is None:
                if cid not in unresolved:
                    unresolved.add(cid)
                    defects.append(f"html:unresolved-cid {cid[:100]}")
                continue
            message.cid_map.setdefault(cid, found.path)
            first_ref.setdefault(found.path, (index, ref))
        elif low == "data:":
            if len(ref.ref) > MAX_DATA_URI:
                defects.append(f"limit:data-uri-size part={html_path}")
                continue
            mediatype, data = decode_data_uri(ref.ref)
            if not data:
                continue
            ftype = filetype.sniff(data)
            if not (filetype.is_image(ftype) or (not ftype[0] and mediatype.startswith("image/"))):
                continue
            origin = attrs_summary(ref, index)
            origin["declared_type"] = mediatype
            images.append(
                Image(data=data, source="css" if ref.kind == "css" else "data-uri", part_path=html_path, order=index, origin=origin)
            )
    base = len(refs)
    for n, part in enumerate(message.parts):
        if not part.payload:
            continue
        referenced = first_ref.get(part.path)
        if part.true_type:
            if not part.true_type.startswith("image/"):
                continue
        elif not (referenced or part.content_type.startswith("image/")):
            continue
        if referenced is not None:
            index, ref = referenced
            source, order, origin = "cid", index, attrs_summary(ref, index)
        else:
            inline = part.disposition == "inline" or (part.disposition == "" and bool(part.content_id) and not part.filename)
            source, order, origin = ("inline" if inline else "attachment"), base + n, {}
        origin["declared_type"] = part.content_type
        images.append(
            Image(
                data=part.payload,
                source=source,
                part_path=part.path,
                content_id=part.content_id,
                filename=part.filename,
                order=order,
                origin=origin,
            )
        )
    if len(images) > MAX_IMAGES:
        defects.append(f"limit:images {len(images)}")
        images = images[:MAX_IMAGES]
    images.sort(key=lambda im: im.order)
    message.images.extend(images)


def add_attached(message: Message, sub: Message, sub_path: str) -> None:
    """Images of an attached message, as the reader sees them when opening it."""
    offset = 100_000 * (len(message.attached_messages) + 1)
    for img in sub.images:
        if len(message.images) >= MAX_IMAGES:
            return
        origin = {**img.origin, "message": sub_path, "inner_source": img.source}
        message.images.append(
            Image(
                data=img.data,
                source="eml",
                part_path=img.part_path,
                content_id=img.content_id,
                filename=img.filename,
                order=offset + img.order,
                origin=origin,
            )
        )
