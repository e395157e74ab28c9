"""End to end through the Scanner: raw MIME in, attachment engines, policy verdict out."""

from __future__ import annotations

import pytest

from mailmoat.config import Settings
from mailmoat.model import Action, Envelope
from mailmoat.scanner import Scanner
from tests.support import attachgen as g


def _envelope() -> Envelope:
    return Envelope("billing@example.org", ["alice@example.com"])


@pytest.fixture
def scanner(settings: Settings) -> Scanner:
    settings.dns.nameservers = []
    return Scanner(settings)


@pytest.mark.parametrize(
    ("name", "make", "symbol"),
    [
        ("invoice.docm", g.docm, "OFFICE_MACRO_AUTOEXEC"),
        ("Invoice.pdf.exe", lambda: b"MZ" + b"\0" * 300, "ATTACH_BLOCKED_TYPE"),
        ("Invoice.html", lambda: g.html_smuggling(g.iso_bytes({"Invoice.lnk": g.lnk_bytes()})), "HTML_ATTACH_SMUGGLING"),
        ("statement.pdf", g.pdf_openaction_js, "PDF_AUTO_ACTION"),
        ("scan.zip", lambda: g.zip_bytes({"inner.zip": g.zip_bytes({"report.xlsm": g.docm(kind="excel")})}), "OFFICE_MACRO_AUTOEXEC"),
    ],
)
async def test_threat_attachments_are_quarantined(scanner: Scanner, name: str, make: object, symbol: str) -> None:
    raw = g.mime([(name, make())])  # type: ignore[operator]
    result = await scanner.scan(raw, _envelope())
    symbols = {f.symbol for f in result.verdict.findings}
    assert symbol in symbols, result.verdict.reasons
    assert result.verdict.action.severity >= Action.QUARANTINE.severity, result.verdict.reasons
    assert "ANALYZER_FAILED" not in symbols


async def test_password_zip_with_password_in_body(scanner: Scanner) -> None:
    raw = g.mime([("invoice.zip", g.aes_zip({"invoice.js": b"WScript.Shell"}, "7788"))], text="解压密码：7788")
    result = await scanner.scan(raw, _envelope())
    symbols = {f.symbol for f in result.verdict.findings}
    assert {"ARCHIVE_PASSWORD_IN_BODY", "ATTACH_BLOCKED_TYPE"} <= symbols
    assert result.verdict.action.severity >= Action.QUARANTINE.severity


async def test_pdf_link_reaches_url_list(scanner: Scanner) -> None:
    raw = g.mime([("voicemail.pdf", g.pdf_link("https://login.example-secure.test/verify"))])
    result = await scanner.scan(raw, _envelope())
    assert [u.url for u in result.message.urls if u.source == "pdf"] == ["https://login.example-secure.test/verify"]


async def test_ordinary_attachment_is_delivered_with_hashes(scanner: Scanner) -> None:
    raw = g.mime([("minutes.txt", b"Minutes of the meeting. " * 40)], text="Minutes attached, see you Monday.")
    result = await scanner.scan(raw, _envelope())
    hashes = [f for f in result.verdict.findings if f.symbol == "ATTACHMENT_HASHES"]
    assert hashes and hashes[0].data["files"][0]["name"] == "minutes.txt"
    assert result.verdict.action is Action.DELIVER, result.verdict.reasons
