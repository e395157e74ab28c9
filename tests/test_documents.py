"""Attached documents read as their recipient reads them: PDF and Word text, PDFs locked with the body's password."""

from __future__ import annotations

from email.message import EmailMessage

from mailmoat.analyzers.lexicon import LexiconAnalyzer
from mailmoat.analyzers.office import OfficeAnalyzer
from mailmoat.analyzers.pdf import PdfAnalyzer
from mailmoat.classify.tokens import message_tokens
from mailmoat.config import QrSettings, Settings
from mailmoat.model import Envelope
from mailmoat.parse import parse
from mailmoat.scanner import Scanner
from tests.support import attachgen as g
from tests.support.qrgen import pdf_with_qr

SUBSIDY = ["关于发放2026年度工资补贴的通知", "请于11月30日前扫码或点击下方链接完成补贴申领，逾期视为自动放弃。"]
LURE_LINK = "https://subsidy-claim.example-pay.test/apply"


async def test_a_lure_written_in_the_attached_pdf_is_read(settings: Settings) -> None:
    raw = g.mime([("通知.pdf", g.pdf_text(SUBSIDY, link=LURE_LINK))], text="各位同事：详见附件，请及时处理。", subject="通知")
    msg = parse(raw)
    [doc] = msg.documents
    assert doc.kind == "pdf" and doc.filename == "通知.pdf" and not doc.locked
    assert "工资补贴" in doc.text and "补贴申领" in doc.text
    assert [u.url for u in msg.urls if u.source == "pdf"] == [LURE_LINK]
    found = g.by_symbol(await g.run_analyzers(msg, settings, LexiconAnalyzer))
    assert "工资补贴" in found["LEXICON_SUBSIDY_FRAUD"].data["terms"]
    assert found["LEXICON_SUBSIDY_FRAUD"].evidence.endswith("with the text of 通知.pdf")
    assert "SUBSIDY_FRAUD_WITH_LINK" in found
    # The same notice with no document says nothing of subsidies.
    bare = parse(g.mime([], text="各位同事：详见附件，请及时处理。", subject="通知"))
    assert bare.documents == [] and not await g.run_analyzers(bare, settings, LexiconAnalyzer)


async def test_a_pdf_locked_with_the_password_in_the_body_is_opened(settings: Settings) -> None:
    pdf = g.pdf_text(["Seu saldo de pontos expira hoje.", "Resgate agora"], link=LURE_LINK, password="8341")
    msg = parse(g.mime([("fatura.pdf", pdf)], text="Veja como resgatar no arquivo em anexo.\nSenha de acesso: 8341\n"))
    [doc] = msg.documents
    assert doc.locked and doc.password == "8341" and "Resgate agora" in doc.text
    # The link is encrypted in the file: the structure scan cannot read it, pdfium with the password can.
    assert [u.url for u in msg.urls if u.source == "pdf"] == [LURE_LINK]
    found = g.by_symbol(await g.run_analyzers(msg, settings, PdfAnalyzer))
    assert "'8341'" in found["PDF_PASSWORD_IN_BODY"].evidence
    # A small PDF that is essentially a link, whose link only the password shows.
    assert set(found) == {"PDF_PASSWORD_IN_BODY", "PDF_LINK_LURE"} and LURE_LINK in found["PDF_LINK_LURE"].evidence


def test_the_ciphertext_of_an_encrypted_pdf_is_no_link() -> None:
    """The structure scan reads an encrypted PDF's /URI strings as they are stored, encrypted; a few
    random bytes of them can look like a scheme ("h:"). Only pdfium, which decrypts, gives links."""
    pdf = (
        b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
        b"2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n"
        b"3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Annots [4 0 R] >> endobj\n"
        b"4 0 obj << /Type /Annot /Subtype /Link /Rect [0 0 100 100] /A << /S /URI /URI (h:\xb9H\xfci\xb2\xa9\x9f) >> >> endobj\n"
        b"5 0 obj << /Filter /Standard /V 1 /R 2 /O (0123456789abcdef0123456789abcdef) /U (0123456789abcdef0123456789abcdef) /P -4 >> endobj\n"
        b"trailer << /Root 1 0 R /Encrypt 5 0 R >>\n%%EOF\n"
    )
    msg = parse(g.mime([("statement.pdf", pdf)], text="See the attached statement."))
    assert [d.filename for d in msg.documents] == ["statement.pdf"]
    assert [u.url for u in msg.urls if u.source == "pdf"] == []


def test_the_qr_code_in_a_pdf_locked_with_the_bodys_password_is_decoded() -> None:
    pdf = pdf_with_qr(LURE_LINK, text="Subsidy claim form", password="2026")
    msg = parse(g.mime([("form.pdf", pdf)], text="附件为补贴申领表，打开密码：2026"), qr=QrSettings())
    assert [q.payload for q in msg.qr_codes] == [LURE_LINK]
    assert msg.qr_codes[0].filename == "form.pdf"
    # Without the password in the mail the code stays locked away, and the parser says why.
    locked = parse(g.mime([("form.pdf", pdf)], text="附件为补贴申领表"), qr=QrSettings())
    assert locked.qr_codes == [] and any(d.startswith("qr:pdf-unreadable") for d in locked.defects)


def test_the_password_written_only_in_the_part_that_says_less() -> None:
    """A kit may give the password only in the HTML part while the plain part is longer (or the
    other way round): the locked PDF and a locked archive are opened with it all the same."""
    from mailmoat.attach.scan import expand_message
    from mailmoat.config import AttachmentSettings

    pdf = g.pdf_text(["Seu saldo de pontos expira hoje.", "Resgate agora"], link=LURE_LINK, password="8341")
    locked_zip = g.aes_zip({"aviso.txt": b"Resgate agora"}, "8341")
    msg = EmailMessage()
    msg["From"] = "Pontos <pontos@example.org>"
    msg["To"] = "alice@example.com"
    msg["Subject"] = "Seus pontos"
    msg.set_content("Prezado cliente, seus pontos vencem hoje. " * 20)
    msg.add_alternative("<p>Prezado cliente, veja o anexo. Senha de acesso: 8341</p>", subtype="html")
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename="fatura.pdf")
    msg.add_attachment(locked_zip, maintype="application", subtype="zip", filename="aviso.zip")
    parsed = parse(msg.as_bytes())
    assert not parsed.reads_html and "8341" not in parsed.body_text
    [doc] = [d for d in parsed.documents if d.filename == "fatura.pdf"]
    assert doc.locked and doc.password == "8341" and "Resgate agora" in doc.text
    events = expand_message(parsed, AttachmentSettings()).events
    assert any(e.kind == "decrypted" and e.data.get("password") == "8341" for e in events)


def test_a_pdf_behind_junk_bytes_is_still_a_pdf() -> None:
    """PDF readers look for the header in the first kilobyte, so a kit prepends junk to make the
    file read as something else to filters (a 2023 phishing PDF in the corpus does): its code and
    its words are read all the same."""
    pdf = b"\n\x89\xedz{C\x8a\xcah\xb2+b" * 20 + pdf_with_qr(LURE_LINK, text="Subsidy claim form")
    msg = parse(g.mime([("form.pdf", pdf)], text="see the attached form"), qr=QrSettings())
    assert [p.true_type for p in msg.attachments] == ["application/pdf"]
    assert [q.payload for q in msg.qr_codes] == [LURE_LINK]
    [doc] = msg.documents
    assert doc.kind == "pdf" and "Subsidy claim form" in doc.text


async def test_a_pdf_whose_password_the_mail_does_not_give(settings: Settings) -> None:
    pdf = g.pdf_text(["Payslip November 2026"], password="19800101")
    text = "附件为您2026年11月的工资条，文件已加密，打开密码为您身份证号码后六位。"
    msg = parse(g.mime([("payslip.pdf", pdf)], text=text))
    [doc] = msg.documents
    assert doc.locked and not doc.password and not doc.text
    found = g.by_symbol(await g.run_analyzers(msg, settings, PdfAnalyzer))
    assert set(found) == {"PDF_LOCKED"} and found["PDF_LOCKED"].score == 1.0


async def test_callback_number_given_only_in_a_word_document(settings: Settings) -> None:
    docx = g.docx_text([
        "Norton 360 Premium - Renewal Confirmation",
        "Your account has been charged $299.00 for the automatic renewal.",
        "If you did not authorize this renewal, call our billing department at +1 (808) 555-0143.",
    ])
    msg = parse(g.mime([("Invoice_NP88Z.docx", docx)], text="Thank you for your order.", subject="Order confirmation"))
    [doc] = msg.documents
    assert doc.kind == "office" and "call our billing department" in doc.text
    found = g.by_symbol(await g.run_analyzers(msg, settings, LexiconAnalyzer))
    assert "+1 (808) 555-0143" in found["CALLBACK_LURE_WITH_PHONE"].evidence
    # The classifier does not: a document of borrowed prose would talk it out of a verdict.
    assert "billing" not in message_tokens(msg)


# RTF as Word writes it for a Chinese system: GBK bytes under \ansicpg936, \uN characters with
# one fallback byte pair each, a font table and a field instruction that no reader sees.
RTF_ZH = (
    rb"{\rtf1\ansi\ansicpg936\deff0{\fonttbl{\f0\fnil\fcharset134 \'cb\'ce\'cc\'e5;}}"
    rb"{\*\generator Msftedit 5.41;}\pard\f0 \'b9\'d8\'d3\'da\'b7\'a2\'b7\'c5\'b9\'a4\'d7\'ca"
    rb"\'b2\'b9\'cc\'f9\'b5\'c4\'cd\'a8\'d6\'aa\par "
    rb"\uc2 \u35831\'c7\'eb\u25195\'c9\'a8\u30721\'c2\'eb\u30003\'c9\'ea\u39046\'c1\'ec\par "
    rb'{\field{\*\fldinst HYPERLINK "https://subsidy-claim.example-pay.test/apply"}{\fldrslt Click \{here\}}}\par}'
)


def test_rtf_and_opendocument_text() -> None:
    from mailmoat.parse.doctext import office_text, rtf_text

    assert rtf_text(RTF_ZH, 1000) == "关于发放工资补贴的通知\n请扫码申领\nClick {here}\n"
    assert rtf_text(RTF_ZH, 5) == "关于发放工"
    assert rtf_text(b"not rtf", 100) == "" and rtf_text(b"{\\rtf1 " + b"{" * 5000, 100) == ""
    # A character beyond the BMP is two \uN surrogates; a stray one cannot be written as UTF-8.
    assert rtf_text(rb"{\rtf1 \u-10179?\u-8704?ok\u-10240?}", 100) == "\U0001f600ok\ufffd"
    odt = g.zip_bytes({
        "mimetype": b"application/vnd.oasis.opendocument.text",
        "content.xml": (
            "<office:document-content><office:body><office:text><text:h>通知</text:h>"
            "<text:p>Call<text:s/>our billing department<text:line-break/>at +1 808 555 0143 &amp; ask</text:p>"
            "</office:text></office:body></office:document-content>"
        ).encode(),
    })
    assert office_text(odt, 1000) == "通知\nCall our billing department\nat +1 808 555 0143 & ask\n"
    msg = parse(g.mime([("notice.rtf", RTF_ZH), ("bill.odt", odt)]))
    assert [(d.filename, d.kind) for d in msg.documents] == [("notice.rtf", "rtf"), ("bill.odt", "office")]
    assert msg.documents[0].text == rtf_text(RTF_ZH, 20_000)


def test_text_and_html_attachments_and_attached_messages_are_documents() -> None:
    inner = EmailMessage()
    inner["From"] = "HR <hr@example.org>"
    inner["Subject"] = "Salary adjustment"
    inner.set_content("See the attached letter.")
    inner.add_attachment(g.pdf_text(["Salary adjustment letter"]), maintype="application", subtype="pdf", filename="letter.pdf")
    outer = EmailMessage()
    outer["From"] = "a@example.org"
    outer["Subject"] = "Fw: Salary adjustment"
    outer.set_content("Forwarding this.")
    outer.add_attachment("<html><body><p style='display:none'>hidden</p><p>Sign in to view</p></body></html>",
                         subtype="html", filename="view.html")
    outer.add_attachment("call me", filename="notes.txt")
    outer.add_attachment(inner)
    msg = parse(outer.as_bytes())
    docs = {d.filename: d for d in msg.documents}
    assert docs["view.html"].kind == "html" and docs["view.html"].text.strip() == "Sign in to view"
    assert docs["notes.txt"].kind == "text" and docs["notes.txt"].text.strip() == "call me"
    assert docs["letter.pdf"].kind == "pdf" and "Salary adjustment letter" in docs["letter.pdf"].text
    assert docs["letter.pdf"].part_path.startswith("4.")
    [forwarded] = [d for d in msg.documents if d.kind == "message"]
    assert forwarded.part_path == "4" and forwarded.label == "the attached message"
    assert forwarded.text == "HR\nSalary adjustment\nSee the attached letter.\n"
    assert "Sign in to view" in msg.document_text


async def test_a_lure_forwarded_as_an_attached_message_is_read(settings: Settings) -> None:
    inner = EmailMessage()
    inner["From"] = "财务部 <finance@example-pay.test>"
    inner["Subject"] = SUBSIDY[0]
    inner.set_content(SUBSIDY[1] + "\n" + LURE_LINK)
    outer = EmailMessage()
    outer["From"] = "a@example.org"
    outer["Subject"] = "Fw: 通知"
    outer.set_content("请看附件。")
    outer.add_attachment(inner)
    found = g.by_symbol(await g.run_analyzers(parse(outer.as_bytes()), settings, LexiconAnalyzer))
    assert found["LEXICON_SUBSIDY_FRAUD"].evidence.endswith("with the text of the attached message")
    assert "SUBSIDY_FRAUD_WITH_LINK" in found


def test_damaged_or_hostile_documents_never_break_parsing() -> None:
    bad_pdf = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF"
    huge_xml = g.zip_bytes({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w:t>" + b"A" * (9 * 1024 * 1024) + b"</w:t>"})
    msg = parse(g.mime([("a.pdf", bad_pdf), ("b.docx", huge_xml), ("c.pdf", b"%PDF-1.4 garbage")]))
    assert len(msg.documents) == 3
    assert all(len(d.text) <= 20_000 for d in msg.documents)
    assert any(d.startswith("document:pdf-unreadable") for d in msg.defects)


async def test_one_damaged_member_costs_neither_the_text_nor_the_macro_scan(settings: Settings) -> None:
    words = g.with_damaged_member(g.docx_text(["Your account has been charged"]), "word/header1.xml")
    macro = g.with_damaged_member(g.docm(), "word/damaged.xml")
    msg = parse(g.mime([("a.docx", words), ("b.docm", macro), ("c.pdf", g.pdf_text(["tax refund"]))]))
    assert [d.text.strip() for d in msg.documents] == ["Your account has been charged", "Enable content to view this invoice", "tax refund"]
    found = g.by_symbol(await g.run_analyzers(msg, settings, OfficeAnalyzer))
    assert "OFFICE_MACRO_AUTOEXEC" in found


async def test_documents_packed_in_an_archive_are_read(settings: Settings) -> None:
    invoice = g.pdf_text([
        "McAfee Total Protection - order confirmation",
        "Your account has been charged $399.99 for the automatic renewal.",
        "If you did not authorize this renewal, call our billing department at +1 (808) 555-0143.",
    ], link="https://billing-support.example-help.test/cancel")
    notice = g.docx_text(["关于发放2026年度工资补贴的通知", "请于11月30日前完成补贴申领，逾期视为自动放弃。"])
    zipped = g.zip_bytes({"Invoice_8841.pdf": invoice, "readme.txt": b"see the invoice"})
    locked = g.aes_zip({"补贴通知.docx": notice}, "HX2026")
    msg = parse(g.mime([("Invoice_8841.zip", zipped), ("通知.zip", locked)], text="Please see the attached invoice. 解压密码：HX2026"))
    names = {d.filename: d for d in msg.documents}
    assert set(names) == {"Invoice_8841.zip > Invoice_8841.pdf", "通知.zip > 补贴通知.docx"}
    assert names["Invoice_8841.zip > Invoice_8841.pdf"].part_path == "2" and "call our billing" in names["Invoice_8841.zip > Invoice_8841.pdf"].text
    assert [u.url for u in msg.urls if u.source == "pdf"] == ["https://billing-support.example-help.test/cancel"]
    found = g.by_symbol(await g.run_analyzers(msg, settings, LexiconAnalyzer))
    assert found["LEXICON_CALLBACK"].evidence.endswith("with the text of Invoice_8841.zip > Invoice_8841.pdf")
    assert "with the text of 通知.zip > 补贴通知.docx" in found["LEXICON_SUBSIDY_FRAUD"].evidence
    # A bomb inside costs a defect, not the message.
    bomb = parse(g.mime([("a.zip", g.zip_bomb(200 * 1024 * 1024))]))
    assert bomb.documents == []


async def test_the_scanner_reads_the_locked_pdf(settings: Settings, tmp_path: object) -> None:
    settings.data_dir = str(tmp_path)
    pdf = g.pdf_text(SUBSIDY, link=LURE_LINK, password="2026")
    raw = g.mime([("补贴通知.pdf", pdf)], text="附件为补贴通知，打开密码：2026", subject="工资补贴通知")
    result = await Scanner(settings).scan(raw, Envelope("billing@example.org", ["alice@example.com"]))
    symbols = {f.symbol for f in result.verdict.findings}
    assert {"PDF_PASSWORD_IN_BODY", "LEXICON_SUBSIDY_FRAUD", "SUBSIDY_FRAUD_WITH_LINK"} <= symbols
