"""Where QR codes hide: images, PDF pages, Office media, HTML-table and text-block drawings, split tiles."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import hashlib
import html as html_mod
import io
import re
import warnings
import zipfile
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from PIL import Image as PILImage
from PIL import ImageColor

from mailmoat.config import QrSettings
from mailmoat.model import Image, Message, Part
from mailmoat.parse.filetype import OLE2_MAGIC, is_pdf, ole_too_big, raster_ext
from mailmoat.parse.pdfium_lock import PDFIUM_LOCK
from mailmoat.parse.qr_decode import could_hold_code
from mailmoat.parse.qr_svg import inline_svgs, looks_like_svg, render_svg

# A rasterised module is this many pixels wide; 4 modules of quiet zone around drawn codes.
DEFECT_TOO_MANY = "qr:too-many-images"  # (parse.qr counts it among the limits: QR_IMAGE_LIMIT)
MODULE_PX = 4
QUIET = 4
# Office files: how much of the zip we are willing to read.
OFFICE_MAX_MEMBERS = 2000
OFFICE_MAX_IMAGES = 30
OFFICE_MAX_MEMBER = 20 * 1024 * 1024
OFFICE_MAX_TOTAL = 64 * 1024 * 1024
OFFICE_MAX_RATIO = 200.0
# PDF page renders are capped below max_pixels: an A4 page at 150 dpi is 2.2 MP.
PDF_MAX_RENDER_PIXELS = 6_000_000
PDF_MAX_IMAGES_PER_PAGE = 20
# Drawn codes: micro QR starts at 11 modules, real QR at 21; anything past 200 is not a code.
GRID_MIN = 11
GRID_MAX = 200
# Stitched tiles larger than this get the decoder's own passes only.
TILE_RETRY_MAX_SIDE = 400
# Embedded HTML/text larger than this is not scanned for drawings.
DRAWING_MAX_CHARS = 2_000_000

# Preference when the same bytes are reachable several ways: the most telling location wins.
_SOURCE_RANK = {"cid": 0, "data-uri": 1, "css": 2, "inline": 3, "attachment": 4, "eml": 5}

_OFFICE_MEDIA_DIRS = ("word/media/", "xl/media/", "ppt/media/", "Pictures/", "media/")
_OFFICE_MARKERS = (b"word/media/", b"xl/media/", b"ppt/media/", b"Pictures/", b"META-INF/manifest.xml")


@dataclass
class Candidate:
    """Something to decode, and where it came from (copied into every QrCode found in it)."""

    image: Image  # location; .data holds encoded bytes when there are any
    pil: PILImage.Image | None = None  # already rasterised (drawings, stitched tiles)
    render: Callable[[], PILImage.Image] | None = None  # rasterised on demand (PDF pages)
    group: str = ""  # a fallback candidate is skipped once its group yielded a code
    fallback: bool = False
    members: list[Candidate] = field(default_factory=list)  # tiles: decoded whole instead of one by one
    defect: str = ""  # set by a source that could not produce the image (limits, damage)
    # Page renders get the QR pass only: retries and the other symbologies cost 15-80 ms on a
    # 2-megapixel page, and the barcodes printed on invoices and labels are not what we look for.
    retries: bool = True
    others: bool = True


def image_sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- images and parts


def message_images(message: Message) -> list[Image]:
    """The message's images plus any part whose bytes are an image, whatever it declares; one per content."""
    found: dict[str, Image] = {}
    order: list[str] = []
    covered_paths: set[str] = set()
    for img in message.images:
        # Images of attached messages are decoded with their own message (extract_qr recurses).
        if not img.data or img.source == "eml":
            continue
        key = image_sha(img.data)
        covered_paths.add(img.part_path)
        if key not in found:
            found[key] = img
            order.append(key)
        elif _SOURCE_RANK.get(img.source, 9) < _SOURCE_RANK.get(found[key].source, 9):
            found[key] = img
    for part in message.parts:
        if not part.payload or part.path in covered_paths or not raster_ext(part.payload):
            continue
        key = part.sha256 or image_sha(part.payload)
        if key in found:
            continue
        found[key] = Image(
            data=part.payload,
            source=_part_source(message, part),
            part_path=part.path,
            content_id=part.content_id,
            filename=part.filename,
            order=10_000 + len(order),
        )
        order.append(key)
    return [found[k] for k in order]


def _part_source(message: Message, part: Part) -> str:
    if part.content_id and part.content_id in message.cid_map:
        return "cid"
    return "attachment" if part.is_attachment or part.disposition == "attachment" else "inline"


def image_size(data: bytes) -> tuple[int, int] | None:
    """Pixel size from the header only (None when Pillow cannot even read the header)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # bomb warnings: the decoder records the defect
            with PILImage.open(io.BytesIO(data)) as im:
                return im.size
    except Exception:  # damaged headers raise anything; the decoder records the defect
        return None


def tile_groups(images: list[Image]) -> list[list[Image]]:
    """Runs of 2 or 4 adjacent images (layout order) whose flush stitch is square, as a split QR code is.

    Each group is listed with its layout ("1x2", "2x1", "1x4", "4x1", "2x2") in tile.origin of the
    stitched candidate; see `stitch`.
    """
    sized: list[tuple[Image, tuple[int, int]]] = []
    if len(images) < 2:
        return []
    for img in sorted(images, key=lambda i: i.order):
        size = image_size(img.data)
        if size is not None and min(size) >= 6:
            sized.append((img, size))
    groups: list[list[Image]] = []
    used: set[int] = set()
    i = 0
    while i < len(sized):
        matched = False
        for n in (4, 2):
            window = sized[i : i + n]
            if len(window) < n or any(id(w[0]) in used for w in window):
                continue
            if tile_layout([s for _, s in window]):
                groups.append([w[0] for w in window])
                used.update(id(w[0]) for w in window)
                i += n
                matched = True
                break
        if not matched:
            i += 1
    return groups


def _close(a: int, b: int, tol: int = 2) -> bool:
    return abs(a - b) <= tol


def _squareish(w: int, h: int) -> bool:
    return min(w, h) >= 20 and max(w, h) / min(w, h) <= 1.25


def tile_layout(sizes: list[tuple[int, int]]) -> str:
    """The layout in which these tile sizes stitch into a square ("" when none does)."""
    if len(sizes) == 2:
        (w1, h1), (w2, h2) = sizes
        if _close(h1, h2) and _squareish(w1 + w2, max(h1, h2)):
            return "1x2"
        if _close(w1, w2) and _squareish(max(w1, w2), h1 + h2):
            return "2x1"
        return ""
    if len(sizes) == 4:
        (w1, h1), (w2, h2), (w3, h3), (w4, h4) = sizes
        if (
            _close(h1, h2)
            and _close(h3, h4)
            and _close(w1, w3)
            and _close(w2, w4)
            and _squareish(max(w1 + w2, w3 + w4), max(h1, h2) + max(h3, h4))
        ):
            return "2x2"
        if all(_close(h, h1) for _, h in sizes) and _squareish(w1 + w2 + w3 + w4, h1):
            return "1x4"
        if all(_close(w, w1) for w, _ in sizes) and _squareish(w1, h1 + h2 + h3 + h4):
            return "4x1"
    return ""


def stitch(tiles: list[PILImage.Image], layout: str) -> tuple[PILImage.Image, list[tuple[int, int, int, int]]]:
    """Paste grayscale tiles flush, in layout order, onto a white canvas with a quiet zone.

    Returns the canvas and where each tile landed (left, top, right, bottom).
    """
    pad = 8
    if layout in ("1x2", "1x4"):
        rows = [tiles]
    elif layout in ("2x1", "4x1"):
        rows = [[t] for t in tiles]
    else:
        rows = [tiles[0:2], tiles[2:4]]
    width = max(sum(t.width for t in row) for row in rows)
    height = sum(max(t.height for t in row) for row in rows)
    canvas = PILImage.new("L", (width + 2 * pad, height + 2 * pad), 255)
    boxes: list[tuple[int, int, int, int]] = []
    y = pad
    for row in rows:
        x = pad
        for t in row:
            canvas.paste(t, (x, y))
            boxes.append((x, y, x + t.width, y + t.height))
            x += t.width
        y += max(t.height for t in row)
    return canvas, boxes


def spans_tiles(code_box: tuple[int, int, int, int], tile_boxes: list[tuple[int, int, int, int]]) -> bool:
    """A code read from a stitch is a split code only if a real share of it lies in two or more tiles."""
    left, top, right, bottom = code_box
    area = max(1, (right - left) * (bottom - top))
    shared = 0
    for tl, tt, tr, tb in tile_boxes:
        w = min(right, tr) - max(left, tl)
        h = min(bottom, tb) - max(top, tt)
        if w > 0 and h > 0 and w * h >= 0.1 * area:
            shared += 1
    return shared >= 2


# ---------------------------------------------------------------- PDF


def pdf_candidates(data: bytes, where: Image, settings: QrSettings, password: str = "") -> Iterator[Candidate]:
    """Embedded images of each page, then the page rendered (only if its images held no code).
    `password` opens a locked PDF (the one its message gives: see parse.documents)."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    with PDFIUM_LOCK:
        try:
            doc = pdfium.PdfDocument(data, password=password or None)
        except Exception as exc:  # encrypted or damaged PDFs: a defect, not a crash
            yield Candidate(image=where, defect=f"qr:pdf-unreadable {_label(where)}: {exc}")
            return
        try:
            pages = min(len(doc), max(0, settings.max_pdf_pages))
            if len(doc) > pages:
                # Said, not silent: a code on a later page (page 7 of an invoice) is not looked for.
                yield Candidate(image=where, defect=f"{DEFECT_TOO_MANY} {_label(where)}: {len(doc)} pages, "
                                                    f"the first {pages} looked at (qr.max_pdf_pages)")
            for index in range(pages):
                try:
                    page = doc[index]
                    pw, ph = page.get_size()
                except Exception as exc:  # a damaged page: the others may still be fine
                    yield Candidate(image=where, defect=f"qr:pdf-unreadable {_label(where)} page {index + 1}: {exc}")
                    continue
                group = f"pdf:{where.part_path}:{index}"
                embedded: list[Candidate] = []
                try:
                    objs = page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=4)
                    for n, obj in enumerate(objs):
                        if n >= PDF_MAX_IMAGES_PER_PAGE:
                            break
                        w, h = obj.get_px_size()
                        if not could_hold_code(w, h):
                            continue
                        loc = _child(where, "pdf", page=index + 1, via="embedded-image", index=n)
                        if w * h > settings.max_pixels:
                            embedded.append(Candidate(image=loc, defect=f"qr:image-too-large {_label(loc)} {w}x{h}"))
                            continue
                        pil = obj.get_bitmap(render=False).to_pil()
                        embedded.append(Candidate(image=loc, pil=pil, group=group))
                except Exception:  # odd image objects: the page render still covers them
                    pass
                yield from embedded
                scale = max(0.25, settings.pdf_dpi / 72.0)
                limit = min(settings.max_pixels, PDF_MAX_RENDER_PIXELS)
                if pw * ph * scale * scale > limit:
                    scale = (limit / max(1.0, pw * ph)) ** 0.5
                loc = _child(where, "pdf", page=index + 1, via="render", dpi=round(scale * 72))

                def render(page: Any = page, scale: float = scale) -> PILImage.Image:
                    # Called by the extractor while this generator holds the pdfium lock.
                    img: PILImage.Image = page.render(scale=scale, grayscale=True).to_pil().convert("L")
                    return img

                yield Candidate(
                    image=loc,
                    render=render,
                    group=group,
                    fallback=True,
                    retries=False,
                    others=False,
                )
        finally:
            doc.close()


# ---------------------------------------------------------------- Office (OOXML / ODF)


def is_office(data: bytes) -> bool:
    """A zip whose member names (local headers at the start, central directory at the end) say OOXML/ODF."""
    if data[:4] != b"PK\x03\x04":
        return False
    names = data[:4096] + data[-65536:]
    return any(m in names for m in (b"[Content_Types].xml", b"mimetypeapplication/vnd.oasis.opendocument", *_OFFICE_MARKERS))


def office_candidates(data: bytes, where: Image, settings: QrSettings) -> Iterator[Candidate]:
    """Images in the media folders of a docx/xlsx/pptx/odt, read with member, size and ratio limits."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except Exception as exc:  # any damage to the central directory
        yield Candidate(image=where, defect=f"qr:office-unreadable {_label(where)}: {exc}")
        return
    if len(infos) > OFFICE_MAX_MEMBERS:
        yield Candidate(image=where, defect=f"qr:office-too-many-members {_label(where)} {len(infos)}")
        infos = infos[:OFFICE_MAX_MEMBERS]
    total = 0
    taken = 0
    for info in infos:
        name = info.filename
        if info.is_dir() or not name.startswith(_OFFICE_MEDIA_DIRS):
            continue
        if taken >= OFFICE_MAX_IMAGES:
            break
        loc = _child(where, "office", member=name)
        ratio = info.file_size / max(1, info.compress_size)
        if info.file_size > OFFICE_MAX_MEMBER or ratio > OFFICE_MAX_RATIO or total + info.file_size > OFFICE_MAX_TOTAL:
            yield Candidate(image=loc, defect=f"qr:image-too-large {_label(loc)} {info.file_size} bytes")
            continue
        try:
            blob = zf.read(info)
        except Exception as exc:  # zipfile lets zlib, struct and CRC errors through as they come
            yield Candidate(image=loc, defect=f"qr:office-unreadable {_label(loc)}: {exc}")
            continue
        total += len(blob)
        if not raster_ext(blob):
            continue
        taken += 1
        loc.data = blob
        yield Candidate(image=loc)


# Where a picture starts inside a binary Office stream: Word's Data and PowerPoint's Pictures
# streams keep each PNG, JPEG or GIF whole behind a small record header. Each signature is
# checked a few bytes further (IHDR, a JPEG marker) so that stray bytes do not count.
_PICTURE_START = re.compile(rb"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR|\xff\xd8\xff[\xc0-\xfe]|GIF8[79]a")


def is_ole(data: bytes) -> bool:
    """A compound file: a binary Word, Excel or PowerPoint document (or an Outlook .msg)."""
    return data[:8] == OLE2_MAGIC


def ole_candidates(data: bytes, where: Image, settings: QrSettings) -> Iterator[Candidate]:
    """Pictures carved out of the streams of a .doc, .xls or .ppt, within the Office limits.

    Excel cuts its drawing records every 8 KB, so larger pictures in an .xls come out broken; a
    QR code picture is usually smaller than that."""
    import olefile

    if ole_too_big(data):
        yield Candidate(image=where, defect=f"qr:office-too-many-entries {_label(where)}")
        return
    try:
        ole = olefile.OleFileIO(data)
    except Exception as exc:  # olefile raises many types on damaged input
        yield Candidate(image=where, defect=f"qr:office-unreadable {_label(where)}: {exc}")
        return
    try:
        total = 0
        taken = 0
        for path in ole.listdir(streams=True, storages=False)[:OFFICE_MAX_MEMBERS]:
            name = "/".join(path)
            try:
                size = ole.get_size(path)
                if size > OFFICE_MAX_MEMBER or total + size > OFFICE_MAX_TOTAL:
                    continue
                blob = ole.openstream(path).read()
            except Exception as exc:  # a damaged stream: the others may still be read
                yield Candidate(image=where, defect=f"qr:office-unreadable {_label(where)} {name}: {exc}")
                continue
            total += len(blob)
            starts = [m.start() for m in _PICTURE_START.finditer(blob)]
            for n, start in enumerate(starts):
                if taken >= OFFICE_MAX_IMAGES:
                    return
                end = starts[n + 1] if n + 1 < len(starts) else len(blob)
                picture = blob[start:end]
                if not raster_ext(picture):
                    continue
                taken += 1
                loc = _child(where, "office", stream=name, offset=start)
                loc.data = picture
                yield Candidate(image=loc)
    finally:
        ole.close()


# ---------------------------------------------------------------- HTML attachments

_DATA_IMAGE = re.compile(r"data:image/[a-z0-9.+-]{1,40}(?:;[a-z0-9=.-]{1,40})*;base64,([a-z0-9+/=%\s]{64,})", re.I)
HTML_ATTACHMENT_MAX = 5 * 1024 * 1024
HTML_ATTACHMENT_MAX_IMAGES = 20


def is_html_attachment(part: Part) -> bool:
    """An attached web page: opened in a browser, it shows its QR codes like the mail body does."""
    if not (part.is_attachment or part.disposition == "attachment"):
        return False
    if part.true_type in ("text/html", "application/xhtml+xml"):
        return True
    name = part.filename.lower()
    return part.content_type == "text/html" or name.endswith((".htm", ".html", ".shtml", ".xhtml"))


def html_attachment_candidates(part: Part, where: Image, settings: QrSettings) -> Iterator[Candidate]:
    """data: images, table drawings and block drawings of an attached HTML page."""
    data = part.payload[:HTML_ATTACHMENT_MAX]
    try:
        text = data.decode(part.charset or "utf-8", "replace")
    except LookupError:
        text = data.decode("utf-8", "replace")
    for n, m in enumerate(_DATA_IMAGE.finditer(text)):
        if n >= HTML_ATTACHMENT_MAX_IMAGES:
            break
        body = re.sub(r"\s", "", unquote(m.group(1)))
        try:
            blob = base64.b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            continue
        if raster_ext(blob):
            loc = _child(where, "html-attachment", index=n + 1)
            loc.data = blob
            yield Candidate(image=loc)
    for index, svg in enumerate(inline_svgs(text)):
        loc = _child(where, "html-svg", index=index + 1)
        loc.origin["in"] = "html-attachment"
        yield inline_svg_candidate(loc, svg, settings)
    for index, grid in html_table_grids(text):
        yield Candidate(image=_child(where, "html-table", table=index + 1), pil=rasterise(grid))
    if _BLOCK_RE.search(text):
        for line, grid, quadrant in text_block_grids(_html_lines(text)):
            loc = _child(where, "text-blocks", line=line + 1)
            loc.origin["in"] = "html-attachment"
            yield Candidate(image=loc, pil=rasterise_blocks(grid, quadrant))


# ---------------------------------------------------------------- HTML tables

_CSS_COMMENT = re.compile(r"/\*.*?\*/", re.S)
_BG = re.compile(r"background(?:-color)?\s*:\s*([^;]+)", re.I)
_SIMPLE_SELECTOR = re.compile(r"^\s*([a-z]+)?(?:\.([\w-]+))?\s*$", re.I)


def _css_classes(doc: Any) -> tuple[dict[str, str], dict[str, str]]:
    """Background colours of simple CSS rules: `.cls`, `td.cls` (by class) and `td` (by tag)."""
    by_class: dict[str, str] = {}
    by_tag: dict[str, str] = {}
    for style in doc.css("style"):
        text = _CSS_COMMENT.sub("", (style.text() or "")[:200_000])
        # Linear split into "selectors { body" pieces (a regex over unbalanced braces backtracks).
        for piece in text.split("}"):
            selectors, brace, body = piece.rpartition("{")
            if not brace:
                continue
            m = _BG.search(body)
            if not m:
                continue
            colour = m.group(1)
            for sel in selectors.rpartition("{")[2].split(","):
                sm = _SIMPLE_SELECTOR.match(sel)
                if not sm:
                    continue
                tag, cls = sm.group(1), sm.group(2)
                if cls:
                    by_class[cls] = colour
                elif tag:
                    by_tag[tag.lower()] = colour
    return by_class, by_tag


def _dark(value: str | None) -> bool | None:
    """True/False for a dark/light CSS or HTML colour, None when there is no usable colour."""
    if not value:
        return None
    return _dark_cached(value)


def _css_words(value: str) -> list[str]:
    """A CSS value split on blanks outside parentheses ("rgb(0, 0, 0) no-repeat"), in one pass.

    The regex it replaces looked ahead for ")" after every blank: quadratic in a long value
    (5 s for 64 KB of "a ").
    """
    words: list[str] = []
    start = depth = 0
    for i, ch in enumerate(value):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        elif depth == 0 and ch.isspace():
            if i > start:
                words.append(value[start:i])
            start = i + 1
    if start < len(value):
        words.append(value[start:])
    return words


@functools.lru_cache(maxsize=512)
def _dark_cached(value: str) -> bool | None:
    # A colour declaration has a few words (a background shorthand about ten); more is not a colour.
    for token in _css_words(value.strip().lower().replace("!important", ""))[:16]:
        token = token.strip()
        if not token or token.startswith("url("):
            continue
        try:
            rgb = ImageColor.getrgb(token)
        except ValueError:
            if re.fullmatch(r"[0-9a-f]{6}|[0-9a-f]{3}", token):
                rgb = ImageColor.getrgb("#" + token)
            else:
                continue
        if len(rgb) == 4 and rgb[3] == 0:
            return None
        r, g, b = rgb[0], rgb[1], rgb[2]
        return (299 * r + 587 * g + 114 * b) / 1000 < 128
    return None


def _node_colour(node: Any, by_class: dict[str, str], by_tag: dict[str, str], attrs: dict[str, str | None] | None = None) -> bool | None:
    if attrs is None:
        attrs = node.attributes
    style = attrs.get("style")
    if style:
        d = _style_dark(style)
        if d is not None:
            return d
    d = _dark(attrs.get("bgcolor"))
    if d is not None:
        return d
    for cls in reversed((attrs.get("class") or "").split()):
        d = _dark(by_class.get(cls))
        if d is not None:
            return d
    return _dark(by_tag.get(node.tag))


@functools.lru_cache(maxsize=512)
def _style_dark(style: str) -> bool | None:
    m = _BG.search(style)
    return _dark(m.group(1)) if m else None


def _span(attrs: dict[str, str | None], name: str) -> int:
    value = attrs.get(name)
    if not value:
        return 1
    try:
        return max(1, min(GRID_MAX, int(value.strip())))
    except ValueError:
        return 1


def html_table_grids(html: str) -> list[tuple[int, list[list[bool]]]]:
    """Every table that looks like a module grid, as (table index, rows of dark flags)."""
    if not html or html.count("<tr") + html.count("<TR") < GRID_MIN:
        return []
    from selectolax.lexbor import LexborHTMLParser

    doc = LexborHTMLParser(html[:DRAWING_MAX_CHARS])
    css: tuple[dict[str, str], dict[str, str]] | None = None
    tables = doc.css("table")
    index_of = {t.mem_id: i for i, t in enumerate(tables)}
    rows_of: dict[int, list[Any]] = {}
    for tr in doc.css("tr"):
        parent = tr.parent
        while parent is not None and parent.tag != "table":
            parent = parent.parent
        if parent is not None:
            rows_of.setdefault(parent.mem_id, []).append(tr)
    grids: list[tuple[int, list[list[bool]]]] = []
    for table in tables:
        rows = rows_of.get(table.mem_id, [])
        if not GRID_MIN <= len(rows) <= GRID_MAX:
            continue
        if css is None:
            css = _css_classes(doc)
        by_class, by_tag = css
        table_dark = _node_colour(table, by_class, by_tag)
        grid: list[list[bool]] = []
        for tr in rows:
            row_dark = _node_colour(tr, by_class, by_tag)
            inherited = row_dark if row_dark is not None else (table_dark or False)
            row: list[bool] = []
            child = tr.child
            while child is not None:
                if child.tag in ("td", "th"):
                    attrs = child.attributes
                    d = _node_colour(child, by_class, by_tag, attrs)
                    row.extend([inherited if d is None else d] * _span(attrs, "colspan"))
                child = child.next
            grid.append(row)
        width = max(len(r) for r in grid)
        if not GRID_MIN <= width <= GRID_MAX or abs(width - len(grid)) > max(2, width // 5):
            continue
        cells = sum(len(r) for r in grid)
        dark = sum(sum(r) for r in grid)
        if cells == 0 or not 0.2 <= dark / cells <= 0.8:
            continue
        grids.append((index_of[table.mem_id], [r + [False] * (width - len(r)) for r in grid]))
    return grids


def rasterise(grid: list[list[bool]], cell_w: int = MODULE_PX, cell_h: int = MODULE_PX) -> PILImage.Image:
    """A module grid (True = dark) as a grayscale image with a quiet zone."""
    rows = len(grid)
    cols = max(len(r) for r in grid) if grid else 0
    small = PILImage.new("L", (cols + 2 * QUIET, rows + 2 * QUIET), 255)
    px = small.load()
    assert px is not None
    for y, row in enumerate(grid):
        for x, dark in enumerate(row):
            if dark:
                px[x + QUIET, y + QUIET] = 0
    return small.resize((small.width * cell_w, small.height * cell_h), PILImage.Resampling.NEAREST)


# ---------------------------------------------------------------- Unicode block drawings

# Each block character as 2x2 quadrants: (upper-left, upper-right, lower-left, lower-right).
_QUADS: dict[str, tuple[bool, bool, bool, bool]] = {
    "█": (True, True, True, True),
    "▀": (True, True, False, False),
    "▄": (False, False, True, True),
    "▌": (True, False, True, False),
    "▐": (False, True, False, True),
    "▖": (False, False, True, False),
    "▗": (False, False, False, True),
    "▘": (True, False, False, False),
    "▝": (False, True, False, False),
    "▙": (True, False, True, True),
    "▚": (True, False, False, True),
    "▛": (True, True, True, False),
    "▜": (True, True, False, True),
    "▞": (False, True, True, False),
    "▟": (False, True, True, True),
    "▓": (True, True, True, True),
    "▒": (False, False, False, False),
    "░": (False, False, False, False),
    "▇": (True, True, True, True),
    "▆": (False, False, True, True),
    "▅": (False, False, True, True),
    "▉": (True, True, True, True),
    "▊": (True, True, True, True),
    "▋": (True, False, True, False),
}
_BLOCK_RE = re.compile("[\u2580-\u259f]")
_QUADRANT_ONLY = set("▖▗▘▝▙▚▛▜▞▟")
_BLANKS = " \u00a0\u2002\u2003\u2007\u2009\u3000"


def _drop_elements(html: str, names: tuple[str, ...]) -> str:
    """Remove <script>, <style> ... elements with plain string search (linear, unlike a lazy regex)."""
    low = html.lower()
    out: list[str] = []
    pos = 0
    while True:
        starts = [k for k in (low.find("<" + n, pos) for n in names) if k >= 0]
        if not starts:
            break
        start = min(starts)
        name = next(n for n in names if low.startswith("<" + n, start))
        end = low.find("</" + name, start)
        out.append(html[pos:start])
        if end < 0:
            pos = len(html)
            break
        close = low.find(">", end)
        pos = len(html) if close < 0 else close + 1
    out.append(html[pos:])
    return "".join(out)


_LINE_TAG = re.compile(r"(?i)<br\s*/?>|</(?:p|div|tr|li|pre|h\d)\s*>|<(?:p|div|tr|pre)\b[^<>]*>")
_ANY_TAG = re.compile(r"<[^<>]*>")


def _html_lines(html: str) -> str:
    """HTML reduced to text lines, keeping runs of spaces (a drawing lives in <pre> or &nbsp;)."""
    s = _drop_elements(html[:DRAWING_MAX_CHARS], ("script", "style", "head"))
    s = _LINE_TAG.sub("\n", s)
    s = _ANY_TAG.sub("", s)
    return html_mod.unescape(s)


def text_block_grids(text: str) -> list[tuple[int, list[list[bool]], bool]]:
    """Drawings made of block characters: (first line, sub-cell grid, quadrant style?)."""
    if not text or not _BLOCK_RE.search(text):
        return []
    lines = text[:DRAWING_MAX_CHARS].splitlines()
    runs: list[tuple[int, list[str]]] = []
    start = -1
    for i, line in enumerate([*lines, ""]):
        if len(_BLOCK_RE.findall(line)) >= 3:
            if start < 0:
                start = i
            continue
        if start >= 0:
            runs.append((start, lines[start:i]))
            start = -1
    out: list[tuple[int, list[list[bool]], bool]] = []
    for first, run in runs:
        if len(run) < 5:
            continue
        # Keep the columns aligned: strip only what every line shares (e.g. a "> " quote or indent).
        indent = min(len(ln) - len(ln.lstrip(_BLANKS + ">")) for ln in run)
        body = [ln[indent:].rstrip() for ln in run]
        width = max(len(ln) for ln in body)
        # "██" drawings spend two characters per module; the largest QR code is 177 modules.
        if not GRID_MIN <= width <= 2 * GRID_MAX or len(body) > GRID_MAX:
            continue
        quadrant = any(ch in _QUADRANT_ONLY for ln in body for ch in ln)
        grid: list[list[bool]] = []
        for ln in body:
            upper: list[bool] = []
            lower: list[bool] = []
            for ch in ln.ljust(width):
                ul, ur, ll, lr = _QUADS.get(ch, (False, False, False, False))
                upper += [ul, ur]
                lower += [ll, lr]
            grid += [upper, lower]
        out.append((first, grid, quadrant))
    return out


def rasterise_blocks(grid: list[list[bool]], quadrant: bool) -> PILImage.Image:
    # Half blocks (▀ ▄ █) put two module rows in one character that is half as wide as tall, so a
    # sub-cell is twice as tall as wide; quadrant drawings use every sub-cell as one square module.
    return rasterise(grid, cell_w=2, cell_h=2 if quadrant else 4)


# ---------------------------------------------------------------- helpers


def _label(img: Image) -> str:
    bits = [img.source]
    if img.part_path:
        bits.append(f"part {img.part_path}")
    if img.filename:
        bits.append(repr(img.filename))
    if img.content_id:
        bits.append(f"cid {img.content_id}")
    for k, v in img.origin.items():
        if k in _LABEL_KEYS:
            bits.append(f"{k} {v}")
    return " ".join(bits)


# Origin keys that say where a code was (parse adds layout details that only clutter evidence).
_LABEL_KEYS = ("eml", "page", "via", "index", "member", "stream", "table", "layout", "in", "line", "message")


def _child(parent: Image, source: str, **origin: Any) -> Image:
    return Image(
        data=b"",
        source=source,
        part_path=parent.part_path,
        content_id=parent.content_id,
        filename=parent.filename,
        order=parent.order,
        origin={**parent.origin, **origin},
    )


def label(img: Image) -> str:
    """A short human-readable location (for evidence and defects)."""
    return _label(img)


def candidates(
    message: Message, settings: QrSettings, prefix: dict[str, Any] | None = None, passwords: dict[str, str] | None = None
) -> Generator[Candidate, None, None]:
    """Everything worth decoding in one message level (attached .eml: see extract_qr). `passwords`:
    part path -> the password that opens a locked PDF there.

    Order: drawings (a few ms, and no image padding can push them past the image limit), split
    tiles (when the stitched whole decodes, its tiles are not decoded one by one), single images in
    layout order, then PDF and Office attachments.
    """
    base = dict(prefix or {})
    for index, grid in html_table_grids(message.html):
        where = Image(data=b"", source="html-table", origin={**base, "table": index + 1})
        yield Candidate(image=where, pil=rasterise(grid))
    seen_text: set[str] = set()
    html_text = _html_lines(message.html) if message.html and _BLOCK_RE.search(message.html) else ""
    for origin_name, text in (("text", message.text), ("html", html_text)):
        for line, grid, quadrant in text_block_grids(text):
            key = repr(grid)
            if key in seen_text:
                continue
            seen_text.add(key)
            where = Image(data=b"", source="text-blocks", origin={**base, "in": origin_name, "line": line + 1})
            yield Candidate(image=where, pil=rasterise_blocks(grid, quadrant))
    for index, svg in enumerate(inline_svgs(message.html)):
        where = Image(data=b"", source="html-svg", origin={**base, "index": index + 1})
        yield inline_svg_candidate(where, svg, settings)
    images = [_with_origin(img, base) for img in message_images(message)]
    for group in tile_groups(images):
        layout = tile_layout([image_size(g.data) or (0, 0) for g in group])
        where = Image(
            data=b"",
            source="tiles",
            part_path=",".join(g.part_path for g in group if g.part_path),
            content_id=",".join(g.content_id for g in group if g.content_id),
            filename=",".join(g.filename for g in group if g.filename),
            order=group[0].order,
            origin={**base, "layout": layout, "tiles": [g.content_id or g.part_path or g.source for g in group]},
        )
        yield Candidate(image=where, members=[Candidate(image=g) for g in group])
    for img in images:
        if looks_like_svg(img.data):
            yield svg_candidate(dataclasses.replace(img, origin={**img.origin, "format": "svg"}), settings)
        else:
            yield Candidate(image=img)
    for part in message.parts:
        data = part.payload
        if not data or raster_ext(data):
            continue
        where = Image(
            data=b"",
            source="attachment",
            part_path=part.path,
            content_id=part.content_id,
            filename=part.filename,
            order=0,
            origin=dict(base),
        )
        if part.true_type == "application/pdf" or is_pdf(data):
            yield from pdf_candidates(data, where, settings, (passwords or {}).get(part.path, ""))
        elif is_office(data):
            yield from office_candidates(data, where, settings)
        elif is_ole(data):
            yield from ole_candidates(data, where, settings)
        elif is_html_attachment(part):
            yield from html_attachment_candidates(part, where, settings)


def svg_candidate(where: Image, settings: QrSettings) -> Candidate:
    """An SVG (in `where.data`), rendered by resvg when its turn comes."""
    icon_gate = where.source == "html-svg"
    return Candidate(image=where, render=functools.partial(render_svg, where.data, settings.max_pixels, icon_gate))


def inline_svg_candidate(where: Image, svg: str | ValueError, settings: QrSettings) -> Candidate:
    """An <svg> drawn in HTML, or the defect that kept it from being read."""
    if isinstance(svg, ValueError):
        return Candidate(image=where, defect=f"qr:image-unreadable {_label(where)}: {svg}")
    where.data = svg.encode()
    return svg_candidate(where, settings)


def _with_origin(img: Image, base: dict[str, Any]) -> Image:
    if not base:
        return img
    return Image(
        data=img.data,
        source=img.source,
        part_path=img.part_path,
        content_id=img.content_id,
        filename=img.filename,
        order=img.order,
        origin={**base, **img.origin},
    )
