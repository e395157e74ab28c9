"""QR extraction for parse: decode every candidate within the limits, fill qr_codes and add QR URLs."""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass, field
from typing import Any

from PIL import Image as PILImage

from mailmoat.config import QrSettings
from mailmoat.model import Message, QrCode
from mailmoat.parse import qr_sources
from mailmoat.parse.qr_decode import (
    Decoded,
    DecodeStats,
    ImageError,
    ImageTooLarge,
    NotACode,
    could_hold_code,
    decode_image,
    load_image,
    to_gray,
)
from mailmoat.parse.qr_sources import DEFECT_TOO_MANY, Candidate
from mailmoat.parse.urls import find_text_urls, make_url

# Defects recorded in message.defects (a prefix, then where): analyzers match on the prefix.
DEFECT_TOO_LARGE = "qr:image-too-large"
DEFECT_UNREADABLE = "qr:image-unreadable"
DEFECT_TIME = "qr:time-budget"
LIMIT_DEFECTS = (DEFECT_TOO_LARGE, DEFECT_TOO_MANY, DEFECT_TIME)

_SCHEME_URL = re.compile(r"(?i)^(?:https?|ftps?|hxxps?)://")
_BARE_HOST = re.compile(r"(?i)^(?:[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?\.)+[a-z]{2,63}(?::\d{1,5})?(?:[/?#]\S*)?$")


@dataclass
class _Run:
    message: Message
    settings: QrSettings
    deadline: float
    stats: DecodeStats = field(default_factory=DecodeStats)
    decoded_images: int = 0
    consumed: set[int] = field(default_factory=set)  # id(Image) of tiles decoded as a whole
    seen_images: set[str] = field(default_factory=set)  # sha256 of image bytes already decoded
    groups_hit: set[str] = field(default_factory=set)
    flagged: set[str] = field(default_factory=set)  # run-wide defects recorded once
    seen_codes: set[tuple[str, str, str, str]] = field(default_factory=set)
    passwords: dict[str, str] = field(default_factory=dict)  # part path -> password of a locked PDF

    def defect(self, text: str) -> None:
        if text not in self.message.defects:
            self.message.defects.append(text)

    def once(self, name: str, detail: str) -> None:
        if name not in self.flagged:
            self.flagged.add(name)
            self.defect(f"{name} {detail}".strip())


def extract_qr(message: Message, settings: QrSettings) -> None:
    """Decode every barcode a mail client could show; never raises (problems become defects)."""
    if not settings.enabled:
        return
    run = _Run(message=message, settings=settings, deadline=time.monotonic() + max(0.05, settings.time_budget))
    # Locked PDFs that the message's own password opened (parse.documents runs first).
    run.passwords = {d.part_path: d.password for d in message.documents if d.password}
    for code in message.qr_codes:  # called twice on one message: record nothing twice
        run.seen_codes.add(_key(code.payload, code.symbology, code))
    try:
        _extract_level(run, message, {})
    except Exception as exc:  # a decoder bug must not lose the message
        run.defect(f"qr:error {type(exc).__name__}: {exc}")
    _add_urls(message)


def _extract_level(run: _Run, message: Message, prefix: dict[str, Any]) -> None:
    # closing(): stopping early must release the pdfium lock a PDF source may hold.
    with contextlib.closing(qr_sources.candidates(message, run.settings, prefix, run.passwords)) as found:
        for cand in found:
            if not _budget_ok(run):
                return
            _handle(run, cand)
    for n, sub in enumerate(message.attached_messages):
        sub_prefix = {**prefix, "eml": n + 1}
        if sub.qr_codes:
            # parse already decoded the attached message on its own: lift its codes once.
            for code in sub.qr_codes:
                _record(run, code.payload, code.symbology, _lifted_where(code, sub_prefix))
            continue
        if not _budget_ok(run):
            return
        _extract_level(run, sub, sub_prefix)


def _budget_ok(run: _Run) -> bool:
    if time.monotonic() > run.deadline:
        run.once(DEFECT_TIME, f"{run.settings.time_budget:g}s spent")
        return False
    if run.decoded_images >= run.settings.max_images:
        run.once(DEFECT_TOO_MANY, f"more than {run.settings.max_images} images")
        return False
    return True


def _handle(run: _Run, cand: Candidate) -> None:
    where = cand.image
    if cand.defect:
        run.defect(cand.defect)
        return
    if id(where) in run.consumed:
        return
    if cand.fallback and cand.group in run.groups_hit:
        return
    if cand.members:
        _handle_tiles(run, cand)
        return
    if where.data:
        # parse lists the images of an attached message at the outer level too: decode each once.
        sha = qr_sources.image_sha(where.data)
        if sha in run.seen_images:
            return
        run.seen_images.add(sha)
    img = _raster(run, cand)
    if img is None:
        return
    codes = _decode(run, img, others=cand.others, retries=cand.retries)
    if codes and cand.group:
        run.groups_hit.add(cand.group)
    for code in codes:
        _record(run, code.text, code.symbology, where, code)


def _raster(run: _Run, cand: Candidate) -> PILImage.Image | None:
    where = cand.image
    try:
        if cand.pil is not None:
            img = cand.pil
            w, h = img.size
            if w * h > run.settings.max_pixels:
                raise ImageTooLarge(f"{w}x{h} pixels exceeds {run.settings.max_pixels}")
            img = to_gray(img)
        elif cand.render is not None:
            try:
                img = to_gray(cand.render())
            except NotACode:
                raise
            except Exception as exc:  # pdfium and resvg report damaged input with their own errors
                raise ImageError(f"render: {exc}") from exc
        else:
            img = load_image(where.data, run.settings.max_pixels, gate=True)
    except NotACode:
        return None
    except ImageError as exc:
        run.defect(f"{exc.defect} {qr_sources.label(where)}: {exc}")
        return None
    if not could_hold_code(*img.size):
        return None
    return img


def _decode(run: _Run, img: PILImage.Image, others: bool = True, retries: bool = True) -> list[Decoded]:
    run.decoded_images += 1
    return decode_image(img, deadline=run.deadline, others=others, retries=retries, stats=run.stats)


def _handle_tiles(run: _Run, cand: Candidate) -> None:
    sizes = [qr_sources.image_size(m.image.data) or (0, 0) for m in cand.members]
    if sum(w * h for w, h in sizes) > run.settings.max_pixels:
        return  # the members are decoded (or refused) one by one
    tiles: list[PILImage.Image] = []
    for member in cand.members:
        try:
            tiles.append(load_image(member.image.data, run.settings.max_pixels))
        except ImageError:
            return  # the member is reported on its own turn
    layout = str(cand.image.origin.get("layout", ""))
    whole, boxes = qr_sources.stitch(tiles, layout)
    # Only a QR code that crosses a seam is a split code; whole codes side by side are read one by one.
    # Retries only for small stitches: most image runs that fit together are not split codes.
    small = max(whole.size) <= qr_sources.TILE_RETRY_MAX_SIDE
    found = _decode(run, whole, others=False, retries=small)
    codes = [c for c in found if c.is_qr and qr_sources.spans_tiles(c.box, boxes)]
    if not codes:
        return
    run.consumed.update(id(m.image) for m in cand.members)
    run.seen_images.update(qr_sources.image_sha(m.image.data) for m in cand.members)
    for code in codes:
        _record(run, code.text, code.symbology, cand.image, code)


def _record(run: _Run, payload: str, symbology: str, where: Any, code: Decoded | None = None) -> None:
    key = _key(payload, symbology, where)
    if key in run.seen_codes:
        return
    run.seen_codes.add(key)
    origin = dict(where.origin)
    if code is not None and code.retry:
        origin["retry"] = code.retry
    run.message.qr_codes.append(
        QrCode(
            payload=payload,
            symbology=symbology,
            source=where.source,
            part_path=where.part_path,
            content_id=where.content_id,
            filename=where.filename,
            origin=origin,
        )
    )


def _key(payload: str, symbology: str, where: Any) -> tuple[str, str, str, str]:
    origin = {k: v for k, v in where.origin.items() if k != "retry"}
    return (payload, symbology, where.source, where.part_path + repr(sorted(origin.items(), key=str)))


@dataclass
class _Where:
    source: str
    part_path: str
    content_id: str
    filename: str
    origin: dict[str, Any]


def _lifted_where(code: QrCode, prefix: dict[str, Any]) -> _Where:
    return _Where(code.source, code.part_path, code.content_id, code.filename, {**prefix, **code.origin})


# ---------------------------------------------------------------- URLs


# Payloads that are data to keep, not somewhere to go: Wi-Fi settings, contact and calendar cards.
_DATA_CARD = re.compile(r"(?i)^(?:wifi:|mecard:|bizcard:|begin:(?:vcard|vcalendar|vevent))")
_ANY_SCHEME = re.compile(r"(?i)^[a-z][a-z0-9+.-]{1,31}:\S")


def leads_somewhere(payload: str) -> bool:
    """Whether a phone would open something from this payload: a web link, or an app, payment,
    phone or mail link (wxp://, alipays://, tel:, ...). Data only, such as a Chinese e-invoice's
    comma-separated fields, a parcel number or a contact card, leads nowhere."""
    text = payload.strip()
    if payload_urls(text):
        return True
    return bool(_ANY_SCHEME.match(text)) and not _DATA_CARD.match(text)


def payload_urls(payload: str) -> list[str]:
    """URLs a phone would open from a payload: the links inside it, or the payload itself as host[/path]."""
    text = payload.strip()
    if _SCHEME_URL.match(text) and not any(c.isspace() for c in text):
        return [text]  # a whole-payload URL, kept intact (find_text_urls stops at CJK characters)
    found = list(find_text_urls(text))
    if not found and _BARE_HOST.match(text):
        found = [text]
    out: list[str] = []
    for u in found:
        if not _SCHEME_URL.match(u):
            u = "http://" + u
        if u not in out:
            out.append(u)
    return out


def _add_urls(message: Message) -> None:
    have = {(u.url, u.source) for u in message.urls}
    for code in message.qr_codes:
        for raw in payload_urls(code.payload):
            try:
                url = make_url(raw, "qr", part_path=code.part_path)
            except (ValueError, UnicodeError, TypeError):
                url = None
            if url is None or (url.url, "qr") in have:
                continue
            have.add((url.url, "qr"))
            message.urls.append(url)
