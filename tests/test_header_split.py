"""The gateway's header edits split header from body where the parser does, and never touch the body."""

from __future__ import annotations

import email
import itertools
from email import policy
from pathlib import Path

import pytest

from mailmoat.config import ArcSealSettings
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


def test_the_arc_seal_only_adds_fields_on_top(tmp_path: Path) -> None:
    key_file = tmp_path / "arc.pem"
    key_file.write_bytes(new_dkim_key(2048).private_pem)
    sealer = Sealer(ArcSealSettings(enabled=True, domain="victim-corp.com", selector="gw", key_file=str(key_file)), OURS)
    base = prepare_base(QA, Verdict(Action.TAG, 6.0, []), authserv_id=OURS, subject_prefix="[SUSPICIOUS]")
    sealed = sealer.seal(base)
    assert sealed.startswith(b"ARC-Seal: ") and sealed.endswith(base)
