"""Property: random and mutated MIME through the whole Scanner (parse, every analyzer, policy) never raises."""

from __future__ import annotations

import asyncio
import base64
import math
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from mailmoat.config import Settings
from mailmoat.model import Action, Envelope
from mailmoat.scanner import Scanner

PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
)

SEEDS = [
    b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nhello http://x.example/a\r\n",
    (
        b"From: =?gb2312?B?1PfIyw==?= <a@example.cn>\r\nTo: b@example.org\r\nSubject: =?GBK?B?0rvQqbK5zPk=?=\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/related; boundary="R"\r\n\r\n--R\r\n'
        b'Content-Type: text/html; charset=gb2312\r\n\r\n<p>\xb2\xb9\xcc\xf9<img src="cid:img1"><a href="https://y.example/">go</a>'
        b'<img src="data:image/png;base64,' + base64.b64encode(PNG_1PX) + b'"></p>\r\n--R\r\n'
        b'Content-Type: application/octet-stream; name="a.txt"\r\nContent-ID: <img1>\r\n'
        b'Content-Disposition: attachment; filename="a.txt"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        + base64.encodebytes(PNG_1PX)
        + b"--R--\r\n"
    ),
    (
        b'From: c@example.org\r\nSubject: fwd\r\nContent-Type: multipart/mixed; boundary="M"\r\n\r\n--M\r\n'
        b"Content-Type: text/plain; charset=big5\r\n\r\n\xa4\xa4\xa4\xe5\r\n--M\r\nContent-Type: message/rfc822\r\n\r\n"
        b'From: d@example.org\r\nSubject: inner\r\nContent-Type: multipart/alternative; boundary="I"\r\n\r\n--I\r\n'
        b"Content-Type: text/plain\r\n\r\ninner text\r\n--I--\r\n--M\r\n"
        b'Content-Type: application/zip; name="x.zip"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        b"UEsDBBQAAAAIAA==\r\n--M--\r\n"
    ),
]


@pytest.fixture(scope="module")
def scan_fn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    s = Settings()
    s.data_dir = str(tmp_path_factory.mktemp("var"))
    scanner = Scanner(s)
    loop = asyncio.new_event_loop()

    def scan(raw: bytes) -> None:
        env = Envelope(mail_from="a@example.org", rcpt_tos=["b@example.org"])
        result = loop.run_until_complete(scanner.scan(raw, env))
        v = result.verdict
        assert isinstance(v.action, Action)
        assert math.isfinite(v.score)
        crashed = [
            f.evidence for f in v.findings if f.symbol == "ANALYZER_FAILED" and "timed out" not in f.evidence
        ]
        assert crashed == [], crashed  # the runner is a safety net, not a licence to raise

    yield scan
    loop.close()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "delete", "insert", "dup", "truncate", "token"]))
        i = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[i] = draw(st.integers(0, 255))
        elif op == "delete":
            del data[i : i + draw(st.integers(1, 40))]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=40))
        elif op == "dup":
            j = draw(st.integers(i, min(len(data), i + 200)))
            data[i:i] = data[i:j] * draw(st.integers(1, 20))
        elif op == "truncate":
            del data[i:]
        else:
            data[i:i] = draw(
                st.sampled_from(
                    [
                        b"\r\n--R\r\n",
                        b"\r\n\r\n",
                        b"=?utf-8?B?",
                        b'boundary=""',
                        b"Content-Type: message/rfc822\r\n\r\n",
                        b'charset="x-unknown"',
                        b"Content-Transfer-Encoding: quoted-printable\r\n",
                        b"=\r\n",
                        b"\x00",
                        b"cid:",
                    ]
                )
            )
    return bytes(data)


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=mutated())
def test_mutated_mime_never_escapes(scan_fn: object, raw: bytes) -> None:
    scan_fn(raw)  # type: ignore[operator]


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=2000))
def test_random_bytes_never_escape(scan_fn: object, raw: bytes) -> None:
    scan_fn(raw)  # type: ignore[operator]


header_name = st.sampled_from(
    [
        "From",
        "To",
        "Cc",
        "Reply-To",
        "Subject",
        "Date",
        "Message-ID",
        "Content-Type",
        "Content-Transfer-Encoding",
        "Content-Disposition",
        "Received",
        "MIME-Version",
    ]
)


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    headers=st.lists(st.tuples(header_name, st.text(max_size=80)), max_size=12), body=st.text(max_size=500)
)
def test_random_headers_and_text_never_escape(
    scan_fn: object, headers: list[tuple[str, str]], body: str
) -> None:
    raw = "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n" + body
    scan_fn(raw.encode("utf-8", "surrogateescape"))  # type: ignore[operator]
