"""QR analyzer symbols, from raw messages through parse (and the whole scanner for the fraud wave)."""

from __future__ import annotations

import base64

import pytest
from PIL import Image as PILImage

from mailmoat.analyzers.base import AnalysisContext, AnalyzerEnv
from mailmoat.analyzers.qr import QrAnalyzer
from mailmoat.config import QrSettings, Settings
from mailmoat.model import Direction, Envelope, Finding, Message, QrCode
from mailmoat.parse import parse
from mailmoat.scanner import Scanner
from tests.support import qrgen as g
from tests.support import qrmail as q

URL = q.SUBSIDY_URL


def envelope(direction: Direction = Direction.INBOUND) -> Envelope:
    return Envelope(mail_from="bounce@sender.example", rcpt_tos=["zhang.wei@victim-corp.com"], direction=direction)


async def analyze(settings: Settings, message: Message, direction: Direction = Direction.INBOUND) -> dict[str, Finding]:
    analyzer = QrAnalyzer(AnalyzerEnv(settings=settings))
    findings = await analyzer.analyze(AnalysisContext(message=message, envelope=envelope(direction), settings=settings))
    return {f.symbol: f for f in findings}


def parsed(raw: bytes) -> Message:
    return parse(raw, qr=QrSettings())


def qr_urls(message: Message) -> list[str]:
    return [u.url for u in message.urls if u.source == "qr"]


async def test_stage1_plain_inline_image(settings: Settings) -> None:
    msg = parsed(q.stage1_inline())
    assert [c.payload for c in msg.qr_codes] == [URL]
    assert qr_urls(msg) == [URL]
    found = await analyze(settings, msg)
    assert set(found) == {"QR_CODE_PRESENT"}
    assert URL in found["QR_CODE_PRESENT"].evidence and "cid qr1@hrss" in found["QR_CODE_PRESENT"].evidence
    assert found["QR_CODE_PRESENT"].data["codes"][0]["urls"] == [URL]


async def test_stage2_spoofed_department(settings: Settings) -> None:
    msg = parsed(q.stage2_spoofed_department())
    assert msg.from_.display == "财务部" and msg.from_.domain == "victim-corp.com"
    found = await analyze(settings, msg)
    assert "QR_CODE_PRESENT" in found
    assert "QR_IN_CID_ATTACHMENT" not in found


async def test_stage3_cid_referenced_octet_stream_attachment(settings: Settings) -> None:
    msg = parsed(q.stage3_cid_attachment())
    [code] = msg.qr_codes
    part = msg.part(code.part_path)
    assert part is not None and part.content_type == "application/octet-stream" and part.is_attachment
    assert qr_urls(msg) == [URL]
    found = await analyze(settings, msg)
    assert {"QR_CODE_PRESENT", "QR_IN_CID_ATTACHMENT"} <= set(found)
    ev = found["QR_IN_CID_ATTACHMENT"].evidence
    assert "part1.9F2B@victim-corp.com" in ev and "补贴申领.dat" in ev and URL in ev


async def test_internal_mail_is_not_present_from_outside(settings: Settings) -> None:
    found = await analyze(settings, parsed(q.stage1_inline()), Direction.INTERNAL)
    assert "QR_CODE_PRESENT" not in found


async def test_pdf_and_docx_carriers(settings: Settings) -> None:
    pdf = parsed(q.with_attachment(g.pdf_with_qr(URL, vector=True, page=2), "补贴申请表.pdf", "application", "pdf"))
    found = await analyze(settings, pdf)
    assert "QR_IN_DOCUMENT" in found and "PDF page 2" in found["QR_IN_DOCUMENT"].evidence
    assert qr_urls(pdf) == [URL]
    docx = parsed(q.with_attachment(g.docx_with_qr(URL), "通知.docx", "application", "octet-stream"))
    found = await analyze(settings, docx)
    assert "QR_IN_DOCUMENT" in found and "word/media/image1.png" in found["QR_IN_DOCUMENT"].evidence


async def test_html_attachment_carrier(settings: Settings) -> None:
    b64 = base64.b64encode(g.png_bytes(g.qr_image(URL))).decode()
    page = f"<html><body><h1>Invoice</h1><img src='data:image/png;base64,{b64}'></body></html>".encode()
    msg = parsed(q.with_attachment(page, "invoice.html", "text", "html"))
    found = await analyze(settings, msg)
    assert "QR_IN_DOCUMENT" in found and "HTML attachment" in found["QR_IN_DOCUMENT"].evidence
    assert qr_urls(msg) == [URL]


@pytest.mark.parametrize("style", ["bgcolor", "style", "class"])
async def test_html_table_code(settings: Settings, style: str) -> None:
    msg = parsed(q.html_only(g.html_table(URL, style)))
    found = await analyze(settings, msg)
    assert "QR_HTML_TABLE" in found and "HTML table 1" in found["QR_HTML_TABLE"].evidence
    assert qr_urls(msg) == [URL]


@pytest.mark.parametrize("style", ["half", "full"])
async def test_unicode_block_code(settings: Settings, style: str) -> None:
    msg = parsed(q.text_only("Scan to keep your mailbox:\n\n" + g.text_blocks(URL, style)))
    found = await analyze(settings, msg)
    assert "QR_TEXT_BLOCKS" in found and URL in found["QR_TEXT_BLOCKS"].evidence


@pytest.mark.parametrize("layout", ["1x2", "2x2"])
async def test_tiled_code(settings: Settings, layout: str) -> None:
    msg = parsed(q.tiled_html(URL, layout))
    [code] = msg.qr_codes
    assert code.source == "tiles" and code.origin["tiles"][0] == "tile0@victim-corp.com"
    found = await analyze(settings, msg)
    assert "QR_TILED" in found and f"{layout} tiles tile0@victim-corp.com" in found["QR_TILED"].evidence


@pytest.mark.parametrize("css", [False, True])
async def test_data_uri_and_css_background(settings: Settings, css: bool) -> None:
    msg = parsed(q.data_uri_html(URL, css=css))
    assert [(c.payload, c.source) for c in msg.qr_codes] == [(URL, "css" if css else "data-uri")]


async def test_forwarded_eml(settings: Settings) -> None:
    msg = parsed(q.forwarded(q.stage3_cid_attachment()))
    assert [c.payload for c in msg.qr_codes] == [URL]
    found = await analyze(settings, msg)
    assert {"QR_CODE_PRESENT", "QR_IN_CID_ATTACHMENT"} <= set(found)


async def test_bomb_and_corrupt_images_are_findings(settings: Settings) -> None:
    msg = parsed(q.with_attachment(g.png_bomb(20000), "poster.png", "image", "png"))
    assert msg.qr_codes == []
    found = await analyze(settings, msg)
    assert "QR_IMAGE_LIMIT" in found and "poster.png" in found["QR_IMAGE_LIMIT"].evidence
    png = g.png_bytes(g.qr_image(URL))
    broken = parsed(q.with_attachment(png[: len(png) // 3], "qr.png", "image", "png"))
    assert any(d.startswith("qr:image-unreadable") for d in broken.defects)
    assert await analyze(settings, broken) == {}


async def test_codes_count_only_when_a_phone_would_act_on_them(settings: Settings) -> None:
    ean = Message(qr_codes=[QrCode(payload="5901234123457", symbology="EAN13", source="attachment", part_path="2")])
    assert await analyze(settings, ean) == {}
    linked = Message(qr_codes=[QrCode(payload="https://pay.example.top/x", symbology="Code128", source="attachment", part_path="2")])
    assert set(await analyze(settings, linked)) == {"QR_CODE_PRESENT"}
    # Data only: a parcel number, a Chinese e-invoice's fields, a contact card. Such codes fill
    # legitimate invoices and labels and send nobody anywhere, however they are drawn.
    for data in ("ORDER-42", "01,32,,24442000000012345678,1280.00,20261123,,A1B2", "BEGIN:VCARD\nFN:Li Wei\nEND:VCARD"):
        dm = Message(qr_codes=[QrCode(payload=data, symbology="QRCode", source="pdf", part_path="2")])
        assert await analyze(settings, dm) == {}, data
    # A payment or app link is somewhere to go.
    pay = Message(qr_codes=[QrCode(payload="wxp://f2f0kEg3mS1Vq2y", symbology="QRCode", source="pdf", part_path="2")])
    assert set(await analyze(settings, pay)) == {"QR_CODE_PRESENT", "QR_IN_DOCUMENT"}


async def test_clean_mail_has_no_qr_findings(settings: Settings) -> None:
    logo = PILImage.new("RGB", (200, 60), (30, 90, 160))
    msg = parsed(q.with_attachment(g.png_bytes(logo), "logo.png", "image", "png"))
    assert msg.qr_codes == [] and await analyze(settings, msg) == {}


async def test_scanner_sees_the_fraud_wave(settings: Settings) -> None:
    scanner = Scanner(settings)
    for raw, expected in [
        (q.stage1_inline(), {"QR_CODE_PRESENT"}),
        (q.stage2_spoofed_department(), {"QR_CODE_PRESENT"}),
        (q.stage3_cid_attachment(), {"QR_CODE_PRESENT", "QR_IN_CID_ATTACHMENT"}),
    ]:
        result = await scanner.scan(raw, envelope())
        symbols = {f.symbol for f in result.verdict.findings}
        assert expected <= symbols, symbols
        assert URL in [u.url for u in result.message.urls if u.source == "qr"]
