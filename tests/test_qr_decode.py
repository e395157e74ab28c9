"""Decoder: distorted codes, several codes and symbologies per image, limits and damaged images."""

from __future__ import annotations

import io
import random

import pytest
import zxingcpp
from PIL import Image as PILImage
from PIL import features

from mailmoat.config import QrSettings
from mailmoat.model import Image, Message, Part
from mailmoat.parse.filetype import raster_ext
from mailmoat.parse.qr import extract_qr
from mailmoat.parse.qr_decode import (
    ImageError,
    ImageTooLarge,
    could_hold_code,
    decode_image,
    load_image,
)
from tests.support import qrgen as g

URL = "https://subsidy-claim.example.cn/apply?id=20250611"


def decoded(img: PILImage.Image) -> list[str]:
    return [d.text for d in decode_image(load_image(g.png_bytes(img), 40_000_000))]


def one_image(data: bytes, **kw: object) -> Message:
    msg = Message(images=[Image(data=data, source="inline", part_path="2")])
    extract_qr(msg, QrSettings(**kw))  # type: ignore[arg-type]
    return msg


def test_clean_code_decodes() -> None:
    assert decoded(g.qr_image(URL)) == [URL]


@pytest.mark.parametrize("seed", range(4))
def test_distorted_codes_decode(seed: int) -> None:
    rng = random.Random(seed)
    base = g.qr_image(URL, scale=rng.randint(3, 6))
    cases = {
        "inverted": g.inverted(base),
        "low-contrast": g.low_contrast(base, rng),
        "tiny": g.tiny(URL, 1.6 + 0.2 * seed),
        "rotated": g.rotated(base, rng),
        "jpeg": g.jpeg_damaged(base, rng),
        "noisy": g.noisy(base, rng),
        "poster": g.poster(base, rng),
    }
    for name, img in cases.items():
        assert URL in decoded(img), name


def test_retries_rescue_what_a_single_pass_misses() -> None:
    # Find noisy/low-contrast/tiny samples zxing-cpp alone misses; the retries must read them.
    rng = random.Random(99)
    missed = 0
    for _ in range(120):
        u = g.random_url(rng)
        kind = rng.randrange(3)
        if kind == 0:
            img = g.noisy(g.qr_image(u, rng.randint(3, 7)), rng)
        elif kind == 1:
            img = g.low_contrast(g.qr_image(u, rng.randint(2, 6)), rng)
        else:
            img = g.tiny(u, rng.uniform(1.5, 2.2))
        if zxingcpp.read_barcodes(img):
            continue
        missed += 1
        found = decode_image(img.convert("L"))
        assert [d.text for d in found] == [u]
        assert found[0].retry
    assert missed > 0  # the set really exercises the retries


def test_several_codes_and_symbologies_qr_first() -> None:
    canvas = PILImage.new("L", (700, 260), 255)
    canvas.paste(g.qr_image("https://one.example.com/a", 4), (10, 10))
    canvas.paste(g.qr_image("https://two.example.com/b", 4), (250, 10))
    dm = zxingcpp.create_barcode("DM-PAYLOAD-42", zxingcpp.BarcodeFormat.DataMatrix).to_image(scale=5)
    view = memoryview(dm)
    canvas.paste(PILImage.frombytes("L", (view.shape[1], view.shape[0]), bytes(view)), (520, 40))
    msg = one_image(g.png_bytes(canvas))
    payloads = [q.payload for q in msg.qr_codes]
    assert set(payloads[:2]) == {"https://one.example.com/a", "https://two.example.com/b"}
    assert all(q.symbology == "QRCode" for q in msg.qr_codes[:2])
    assert ("DataMatrix", "DM-PAYLOAD-42") in [(q.symbology, q.payload) for q in msg.qr_codes[2:]]
    # ... and on their own.
    msg2 = one_image(g.png_bytes(PILImage.frombytes("L", (view.shape[1], view.shape[0]), bytes(view))))
    assert [(q.symbology, q.payload) for q in msg2.qr_codes] == [("DataMatrix", "DM-PAYLOAD-42")]


def test_decompression_bomb_is_a_defect_not_a_crash() -> None:
    bomb = g.png_bomb(30000)  # 900 MP
    assert len(bomb) < 1_000_000
    msg = one_image(bomb)
    assert msg.qr_codes == []
    assert any(d.startswith("qr:image-too-large") for d in msg.defects), msg.defects
    with pytest.raises(ImageTooLarge):
        load_image(bomb, 40_000_000)
    # Below Pillow's own bomb limit, the configured max_pixels is what stops it.
    with pytest.raises(ImageTooLarge):
        load_image(g.png_bomb(8000), 40_000_000)


def test_max_pixels_setting_is_the_limit() -> None:
    msg = one_image(g.png_bytes(g.qr_image(URL, 8)), max_pixels=10_000)
    assert msg.qr_codes == []
    assert any(d.startswith("qr:image-too-large") and "part 2" in d for d in msg.defects)


@pytest.mark.parametrize("cut", ["truncated", "garbled", "header-only"])
def test_corrupt_image_is_a_defect_not_a_crash(cut: str) -> None:
    png = g.png_bytes(g.qr_image(URL))
    data = {
        "truncated": png[: len(png) // 2],
        "garbled": png[:100] + bytes(random.Random(1).randrange(256) for _ in range(300)) + png[400:],
        "header-only": png[:8],
    }[cut]
    msg = one_image(data)
    assert msg.qr_codes == []
    assert any(d.startswith("qr:image-unreadable") for d in msg.defects), msg.defects
    with pytest.raises(ImageError):
        load_image(data, 40_000_000)


def test_size_gate_and_sniffing() -> None:
    assert not could_hold_code(1, 1)
    assert not could_hold_code(600, 10)
    assert not could_hold_code(2000, 60)  # a banner line
    assert could_hold_code(40, 40)
    assert raster_ext(g.png_bytes(g.qr_image("x"))) == "png"
    assert raster_ext(g.jpeg_bytes(g.qr_image("x"))) == "jpg"
    assert raster_ext(b"%PDF-1.7") == ""
    assert raster_ext(b'<svg xmlns="http://www.w3.org/2000/svg"/>') == ""  # SVG takes its own path, not Pillow's
    assert raster_ext(b"BMW drivers read this text") == ""  # two letters of a bitmap's magic are not a bitmap


def test_transparent_code_on_white() -> None:
    base = g.qr_image(URL, 4)
    rgba = PILImage.new("RGBA", base.size, (0, 0, 0, 0))
    rgba.putalpha(base.point(lambda v: 255 - v))  # dark modules opaque black, the rest transparent
    assert decoded(rgba) == [URL]


@pytest.mark.skipif(not features.check("avif"), reason="this Pillow has no AVIF codec")
def test_avif_picture_reaches_the_decoder() -> None:
    """The gate is the file-type sniffer's pictures: an AVIF attachment is decoded (its own magic
    table once left AVIF out)."""
    buf = io.BytesIO()
    g.qr_image(URL).convert("RGB").save(buf, "AVIF", quality=90)
    data = buf.getvalue()
    assert raster_ext(data) == "avif"
    msg = Message(parts=[Part(path="2", content_type="image/avif", filename="scan.avif", payload=data, is_attachment=True)])
    extract_qr(msg, QrSettings())
    assert [c.payload for c in msg.qr_codes] == [URL]
