"""QR codes drawn as SVG: attached, cid- or data:-referenced, or <svg> in the HTML; rendered safely."""

from __future__ import annotations

import base64
from email.message import EmailMessage
from pathlib import Path

from mailmoat.analyzers.base import AnalysisContext, AnalyzerEnv
from mailmoat.analyzers.qr import QrAnalyzer
from mailmoat.config import QrSettings, Settings
from mailmoat.model import Direction, Envelope, Message
from mailmoat.parse import parse
from mailmoat.parse.qr_svg import looks_like_svg, render_size, sanitise
from tests.support import qrgen as g
from tests.support import qrmail as q

URL = q.SUBSIDY_URL


def path_svg(payload: str = URL) -> bytes:
    return g.svg_path(payload)


def rect_svg(payload: str = URL, declaration: bool = False) -> str:
    return g.svg_rects(payload, declaration=declaration)


def parsed(raw: bytes) -> Message:
    return parse(raw, qr=QrSettings())


async def symbols(message: Message) -> dict[str, str]:
    settings = Settings()
    env = Envelope(mail_from="x@sender.example", rcpt_tos=["zhang.wei@victim-corp.com"], direction=Direction.INBOUND)
    findings = await QrAnalyzer(AnalyzerEnv(settings=settings)).analyze(
        AnalysisContext(message=message, envelope=env, settings=settings)
    )
    return {f.symbol: f.evidence for f in findings}


async def test_svg_attachment_path_drawing() -> None:
    msg = parsed(q.with_attachment(path_svg(), "补贴申领.svg", "image", "svg+xml"))
    [code] = msg.qr_codes
    assert code.payload == URL and code.filename == "补贴申领.svg" and code.origin["format"] == "svg"
    assert URL in [u.url for u in msg.urls if u.source == "qr"]
    found = await symbols(msg)
    assert "QR_SVG" in found and "SVG image" in found["QR_SVG"]


async def test_svg_behind_cid_declared_octet_stream() -> None:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "财务部 <finance@corp.example>", "a@victim-corp.com", "工资补贴通知"
    m.set_content("请扫码")
    m.add_alternative('<p>请扫码申领</p><img src="cid:qr@x">', subtype="html")
    m.add_attachment(rect_svg(declaration=True).encode(), maintype="application", subtype="octet-stream", filename="a.dat", cid="<qr@x>")
    msg = parsed(m.as_bytes())
    [code] = msg.qr_codes
    assert (code.payload, code.source, code.content_id) == (URL, "cid", "qr@x")
    found = await symbols(msg)
    assert {"QR_SVG", "QR_IN_CID_ATTACHMENT"} <= set(found)


async def test_svg_data_uri_and_inline_svg_element_in_html() -> None:
    data_uri = "data:image/svg+xml;base64," + base64.b64encode(path_svg(URL + "&a=1")).decode()
    html = f'<p>扫码</p><img src="{data_uri}"><div>{rect_svg(URL + "&b=2")}</div>'
    msg = parsed(q.html_only(html))
    by_source = {c.source: c.payload for c in msg.qr_codes}
    assert by_source == {"data-uri": URL + "&a=1", "html-svg": URL + "&b=2"}
    found = await symbols(msg)
    assert "<svg> drawing 1 in the HTML body" in found["QR_SVG"]


def test_svg_inside_html_attachment() -> None:
    page = f"<html><body><h1>Payroll</h1>{rect_svg()}</body></html>".encode()
    msg = parsed(q.with_attachment(page, "payroll.html", "text", "html"))
    assert [(c.payload, c.source, c.origin.get("in")) for c in msg.qr_codes] == [(URL, "html-svg", "html-attachment")]


def test_external_references_are_removed_before_rendering(tmp_path: Path) -> None:
    # A QR bitmap on disk, referenced by the SVG: rendering must not read it.
    png = tmp_path / "qr.png"
    png.write_bytes(g.png_bytes(g.qr_image(URL)))
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="300" height="300">'
        f'<image x="0" y="0" width="300" height="300" xlink:href="{png}"/>'
        f'<image x="0" y="0" width="300" height="300" href="file://{png}"></image>'
        f'<image x="0" y="0" width="300" height="300" href="{png}">'
        f'<style>@import url("http://attacker.example/x.css"); rect {{ fill: url(http://x.example/p) }}</style></svg>'
    )
    cleaned = sanitise(svg)
    assert str(png) not in cleaned and "attacker.example" not in cleaned and "x.example" not in cleaned
    msg = parsed(q.with_attachment(svg.encode(), "x.svg", "image", "svg+xml"))
    assert msg.qr_codes == []
    # In-document references and data: images stay.
    keep = '<svg><use href="#a"/><image href="data:image/png;base64,AAAA"/></svg>'
    assert sanitise(keep) == keep


def test_banner_damaged_and_huge_svgs_are_safe() -> None:
    banner = b'<svg xmlns="http://www.w3.org/2000/svg" width="600" height="20"><rect width="600" height="20"/></svg>'
    assert render_size(banner.decode(), 10_000_000) == (480, 16)
    msg = parsed(q.with_attachment(banner, "line.svg", "image", "svg+xml"))
    assert msg.qr_codes == [] and not [d for d in msg.defects if "line.svg" in d]
    damaged = parsed(q.with_attachment(b"<svg><rect width=", "bad.svg", "image", "svg+xml"))
    assert damaged.qr_codes == [] and [d for d in damaged.defects if "bad.svg" in d and "render" in d]
    # A tall, thin viewBox cannot blow the render up: the longer side is capped, the aspect kept.
    assert render_size('<svg viewBox="0 0 1 100000">', 10_000_000) == (1, 480)
    assert looks_like_svg(b'<?xml version="1.0"?>\n<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "x">\n<svg>')
    assert not looks_like_svg(b"<html><svg></svg></html>")


def test_icon_sized_svg_is_not_rendered(monkeypatch: object) -> None:
    import mailmoat.parse.qr_svg as qs

    calls: list[int] = []
    real = qs.resvg_py.svg_to_bytes

    def counting(**kw: object) -> object:
        calls.append(1)
        return real(**kw)

    monkeypatch.setattr(qs.resvg_py, "svg_to_bytes", counting)  # type: ignore[attr-defined]
    icon = g.svg_rects(URL).replace('width="', 'height="24" width="24" data-w="', 1)
    msg = parsed(q.html_only(f"<p>menu</p>{icon}"))
    assert msg.qr_codes == [] and calls == [] and not msg.defects
    parsed(q.html_only(f"<p>scan</p>{g.svg_rects(URL)}"))
    assert calls == [1]


def test_svgs_that_would_crash_the_renderer_are_refused() -> None:
    """resvg recurses: nesting 400 deep kills the process (a segfault, not an exception). Such
    SVGs are refused before rendering; the message is parsed with a defect, the process lives."""
    deep = '<svg xmlns="http://www.w3.org/2000/svg" width="300" height="300">' + "<g>" * 3000 + "<rect width='9' height='9'/>" + "</g>" * 1000 + "</svg>"
    uses = "".join(f'<g id="u{i}"><use href="#u{i - 1}"/></g>' for i in range(1, 60))
    chained = f'<svg xmlns="http://www.w3.org/2000/svg" width="300" height="300"><rect id="u0" width="9" height="9"/>{uses}</svg>'
    styled = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="300" height="300"><defs>'
        + "".join(f'<pattern id="p{i}" width="4" height="4"><rect class="c{i}" width="4" height="4"/></pattern>' for i in range(30))
        + "</defs><style>"
        + "".join(f".c{i} {{ fill: url(#p{i - 1}) }}" for i in range(1, 30))
        + '</style><rect class="c29" width="300" height="300"/></svg>'
    )
    entities = '<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaa">]><svg xmlns="http://www.w3.org/2000/svg">&a;</svg>'
    for name, svg in (("deep", deep), ("chained", chained), ("styled", styled), ("entities", entities)):
        msg = parsed(q.with_attachment(svg.encode(), f"{name}.svg", "image", "svg+xml"))
        assert msg.qr_codes == [], name
        assert [d for d in msg.defects if f"{name}.svg" in d and "render" in d], (name, msg.defects)
    # Drawn in the HTML body, deeper than Python's own recursion limit: a defect, no exception.
    msg = parsed(q.html_only("<p>x</p>" + deep.replace("<svg ", "<svg id='d' ", 1)))
    assert msg.qr_codes == [] and [d for d in msg.defects if "html-svg" in d and "nested deeper" in d]
    # The same shape within the limits still renders (and decodes).
    fine = g.svg_rects(URL).replace("<rect", "<g><g><rect", 1).replace("/>", "/></g></g>", 1)
    assert [c.payload for c in parsed(q.with_attachment(fine.encode(), "ok.svg", "image", "svg+xml")).qr_codes] == [URL]
