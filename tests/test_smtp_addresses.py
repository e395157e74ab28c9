"""Envelope addresses the gateway cannot use: refused at MAIL/RCPT, and harmless should one get past."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator

import pytest

from mailmoat.config import Settings
from mailmoat.ingest.smtp import INBOUND, INTERNAL
from mailmoat.store.db import Store, verdict_from_row
from tests.support.gateway import inprocess_gateway, maildir_copies, wait_for
from tests.test_ingest_smtp import MSG, Harness, RecordingDispatcher


@pytest.fixture
def harness(settings: Settings) -> Iterator[Harness]:
    settings.server.domains = ["localhost"]
    h = Harness(settings, RecordingDispatcher())
    yield h
    h.close()


def cmd(c: smtplib.SMTP, line: bytes) -> tuple[int, bytes]:
    """Send one raw command line (bytes as they are, which smtplib's own methods would refuse)."""
    c.send(line + b"\r\n")
    return c.getreply()


def session(port: int, mail: bytes = b"MAIL FROM:<bob@example.org>") -> smtplib.SMTP:
    c = smtplib.SMTP("127.0.0.1", port, timeout=10)
    c.ehlo("client.example.org")
    code, reply = cmd(c, mail)
    assert code == 250, reply
    return c


# -- at the door ---------------------------------------------------------------------------------

UTF8 = b" SMTPUTF8"

RCPT_CASES = [
    # (MAIL parameters, RCPT address, expected reply start)
    (b"", b"al\xffice@localhost", b"553 5.6.7"),  # not UTF-8, and no SMTPUTF8 anyway
    (UTF8, b"al\xffice@localhost", b"553 5.1.3"),  # SMTPUTF8 promises UTF-8: this is not
    (UTF8, b"al\xc3ice@localhost", b"553 5.1.3"),  # a truncated sequence
    (b"", "alíce@localhost".encode(), b"553 5.6.7"),  # UTF-8, but the client did not ask for SMTPUTF8
    (UTF8, "alíce@localhost".encode(), b"250"),
    (b"", b"ali\x00ce@localhost", b"553 5.1.3"),
    (b"", b"ali\x01ce@localhost", b"553 5.1.3"),
    (b"", b"ali\x1bce@localhost", b"553 5.1.3"),
    (b"", b"ali\x7fce@localhost", b"553 5.1.3"),
    (UTF8, b"ali\x00ce@localhost", b"553 5.1.3"),
    (b"", b'"ali\x00ce"@localhost', b"553 5.1.3"),  # not even quoted (RFC 5321 qtextSMTP)
    # Longer than RFC 5321's 64 octets, as reply addresses are (reply+<token>@reply.github.com).
    (b"", b"reply+" + b"a" * 100 + b"@localhost", b"250"),
    (b"", b"a" * 255 + b"@localhost", b"250"),
    (b"", b"a" * 256 + b"@localhost", b"501 5.1.3"),  # no file name can hold it
    (b"", b"a" * 300 + b"@localhost", b"501 5.1.3"),
    (UTF8, "é".encode() * 127 + b"@localhost", b"250"),  # 254 octets
    (UTF8, "é".encode() * 128 + b"@localhost", b"501 5.1.3"),  # 128 characters, but 256 octets
]


@pytest.mark.parametrize("listener", [INBOUND, INTERNAL])
def test_rcpt_refuses_addresses_it_cannot_use(harness: Harness, listener: str) -> None:
    port = harness.listen(listener)
    wrong = []
    for params, address, expected in RCPT_CASES:
        with session(port, b"MAIL FROM:<bob@example.org>" + params) as c:
            code, reply = cmd(c, b"RCPT TO:<" + address + b">")
            if not f"{code} {reply.decode(errors='replace')}".encode().startswith(expected):
                wrong.append((params, address[:80], expected, code, reply))
    assert wrong == []
    assert harness.dispatcher.refs == []


def test_domain_over_255_octets_is_refused(harness: Harness) -> None:
    port = harness.listen(INTERNAL)  # any domain is a destination here
    label = b"d" * 60
    long_domain = b".".join([label] * 4) + b".example"  # 252 octets: fits
    assert len(long_domain) <= 255
    with session(port) as c:
        assert cmd(c, b"RCPT TO:<u@" + long_domain + b">")[0] == 250
        code, reply = cmd(c, b"RCPT TO:<u@" + b".".join([label] * 5) + b".example>")  # 313 octets
        assert (code, reply[:5]) == (501, b"5.1.3")


def test_refused_recipients_leave_the_session_usable(harness: Harness) -> None:
    port = harness.listen(INBOUND)
    with session(port) as c:
        assert cmd(c, b"RCPT TO:<x\xff@localhost>")[0] == 553
        assert cmd(c, b"RCPT TO:<ali\x00ce@localhost>")[0] == 553
        assert cmd(c, b"RCPT TO:<alice@localhost>")[0] == 250
        code, _ = c.data(MSG)
        assert code == 250
    (ref,) = harness.dispatcher.refs
    env, _raw = harness.spool.load(ref)
    assert env.rcpt_tos == ["alice@localhost"]


MAIL_CASES = [
    (b"MAIL FROM:<s\xff@example.org>", b"553 5.6.7"),
    (b"MAIL FROM:<s\xff@example.org> SMTPUTF8", b"553 5.1.7"),
    (b"MAIL FROM:<s\xc3\xa9@example.org>", b"553 5.6.7"),
    (b"MAIL FROM:<s\xc3\xa9@example.org> SMTPUTF8", b"250"),
    (b"MAIL FROM:<s\x00@example.org>", b"553 5.1.7"),
    (b"MAIL FROM:<s\x7f@example.org>", b"553 5.1.7"),
    (b"MAIL FROM:<>", b"250"),
    (b"MAIL FROM:<" + b"b" * 100 + b"@example.org>", b"250"),  # long VERP/SRS senders are not refused
]


def test_mail_from_refuses_addresses_it_cannot_use(harness: Harness) -> None:
    port = harness.listen(INBOUND)
    wrong = []
    for line, expected in MAIL_CASES:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
            c.ehlo("client.example.org")
            code, reply = cmd(c, line)
            if not f"{code} {reply.decode(errors='replace')}".encode().startswith(expected):
                wrong.append((line[:80], expected, code, reply))
                continue
            if code == 250:  # a sender the hook accepted is the transaction's sender
                assert cmd(c, b"RCPT TO:<alice@localhost>")[0] == 250
                assert c.data(MSG)[0] == 250
            else:
                assert cmd(c, b"RCPT TO:<alice@localhost>")[0] == 503  # no transaction started
    assert wrong == []
    senders = [harness.spool.load(ref)[0].mail_from for ref in harness.dispatcher.refs]
    assert senders == ["sé@example.org", "<>", "b" * 100 + "@example.org"]


def test_a_junk_recipient_cannot_switch_off_the_rules(settings: Settings) -> None:
    """QA: one `<x\\xff@localhost>` among the recipients made the rules analyzer fail for everyone."""
    settings.server.domains = ["localhost"]
    settings.server.workers = 0
    with inprocess_gateway(settings) as gw:
        with smtplib.SMTP(gw.host, gw.port, timeout=30) as c:
            c.ehlo("client.example.org")
            c.mail("bob@example.org")
            assert cmd(c, b"RCPT TO:<x\xff@localhost>")[0] == 553
            assert c.rcpt("alice@localhost")[0] == 250
            code, reply = c.data(MSG)
        assert code == 250
        qid = reply.decode().rsplit(" ", 1)[1]
        wait_for(lambda: maildir_copies(settings.mail_dir, "alice@localhost"), what="alice's copy")
        wait_for(lambda: gw.gateway.spool is not None and gw.gateway.spool.count() == 0, what="an empty spool")
    store = Store(settings.db_url, create=False)
    try:
        row = store.get_message(qid)
        assert row is not None
        failed = [f.data.get("analyzer") for f in verdict_from_row(row).findings if f.symbol == "ANALYZER_FAILED"]
        assert "rules" not in failed
        assert [d.recipient for d in store.deliveries(qid)] == ["alice@localhost"]
    finally:
        store.close()
