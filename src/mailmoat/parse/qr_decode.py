"""Barcode decoding with zxing-cpp: QR family first, every other symbology next, then cheap retries."""

from __future__ import annotations

import io
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import zxingcpp
from PIL import Image as PILImage
from PIL import ImageFilter, ImageOps
from PIL.JpegImagePlugin import JpegImageFile

_F = zxingcpp.BarcodeFormat
_QR_FAMILY = (_F.QRCode, _F.MicroQRCode, _F.RMQRCode)
_QR_NAMES = {"QRCode", "QRCodeModel1", "QRCodeModel2", "MicroQRCode", "RMQRCode"}
# Every other readable symbology (zxing-cpp lists sub-formats too; keep the leaves once).
_OTHER_FORMATS = tuple(
    f
    for f in zxingcpp.barcode_formats_list(zxingcpp.BarcodeFormats(_F.AllReadable))
    if f.name not in _QR_NAMES and f.name not in {"OtherBarcode"}
)

# A QR code needs 21 modules plus some quiet zone; 1 px per module is already beyond any decoder.
MIN_SIDE = 21
# Spacer lines and banners: a code is never thinner than 1/12 of its width.
MAX_ASPECT = 12.0
# Images this small get a 2x upscale retry (tiny or 1.5-2 px-per-module codes).
UPSCALE_BELOW = 400
# Retries are for code-sized images: a page-sized photo or a banner costs tens of ms per pass and the
# decoder already looks at downscaled copies of it.
RETRY_MAX_SIDE = 1000
RETRY_MAX_ASPECT = 2.0
# When a QR code was found, other symbologies are still looked for in images up to this size.
OTHERS_AFTER_QR_MAX_PIXELS = 250_000
# Huge images are reduced (integer factor, fast) before decoding; a code in them stays big enough.
REDUCE_ABOVE = 8_000_000
REDUCE_TO = 4_000_000

class ImageError(Exception):
    """An image that cannot be decoded safely; `defect` is the recorded defect name."""

    defect = "qr:image-unreadable"


class NotACode(Exception):
    """An image whose size alone rules out a code (tracking pixel, spacer, banner line)."""


class ImageTooLarge(ImageError):
    """More pixels than the configured limit (e.g. a decompression bomb)."""

    defect = "qr:image-too-large"


@dataclass(frozen=True)
class Decoded:
    """One barcode read from one image."""

    text: str
    symbology: str  # zxing-cpp format name, e.g. "QRCode", "DataMatrix", "EAN13"
    raw: bytes = b""
    retry: str = ""  # which retry found it ("" = first pass)
    box: tuple[int, int, int, int] = (0, 0, 0, 0)  # left, top, right, bottom in the decoded image

    @property
    def is_qr(self) -> bool:
        return self.symbology in _QR_NAMES


@dataclass
class DecodeStats:
    """Counters for one message (or one bench run)."""

    images: int = 0
    passes: int = 0
    ms: float = 0.0
    retries: dict[str, int] = field(default_factory=dict)


def could_hold_code(width: int, height: int) -> bool:
    """Cheap size gate: tracking pixels, spacers and one-pixel lines never hold a code."""
    lo, hi = min(width, height), max(width, height)
    return lo >= MIN_SIDE and hi / lo <= MAX_ASPECT


def may_retry(width: int, height: int) -> bool:
    """Retries only for images shaped like a code on its own (square-ish, at most RETRY_MAX_SIDE)."""
    lo, hi = min(width, height), max(width, height)
    return hi <= RETRY_MAX_SIDE and hi / max(1, lo) <= RETRY_MAX_ASPECT


def reduce_large(img: PILImage.Image) -> PILImage.Image:
    """Images above REDUCE_ABOVE pixels shrunk by an integer factor to about REDUCE_TO pixels."""
    px = img.width * img.height
    if px <= REDUCE_ABOVE:
        return img
    factor = 2
    while px / (factor * factor) > REDUCE_TO:
        factor += 1
    return img.reduce(factor)


def load_image(data: bytes, max_pixels: int, gate: bool = False) -> PILImage.Image:
    """Open image bytes as an 8-bit grayscale image; checks the pixel count before decoding a single pixel.

    With `gate`, an image that cannot hold a code raises NotACode before its pixels are decoded.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img: PILImage.Image = PILImage.open(io.BytesIO(data))
            w, h = img.size
            if w <= 0 or h <= 0:
                raise ImageError(f"empty image {w}x{h}")
            if w * h > max_pixels:
                raise ImageTooLarge(f"{w}x{h} pixels exceeds {max_pixels}")
            if gate and not could_hold_code(w, h):
                raise NotACode(f"{w}x{h}")
            if getattr(img, "n_frames", 1) > 1:
                img.seek(0)  # animated GIF/WebP: a mail client shows the first frame first
            if isinstance(img, JpegImageFile):
                # libjpeg decodes straight to grey (and scales huge ones down) for free.
                img.draft("L", (w // 2, h // 2) if w * h > REDUCE_ABOVE else (w, h))
            if w * h > REDUCE_ABOVE and img.mode not in ("RGB", "RGBA", "L", "LA"):
                img = img.convert("RGBA")
            return to_gray(reduce_large(img))
    except (ImageError, NotACode):
        raise
    except PILImage.DecompressionBombError as exc:
        raise ImageTooLarge(str(exc)) from exc
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError, TypeError, IndexError, KeyError, ZeroDivisionError) as exc:
        # Pillow reports damaged files with a mix of exception types.
        raise ImageError(f"{type(exc).__name__}: {exc}") from exc


def to_gray(img: PILImage.Image) -> PILImage.Image:
    """Grayscale with transparency flattened onto white (as a mail client shows it)."""
    if img.mode == "L":
        img.load()
        return img
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        bg = PILImage.new("RGBA", rgba.size, (255, 255, 255, 255))
        bg.alpha_composite(rgba)
        return bg.convert("L")
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        return ImageOps.autocontrast(img.convert("F").convert("L"))
    return img.convert("L")


def _read(img: PILImage.Image, formats: Any, stats: DecodeStats | None) -> list[Any]:
    if stats is not None:
        stats.passes += 1
    try:
        return list(zxingcpp.read_barcodes(img, formats=formats))
    except (RuntimeError, ValueError) as exc:  # pragma: no cover - zxing-cpp refuses odd buffers
        raise ImageError(f"decoder: {exc}") from exc


def _collect(found: list[Any], out: list[Decoded], retry: str, scale: float = 1.0) -> None:
    seen = {(d.symbology, d.text) for d in out}
    for b in found:
        if not b.valid:
            continue
        raw = bytes(b.bytes)
        text = b.text or raw.decode("utf-8", "replace")
        key = (b.format.name, text)
        if key in seen:
            continue
        seen.add(key)
        out.append(Decoded(text=text, symbology=b.format.name, raw=raw, retry=retry, box=_box(b.position, scale)))


def _box(pos: Any, scale: float) -> tuple[int, int, int, int]:
    pts = [pos.top_left, pos.top_right, pos.bottom_right, pos.bottom_left]
    xs = [p.x / scale for p in pts]
    ys = [p.y / scale for p in pts]
    return round(min(xs)), round(min(ys)), round(max(xs)), round(max(ys))


def _retries(img: PILImage.Image) -> list[tuple[str, Any]]:
    """Cheap variants, most useful first; each is built only when the previous ones found nothing."""
    w, h = img.size
    steps: list[tuple[str, Any]] = []
    if max(w, h) < UPSCALE_BELOW:
        steps.append(("upscale", lambda im: im.resize((im.width * 2, im.height * 2), PILImage.Resampling.BICUBIC)))
    steps.append(("blur", lambda im: im.filter(ImageFilter.GaussianBlur(1))))
    steps.append(("median", lambda im: im.filter(ImageFilter.MedianFilter(3))))
    steps.append(("stretch", lambda im: ImageOps.autocontrast(im, cutoff=2)))
    if max(w, h) < UPSCALE_BELOW:
        steps.append(("upscale-blur", lambda im: im.resize((im.width * 2, im.height * 2), PILImage.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(1.5))))
    steps.append(("threshold", _otsu))
    return steps


def _otsu(img: PILImage.Image) -> PILImage.Image:
    """Global threshold at Otsu's level: rescues codes the local binarizer splits (heavy noise, gradients)."""
    hist = img.histogram()
    total = sum(hist)
    sum_all = sum(i * c for i, c in enumerate(hist))
    w_b = 0
    sum_b = 0.0
    best, level = -1.0, 128
    for t in range(256):
        w_b += hist[t]
        if w_b == 0:
            continue
        w_f = total - w_b
        if w_f == 0:
            break
        sum_b += t * hist[t]
        m_b = sum_b / w_b
        m_f = (sum_all - sum_b) / w_f
        between = w_b * w_f * (m_b - m_f) ** 2
        if between > best:
            best, level = between, t
    smooth = img.filter(ImageFilter.BoxBlur(1))
    return smooth.point(lambda v: 255 if v > level else 0)


def decode_image(
    img: PILImage.Image,
    *,
    deadline: float | None = None,
    retries: bool = True,
    others: bool = True,
    stats: DecodeStats | None = None,
) -> list[Decoded]:
    """Every barcode in a grayscale image: QR codes first, then other symbologies, then retries if none."""
    t0 = time.perf_counter()
    out: list[Decoded] = []
    try:
        _collect(_read(img, _QR_FAMILY, stats), out, "")
        if out:
            # Other symbologies beside a QR code: cheap on a code-sized image, skipped on big ones.
            if others and img.width * img.height <= OTHERS_AFTER_QR_MAX_PIXELS:
                _collect(_read(img, _OTHER_FORMATS, stats), out, "")
            return out
        if others:
            _collect(_read(img, _OTHER_FORMATS, stats), out, "")
            if out:
                return out
        if not retries or not may_retry(img.width, img.height):
            return out
        for name, make in _retries(img):
            if deadline is not None and time.monotonic() > deadline:
                break
            variant = make(img)
            _collect(_read(variant, _QR_FAMILY, stats), out, name, variant.width / img.width)
            if out:
                if stats is not None:
                    stats.retries[name] = stats.retries.get(name, 0) + 1
                break
        return out
    finally:
        if stats is not None:
            stats.images += 1
            stats.ms += (time.perf_counter() - t0) * 1000
