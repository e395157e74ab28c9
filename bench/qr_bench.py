"""QR benchmark: decode rate and median time per kind of distorted code, mailmoat's extractor vs plain pyzbar.

Usage: .venv/bin/python bench/qr_bench.py [--seed 20251128] [--scale 1.0] [--corpus DIR ...]

Every sample is generated here with a fixed seed (segno + Pillow, reportlab, python-docx), so two
runs print the same rates. The pyzbar column is the reference a filter without mailmoat's
extractor would get: pyzbar on the same image bytes (each tile on its own for split codes; "n/a"
where there is no image to give it: HTML tables, text blocks, PDF and Office carriers).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image as PILImage
from tests.support import qrgen as g

from mailmoat.config import QrSettings
from mailmoat.model import Image, Message, Part
from mailmoat.parse.qr import extract_qr

try:
    from pyzbar import pyzbar
except ImportError:  # pragma: no cover
    pyzbar = None


@dataclass
class Sample:
    payload: str
    message: Message
    zbar_images: list[bytes] = field(default_factory=list)  # what pyzbar gets ([] = n/a)
    ppm: float = 0.0


@dataclass
class Row:
    kind: str
    n: int = 0
    ok: int = 0
    ms: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    zbar_ok: int = 0
    zbar_ms: list[float] = field(default_factory=list)
    zbar_cpu: list[float] = field(default_factory=list)
    zbar_na: bool = False


def _img_msg(data: bytes, source: str = "inline") -> Message:
    return Message(images=[Image(data=data, source=source, part_path="2", content_id="qr@x")])


def _scale(rng: random.Random) -> int:
    return rng.randint(2, 8)


def make_kinds(rng: random.Random) -> dict[str, tuple[int, Callable[[str], Sample]]]:
    def plain(f: Callable[[str], PILImage.Image], jpeg: bool = False) -> Callable[[str], Sample]:
        def make(u: str) -> Sample:
            img = f(u)
            data = g.jpeg_bytes(img, 90) if jpeg else g.png_bytes(img)
            return Sample(u, _img_msg(data), [data])

        return make

    def jpeg_damaged(u: str) -> Sample:
        data = g.jpeg_bytes(g.qr_image(u, _scale(rng)), quality=rng.randint(5, 15))
        return Sample(u, _img_msg(data), [data])

    def tiny(lo: float, hi: float) -> Callable[[str], Sample]:
        def make(u: str) -> Sample:
            ppm = rng.uniform(lo, hi)
            data = g.png_bytes(g.tiny(u, ppm))
            return Sample(u, _img_msg(data), [data], ppm)

        return make

    def tiled(layouts: list[str]) -> Callable[[str], Sample]:
        def make(u: str) -> Sample:
            tiles = g.tiles(g.qr_image(u, rng.randint(3, 6)), rng.choice(layouts))
            datas = [g.png_bytes(t) for t in tiles]
            imgs = [Image(data=d, source="cid", part_path=str(i + 2), content_id=f"t{i}@x", order=i) for i, d in enumerate(datas)]
            return Sample(u, Message(images=imgs), datas)

        return make

    def table(u: str) -> Sample:
        return Sample(u, Message(html=g.html_table(u, rng.choice(["bgcolor", "style", "class"]))))

    def blocks(u: str) -> Sample:
        return Sample(u, Message(text=g.text_blocks(u, rng.choice(["half", "full"]))))

    def pdf(u: str) -> Sample:
        data = g.pdf_with_qr(u, vector=rng.random() < 0.5, page=rng.randint(1, 2))
        part = Part(path="2", content_type="application/pdf", filename="form.pdf", payload=data, is_attachment=True, true_type="application/pdf")
        return Sample(u, Message(parts=[part]))

    def docx(u: str) -> Sample:
        part = Part(path="2", content_type="application/octet-stream", filename="notice.docx", payload=g.docx_with_qr(u), is_attachment=True)
        return Sample(u, Message(parts=[part]))

    def svg(u: str) -> Sample:
        # Half as an attached SVG file drawn with one path (QR libraries), half as an <svg> of
        # rects in the HTML body (hand-drawn by kits).
        if rng.random() < 0.5:
            part = Part(path="2", content_type="image/svg+xml", filename="scan.svg", payload=g.svg_path(u), is_attachment=True)
            return Sample(u, Message(parts=[part], images=[Image(data=part.payload, source="attachment", part_path="2", filename="scan.svg")]))
        return Sample(u, Message(html=f"<p>扫码</p>{g.svg_rects(u, module=rng.randint(2, 8))}"))

    return {
        "clean": (100, plain(lambda u: g.qr_image(u, _scale(rng)))),
        "inverted": (100, plain(lambda u: g.inverted(g.qr_image(u, _scale(rng))))),
        "low-contrast": (100, plain(lambda u: g.low_contrast(g.qr_image(u, _scale(rng)), rng))),
        "tiny 1.5-2.5 ppm": (100, tiny(1.5, 2.5)),
        "tiny <1.5 ppm (no target)": (60, tiny(1.0, 1.5)),
        "rotated": (100, plain(lambda u: g.rotated(g.qr_image(u, _scale(rng)), rng))),
        "jpeg-damaged": (100, jpeg_damaged),
        "noisy": (100, plain(lambda u: g.noisy(g.qr_image(u, rng.randint(3, 8)), rng))),
        "poster": (60, plain(lambda u: g.poster(g.qr_image(u, rng.randint(3, 6)), rng), jpeg=True)),
        "tiles 2": (60, tiled(["1x2", "2x1"])),
        "tiles 4": (60, tiled(["2x2", "1x4"])),
        "html-table": (40, table),
        "text-blocks": (40, blocks),
        "pdf": (20, pdf),
        "docx": (20, docx),
        "svg": (40, svg),
    }


def run_zbar(images: list[bytes], payload: str) -> tuple[bool, float]:
    import io

    assert pyzbar is not None
    t0 = time.perf_counter()
    ok = False
    for data in images:
        img = PILImage.open(io.BytesIO(data)).convert("L")
        ok = ok or any(r.data.decode("utf-8", "replace") == payload for r in pyzbar.decode(img))
    return ok, (time.perf_counter() - t0) * 1000


def typical_message(rng: random.Random) -> bytes:
    """A subsidy-fraud mail: HTML with a logo and a QR shown by Content-ID from an octet-stream attachment."""
    url = "https://gov-subsidy-claim.top/apply?id=" + str(rng.randint(10**5, 10**6))
    msg = EmailMessage()
    msg["From"] = "财务部 <finance@victim-corp.com>"
    msg["To"] = "staff@victim-corp.com"
    msg["Subject"] = "关于发放2025年个人劳动补贴的通知"
    msg.set_content("请使用手机扫描附件二维码申领补贴。")
    html = (
        "<html><body><img src='cid:logo@corp'><p>各位同事：</p><p>请扫描下方二维码领取补贴。</p>"
        "<img src='cid:qr@corp' width='200'><p>财务部</p></body></html>"
    )
    msg.add_alternative(html, subtype="html")
    logo = PILImage.new("RGB", (180, 48), (20, 60, 140))
    msg.add_attachment(g.png_bytes(logo), maintype="image", subtype="png", filename="logo.png", cid="<logo@corp>", disposition="inline")
    msg.add_attachment(
        g.png_bytes(g.qr_image(url, 5)), maintype="application", subtype="octet-stream", filename="qrcode.dat", cid="<qr@corp>"
    )
    return msg.as_bytes()


def typical_as_model(raw: bytes) -> Message:
    """The same mail as the parsed model, for when mailmoat.parse is not importable."""
    import email
    import email.policy

    em = email.message_from_bytes(raw, policy=email.policy.default)
    msg = Message(raw=raw)
    n = 0
    for part in em.walk():
        n += 1
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True) or b""
        cid = (part.get("Content-ID") or "").strip("<>")
        ctype = part.get_content_type()
        if ctype == "text/html":
            msg.html = payload.decode("utf-8", "replace")
        elif ctype == "text/plain":
            msg.text = payload.decode("utf-8", "replace")
        else:
            msg.parts.append(Part(path=str(n), content_type=ctype, content_id=cid, payload=payload, is_attachment=True))
            if cid:
                msg.cid_map[cid] = str(n)
    return msg


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=20251128)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply the sample counts (0.1 for a quick look)")
    ap.add_argument("--corpus", nargs="*", default=[], help="also time QR extraction over real mail (one message per file)")
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    settings = QrSettings()
    extract_qr(Message(images=[Image(data=g.png_bytes(g.qr_image("warm-up")), source="inline")]), settings)
    extract_qr(typical_as_model(typical_message(rng)), settings)

    rows: list[Row] = []
    all_ms: list[float] = []
    all_cpu: list[float] = []
    total = 0
    for kind, (count, make) in make_kinds(rng).items():
        row = Row(kind)
        for _ in range(max(1, round(count * args.scale))):
            payload = g.random_url(rng)
            sample = make(payload)
            c0 = time.thread_time()
            t0 = time.perf_counter()
            extract_qr(sample.message, settings)
            ms = (time.perf_counter() - t0) * 1000
            row.cpu.append((time.thread_time() - c0) * 1000)
            row.n += 1
            row.ms.append(ms)
            row.ok += any(q.payload == payload for q in sample.message.qr_codes)
            if sample.zbar_images and pyzbar is not None:
                c0 = time.thread_time()
                ok, zms = run_zbar(sample.zbar_images, payload)
                row.zbar_cpu.append((time.thread_time() - c0) * 1000)
                row.zbar_ok += ok
                row.zbar_ms.append(zms)
            else:
                row.zbar_na = True
        total += row.n
        if row.kind not in ("pdf", "docx", "html-table", "text-blocks", "svg"):
            all_ms.extend(row.ms)
            all_cpu.extend(row.cpu)
        rows.append(row)

    print(f"QR benchmark: {total} generated codes, seed {args.seed}")
    print("(ms = wall-clock per sample; cpu = CPU time of the decoding thread, robust on a busy machine)")
    print(f"{'kind':28} {'n':>5} {'mailmoat':>9} {'med ms':>7} {'med cpu':>7} {'p95 ms':>7} {'pyzbar':>8} {'med ms':>7} {'med cpu':>7}")
    for r in rows:
        p95 = sorted(r.ms)[max(0, round(0.95 * len(r.ms)) - 1)]
        zrate = "n/a" if r.zbar_na else f"{100 * r.zbar_ok / r.n:.1f}%"
        zms = "n/a" if r.zbar_na else f"{statistics.median(r.zbar_ms):.2f}"
        zcpu = "n/a" if r.zbar_na else f"{statistics.median(r.zbar_cpu):.2f}"
        print(
            f"{r.kind:28} {r.n:5d} {100 * r.ok / r.n:8.1f}% {statistics.median(r.ms):7.2f} "
            f"{statistics.median(r.cpu):7.2f} {p95:7.2f} {zrate:>8} {zms:>7} {zcpu:>7}"
        )
    print(f"median over all image kinds: {statistics.median(all_ms):.2f} ms per image ({statistics.median(all_cpu):.2f} ms CPU)")

    raw = typical_message(rng)
    parse_fn: Any = None
    try:
        from mailmoat.parse import parse as parse_fn
    except ImportError:
        parse_fn = None
    times_qr: list[float] = []
    cpu_qr: list[float] = []
    times_full: list[float] = []
    found = 0
    for _ in range(50):
        if parse_fn is not None:
            t0 = time.perf_counter()
            m = parse_fn(raw, qr=settings)
            times_full.append((time.perf_counter() - t0) * 1000)
            found += bool(m.qr_codes)
        m2 = typical_as_model(raw)
        c0 = time.thread_time()
        t0 = time.perf_counter()
        extract_qr(m2, settings)
        times_qr.append((time.perf_counter() - t0) * 1000)
        cpu_qr.append((time.thread_time() - c0) * 1000)
        found += parse_fn is None and bool(m2.qr_codes)
    print(f"typical QR phishing message ({len(raw)} bytes, cid-referenced octet-stream QR + logo):")
    print(f"  extract_qr: median {statistics.median(times_qr):.2f} ms ({statistics.median(cpu_qr):.2f} ms CPU)")
    if times_full:
        print(f"  parse(raw, qr=...) incl. QR: median {statistics.median(times_full):.2f} ms")
    print(f"  decoded in {found}/50 runs")
    for corpus in args.corpus:
        corpus_run(Path(corpus), settings)
    return 0


def corpus_run(root: Path, settings: QrSettings) -> None:
    """QR extraction time and findings over real mail: parse once without QR, then time extract_qr alone."""
    from mailmoat.parse import parse

    files = sorted(p for p in root.rglob("*") if p.is_file())
    times: list[float] = []
    with_codes = 0
    codes = 0
    defects: dict[str, int] = {}
    for path in files:
        message = parse(path.read_bytes())
        t0 = time.perf_counter()
        extract_qr(message, settings)
        times.append((time.perf_counter() - t0) * 1000)
        with_codes += bool(message.qr_codes)
        codes += len(message.qr_codes)
        for d in message.defects:
            if d.startswith("qr:"):
                key = d.split()[0]
                defects[key] = defects.get(key, 0) + 1
    if not times:
        print(f"corpus {root}: no files")
        return
    times.sort()
    p95 = times[max(0, round(0.95 * len(times)) - 1)]
    print(
        f"corpus {root}: {len(times)} messages, {with_codes} with codes ({codes} codes); extract_qr per message "
        f"median {statistics.median(times):.2f} ms, p95 {p95:.1f} ms, max {times[-1]:.0f} ms; defects {defects or 'none'}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
