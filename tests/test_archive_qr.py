"""QR codes packed in archives: images, SVGs, PDFs and Office files inside zip (and nested) archives."""

from __future__ import annotations

from PIL import Image as PILImage

from mailmoat.analyzers.archive_qr import ArchiveQrAnalyzer
from mailmoat.analyzers.base import AnalysisContext, AnalyzerEnv
from mailmoat.config import QrSettings, Settings
from mailmoat.model import Action, Direction, Envelope, Finding, Message, Verdict
from mailmoat.parse import parse
from mailmoat.store.db import extract_indicators
from tests.support import attachgen as a
from tests.support import qrgen as g

URL = "https://subsidy-claim.example.cn/apply?id=20250611"


async def findings(msg: Message) -> dict[str, Finding]:
    settings = Settings()
    env = Envelope(mail_from="x@sender.example", rcpt_tos=["zhang.wei@victim-corp.com"], direction=Direction.INBOUND)
    out = await ArchiveQrAnalyzer(AnalyzerEnv(settings=settings)).analyze(AnalysisContext(message=msg, envelope=env, settings=settings))
    return {f.symbol: f for f in out}


async def test_png_pdf_svg_and_docx_in_a_zip() -> None:
    zipped = a.zip_bytes({
        "scan.png": g.png_bytes(g.qr_image(URL + "&k=png")),
        "form.pdf": g.pdf_with_qr(URL + "&k=pdf"),
        "code.svg": g.svg_path(URL + "&k=svg"),
        "notice.docx": g.docx_with_qr(URL + "&k=docx"),
        "readme.txt": b"open the files",
    })
    msg = parse(a.mime([("补贴申领.zip", zipped)]))
    assert msg.qr_codes == []  # the parser does not open archives
    found = await findings(msg)
    f = found["QR_IN_ARCHIVE"]
    assert sorted(c["payload"] for c in f.data["codes"]) == sorted(URL + k for k in ("&k=png", "&k=pdf", "&k=svg", "&k=docx"))
    assert "补贴申领.zip > " in f.evidence and f.score == 4.0
    assert all(c["urls"] == [c["payload"]] for c in f.data["codes"])
    # What recall searches: the payloads and their URLs become indicators of the message.
    verdict = Verdict(Action.QUARANTINE, 10.0, [f], [])
    kinds = extract_indicators(Envelope(mail_from="x@sender.example", rcpt_tos=["r@victim-corp.com"]), msg, verdict)
    assert ("qr", URL + "&k=pdf") in kinds and ("url_domain", "example.cn") in kinds
    assert ("url_host", "subsidy-claim.example.cn") in kinds  # a recall by the host finds it too


def _photo() -> bytes:
    """A picture without any code: a smooth gradient."""
    img = PILImage.new("L", (120, 90))
    img.putdata([(x * 2 + y) % 256 for y in range(90) for x in range(120)])
    return g.png_bytes(img)


async def test_nested_archive_and_no_code() -> None:
    inner = a.zip_bytes({"pay/qr.png": g.png_bytes(g.qr_image(URL))})
    msg = parse(a.mime([("docs.zip", a.zip_bytes({"inner.zip": inner, "photo.png": _photo()}))]))
    found = await findings(msg)
    [code] = found["QR_IN_ARCHIVE"].data["codes"]
    assert code["payload"] == URL and code["location"] == "docs.zip > inner.zip > pay/qr.png"
    plain = parse(a.mime([("photos.zip", a.zip_bytes({"a.png": _photo(), "b.txt": b"hello"}))]))
    assert await findings(plain) == {}
    # An image attached directly (not in an archive) is the parser's business, not this analyzer's.
    direct = parse(a.mime([("scan.png", g.png_bytes(g.qr_image(URL)))]), qr=QrSettings())
    assert await findings(direct) == {} and [c.payload for c in direct.qr_codes] == [URL]
