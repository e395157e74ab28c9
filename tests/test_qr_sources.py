"""Where codes hide: cid parts of any declared type, PDFs, Office files, HTML tables, text blocks, tiles, .eml."""

from __future__ import annotations

import base64
import io
import random
import zipfile

import pytest
from PIL import Image as PILImage

from mailmoat.config import QrSettings
from mailmoat.model import Image, Message, Part
from mailmoat.parse.qr import extract_qr, payload_urls
from mailmoat.parse.qr_sources import tile_layout
from tests.support import qrgen as g

URL = "https://subsidy-claim.example.cn/apply?id=20250611"


def run(msg: Message, **kw: object) -> Message:
    extract_qr(msg, QrSettings(**kw))  # type: ignore[arg-type]
    return msg


def payloads(msg: Message) -> list[str]:
    return [q.payload for q in msg.qr_codes]


def test_cid_part_declared_octet_stream_attachment() -> None:
    png = g.png_bytes(g.qr_image(URL))
    part = Part(
        path="3",
        content_type="application/octet-stream",
        filename="scan.dat",
        disposition="attachment",
        content_id="qr123@corp",
        payload=png,
        is_attachment=True,
    )
    msg = run(Message(parts=[part], cid_map={"qr123@corp": "3"}, html='<img src="cid:qr123@corp">'))
    [code] = msg.qr_codes
    assert (code.payload, code.source, code.part_path, code.content_id, code.filename) == (URL, "cid", "3", "qr123@corp", "scan.dat")
    [url] = [u for u in msg.urls if u.source == "qr"]
    assert (url.url, url.host, url.registrable_domain, url.part_path) == (URL, "subsidy-claim.example.cn", "example.cn", "3")


def test_same_image_twice_is_decoded_once_with_the_most_telling_location() -> None:
    png = g.png_bytes(g.qr_image(URL))
    msg = run(
        Message(
            images=[
                Image(data=png, source="attachment", part_path="3", filename="a.png"),
                Image(data=png, source="cid", part_path="3", content_id="c@x"),
            ]
        )
    )
    assert [(q.source, q.content_id) for q in msg.qr_codes] == [("cid", "c@x")]
    assert len([u for u in msg.urls if u.source == "qr"]) == 1


@pytest.mark.parametrize("source", ["data-uri", "css", "inline", "attachment"])
def test_every_image_source_is_read(source: str) -> None:
    msg = run(Message(images=[Image(data=g.png_bytes(g.qr_image(URL)), source=source, part_path="1")]))
    assert [(q.payload, q.source) for q in msg.qr_codes] == [(URL, source)]


@pytest.mark.parametrize(("vector", "page"), [(False, 1), (True, 1), (False, 2), (True, 2)])
def test_pdf_attachment(vector: bool, page: int) -> None:
    pdf = g.pdf_with_qr(URL, vector=vector, page=page)
    part = Part(path="2", content_type="application/pdf", filename="补贴申请表.pdf", payload=pdf, is_attachment=True, true_type="application/pdf")
    msg = run(Message(parts=[part]))
    [code] = msg.qr_codes
    assert (code.payload, code.source, code.filename, code.origin["page"]) == (URL, "pdf", "补贴申请表.pdf", page)
    assert code.origin["via"] == ("render" if vector else "embedded-image")


def test_pdf_page_limit() -> None:
    pdf = g.pdf_with_qr(URL, vector=True, page=3)
    part = Part(path="2", content_type="application/pdf", filename="f.pdf", payload=pdf, is_attachment=True)
    beyond = run(Message(parts=[part]), max_pdf_pages=2)
    assert beyond.qr_codes == []
    # Said, not silent (QR_IMAGE_LIMIT): a code on a later page was not looked for.
    assert any(d.startswith("qr:too-many-images") and "3 pages, the first 2" in d for d in beyond.defects), beyond.defects
    assert payloads(run(Message(parts=[Part(path="2", content_type="application/pdf", payload=pdf)]), max_pdf_pages=3)) == [URL]


def test_damaged_pdf_is_a_defect() -> None:
    part = Part(path="2", content_type="application/pdf", filename="x.pdf", payload=b"%PDF-1.4\n garbage", is_attachment=True)
    msg = run(Message(parts=[part]))
    assert msg.qr_codes == []
    assert any(d.startswith("qr:pdf-unreadable") for d in msg.defects)


def test_docx_attachment_whatever_its_declared_type() -> None:
    part = Part(path="2", content_type="application/octet-stream", filename="通知.docx", payload=g.docx_with_qr(URL), is_attachment=True)
    [code] = run(Message(parts=[part])).qr_codes
    assert (code.payload, code.source, code.origin["member"]) == (URL, "office", "word/media/image1.png")


@pytest.mark.parametrize("media", ["xl/media/image1.png", "ppt/media/image3.png", "Pictures/100000.png"])
def test_other_office_and_odf_media_folders(media: str) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        if media.startswith("Pictures"):
            zf.writestr("mimetype", "application/vnd.oasis.opendocument.text", compress_type=zipfile.ZIP_STORED)
        else:
            zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr(media, g.png_bytes(g.qr_image(URL)))
    [code] = run(Message(parts=[Part(path="2", content_type="application/zip", payload=buf.getvalue())])).qr_codes
    assert code.origin["member"] == media


@pytest.mark.parametrize(("stream", "picture"), [("Data", "png"), ("Pictures", "jpeg")])
def test_binary_office_pictures_are_carved_from_their_streams(stream: str, picture: str) -> None:
    """A .doc keeps its pictures in the Data stream, a .ppt in Pictures, each behind a record header."""
    from tests.support.attachgen import ole_file

    img = g.qr_image(URL)
    blob = g.png_bytes(img) if picture == "png" else g.jpeg_bytes(img, quality=95)
    # Record headers, stray bytes that begin like a JPEG but are none, and the picture between them.
    streams = {"WordDocument": b"\xec\xa5" + b"\0" * 600, stream: b"\x44\x00\x64\x00" * 20 + b"\xff\xd8\xff\x00" + blob + b"\0" * 64}
    part = Part(path="2", content_type="application/msword", filename="补贴通知.doc", payload=ole_file(streams), is_attachment=True)
    msg = run(Message(parts=[part]))
    [code] = msg.qr_codes
    assert (code.payload, code.source, code.origin["stream"]) == (URL, "office", stream)
    from mailmoat.analyzers.qr import describe

    assert f"picture in the {stream} stream of a binary Office document" in describe(code)
    assert not [d for d in msg.defects if d.startswith("qr:")]
    # A compound file with no picture, and a damaged one, cost nothing but a defect.
    plain = run(Message(parts=[Part(path="2", content_type="application/msword", payload=ole_file({"WordDocument": b"x" * 100}))]))
    assert plain.qr_codes == [] and not plain.defects
    broken = ole_file(streams)[:1024]
    damaged = run(Message(parts=[Part(path="2", content_type="application/msword", payload=broken)]))
    assert damaged.qr_codes == []


def test_a_compound_file_past_the_entry_limit_is_not_carved(monkeypatch: pytest.MonkeyPatch) -> None:
    from mailmoat.parse import filetype
    from tests.support.attachgen import ole_file

    streams = {"WordDocument": b"\xec\xa5" + b"\0" * 600, "Data": b"\0" * 16 + g.png_bytes(g.qr_image(URL))}
    part = Part(path="2", content_type="application/msword", filename="a.doc", payload=ole_file(streams), is_attachment=True)
    monkeypatch.setattr(filetype, "MAX_OLE_ENTRIES", 2)
    msg = run(Message(parts=[part]))
    assert msg.qr_codes == [] and any(d.startswith("qr:office-too-many-entries") for d in msg.defects)


def test_office_zip_bomb_member_is_a_limit_defect() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("word/media/image1.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 30_000_000)
    msg = run(Message(parts=[Part(path="2", content_type="application/zip", payload=buf.getvalue())]))
    assert msg.qr_codes == []
    assert any(d.startswith("qr:image-too-large") for d in msg.defects)


@pytest.mark.parametrize("style", ["bgcolor", "style", "class"])
def test_html_table_drawing(style: str) -> None:
    [code] = run(Message(html=g.html_table(URL, style))).qr_codes
    assert (code.payload, code.source, code.origin["table"]) == (URL, "html-table", 1)


def test_html_table_with_colspan_runs_and_named_colours() -> None:
    rows = []
    for row in g.qr_modules(URL):
        cells, i = [], 0
        while i < len(row):
            j = i
            while j < len(row) and row[j] == row[i]:
                j += 1
            colour = "black" if row[i] else "white"
            cells.append(f'<td colspan="{j - i}" style="background: {colour}"></td>')
            i = j
        rows.append("<tr>" + "".join(cells) + "</tr>")
    html = "<table><tr><td>layout</td></tr><tr><td><table>" + "".join(rows) + "</table></td></tr></table>"
    assert payloads(run(Message(html=html))) == [URL]


def test_html_attachment_with_data_uri_table_and_blocks() -> None:
    b64 = base64.b64encode(g.png_bytes(g.qr_image(URL))).decode()
    page = f"<html><body><img src='data:image/png;base64,{b64}'></body></html>".encode()
    part = Part(path="2", content_type="text/html", filename="invoice.html", payload=page, is_attachment=True, disposition="attachment")
    [code] = run(Message(parts=[part])).qr_codes
    assert (code.payload, code.source, code.filename, code.origin["index"]) == (URL, "html-attachment", "invoice.html", 1)
    other = "https://other.example.net/x"
    page2 = (g.html_table(URL, "style") + "<pre>" + g.text_blocks(other) + "</pre>").encode()
    part2 = Part(path="2", content_type="application/octet-stream", filename="scan.htm", payload=page2, is_attachment=True)
    codes = run(Message(parts=[part2])).qr_codes
    assert sorted((c.payload, c.source) for c in codes) == sorted([(URL, "html-table"), (other, "text-blocks")])


def test_ordinary_table_is_not_a_code() -> None:
    html = "<table>" + "".join(f"<tr><td>row {i}</td><td bgcolor='#eee'>x</td></tr>" for i in range(40)) + "</table>"
    assert run(Message(html=html)).qr_codes == []


@pytest.mark.parametrize("style", ["half", "full"])
def test_unicode_blocks_in_text(style: str) -> None:
    text = "请扫码领取补贴:\n\n" + g.text_blocks(URL, style) + "\n\n财务部"
    [code] = run(Message(text=text)).qr_codes
    assert (code.payload, code.source, code.origin["in"]) == (URL, "text-blocks", "text")


def test_unicode_blocks_in_html_pre_and_nbsp() -> None:
    drawing = g.text_blocks(URL, "half")
    html_pre = f"<html><body><p>扫码</p><pre style='line-height:1'>{drawing}</pre></body></html>"
    assert payloads(run(Message(html=html_pre))) == [URL]
    html_nbsp = "<div>" + "<br>".join(line.replace(" ", "&nbsp;") for line in drawing.splitlines()) + "</div>"
    [code] = run(Message(html=html_nbsp)).qr_codes
    assert code.origin["in"] == "html"


@pytest.mark.parametrize("layout", ["1x2", "2x1", "1x4", "2x2"])
def test_tiles_are_stitched_in_layout_order(layout: str) -> None:
    tiles = g.tiles(g.qr_image(URL, 5), layout)
    # Parts arrive in a shuffled MIME order; Image.order is the HTML layout order.
    imgs = [Image(data=g.png_bytes(t), source="cid", part_path=str(10 - i), content_id=f"t{i}@x", order=i) for i, t in enumerate(tiles)]
    msg = run(Message(images=list(reversed(imgs))))
    [code] = msg.qr_codes
    assert (code.payload, code.source, code.origin["layout"]) == (URL, "tiles", layout)
    assert code.origin["tiles"] == [f"t{i}@x" for i in range(len(tiles))]


def test_whole_codes_side_by_side_are_not_tiles() -> None:
    imgs = [Image(data=g.png_bytes(g.qr_image(f"https://x{i}.example.com/")), source="cid", content_id=f"c{i}", order=i) for i in range(4)]
    msg = run(Message(images=imgs))
    assert sorted(q.payload for q in msg.qr_codes) == [f"https://x{i}.example.com/" for i in range(4)]
    assert {q.source for q in msg.qr_codes} == {"cid"}


def test_tile_layout_rules() -> None:
    assert tile_layout([(50, 100), (50, 100)]) == "1x2"
    assert tile_layout([(100, 50), (100, 50)]) == "2x1"
    assert tile_layout([(50, 50)] * 4) == "2x2"
    assert tile_layout([(300, 40), (300, 40)]) == ""  # two banners are not a split code


def test_attached_message_images() -> None:
    inner = Message(subject="Fwd: 补贴", images=[Image(data=g.png_bytes(g.qr_image(URL)), source="cid", part_path="2", content_id="q@x")])
    msg = run(Message(attached_messages=[inner]))
    [code] = msg.qr_codes
    assert (code.payload, code.source, code.origin["eml"]) == (URL, "cid", 1)
    assert inner.qr_codes == []  # the outer message carries the finding


def test_images_per_message_limit() -> None:
    # Different sizes: nothing here looks like the tiles of one split code.
    imgs = [Image(data=g.png_bytes(g.qr_image(f"https://x{i}.example.com/", 3 + i)), source="attachment", part_path=str(i)) for i in range(5)]
    msg = run(Message(images=imgs), max_images=3)
    assert len(msg.qr_codes) == 3
    assert any(d.startswith("qr:too-many-images") for d in msg.defects)


def test_image_padding_cannot_push_a_drawn_code_past_the_limit() -> None:
    junk = [
        Image(data=g.png_bytes(PILImage.new("L", (40 + i, 40), 10 * i)), source="attachment", part_path=str(i + 2))
        for i in range(12)
    ]
    msg = run(Message(html=g.html_table(URL), images=junk), max_images=5)
    assert [(q.payload, q.source) for q in msg.qr_codes] == [(URL, "html-table")]
    assert any(d.startswith("qr:too-many-images") for d in msg.defects)


def test_time_budget_stops_work() -> None:
    # Noise images hold no code and get every retry: far more work than the minimum budget allows.
    imgs = [
        Image(data=g.png_bytes(PILImage.effect_noise((600, 600), 40 + i)), source="attachment", part_path=str(i))
        for i in range(12)
    ]
    msg = run(Message(images=imgs), time_budget=0.0)  # clamped to the minimum budget (50 ms)
    assert any(d.startswith("qr:time-budget") for d in msg.defects)


def test_extracting_twice_records_nothing_twice() -> None:
    msg = run(Message(images=[Image(data=g.png_bytes(g.noisy(g.qr_image(URL, 4), random.Random(3))), source="inline")]))
    run(msg)
    assert payloads(msg) == [URL]
    assert len([u for u in msg.urls if u.source == "qr"]) == 1


def test_disabled_does_nothing() -> None:
    msg = run(Message(images=[Image(data=g.png_bytes(g.qr_image(URL)), source="inline")]), enabled=False)
    assert msg.qr_codes == [] and msg.urls == []


def test_payload_urls() -> None:
    assert payload_urls("https://a.example.com/x?y=1") == ["https://a.example.com/x?y=1"]
    assert payload_urls("https://a.example.com/申请") == ["https://a.example.com/申请"]
    assert payload_urls("扫码 https://a.example.com/申请 领取") == ["https://a.example.com/"]
    assert payload_urls("evil-subsidy.top/claim") == ["http://evil-subsidy.top/claim"]
    assert payload_urls("MEBKM:TITLE:x;URL:http://b.example.net/p;;") == ["http://b.example.net/p"]
    assert payload_urls("WIFI:S:guest;T:WPA;P:secret;;") == []
    assert payload_urls("1234567890128") == []


def test_data_uri_image_bytes_survive_base64() -> None:
    png = g.png_bytes(g.qr_image(URL))
    data = base64.b64decode(base64.b64encode(png))
    assert payloads(run(Message(images=[Image(data=data, source="data-uri", order=3)]))) == [URL]


def test_blank_and_tiny_images_are_skipped_quietly() -> None:
    pixel = io.BytesIO()
    PILImage.new("RGB", (1, 1), (255, 255, 255)).save(pixel, "GIF")
    msg = run(Message(images=[Image(data=pixel.getvalue(), source="inline")]))
    assert msg.qr_codes == [] and msg.defects == []


def test_css_colour_words_split_outside_parentheses() -> None:
    from mailmoat.parse.qr_sources import _css_words, _dark

    assert _css_words("rgb(0, 0, 0)  url(x y) #fff") == ["rgb(0, 0, 0)", "url(x y)", "#fff"]
    assert _dark("rgb(0, 0, 0) !important") is True
    assert _dark("url(a b) no-repeat white") is False
    # 64 KB of words is no colour, and costs one pass (bench/hostile_text.py).
    assert _dark("a " * 32_000) is None
