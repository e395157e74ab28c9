"""Header/structure analyzer: parse defects by kind, missing headers, malformed message identifiers,
several From, crowded To/Cc."""

from __future__ import annotations

from mailmoat.analyzers.base import AnalysisContext, AnalyzerEnv
from mailmoat.analyzers.headers import HeadersAnalyzer
from mailmoat.config import Settings
from mailmoat.model import Address, Direction, Envelope, Message
from mailmoat.parse import parse


async def run(settings: Settings, m: Message) -> dict[str, str]:
    a = HeadersAnalyzer(AnalyzerEnv(settings=settings))
    ctx = AnalysisContext(
        message=m, envelope=Envelope(mail_from="", rcpt_tos=["u@example.org"]), settings=settings
    )
    return {f.symbol: f.evidence for f in await a.analyze(ctx)}


async def test_complete_message_is_quiet(settings: Settings) -> None:
    raw = (
        b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\nDate: Mon, 2 Nov 2026 09:00:00 +0000\r\n"
        b"Message-ID: <1@example.org>\r\n\r\nhello\r\n"
    )
    assert await run(settings, parse(raw)) == {}


async def test_missing_headers_and_broken_multipart(settings: Settings) -> None:
    raw = (
        b'Subject: no sender\r\nContent-Type: multipart/mixed; boundary="X"\r\n\r\n'
        b"--Y\r\nContent-Type: text/plain\r\n\r\nnot the declared boundary\r\n"
    )
    found = await run(settings, parse(raw))
    assert {"MISSING_FROM", "MISSING_DATE", "MISSING_MESSAGE_ID", "MIME_DEFECT"} <= set(found)
    assert "mime:" in found["MIME_DEFECT"]
    assert "header:missing" not in found["MIME_DEFECT"]  # reported by their own symbols, not twice


async def test_a_mended_or_unterminated_encoded_word_is_still_a_defect(settings: Settings) -> None:
    """Joining a Subject split mid-word makes the message readable, but no mail software writes it."""
    raw = (
        b"From: a@example.org\r\nSubject: =?utf-8?Q?Caf=C3=A9\r\n_cr=C3=A8me?=\r\nDate: Mon, 2 Nov 2026 09:00:00 +0000\r\n"
        b"Message-ID: <1@example.org>\r\n\r\nhello\r\n"
    )
    m = parse(raw)
    assert m.subject == "Café crème"
    assert "header:split-encoded-word" in (await run(settings, m))["MIME_DEFECT"]
    m = parse(raw.replace(b"\r\n_cr=C3=A8me?=", b""))
    assert m.subject == "Café"
    assert "header:unterminated-encoded-word" in (await run(settings, m))["MIME_DEFECT"]


async def test_a_header_block_split_by_a_blank_line(settings: Settings) -> None:
    raw = (
        b"From: a@example.cn\r\nMessage-ID: <1@example.cn>\r\nSubject: =?utf-8?B?5pyN5Yqh?=\r\n\r\n"
        b" =?utf-8?B?5pyN5Yqh?=\r\nDate: Wed, 13 Jul 2005 19:47:14 +0800\r\n\r\nhello\r\n"
    )
    found = await run(settings, parse(raw))
    assert set(found) == {"HEADERS_SPLIT_BY_BLANK_LINE"}, found  # the Date was read: no MISSING_DATE
    assert "1 header(s) after 1 blank line(s)" in found["HEADERS_SPLIT_BY_BLANK_LINE"]


async def test_limits_incomplete_multiple_from_and_many_recipients(settings: Settings) -> None:
    m = Message(
        headers=[("From", "a@example.org"), ("From", "b@example.org"), ("Date", "x"), ("Message-ID", "<y@example.org>")],
        to=[Address("", f"u{i}@example.org") for i in range(15)],
        cc=[Address("", f"c{i}@example.org") for i in range(5)],
        defects=["limit:parts 500", "enrich:qr:ValueError: bad", "charset:mislabelled gb2312->gb18030"],
    )
    found = await run(settings, m)
    assert set(found) == {"MIME_LIMIT_EXCEEDED", "PARSE_INCOMPLETE", "MULTIPLE_FROM", "MANY_RECIPIENTS_TO"}
    assert found["MIME_LIMIT_EXCEEDED"] == "1 defect(s): limit:parts"
    assert found["MANY_RECIPIENTS_TO"] == "20 addresses in To/Cc"


def _with_ids(message_id: str, in_reply_to: str = "", references: str = "") -> bytes:
    extra = (f"In-Reply-To: {in_reply_to}\r\n" if in_reply_to else "") + (f"References: {references}\r\n" if references else "")
    return (
        "From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\nDate: Mon, 2 Nov 2026 09:00:00 +0000\r\n"
        f"Message-ID: {message_id}\r\n{extra}\r\nhello\r\n"
    ).encode()


async def test_malformed_message_identifiers(settings: Settings) -> None:
    """Bulk-mail kits write identifiers no mail software would: no @, an empty side, kilobytes of
    junk. Well-formed ones, a relay's comment after one and a phrase as In-Reply-To stay quiet."""
    junk = "x" * 600 + "@example.org"
    for message_id, in_reply_to, references, why in (
        ("<0UW3Y47e27xw>", "", "", "not of the form <left@right>"),
        ("<00005b4b695a$00001330$000074c5@>", "", "", "not of the form <left@right>"),
        ("nmurgvodtqjc@minder.net", "", "", "not in angle brackets"),
        ("<1@example.org>", "", "<@mail-j3H.Bounce_dnO.io>", "not of the form <left@right>"),
        ("<1@example.org>", f"<{junk}>", "", "612 characters long"),
    ):
        found = await run(settings, parse(_with_ids(message_id, in_reply_to, references)))
        assert why in found.get("MALFORMED_MESSAGE_ID", ""), (message_id, in_reply_to, references)
    for message_id, in_reply_to, references in (
        ("<3cfb22733e96eeeb@relay6.kornet.net> (added by relay6.kornet.net)", "", ""),
        ("<2@example.org>", "your message of Mon, 2 Nov 2026", "<1@example.org> <0@example.org>"),
        ("<CAF=abc+def@mail.gmail.com>", "<CAF=abc+def@mail.gmail.com>", ""),
    ):
        assert await run(settings, parse(_with_ids(message_id, in_reply_to, references))) == {}, message_id


def _from(value: str) -> bytes:
    return (
        f"From: {value}\r\nTo: b@example.org\r\nSubject: hi\r\nDate: Mon, 2 Nov 2026 09:00:00 +0000\r\n"
        "Message-ID: <1@example.org>\r\n\r\nhello\r\n"
    ).encode()


async def test_a_from_no_mail_software_writes(settings: Settings) -> None:
    """An unquoted comma before the address, the address inside a comment (servers then read no
    address at all), a space inside its brackets, or a domain that cannot be a host: forged by hand. Quoted names, comments, address literals and internationalised domains
    are ordinary, and so is folding between the name and the address."""
    for value, why in (
        ("Fressnapf Gutschein, jehd <service@stayfriends.example>", "unquoted comma"),
        ("Microsoft account team ,_<t7f6a@x1rae85vn0.example>", "unquoted comma"),
        ("=?UTF-8?Q?=4E=61=73?=, jehd <service@stayfriends.example>", "unquoted comma"),
        ("Nagelpilz-Service,(<noreply@parcels.example>)", "inside a comment"),
        ("Europa Park (<message@shop.example>)", "inside a comment"),
        ("Correios <contato@correios>", "one label ('correios')"),
        ("ADAC <noreply@theskimm,com>", "no host name can be ('theskimm,com')"),
        ("Mercado Pago <aviso@%atendimento.example>", "no host name can be"),
        ("Bank <info@tom.com.>", "no host name can be"),
        ("QQ <tan@QQ.29080038>", "no host name can be"),
        ("On Behalf of Beverly Hills MD <join_now_85537@nmsko.example >", "space inside its brackets"),
        ("Support Netflix < lina_Scott_98099@msms.example>", "space inside its brackets"),
    ):
        found = await run(settings, parse(_from(value)))
        assert why in found.get("FROM_MALFORMED", ""), value
    for value in (
        '"Doe, John" <jd@example.org>',
        "jd@example.org (Doe, John)",
        "Jane <jane@[192.0.2.7]>",
        "Müller <m@bücher.example>",
        "Ops <ops-alerts@mail.example.org>",
        "Ops Team\r\n <ops-alerts@mail.example.org>",
        '"Ops <on call>" <ops@example.org>',
        "Jane (work) <jane@example.org>",
        '"Ops (on call) <ops@example.org>" <ops@example.org>',
    ):
        assert await run(settings, parse(_from(value))) == {}, value


async def test_a_colleagues_script_may_send_from_a_bare_host_name(settings: Settings) -> None:
    a = HeadersAnalyzer(AnalyzerEnv(settings=settings))
    env = Envelope(mail_from="root@build01", rcpt_tos=["ops@example.org"], direction=Direction.INTERNAL)
    ctx = AnalysisContext(message=parse(_from("cron <root@build01>")), envelope=env, settings=settings)
    assert [f.symbol for f in await a.analyze(ctx)] == []
    inbound = await run(settings, parse(_from("cron <root@build01>")))
    assert "one label" in inbound["FROM_MALFORMED"]


async def test_our_own_applications_may_number_their_mail_as_they_like(settings: Settings) -> None:
    a = HeadersAnalyzer(AnalyzerEnv(settings=settings))
    env = Envelope(mail_from="app@example.org", rcpt_tos=["ops@example.org"], direction=Direction.INTERNAL)
    ctx = AnalysisContext(message=parse(_with_ids("<20261129.12345>")), envelope=env, settings=settings)
    assert [f.symbol for f in await a.analyze(ctx)] == []
    assert "MALFORMED_MESSAGE_ID" in await run(settings, parse(_with_ids("<20261129.12345>")))
