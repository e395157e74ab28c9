"""Sender facts: addresses, subjects in several languages, Received hops, ids, List-* headers."""

from __future__ import annotations

import base64
from pathlib import Path

from mailmoat.parse import parse
from mailmoat.parse.headers import parse_date, parse_received

SAMPLES = Path(__file__).parent / "samples"


def test_chinese_samples_subject_from_body() -> None:
    gb = parse((SAMPLES / "parse_gb2312.eml").read_bytes())
    assert gb.subject == "发票通知：朱镕基"  # raw 8-bit GBK header
    assert (gb.from_.display, gb.from_.addr, gb.from_.domain) == ("财务部 朱镕基", "caiwu@example.cn", "example.cn")
    assert "请查收本月发票" in gb.text and "镕" in gb.text
    big5 = parse((SAMPLES / "parse_big5.eml").read_bytes())
    assert big5.subject == "帳戶通知" and big5.from_.display == "客服中心"
    assert "您的帳戶已被鎖定" in big5.text


def test_utf8_words_split_and_mislabelled_bodies() -> None:
    m = parse((SAMPLES / "parse_mislabelled.eml").read_bytes())
    assert m.subject == "Ваш пароль истекает сегодня 密码"
    assert m.text.startswith("Пароль: обновите")
    assert m.html_text == "您的密码今天过期"
    assert "charset:mislabelled iso-8859-1->utf-8 part=1" in m.defects


def test_received_chain_newest_first() -> None:
    raw = (
        b"Received: from mx2.example.org (mx2.example.org [198.51.100.2])\r\n\tby mx.example.net (Postfix) with ESMTPS id X;"
        b" Mon, 3 Mar 2025 10:00:05 +0000\r\n"
        b"Received: from helo.attacker (unknown [203.0.113.9])\r\n\tby mx2.example.org with SMTP; Mon, 3 Mar 2025 10:00:00 +0000\r\n"
        b"From: a@example.com\r\n\r\nbody"
    )
    m = parse(raw)
    assert [h.ip for h in m.received] == ["198.51.100.2", "203.0.113.9"]
    newest, oldest = m.received
    assert (newest.from_host, newest.helo, newest.by_host, newest.protocol) == (
        "mx2.example.org", "mx2.example.org", "mx.example.net", "ESMTPS")
    assert (oldest.helo, oldest.from_host) == ("helo.attacker", "helo.attacker")
    assert newest.timestamp is not None and oldest.timestamp is not None and newest.timestamp - oldest.timestamp == 5


def test_received_formats() -> None:
    exim = parse_received("from host.example.com ([192.0.2.7] helo=fake.example) by mx.example.net with esmtp (Exim 4.96)")
    assert (exim.ip, exim.helo, exim.from_host) == ("192.0.2.7", "fake.example", "host.example.com")
    ms = parse_received(
        "from AM0PR01MB.eurprd01.prod.outlook.com (2603:10a6:208:100::12) by AM9PR01MB.eurprd01.prod.outlook.com "
        "with Microsoft SMTP Server (version=TLS1_2) id 15.20.1; Tue, 4 Mar 2025 09:00:00 +0000"
    )
    assert ms.ip == "2603:10a6:208:100::12" and ms.protocol == "Microsoft SMTP Server"
    bare = parse_received("from [192.0.2.44] by relay.example.com; Tue, 4 Mar 2025 09:00:00 -0500")
    assert bare.ip == "192.0.2.44" and bare.from_host == "" and bare.helo == "192.0.2.44"
    v6 = parse_received("from mail.example.com (mail.example.com [IPv6:2001:db8::5]) by mx.example.org")
    assert v6.ip == "2001:db8::5"
    assert parse_received("garbage without structure").ip == ""
    sendmail = parse_received("from rdns.example.net (HELO fake.example) (198.51.100.7) by mx.example.org with SMTP")
    assert (sendmail.helo, sendmail.ip, sendmail.protocol) == ("fake.example", "198.51.100.7", "SMTP")
    local = parse_received("by mx.example.org (Postfix, from userid 0) id 1; Mon, 3 Mar 2025 10:00:00 +0000")
    assert (local.by_host, local.ip, local.helo) == ("mx.example.org", "", "")


def test_parse_date() -> None:
    assert parse_date("Mon, 3 Mar 2025 10:00:00 +0100") == parse_date("Mon, 3 Mar 2025 09:00:00 +0000")
    assert parse_date("3 Mar 25 10:00 GMT") is not None
    assert parse_date("not a date") is None


def test_addresses_and_sender_facts() -> None:
    raw = (
        b'From: "service@paypal.com" <evil@attacker.example>\r\n'
        b"Reply-To: =?utf-8?B?5a6i5pyN?= <reply@other.example>, second@other.example\r\n"
        b'To: "Doe, John" <john@example.org>, jane@example.org\r\n'
        b"Cc: undisclosed-recipients:;\r\n"
        b"Sender: bulk@sender.example\r\n"
        b"Return-Path: <bounce@sender.example>\r\n"
        b"Message-ID: <abc@sender.example>\r\n"
        b"Date: Mon, 3 Mar 2025 10:00:00 +0000\r\n"
        b"User-Agent: Thunderbird\r\n"
        b"List-Unsubscribe: <https://sender.example/unsub>\r\n"
        b"List-Id: <news.sender.example>\r\n"
        b"\r\nbody"
    )
    m = parse(raw)
    assert (m.from_.display, m.from_.addr) == ("service@paypal.com", "evil@attacker.example")
    assert [(a.display, a.addr) for a in m.reply_to] == [("客服", "reply@other.example"), ("", "second@other.example")]
    assert [(a.display, a.addr) for a in m.to] == [("Doe, John", "john@example.org"), ("", "jane@example.org")]
    assert m.sender is not None and m.sender.addr == "bulk@sender.example"
    assert m.return_path == "bounce@sender.example"
    assert m.message_id == "<abc@sender.example>"
    assert m.date == "Mon, 3 Mar 2025 10:00:00 +0000"
    assert m.x_mailer == "Thunderbird"
    assert m.list_headers == {"list-unsubscribe": "<https://sender.example/unsub>", "list-id": "<news.sender.example>"}
    assert m.header("reply-to").startswith("客服")
    assert not [d for d in m.defects if d.startswith("header:")]


def test_broken_quoting_in_from_keeps_the_angle_address() -> None:
    m = parse(b'From: zhou@tom.com" <ysjn@tom.com>\r\n\r\nx')
    assert (m.from_.display, m.from_.addr) == ("zhou@tom.com", "ysjn@tom.com")
    m = parse(b"From: a@example.com, b@example.com\r\n\r\nx")
    assert m.from_.addr == "a@example.com" and "header:multiple-from-addresses" in m.defects


def _split_subject_message(tail: bytes) -> bytes:
    word = base64.b64encode("关于工资补贴的通知，请扫码申领".encode("gbk")).decode()
    return (
        b"From: =?utf-8?B?6LSi5Yqh6YOo?= <hr@example.cn>\r\n"
        b"Subject: =?gb2312?B?" + word[:20].encode() + b"\r\n"
        + tail
        + b"List-Id: <staff.example.cn>\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n"
        b"--b1\r\nContent-Type: application/octet-stream\r\n"
        b'Content-Disposition: attachment; filename="pay.html"\r\n\r\n<form></form>\r\n--b1--\r\n'
    )


def test_encoded_word_split_without_a_fold_blank_is_joined() -> None:
    """A mailer that wraps an encoded Subject mid-word, with no blank before the rest, must not
    end the header block there: the headers after it (Content-Type too) are still headers."""
    word = base64.b64encode("关于工资补贴的通知，请扫码申领".encode("gbk")).decode()
    m = parse(_split_subject_message(word[20:].encode() + b"?=\r\n"))
    assert m.subject == "关于工资补贴的通知，请扫码申领"
    assert m.from_.display == "财务部"
    assert m.header("List-Id") == "<staff.example.cn>"
    assert [p.filename for p in m.attachments] == ["pay.html"]
    assert "hello" in m.text and "List-Id" not in m.text
    assert "header:split-encoded-word 1 line(s) joined" in m.defects
    assert not any(d.startswith("mime:MissingHeaderBodySeparator") for d in m.defects)


def test_a_line_that_ends_no_encoded_word_still_ends_the_headers() -> None:
    """Only the tail of an open encoded word is joined: any other line that is no header is where
    the body begins, as the standard reads it."""
    m = parse(_split_subject_message(b"Hello colleagues, see below\r\n"))
    assert "Hello colleagues" in m.text and "List-Id" in m.text
    assert m.attachments == []
    assert not any(d.startswith("header:split-encoded-word") for d in m.defects)
    assert "mime:MissingHeaderBodySeparatorDefect" in m.defects


def _blank_in_fold(after: bytes) -> bytes:
    first = base64.b64encode("《鲜花网》专为您在本地的客户".encode("gb2312")).decode()
    rest = base64.b64encode("服务！".encode("gb2312")).decode()
    return (
        b"From: a@example.cn\r\nTo: b@example.cn\r\nSubject: =?gb2312?B?" + first.encode() + b"?=\r\n\r\n"
        b" =?GB2312?B?" + rest.encode() + b"?=\r\n" + after
    )


def test_a_blank_line_inside_a_folded_encoded_header_is_mended() -> None:
    """One bulk mailer writes a blank line between an encoded Subject and its folded rest, then the
    other headers: they are read as headers, not as the body's first words."""
    zh = "欢迎订购鲜花，市区内免费送货。".encode("gb2312")
    m = parse(
        _blank_in_fold(
            b"Content-Type: text/html;charset=\"GB2312\"\r\nReply-To: shop@example.net\r\n"
            b"Date: Wed, 13 Jul 2005 19:47:14 +0800\r\n\r\n<p>" + zh + b"</p>\r\n"
        )
    )
    assert m.subject == "《鲜花网》专为您在本地的客户服务！"
    assert m.header("Reply-To") == "shop@example.net" and m.header("Date").startswith("Wed")
    assert m.body_text == "欢迎订购鲜花，市区内免费送货。"
    assert "header:blank-line-in-fold 3 header(s) after 1 blank line(s)" in m.defects
    # a copy with a blank line before each folded line of the Subject
    two = _blank_in_fold(b"\r\n =?utf-8?B?5pyN5Yqh?=\r\nDate: Wed, 13 Jul 2005 19:47:14 +0800\r\n\r\nhi\r\n")
    m = parse(two)
    assert m.subject.endswith("服务！服务") and m.header("Date") and m.text.strip() == "hi"
    assert "header:blank-line-in-fold 1 header(s) after 2 blank line(s)" in m.defects


def test_a_body_that_only_starts_like_headers_stays_the_body() -> None:
    # no fold after the blank line: an ordinary body that starts with "Name: value" lines
    m = parse(b"From: a@example.org\r\nSubject: =?utf-8?Q?Caf=C3=A9?=\r\n\r\nName: Ann\r\nPhone: 1\r\n\r\nhi\r\n")
    assert "Name: Ann" in m.text and m.header("Name") == ""
    # a fold, but text that is no header after it
    m = parse(_blank_in_fold(b"Dear friend, flowers for you.\r\n\r\nhi\r\n"))
    assert "Dear friend" in m.text and not any("blank-line-in-fold" in d for d in m.defects)
    # the fold and headers, but the header before the blank line ends in no encoded word
    m = parse(b"Subject: plain\r\n\r\n =?utf-8?Q?x?=\r\nDate: Wed, 13 Jul 2005 19:47:14 +0800\r\n\r\nhi\r\n")
    assert m.header("Date") == "" and not any("blank-line-in-fold" in d for d in m.defects)


def test_the_sender_and_subject_are_read_past_the_header_limit() -> None:
    """Thousands of junk fields ahead of From and Subject must not hide them from the scan and the
    record: past the limit, the fields the analyzers read are still kept."""
    from mailmoat.parse.headers import MAX_HEADERS

    junk = "".join(f"X-Filler-{i}: x\r\n" for i in range(MAX_HEADERS + 500))
    raw = (junk + "From: Finance <payroll@evil.example>\r\nReply-To: x@evil.example\r\nTo: a@corp.example\r\n"
           "Subject: salary adjustment\r\n\r\nbody\r\n").encode()
    m = parse(raw)
    assert m.from_ is not None and m.from_.addr == "payroll@evil.example"
    assert m.subject == "salary adjustment" and "header:missing-from" not in m.defects
    assert any(d.startswith("limit:headers") for d in m.defects)
    assert len(m.headers) <= MAX_HEADERS + 20
