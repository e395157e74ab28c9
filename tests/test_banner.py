"""Warning banners: above the text of tagged mail from outside (and, when asked, of all of it), in the part's own encoding, never breaking the rest."""

from __future__ import annotations

import base64
import email
import smtplib
from email import policy
from email.message import EmailMessage, Message

import pytest

from mailmoat import metrics
from mailmoat.config import BannerSettings, ConfigError, Settings
from mailmoat.deliver.banner import add_banner, banner_lines
from mailmoat.model import Action, Direction, Envelope, Finding, Verdict
from tests.support.gateway import inprocess_gateway, maildir_copies, wait_for

WARN = ["Caution: this message looks suspicious.", "Do not scan its QR codes."]
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


def parsed(raw: bytes) -> Message:
    return email.message_from_bytes(raw, policy=policy.compat32)


def text_of(part: Message) -> str:
    data = part.get_payload(decode=True)
    assert isinstance(data, bytes)
    return data.decode(part.get_content_charset() or "us-ascii")


def test_plain_text_gets_the_banner_on_top_and_keeps_the_rest() -> None:
    raw = (b"From: a@outside.example\r\nTo: b@victim-corp.com\r\nSubject: hi\r\n\r\n"
           b"Please find the invoice attached.\r\nRegards\r\n")
    out = add_banner(raw, "warning", WARN)
    header, _, body = out.partition(b"\r\n\r\n")
    assert header + b"\r\n\r\n" == raw[: raw.index(b"\r\n\r\n") + 4]  # the header is not touched
    assert body == b"Caution: this message looks suspicious.\r\nDo not scan its QR codes.\r\n\r\nPlease find the invoice attached.\r\nRegards\r\n"


def test_chinese_in_an_ascii_part_switches_it_to_utf8_quoted_printable() -> None:
    raw = b"From: a@outside.example\nSubject: hi\nContent-Type: text/plain; charset=us-ascii; format=flowed\n\nHello\n"
    out = add_banner(raw, "warning", ["【安全提示】此邮件可疑。"])
    m = parsed(out)
    assert m.get_content_charset() == "utf-8" and m.get_param("format") == "flowed"
    assert m["Content-Transfer-Encoding"] == "quoted-printable"
    assert text_of(m) == "【安全提示】此邮件可疑。\n\nHello\n"
    assert out.count(b"Content-Type:") == 1


def alternative_with_an_image() -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "财务部 <hr@outside.example>", "b@victim-corp.com", "工资补贴通知"
    m.set_content("请扫码领取补贴。\n", charset="gb2312", cte="quoted-printable")
    m.add_alternative("<html><head><title>x</title></head><BODY class='m'><p>请扫码领取补贴。</p></BODY></html>",
                      subtype="html", charset="gb2312", cte="base64")
    m.add_attachment(PNG, maintype="image", subtype="png", filename="qr.png")
    return m.as_bytes()


def test_both_views_of_an_alternative_get_it_and_the_attachment_is_untouched() -> None:
    raw = alternative_with_an_image()
    out = add_banner(raw, "warning", ["【安全提示】此邮件可疑。", "a <b> & c"])
    before, after = parsed(raw), parsed(out)
    old = [p for p in before.walk() if not p.is_multipart()]
    new = [p for p in after.walk() if not p.is_multipart()]
    assert [p.get_content_type() for p in new] == ["text/plain", "text/html", "image/png"]
    plain, html, image = new
    assert text_of(plain) == "【安全提示】此邮件可疑。\na <b> & c\n\n请扫码领取补贴。\n"
    assert plain.get_content_charset() == "gb2312" and plain["Content-Transfer-Encoding"] == "quoted-printable"
    body = text_of(html)
    assert html.get_content_charset() == "gb2312" and html["Content-Transfer-Encoding"] == "base64"
    assert body.startswith("<html><head><title>x</title></head><BODY class='m'><div class=\"mailmoat-banner\"")
    assert "a &lt;b&gt; &amp; c" in body and body.endswith("<p>请扫码领取补贴。</p></BODY></html>\n")
    assert image.get_payload(decode=True) == old[2].get_payload(decode=True) == PNG
    assert out.count(b"qr.png") == raw.count(b"qr.png")


def test_signed_mail_and_mail_without_body_text_are_left_as_they_are() -> None:
    signed = (b"From: a@outside.example\nContent-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=b\n\n"
              b"--b\nContent-Type: text/plain\n\nsigned words\n--b\nContent-Type: application/pkcs7-signature\n\nMIIB\n--b--\n")
    assert add_banner(signed, "warning", WARN) == signed
    attachment_only = (b"From: a@outside.example\nContent-Type: multipart/mixed; boundary=b\n\n"
                       b"--b\nContent-Type: application/pdf\nContent-Disposition: attachment; filename=x.pdf\n\n%PDF-1.4\n--b--\n")
    assert add_banner(attachment_only, "warning", WARN) == attachment_only
    text_attachment = b"From: a@outside.example\nContent-Type: text/plain\nContent-Disposition: attachment; filename=a.txt\n\nx\n"
    assert add_banner(text_attachment, "warning", WARN) == text_attachment
    digest = (b"From: a@outside.example\nContent-Type: multipart/digest; boundary=b\n\n"
              b"--b\n\nFrom: c@outside.example\nSubject: inner\n\ninner words\n--b--\n")
    assert add_banner(digest, "warning", WARN) == digest  # a digest's part without a header is a message


@pytest.mark.parametrize("raw", [
    b"",
    b"no header, no blank line",
    b"Subject: x\nContent-Type: text/plain; charset=no-such-charset\n\nwords\n",
    b"Subject: x\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n!!!not base64\n",
    b"Subject: x\nContent-Type: text/plain; charset=us-ascii\n\n8-bit \xe9 in an ascii part\n",
    b"Subject: x\nContent-Type: multipart/mixed; boundary=nowhere\n\nno delimiter at all\n",
    b"Subject: x\nContent-Type: multipart/mixed\n\n--b\n\nno boundary parameter\n--b--\n",
])
def test_what_cannot_be_rewritten_exactly_is_left_alone(raw: bytes) -> None:
    assert add_banner(raw, "warning", WARN) == raw


def settings_with_banner(**kw: object) -> Settings:
    s = Settings()
    s.banner = BannerSettings(enabled=True, **kw)  # type: ignore[arg-type]
    return s


def verdict(action: Action, *findings: Finding) -> Verdict:
    return Verdict(action, sum(f.score for f in findings), list(findings), ["test"])


def test_which_mail_gets_which_banner() -> None:
    outside = Envelope("hr@outside.example", ["b@victim-corp.com"], direction=Direction.INBOUND)
    claim = Finding("DISPLAY_NAME_DEPARTMENT", 6.0, "财务部 from outside", "impersonation", "impersonation")
    qr = Finding("QR_CODE", 2.0, "a QR code", "qr", "qr")
    kind, lines = banner_lines(settings_with_banner(), outside, verdict(Action.TAG, claim, qr)) or ("", [])
    assert kind == "warning" and lines[0] == "Caution: this message looks suspicious."
    assert any("claims a department" in ln for ln in lines) and any("QR code" in ln for ln in lines)
    kind, lines = banner_lines(settings_with_banner(language="zh"), outside, verdict(Action.TAG, claim)) or ("", [])
    assert lines[0] == "【安全提示】此邮件可疑。" and "发件人名称自称本单位的部门或人员，但邮件来自外部。" in lines
    # With a report mailbox, the warning says where to report it; a notice or no report mailbox: no.
    assert not any("phish@victim-corp.com" in ln for ln in lines)
    reporting = settings_with_banner(language="zh")
    reporting.policy.report_addresses = ["phish@victim-corp.com"]
    _, lines = banner_lines(reporting, outside, verdict(Action.TAG, claim)) or ("", [])
    assert lines[-1] == "如认为这是钓鱼邮件，请以附件形式转发至 phish@victim-corp.com。"
    reporting.banner.language, reporting.banner.external = "en", True
    _, lines = banner_lines(reporting, outside, verdict(Action.TAG, qr)) or ("", [])
    assert lines[-1] == "If you think it is phishing, forward it as an attachment to phish@victim-corp.com."
    assert banner_lines(reporting, outside, verdict(Action.DELIVER)) == (
        "external", ["This message comes from outside your organisation. Be careful with its links, QR codes and attachments."])
    assert banner_lines(settings_with_banner(), outside, verdict(Action.DELIVER)) is None
    assert banner_lines(settings_with_banner(external=True), outside, verdict(Action.DELIVER)) == (
        "external", ["This message comes from outside your organisation. Be careful with its links, QR codes and attachments."])
    # Colleagues' mail, the gateway's own digests, and a banner switched off: none.
    colleague = Envelope("a@victim-corp.com", ["b@victim-corp.com"], direction=Direction.INTERNAL)
    assert banner_lines(settings_with_banner(external=True), colleague, verdict(Action.TAG, claim)) is None
    digest = Envelope("", ["b@victim-corp.com"], direction=Direction.INBOUND, listener="digest")
    assert banner_lines(settings_with_banner(external=True), digest, verdict(Action.DELIVER)) is None
    assert banner_lines(Settings(), outside, verdict(Action.TAG, claim)) is None
    with pytest.raises(ConfigError, match=r"banner\.language"):
        BannerSettings(language="fr")


def test_the_gateway_delivers_tagged_mail_with_the_banner(settings: Settings) -> None:
    settings.server.domains = ["victim-corp.com"]
    settings.server.workers = 0
    settings.policy.thresholds.tag = 1.0
    settings.policy.thresholds.quarantine = 100.0
    settings.policy.thresholds.reject = 200.0
    settings.banner = BannerSettings(enabled=True)
    raw = alternative_with_an_image()
    added = metrics.BANNERS.labels(kind="warning", result="added")._value.get()
    with inprocess_gateway(settings) as gw:
        with smtplib.SMTP(gw.host, gw.port, timeout=30) as c:
            c.sendmail("hr@outside.example", ["alice@victim-corp.com"], raw)  # one copy: written in one thread hop
            c.sendmail("hr@outside.example", ["bob@victim-corp.com", "carol@victim-corp.com"], raw)  # several: the async path
        for rcpt in ("alice@victim-corp.com", "bob@victim-corp.com", "carol@victim-corp.com"):
            copies = wait_for(lambda r=rcpt: maildir_copies(settings.mail_dir, r), what=f"the copy for {rcpt}")
            (files,) = copies.values()
            got = parsed(files[0].read_bytes())
            assert str(got["X-Mailmoat-Verdict"]).startswith("action=tag")
            plain = next(p for p in got.walk() if p.get_content_type() == "text/plain")
            assert text_of(plain).startswith("Caution: this message looks suspicious.\n")
            assert text_of(plain).endswith("请扫码领取补贴。\n")
    assert metrics.BANNERS.labels(kind="warning", result="added")._value.get() == added + 2  # once per message written
