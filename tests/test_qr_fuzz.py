"""Damaged carriers and hostile markup: QR extraction records defects, never crashes (no qr:error)."""

from __future__ import annotations

import io
import random

from mailmoat.config import QrSettings
from mailmoat.model import Image, Message, Part
from mailmoat.parse.qr import extract_qr
from tests.support import qrgen as g

URL = "https://x.example.com/a"


def mutate(data: bytes, rng: random.Random) -> bytes:
    d = bytearray(data)
    for _ in range(rng.randint(1, 20)):
        pos = rng.randrange(len(d))
        op = rng.random()
        if op < 0.6:
            d[pos] = rng.randrange(256)
        elif op < 0.8:
            del d[pos : pos + rng.randint(1, 100)]
        else:
            d[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 50)))
    return bytes(d)


def no_crash(msg: Message) -> None:
    extract_qr(msg, QrSettings())
    assert not [d for d in msg.defects if d.startswith("qr:error")], msg.defects


def test_mutated_images_pdfs_and_office_files() -> None:
    gif = io.BytesIO()
    g.qr_image(URL).save(gif, "GIF")
    seeds = {
        "png": g.png_bytes(g.qr_image(URL)),
        "jpeg": g.jpeg_bytes(g.qr_image(URL)),
        "gif": gif.getvalue(),
        "pdf": g.pdf_with_qr(URL),
        "docx": g.docx_with_qr(URL),
    }
    rng = random.Random(5)
    for _ in range(250):
        kind = rng.choice(sorted(seeds))
        data = mutate(seeds[kind], rng)
        images = [Image(data=data, source="attachment", part_path="2")] if kind in ("png", "jpeg", "gif") else []
        no_crash(Message(images=images, parts=[Part(path="3", content_type="application/octet-stream", payload=data, is_attachment=True)]))


def test_hostile_markup() -> None:
    rng = random.Random(7)
    pieces = ["<table>", "<tr>", "<td bgcolor=#000>", "<td style='background:", "█", "▀", "▄", " ", "\n", "<style>", "{", "}", ".b{background:#000}", "<", ">", "&nbsp;", "<pre>", "colspan=99999"]
    for _ in range(60):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(50, 3000)))
        no_crash(Message(html=text, text=text))
    # Pathological inputs that make naive regexes backtrack.
    for text in ["<" * 100_000, "<style" * 20_000, "<style>" + "a{" * 50_000, "█" * 50_000, ("█ " * 300 + "\n") * 300]:
        no_crash(Message(html=text, text=text))
