"""MIME torture: malformed messages written here all go through the whole gateway without an exception escaping."""

from __future__ import annotations

import base64
import logging
import smtplib

import pytest

from mailmoat.config import Settings
from mailmoat.store.db import Store
from tests.support.gateway import inprocess_gateway, wait_for

H = b"From: t@example.org\r\nTo: u@localhost\r\nSubject: torture\r\n"


def _nested_multipart(depth: int) -> bytes:
    body = b"Content-Type: text/plain\r\n\r\ninnermost\r\n"
    for i in range(depth):
        b = f"b{i}".encode()
        body = b"Content-Type: multipart/mixed; boundary=" + b + b"\r\n\r\n--" + b + b"\r\n" + body + b"\r\n--" + b + b"--\r\n"
    return H + b"MIME-Version: 1.0\r\n" + body


def _nested_rfc822(depth: int) -> bytes:
    body = H + b"\r\ninner\r\n"
    for _ in range(depth):
        body = H + b"MIME-Version: 1.0\r\nContent-Type: message/rfc822\r\n\r\n" + body
    return body


SAMPLES: dict[str, bytes] = {
    "no_headers": b"just a body line\r\nand another\r\n",
    "empty": b"\r\n",
    "header_without_colon": b"This is not a header\r\nFrom t@example.org\r\n: empty name\r\n\r\nbody\r\n",
    "multipart_without_boundary": H + b"Content-Type: multipart/mixed\r\n\r\n--x\r\nhello\r\n--x--\r\n",
    "boundary_never_closed": H + b"Content-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\nContent-Type: text/html\r\n\r\n<a href='http://x.example/'>x",
    "empty_boundary": H + b'Content-Type: multipart/mixed; boundary=""\r\n\r\n--\r\nx\r\n----\r\n',
    "deep_multipart": _nested_multipart(80),
    "deep_rfc822": _nested_rfc822(25),
    "bad_base64": H + b"Content-Type: application/pdf; name=a.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!!####$$$$%%%%\r\nQUJD=\r\n=====\r\n",
    "truncated_base64_image": H + b"Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 30)[:-7] + b"\r\n",
    "broken_qp": H + b"Content-Transfer-Encoding: quoted-printable\r\n\r\n=ZZ=\r\n=4\r\n=\r\n=E2=80\r\n",
    "unknown_charset": H + b"Content-Type: text/plain; charset=x-unknown-42\r\n\r\n\xff\xfe caf\xe9\r\n",
    "mislabelled_utf8": H + b"Content-Type: text/html; charset=utf-8\r\n\r\n<p>caf\xe9 \xc3\x28 \xf0\x28\x8c\x28</p>\r\n",
    "bad_encoded_words": b"From: =?utf-8?B?###?= <t@example.org>\r\nTo: u@localhost\r\nSubject: =?x-bad?Q?=ZZ?= =?utf-8?B?5L2g5aW9?=\r\n\r\nbody\r\n",
    "raw_8bit_headers": b"From: \xe5\xbc\xa0\xe4\xb8\x89 <t@example.org>\r\nTo: u@localhost\r\nSubject: \xff\xfe\xfd\r\n\r\nbody\r\n",
    "nul_bytes": H + b"\r\nbody with \x00 NUL \x00 bytes\r\n",
    "long_folded_header": H + b"X-Long: " + b" ".join([b"word"] * 1500).replace(b" ", b"\r\n ", 1400) + b"\r\n\r\nbody\r\n",
    "many_headers": H + b"".join(b"X-H%d: v\r\n" % i for i in range(3000)) + b"\r\nbody\r\n",
    "garbage_addresses": b"From: <<<@@@>>>\r\nTo: ,,,,;;;\r\nReply-To: \"unclosed <x@\r\nCc: a@b@c\r\nSubject: x\r\n\r\nbody\r\n",
    "bare_lf": b"From: t@example.org\nTo: u@localhost\nSubject: lf\n\nbare\nline feeds\n",
    "conflicting_content_types": H + b"Content-Type: text/plain\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\nx\r\n--q--\r\n",
    "uuencode_cte": H + b"Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 a.exe\r\n#86)C\r\n`\r\nend\r\n",
    "alternative_without_parts": H + b"Content-Type: multipart/alternative; boundary=a\r\n\r\n--a--\r\n",
    "broken_rfc2231_filename": H + b"Content-Type: application/octet-stream; name*=utf-8''%ZZ%; name*0=a\r\nContent-Disposition: attachment; filename*=''\r\n\r\nxx\r\n",
    "fake_png_and_corrupt_zip": H + b"Content-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\nContent-Type: image/png; name=a.png\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    + base64.b64encode(b"not a png at all") + b"\r\n--m\r\nContent-Type: application/zip; name=a.zip\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    + base64.b64encode(b"PK\x03\x04" + b"\xff" * 40) + b"\r\n--m--\r\n",
    "garbage_pdf": H + b"Content-Type: application/pdf; name=x.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(b"%PDF-1.7\n1 0 obj <<\n/Type /Catalog /Pages 9 0 R\nstream\n\xff\xfe") + b"\r\n",
    "broken_html": H + b"Content-Type: text/html\r\n\r\n<html><body><a href=\"http://\x01bad host/\">x<img src=\"data:image/png;base64,@@@@\"><table><tr><td>" + b"<div>" * 1500 + b"\r\n",
    "tnef_garbage": H + b"Content-Type: application/ms-tnef; name=winmail.dat\r\nContent-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(b"\x78\x9f\x3e\x22" + b"\x00\xff" * 50) + b"\r\n",
    "truncated_attached_message": H + b"Content-Type: multipart/mixed; boundary=r\r\n\r\n--r\r\nContent-Type: message/rfc822\r\n\r\nFrom: inner@\r\nContent-Type: multipart/mixed; boundary=s\r\n\r\n--s\r\n",
}


def test_every_torture_sample_goes_through(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    settings.server.workers = 0
    caplog.set_level(logging.WARNING)
    ids: dict[str, str] = {}
    with inprocess_gateway(settings) as gw:
        with smtplib.SMTP(gw.host, gw.port, timeout=60) as c:
            c.ehlo("torture.example.org")
            for name, raw in SAMPLES.items():
                c.mail("t@example.org")
                c.rcpt("u@localhost")
                code, reply = c.data(raw)
                assert code == 250, (name, reply)
                ids[name] = reply.decode().rsplit(" ", 1)[1]
        wait_for(lambda: gw.gateway.spool is not None and gw.gateway.spool.count() == 0, timeout=120, what="every sample processed")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("mailmoat")]
    assert not errors, [f"{r.name}: {r.getMessage()}" for r in errors]
    store = Store(settings.db_url, create=False)
    try:
        for name, qid in ids.items():
            row = store.get_message(qid)
            assert row is not None, f"{name} was not recorded"
            assert row.action in ("deliver", "tag", "quarantine"), (name, row.action)
    finally:
        store.close()
