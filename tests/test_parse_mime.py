"""MIME tree: part paths, payloads, true types, filenames, nested messages, broken structure and limits."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

import mailmoat.parse as parse_pkg
from mailmoat.config import QrSettings
from mailmoat.model import Message
from mailmoat.parse import mime, parse

SAMPLES = Path(__file__).parent / "samples"


def load(name: str) -> Message:
    return parse((SAMPLES / name).read_bytes())


def test_rfc2231_2047_and_raw_8bit_filenames_and_true_types() -> None:
    m = load("parse_rfc2231.eml")
    assert [p.path for p in m.parts] == ["1", "2", "3", "4", "5"]
    pdf, exe, docx, txt = m.parts[1:]
    assert (pdf.filename, pdf.true_ext, pdf.is_attachment) == ("发票 清单.pdf", "pdf", True)
    assert (exe.filename, exe.content_type, exe.true_ext) == ("发票.exe", "application/octet-stream", "dll")
    assert (docx.filename, docx.true_ext) == ("报价单.zip", "docx")
    assert txt.filename == "清单.txt"
    assert pdf.sha256 == hashlib.sha256(pdf.payload).hexdigest() and pdf.size == len(pdf.payload)
    assert m.text == "three files"
    assert {(u.url, u.source, u.part_path) for u in m.urls} == {
        ("https://list.example.com/a", "attachment", "5"),
        ("http://[2001:db8::1]:8080/x", "attachment", "5"),
    }


def test_nested_messages_plain_and_base64() -> None:
    m = load("parse_nested.eml")
    assert [(p.path, p.content_type) for p in m.parts] == [
        ("1", "text/plain"),
        ("2", "message/rfc822"),
        ("3", "message/rfc822"),
    ]
    assert m.parts[1].is_attachment and m.parts[1].true_ext == "eml" and m.parts[1].filename == "original.eml"
    inner, second = m.attached_messages
    assert inner.subject == "inner message" and inner.from_.addr == "a@evil.example"
    assert [p.path for p in inner.parts] == ["2.1", "2.2"]
    assert inner.cid_map == {"qr@inner": "2.2"}
    assert second.subject == "second inner"  # was base64 transfer-encoded
    assert [p.path for p in second.parts] == ["3.1"]
    # the outer message lists what the reader sees when opening the attachments
    assert {u.url for u in m.urls} == {"https://inner.evil.example/x", "https://second.example.net/path"}
    eml_images = [i for i in m.images if i.source == "eml"]
    assert len(eml_images) == 1 and eml_images[0].part_path == "2.2" and eml_images[0].origin["message"] == "2"


def test_broken_boundary_is_recovered() -> None:
    m = load("parse_broken_boundary.eml")
    assert "mime:boundary-recovered" in m.defects
    assert [(p.path, p.content_type) for p in m.parts] == [("1", "text/plain"), ("2", "application/zip")]
    assert "Visible text" in m.text
    assert m.parts[1].true_ext == "zip"


def test_unrecoverable_multipart_is_read_as_text() -> None:
    raw = b"From: a@example.com\nContent-Type: multipart/mixed; boundary=zzz\n\nplain words http://x.example.com/\n"
    m = parse(raw)
    assert "plain words" in m.text
    assert any(d.startswith("mime:broken-multipart") for d in m.defects)
    assert m.urls[0].host == "x.example.com"


def test_missing_headers_are_defects() -> None:
    m = load("parse_missing_headers.eml")
    assert {"header:missing-from", "header:missing-date", "header:missing-message-id"} <= set(m.defects)
    assert m.from_.addr == "" and m.subject == "no sender"
    assert m.urls[0].url == "http://www.example.org/page"


def test_single_part_message_is_part_1() -> None:
    m = parse(b"Subject: x\r\nContent-Type: text/html\r\n\r\n<p>hello</p>")
    assert [p.path for p in m.parts] == ["1"] and m.html_text == "hello" and not m.parts[0].is_attachment


def test_text_labelled_base64_is_read_as_written() -> None:
    zh = "十万元买商铺，包租十年，每年固定回报10%。详情请致电。".encode("gb2312")
    head = b"Subject: x\nContent-Type: text/html; charset=gb2312\nContent-Transfer-Encoding: base64\n\n"
    m = parse(head + b"<p>" + zh + b"</p>\n")
    assert "包租十年" in m.body_text and any(d.startswith("mime:not-base64 part=1") for d in m.defects)
    english = head.replace(b"gb2312", b"us-ascii") + b"Dear friend, this offer is for you only. Reply today!\n"
    assert "offer is for you only" in parse(english).body_text
    # real base64, even with blanks at its line ends and one damaged byte, is decoded as before
    real = base64.encodebytes("包租十年，固定回报".encode("gb2312")).replace(b"\n", b"  \n") + b"!\n"
    m = parse(head + real)
    assert "包租十年" in m.body_text and not any("not-base64" in d for d in m.defects)
    # an attachment labelled base64 is never read as text this way
    att = parse(
        b"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nhi\n"
        b"--b\nContent-Type: text/plain; name=a.txt\nContent-Disposition: attachment\n"
        b"Content-Transfer-Encoding: base64\n\nplain words, not base64 at all\n--b--\n"
    )
    assert not any("not-base64" in d for d in att.defects)


def test_attachment_without_disposition_and_inline_named_image() -> None:
    raw = (
        b"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nhi\n"
        b"--b\nContent-Type: application/pdf\nContent-Transfer-Encoding: base64\n\n"
        + base64.b64encode(b"%PDF-1.7 x")
        + b"\n--b--\n"
    )
    m = parse(raw)
    assert m.parts[1].is_attachment and m.parts[1].true_type == "application/pdf"
    assert m.attachments == [m.parts[1]]


def test_eml_attachment_declared_octet_stream_is_parsed() -> None:
    inner = b"From: x@example.net\r\nSubject: inside\r\n\r\nbody https://deep.example.net/\r\n"
    raw = (
        b"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nsee attached\n"
        b"--b\nContent-Type: application/octet-stream; name=fwd.eml\nContent-Disposition: attachment\n"
        b"Content-Transfer-Encoding: base64\n\n" + base64.b64encode(inner) + b"\n--b--\n"
    )
    m = parse(raw)
    assert m.attached_messages[0].subject == "inside"
    assert any(u.host == "deep.example.net" for u in m.urls)


def test_limits_record_defects(monkeypatch: pytest.MonkeyPatch) -> None:
    many = b"Content-Type: multipart/mixed; boundary=b\n\n" + b"".join(
        b"--b\nContent-Type: text/plain\n\npart %d\n" % i for i in range(50)
    ) + b"--b--\n"
    monkeypatch.setattr(mime.Budget, "__init__", lambda self: _budget_init(self, 10, mime.MAX_DECODED))
    m = parse(many)
    assert len(m.parts) == 10 and "limit:parts 10" in m.defects

    monkeypatch.setattr(mime.Budget, "__init__", lambda self: _budget_init(self, 1000, 20))
    m = parse(b"Content-Type: application/pdf\nContent-Transfer-Encoding: base64\n\n" + base64.b64encode(b"%PDF" * 100))
    assert m.parts[0].payload == b"" and any(d.startswith("limit:decoded-size") for d in m.defects)


def _budget_init(self: mime.Budget, parts: int, decoded: int) -> None:
    self.parts, self.decoded, self.max_parts, self.max_decoded, self.parts_exceeded = 0, 0, parts, decoded, False


def test_deep_nesting_and_message_depth_limits() -> None:
    raw = b""
    depth = 60
    for i in range(depth):
        raw += b"Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n" % (i, i)
    raw += b"Content-Type: text/plain\n\ncore\n"
    for i in reversed(range(depth)):
        raw += b"--b%d--\n" % i
    m = parse(raw)
    assert any(d.startswith("limit:depth") for d in m.defects)

    msg = b"Subject: leaf\n\nleaf\n"
    for level in range(8):
        msg = b"Subject: level %d\nContent-Type: message/rfc822\n\n" % level + msg
    m = parse(msg)
    assert any(d.startswith("limit:message-depth") for d in _all_defects(m))


def _all_defects(m: Message) -> list[str]:
    out = list(m.defects)
    for sub in m.attached_messages:
        out += _all_defects(sub)
    return out


@pytest.mark.parametrize(
    "raw",
    [b"", b"\x00\xff" * 100, b"\r\n\r\n", b"From:", b"Content-Type: multipart/mixed\n\n", b"--\n--\n", b"x" * 5000],
)
def test_garbage_gives_a_message(raw: bytes) -> None:
    m = parse(raw)
    assert isinstance(m, Message) and m.raw == raw


def test_hooks_failures_become_defects(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(message: Message, *args: object) -> None:
        raise ValueError("bad image")

    monkeypatch.setitem(parse_pkg._HOOKS, "mailmoat.parse.qr", boom)
    monkeypatch.setitem(parse_pkg._HOOKS, "mailmoat.parse.documents", boom)
    m = parse(b"Subject: x\n\nbody", qr=QrSettings())
    assert "enrich:qr:ValueError: bad image" in m.defects
    assert "enrich:documents:ValueError: bad image" in m.defects
    m = parse(b"Subject: x\n\nbody", qr=QrSettings(enabled=False))
    assert not any(d.startswith("enrich:qr") for d in m.defects)


def test_missing_hook_module_is_tolerated_but_other_import_errors_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parse_pkg, "_HOOKS", {})
    assert parse_pkg._hook("mailmoat.parse.no_such_hook_module", "f") is None
    monkeypatch.setitem(parse_pkg._HOOKS, "mailmoat.parse.qr", ImportError("libzbar missing"))
    monkeypatch.setitem(parse_pkg._HOOKS, "mailmoat.parse.documents", None)
    m = parse(b"Subject: x\n\nbody", qr=QrSettings())
    assert m.defects[-1] == "enrich:qr:ImportError: libzbar missing"


def test_long_text_is_cut_at_a_line_end(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mime, "MAX_TEXT_BYTES", 64)
    body = ("密码过期请更新\n" * 10).encode()
    m = parse(b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + body)
    assert "limit:text-size part=1" in m.defects
    assert m.text.startswith("密码过期请更新\n") and "\ufffd" not in m.text
    assert not any(d.startswith("charset:") for d in m.defects)
