"""The gateway's header edits split header from body where the parser does, and never touch the body;
forged Authentication-Results that claim the gateway's authserv-id are removed however they are spelt."""

from __future__ import annotations

import email
import itertools
import smtplib
from email import policy
from pathlib import Path

import pytest

from mailmoat.config import ArcSealSettings, Settings
from mailmoat.deliver.arc_seal import Sealer
from mailmoat.deliver.banner import add_banner
from mailmoat.deliver.headers import (
    header_fields,
    prefix_subject,
    prepare_base,
    split_header,
    stamp,
    strip_incoming,
)
from mailmoat.model import Action, Finding, Verdict
from tests.support.dnsserver import new_dkim_key
from tests.support.gateway import inprocess_gateway, maildir_copies, wait_for

OURS = "mailmoat.localhost"
# QA's message (finding 3): the header block ends in "\n\r\n", which the parser and the LF Maildir file
# both read as the blank line; what follows is body text that only looks like header fields.
QA = (b"From: bob@example.org\nTo: tagme@localhost\n\r\n"
      b"Subject: this line is body text\r\nX-Mailmoat-Note: body text too\r\nmore body\r\n")
QA_BODY = b"\r\nSubject: this line is body text\r\nX-Mailmoat-Note: body text too\r\nmore body\r\n"

# Every way a line can end (the parser also ends a line at a bare CR) and every way a blank line can follow.
EOLS = (b"\r\n", b"\n", b"\r")
BODY = b"Subject: body text\r\nX-Mailmoat-Id: in-body\nAuthentication-Results: mailmoat.localhost; dkim=pass\r\nend"


def blank_len(rest: bytes) -> int:
    return 2 if rest.startswith(b"\r\n") else 1


def samples() -> list[bytes]:
    out = []
    for a, b, sep in itertools.product(EOLS, EOLS, EOLS):
        if b + sep == b"\r\n":
            continue  # one line ending, no blank line
        out.append(b"From: a@example.org" + a + b"To: b@localhost" + b + b"\t folded" + b + sep + BODY)
    out += [
        b"From: a@example.org\r\nSubject: no body at all\r\n",  # no blank line: all header
        b"From: a@example.org\r\nSubject: no line end",
        b"\r\nbody only\r\nX-Mailmoat-Id: x\r\n",
        b"\nbody only\n",
        b"\rbody only\r",
        b"From: a@example.org\r\n \r\nSubject: a blank fold is no blank line\r\n\r\nbody\r\n",
        b"From: a@example.org\r\n\r\r\nbody\r\n",
    ]
    return out


@pytest.mark.parametrize("raw", samples())
def test_split_header_ends_the_headers_where_the_parser_does(raw: bytes) -> None:
    header, rest = split_header(raw)
    assert header + rest == raw
    msg = email.message_from_bytes(raw, policy=policy.compat32)
    names = [f.partition(b":")[0].decode() for f in header_fields(header)]
    assert names == msg.keys()
    body = rest[blank_len(rest):] if rest else b""
    assert body.decode("ascii", "surrogateescape") == msg.get_payload()


def test_qa_message_header_edits_keep_the_body() -> None:
    assert split_header(QA) == (b"From: bob@example.org\nTo: tagme@localhost\n", QA_BODY)
    assert strip_incoming(QA, OURS) == QA  # the body's X-Mailmoat-Note is body text, not a forged field
    tagged = prefix_subject(QA, "[SUSPICIOUS]")
    assert tagged == b"Subject: [SUSPICIOUS]\n" + QA  # the message has no Subject: one is added to the header
    verdict = Verdict(Action.TAG, 6.0, [Finding("X", 6.0)])
    copy = stamp(prepare_base(QA, verdict, authserv_id=OURS, subject_prefix="[SUSPICIOUS]"), "T-1")
    header, rest = split_header(copy)
    assert rest == QA_BODY
    assert b"Subject: [SUSPICIOUS]" in header and b"X-Mailmoat-Id: T-1" in header


@pytest.mark.parametrize("raw", samples())
def test_no_header_edit_changes_a_byte_of_the_body(raw: bytes) -> None:
    body = email.message_from_bytes(raw, policy=policy.compat32).get_payload()
    verdict = Verdict(Action.TAG, 6.0, [Finding("X", 6.0)])
    for out in (strip_incoming(raw, OURS), prefix_subject(raw, "[S]"),
                stamp(prepare_base(raw, verdict, authserv_id=OURS, subject_prefix="[S]"), "T-1")):
        assert out.endswith(body.encode("ascii", "surrogateescape"))
        assert email.message_from_bytes(out, policy=policy.compat32).get_payload() == body


def test_banner_goes_into_the_body_the_parser_reads() -> None:
    raw = b"From: a@outside.example\nContent-Type: text/plain\n\r\nContent-Type: text/html\r\nhello\r\n"
    out = add_banner(raw, "warning", ["Caution."])
    assert out.startswith(b"From: a@outside.example\nContent-Type: text/plain\n\r\nCaution.\r\n\r\nContent-Type: text/html\r\n")
    assert out.endswith(b"hello\r\n")


@pytest.mark.parametrize(("value", "claimed"), [
    (b" mailmoat.localhost; dkim=pass", b"mailmoat.localhost"),
    (b"mailmoat.localhost;dkim=pass", b"mailmoat.localhost"),
    (b" (c) mailmoat.localhost; dkim=pass", b"mailmoat.localhost"),
    (b" MAILMOAT.LOCALHOST.; dkim=pass", b"mailmoat.localhost"),
    (b" (a (nested \\) comment)) \r\n\t(another)\tMailMoat.LocalHost 1; dkim=pass", b"mailmoat.localhost"),
    (b' "mailmoat.localhost"; dkim=pass', b"mailmoat.localhost"),
    (b' (x) "mailmoat.\\localhost." ; dkim=pass', b"mailmoat.localhost"),
    (b" mx.example.org; dkim=pass header.d=mailmoat.localhost", b"mx.example.org"),
    (b" (mailmoat.localhost) mx.example.org; dkim=pass", b"mx.example.org"),
    (b" mailmoat.localhost.evil.example; dkim=pass", b"mailmoat.localhost.evil.example"),
    (b" (never closed mailmoat.localhost; dkim=pass", None),
    (b" ; dkim=pass", None),
    (b"", None),
])
def test_authserv_id_reads_past_comments_and_folding(value: bytes, claimed: bytes | None) -> None:
    from mailmoat.deliver.headers import claimed_authserv_id

    assert claimed_authserv_id(value) == claimed


def test_every_authentication_results_claiming_our_id_is_removed() -> None:
    forged = [
        b"Authentication-Results: (c) mailmoat.localhost; dkim=pass\r\n",
        b"Authentication-Results: MAILMOAT.LOCALHOST.; dkim=pass\r\n",
        b"authentication-results :mailmoat.localhost;dkim=pass\r\n",
        b"Authentication-Results: (one\r\n (two)) mailmoat.localhost\t1;\r\n\tdmarc=pass header.from=bank.example\r\n",
        b'Authentication-Results: "mailmoat.localhost"; spf=pass\r\n',
    ]
    kept = [
        b"Authentication-Results: mx.example.org; dkim=pass header.d=mailmoat.localhost\r\n",
        b"Authentication-Results: (mailmoat.localhost) mx.example.org; spf=pass\r\n",
    ]
    raw = b"From: a@example.org\r\n" + b"".join(forged + kept) + b"Subject: s\r\n\r\nbody\r\n"
    assert strip_incoming(raw, "MailMoat.LocalHost.") == b"From: a@example.org\r\n" + b"".join(kept) + b"Subject: s\r\n\r\nbody\r\n"


def test_the_gateway_delivers_the_body_as_sent_and_drops_forged_results(settings: Settings) -> None:
    settings.server.workers = 0
    settings.policy.thresholds.tag = -1000.0  # every message is tagged: the subject edit runs
    settings.policy.thresholds.quarantine = 1000.0
    settings.policy.thresholds.reject = 2000.0
    raw = (b"From: bob@example.org\nTo: tagme@localhost\n"
           b"Authentication-Results: (c) mailmoat.localhost; dkim=pass\n"
           b"Authentication-Results: MAILMOAT.LOCALHOST.; dkim=pass\n"
           b"\r\nSubject: this line is body text\r\nX-Mailmoat-Note: body text too\r\n"
           b"Authentication-Results: mailmoat.localhost; in the body\r\nmore body\r\n")
    with inprocess_gateway(settings) as gw:
        with smtplib.SMTP(gw.host, gw.port, timeout=30) as c:
            c.sendmail("bob@example.org", ["tagme@localhost"], raw)
        copies = wait_for(lambda: maildir_copies(settings.mail_dir, "tagme@localhost"), what="the delivered copy")
    ((path,),) = copies.values()
    got = path.read_bytes()  # Maildir files use LF
    rest = split_header(got)[1]
    assert rest == b"\nSubject: this line is body text\nX-Mailmoat-Note: body text too\n" \
                   b"Authentication-Results: mailmoat.localhost; in the body\nmore body\n"
    msg = email.message_from_bytes(got, policy=policy.compat32)
    assert msg["Subject"] == "[SUSPICIOUS]"  # the header gets the tag, not the body's line
    assert str(msg["X-Mailmoat-Verdict"]).startswith("action=tag")
    results = msg.get_all("Authentication-Results")
    assert len(results) == 1 and results[0].startswith("mailmoat.localhost;")  # the gateway's own only


def test_a_line_that_is_no_field_does_not_end_the_header() -> None:
    # The stdlib parser stops at such a line; mail stores and clients read on to the blank line, so
    # the forged fields below it are still headers to the recipient and must still go.
    raw = (b"From: a@example.org\r\nX-Mailmoat-Verdict\x00: x\r\n"
           b"Authentication-Results: (c) mailmoat.localhost; dkim=pass\r\nX-Mailmoat-Id: forged\r\n\r\nbody\r\n")
    assert strip_incoming(raw, OURS) == b"From: a@example.org\r\n\r\nbody\r\n"


def test_the_arc_seal_only_adds_fields_on_top(tmp_path: Path) -> None:
    key_file = tmp_path / "arc.pem"
    key_file.write_bytes(new_dkim_key(2048).private_pem)
    sealer = Sealer(ArcSealSettings(enabled=True, domain="victim-corp.com", selector="gw", key_file=str(key_file)), OURS)
    base = prepare_base(QA, Verdict(Action.TAG, 6.0, []), authserv_id=OURS, subject_prefix="[SUSPICIOUS]")
    sealed = sealer.seal(base)
    assert sealed.startswith(b"ARC-Seal: ") and sealed.endswith(base)
