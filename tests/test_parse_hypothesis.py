"""Property: whatever bytes arrive (random, MIME-shaped, mutated samples), parse returns a Message and never raises."""

from __future__ import annotations

import base64
import dataclasses
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailmoat.model import Message
from mailmoat.parse import parse

SAMPLES = sorted((Path(__file__).parent / "samples").glob("parse_*.eml"))
SAMPLE_BYTES = [p.read_bytes() for p in SAMPLES]

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_header_names = st.sampled_from(
    ["From", "To", "Cc", "Reply-To", "Subject", "Date", "Received", "Message-ID", "Content-Type",
     "Content-Transfer-Encoding", "Content-Disposition", "Content-ID", "Sender", "Return-Path", "List-Id", "X-Mailer"]
)
_tokens = st.sampled_from(
    [
        "multipart/mixed; boundary=b", "multipart/related; boundary=\"b\"", "multipart/alternative; boundary=c",
        "message/rfc822", "text/html; charset=gb2312", "text/plain; charset=big5", "text/plain; charset=utf-7",
        "application/octet-stream; name*=utf-8''%E4%BD%A0", "image/png", "base64", "quoted-printable", "x-uuencode",
        "attachment; filename*0*=gbk''%C4%E3; filename*1=.exe", "inline", "<cid@x>", "=?gb2312?B?xOO6ww==?=",
        "=?utf-8?Q?=E4=BD?= =?utf-8?Q?=A0?=", "=?x?B?!!?=", "\"a\" <b@c>", "<a@b>, c@d", "from x ([1.2.3.4]) by y",
        "Mon, 3 Mar 2025 10:00:00 +0000", "--b", "--b--", "--c", "<img src=cid:cid@x>", "<a href='http://3232235777/'>x</a>",
        "<div style='display:none'>", "data:image/gif;base64,R0lGODlhAQABAAAAACw=", "url(cid:cid@x)", "http://例子.测试/",
    ]
)
_raw_8bit = st.binary(max_size=12)


@st.composite
def mime_messages(draw: st.DrawFn) -> bytes:
    lines: list[bytes] = []
    for _ in range(draw(st.integers(0, 8))):
        name = draw(_header_names).encode()
        value = b" ".join(draw(st.lists(st.one_of(_tokens.map(str.encode), _raw_8bit), max_size=3)))
        lines.append(name + b": " + value)
        if draw(st.booleans()):
            lines.append(b"\t" + draw(_tokens).encode())
    lines.append(b"")
    for _ in range(draw(st.integers(0, 12))):
        choice = draw(st.integers(0, 4))
        if choice == 0:
            lines.append(draw(_tokens).encode())
        elif choice == 1:
            lines.append(draw(_header_names).encode() + b": " + draw(_tokens).encode())
        elif choice == 2:
            lines.append(base64.b64encode(draw(st.binary(max_size=40))))
        elif choice == 3:
            lines.append(draw(st.binary(max_size=30)))
        else:
            lines.append(b"")
    sep = draw(st.sampled_from([b"\r\n", b"\n", b"\r"]))
    return sep.join(lines)


@st.composite
def mutated_samples(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SAMPLE_BYTES)))
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        op = draw(st.integers(0, 4))
        pos = draw(st.integers(0, len(data) - 1))
        if op == 0:
            data[pos] = draw(st.integers(0, 255))
        elif op == 1:
            del data[pos : pos + draw(st.integers(1, 200))]
        elif op == 2:
            data[pos:pos] = draw(st.one_of(st.binary(max_size=20), _tokens.map(str.encode)))
        elif op == 3:
            data = data[:pos]
        else:
            chunk = data[pos : pos + draw(st.integers(1, 300))]
            data[pos:pos] = chunk
    return bytes(data)


def _strings(obj: object) -> list[str]:
    """Every str inside the model (downstream JSON/DB writers need valid UTF-8: no lone surrogates)."""
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for k, v in obj.items() for s in _strings(k) + _strings(v)]
    if isinstance(obj, list | tuple):
        return [s for v in obj for s in _strings(v)]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return [s for f in dataclasses.fields(obj) for s in _strings(getattr(obj, f.name))]
    return []


def _check(raw: bytes) -> None:
    m = parse(raw)
    assert isinstance(m, Message)
    for text in _strings(m):
        text.encode("utf-8")
    paths = [p.path for p in m.parts]
    assert len(paths) == len(set(paths))
    assert all(isinstance(d, str) for d in m.defects)
    assert all(path in paths for path in m.cid_map.values())


@FAST
@given(st.binary(max_size=2000))
def test_random_bytes(raw: bytes) -> None:
    _check(raw)


@FAST
@given(mime_messages())
def test_mime_shaped(raw: bytes) -> None:
    _check(raw)


@FAST
@given(mutated_samples())
def test_mutated_samples(raw: bytes) -> None:
    _check(raw)


_WORD = "=?gb2312?B?xOO6ww==?="  # 你好


@st.composite
def split_header_blocks(draw: st.DrawFn) -> bytes:
    """A Subject whose folded rest a mailer wrote after one or more blank lines, then header lines
    (some junk), then a body: the shape `parse/folds.py` mends, and the shapes next to it."""
    sep = draw(st.sampled_from([b"\r\n", b"\n"]))
    lines = [b"From: a@b.cn", b"Subject: " + _WORD.encode()]
    for _ in range(draw(st.sampled_from([1, 1, 2, 3, 9]))):  # 9: more than are read
        lines.append(b"")
        lines.append(draw(st.sampled_from([b" ", b" ", b"\t", b""])) + draw(st.sampled_from([_WORD.encode()] * 3 + [b"=?x?B?!!?=", b"text"])))
    headers = _header_names.map(lambda n: n.encode() + b": x")
    for _ in range(draw(st.integers(0, 4)) or 1):
        lines.append(draw(st.one_of(headers, headers, headers, _tokens.map(str.encode), st.binary(max_size=20))))
    lines += [b"", b"body"] if draw(st.booleans()) else []
    return sep.join(lines)


@FAST
@given(split_header_blocks())
def test_split_header_blocks_parse(raw: bytes) -> None:
    m = parse(raw)
    assert isinstance(m, Message) and m.raw == raw
    if any(d.startswith("header:blank-line-in-fold") for d in m.defects):
        assert m.subject.startswith("你好")  # the Subject kept its first word and took its folds
