"""Generated QR codes and their distortions (inverted, low-contrast, tiny, rotated, JPEG, noise, poster, tiles)."""

from __future__ import annotations

import io
import random

import segno
from PIL import Image, ImageDraw, ImageOps


def qr_modules(payload: str, error: str = "m", micro: bool = False) -> list[list[bool]]:
    """The module matrix of a QR code (True = dark), without quiet zone."""
    q = segno.make(payload, error=error, micro=micro)
    return [[bool(v) for v in row] for row in q.matrix]


def qr_image(payload: str, scale: int = 4, border: int = 4, error: str = "m") -> Image.Image:
    """A clean grayscale QR code image."""
    q = segno.make(payload, error=error, micro=False)
    buf = io.BytesIO()
    q.save(buf, kind="png", scale=scale, border=border)
    return Image.open(io.BytesIO(buf.getvalue())).convert("L")


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes(img: Image.Image, quality: int = 85) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def random_url(rng: random.Random) -> str:
    host = "".join(rng.choice("abcdefghijklmnop") for _ in range(rng.randint(4, 12)))
    path = "".join(rng.choice("abcxyz0123456789") for _ in range(rng.randint(3, 40)))
    tld = rng.choice(["com", "cn", "top", "xyz", "net"])
    return f"https://{host}.{tld}/{path}?u={rng.randint(0, 10**6)}"


def inverted(img: Image.Image) -> Image.Image:
    return ImageOps.invert(img.convert("L"))


def low_contrast(img: Image.Image, rng: random.Random) -> Image.Image:
    lo = rng.randint(80, 150)
    hi = lo + rng.randint(20, 40)
    return img.convert("L").point(lambda v: lo + (hi - lo) * v // 255)


def tiny(payload: str, ppm: float, error: str = "m") -> Image.Image:
    """The code at `ppm` pixels per module (bilinear, as a mail client scales it)."""
    base = qr_image(payload, scale=1, border=4, error=error)
    side = max(1, round(base.width * ppm))
    return base.resize((side, side), Image.Resampling.BILINEAR)


def rotated(img: Image.Image, rng: random.Random) -> Image.Image:
    return img.rotate(rng.uniform(5, 355), expand=True, fillcolor=255, resample=Image.Resampling.BICUBIC)


def jpeg_damaged(img: Image.Image, rng: random.Random) -> Image.Image:
    return Image.open(io.BytesIO(jpeg_bytes(img, quality=rng.randint(5, 15)))).convert("L")


def noisy(img: Image.Image, rng: random.Random) -> Image.Image:
    img = img.convert("L")
    noise = Image.effect_noise(img.size, rng.uniform(30, 70)).convert("L")
    return Image.blend(img, noise, rng.uniform(0.3, 0.5))


def poster(img: Image.Image, rng: random.Random, size: tuple[int, int] = (800, 1100)) -> Image.Image:
    """The code pasted somewhere on a busy colourful poster with text."""
    w, h = size
    bg = Image.new("RGB", size, (rng.randint(0, 255), rng.randint(0, 255), rng.randint(0, 255)))
    d = ImageDraw.Draw(bg)
    for _ in range(300):
        x, y = rng.randint(0, w), rng.randint(0, h)
        colour = (rng.randint(0, 255), rng.randint(0, 255), rng.randint(0, 255))
        d.rectangle((x, y, x + rng.randint(5, 200), y + rng.randint(5, 200)), fill=colour)
    for _ in range(40):
        d.text((rng.randint(0, w), rng.randint(0, h)), "SUBSIDY 2025 scan now", fill=(rng.randint(0, 255),) * 3)
    bg.paste(img.convert("RGB"), (rng.randint(0, w - img.width), rng.randint(0, h - img.height)))
    return bg


def tiles(img: Image.Image, layout: str) -> list[Image.Image]:
    """Split into "1x2" (left, right), "2x1" (top, bottom), "1x4" (four columns) or "2x2" (row-major)."""
    w, h = img.size
    if layout == "1x2":
        return [img.crop((0, 0, w // 2, h)), img.crop((w // 2, 0, w, h))]
    if layout == "2x1":
        return [img.crop((0, 0, w, h // 2)), img.crop((0, h // 2, w, h))]
    if layout == "1x4":
        xs = [0, w // 4, w // 2, 3 * w // 4, w]
        return [img.crop((xs[i], 0, xs[i + 1], h)) for i in range(4)]
    if layout == "2x2":
        return [
            img.crop((0, 0, w // 2, h // 2)),
            img.crop((w // 2, 0, w, h // 2)),
            img.crop((0, h // 2, w // 2, h)),
            img.crop((w // 2, h // 2, w, h)),
        ]
    raise ValueError(layout)


def html_table(payload: str, style: str = "bgcolor", cell: int = 4) -> str:
    """The code drawn as an HTML table: cells coloured by bgcolor, inline style or CSS classes."""
    mods = qr_modules(payload)
    rows = []
    for row in mods:
        cells = []
        for dark in row:
            colour = "#000000" if dark else "#ffffff"
            if style == "bgcolor":
                cells.append(f'<td bgcolor="{colour}" width="{cell}" height="{cell}"></td>')
            elif style == "style":
                cells.append(f'<td style="width:{cell}px;height:{cell}px;background-color:{colour}"></td>')
            else:
                cells.append(f'<td class="{"b" if dark else "w"}"></td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    head = ""
    if style == "class":
        head = f"<style>td{{width:{cell}px;height:{cell}px}} .b {{ background: black }} td.w{{background-color:#fff}}</style>"
    table = '<table cellpadding="0" cellspacing="0" border="0" style="border-collapse:collapse">' + "".join(rows) + "</table>"
    return f"<html><head>{head}</head><body><p>扫码领取补贴</p>{table}</body></html>"


def text_blocks(payload: str, style: str = "half", border: int = 2) -> str:
    """The code drawn with Unicode blocks: "half" (▀ ▄ █, two module rows per line) or "full" (██ per module)."""
    mods = qr_modules(payload)
    n = len(mods[0])
    pad = [[False] * (n + 2 * border) for _ in range(border)]
    grid = pad + [[False] * border + row + [False] * border for row in mods] + pad
    lines = []
    if style == "full":
        for row in grid:
            lines.append("".join("██" if d else "  " for d in row))
    else:
        if len(grid) % 2:
            grid.append([False] * len(grid[0]))
        chars = {(True, True): "█", (True, False): "▀", (False, True): "▄", (False, False): " "}
        for i in range(0, len(grid), 2):
            lines.append("".join(chars[(a, b)] for a, b in zip(grid[i], grid[i + 1], strict=True)))
    return "\n".join(lines)


def pdf_with_qr(
    payload: str, vector: bool = False, page: int = 1, text: str = "Subsidy application form", password: str = ""
) -> bytes:
    """A small PDF carrying the code on page `page`: as an embedded PNG, or drawn as vector squares;
    locked with `password` (RC4 128) when one is given."""
    from reportlab.graphics import renderPDF
    from reportlab.graphics.barcode.qr import QrCodeWidget
    from reportlab.graphics.shapes import Drawing
    from reportlab.lib import pdfencrypt
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4, encrypt=pdfencrypt.StandardEncryption(password, strength=128) if password else None)
    for n in range(1, page + 1):
        c.setFont("Helvetica", 14)
        c.drawString(72, 770, f"{text} - page {n}")
        if n == page:
            if vector:
                widget = QrCodeWidget(payload)
                x0, y0, x1, y1 = widget.getBounds()
                size = 180.0
                d = Drawing(size, size, transform=[size / (x1 - x0), 0, 0, size / (y1 - y0), 0, 0])
                d.add(widget)
                renderPDF.draw(d, c, 72, 500)
            else:
                c.drawImage(ImageReader(qr_image(payload, scale=4)), 72, 500, width=180, height=180)
        c.showPage()
    c.save()
    return buf.getvalue()


def docx_with_qr(payload: str) -> bytes:
    """A small Word document with the code as a picture."""
    import docx
    from docx.shared import Cm

    doc = docx.Document()
    doc.add_paragraph("请扫描下方二维码完成补贴申领")
    doc.add_picture(io.BytesIO(png_bytes(qr_image(payload, scale=4))), width=Cm(5))
    buf = io.BytesIO()
    doc.save(buf)
    return buf.getvalue()


def png_bomb(side: int = 30000) -> bytes:
    """A real decompression bomb: a side x side 1-bit PNG of zeros, a few hundred KB on disk."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" * (1 + (side + 7) // 8)
    comp = zlib.compressobj(9)
    block = row * 256
    parts = [comp.compress(block) for _ in range(side // 256)]
    parts.append(comp.compress(row * (side % 256)))
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


def svg_path(payload: str, error: str = "m") -> bytes:
    """A QR code as SVG the way QR libraries write it: one <path> of strokes (segno)."""
    buf = io.BytesIO()
    segno.make(payload, error=error).save(buf, kind="svg", scale=1, border=4)
    return buf.getvalue()


def svg_rects(payload: str, module: int = 6, declaration: bool = False) -> str:
    """A QR code as SVG the way phishing kits draw it by hand: one <rect> per dark module."""
    grid = qr_modules(payload)
    n = len(grid) + 8
    rects = "".join(
        f'<rect x="{(x + 4) * module}" y="{(y + 4) * module}" width="{module}" height="{module}" fill="#111"/>'
        for y, row in enumerate(grid)
        for x, dark in enumerate(row)
        if dark
    )
    head = '<?xml version="1.0" encoding="UTF-8"?>\n<!-- scan me -->\n' if declaration else ""
    side = n * module
    return f'{head}<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {side} {side}" width="{side}px">{rects}</svg>'
