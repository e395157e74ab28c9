"""Crafted text against the whole scanner: time per message stays close to an ordinary message's.

    .venv/bin/python bench/hostile_text.py [--repeat N]

Each case is one message built to make a text scan slow: tens of thousands of letters in one run
(no "@", no space), a display name of that size, a host of 20,000 labels, runs of "www.", marks
and invisible characters on every letter, long Chinese text, link texts made of "a.", a .docx
whose relationship tag holds a long run of letters, HTML made of unclosed tags, hosts that look
like Amazon S3 endpoints, long base64 link values, a display name written letter by letter, PDF
and Word attachments full of text (one locked, with a dozen wrong passwords in the body), an OLE
file whose directory holds 40,000 streams, a zip
of a thousand PDFs, an RTF file of two million escaped bytes. Every
message is scanned by the
full `Scanner` (every analyzer, default policy) with a small trained classifier model, so the
classifier's tokeniser runs too. The figure is the best of N scans in milliseconds, and its ratio
to an ordinary 10 KB message scanned in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import struct
import tempfile
import time
import zipfile
from collections.abc import Callable
from email.message import EmailMessage

from mailmoat.classify import model_path
from mailmoat.classify.bayes import BayesModel
from mailmoat.classify.tokens import message_tokens
from mailmoat.config import Settings
from mailmoat.model import Envelope
from mailmoat.parse import parse
from mailmoat.scanner import Scanner

ORDINARY = (
    "Hi Bob,\r\n\r\nthanks for the notes from Tuesday. I moved the review to Thursday afternoon and "
    "added Carol, who wrote the migration plan. See https://wiki.example.org/plans/q3 before then.\r\n\r\n"
)


def message(
    body: str, *, ctype: str = "text/plain", subject: str = "Notes", display: str = "Alice", extra: str = ""
) -> bytes:
    head = (
        f"From: {display} <alice@example.org>\r\nTo: bob@example.net\r\nSubject: {subject}\r\n{extra}"
        "Date: Mon, 2 Nov 2026 09:00:00 +0000\r\nMessage-ID: <1@example.org>\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: {ctype}; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    )
    return head.encode() + body.encode("utf-8")


def docx_with_long_attribute(n: int) -> bytes:
    """A .docx whose relationship tag carries a run of `n` letters with no "=" after it."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.'
            'wordprocessingml.document.main+xml"/></Types>',
        )
        z.writestr(
            "word/document.xml",
            '<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
            "<w:body><w:p><w:r><w:t>Hi</w:t></w:r></w:p></w:body></w:document>",
        )
        z.writestr(
            "word/_rels/document.xml.rels",
            '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f'<Relationship Id="rId1" {"a" * n} Target="http://x.example/" TargetMode="External"/></Relationships>',
        )
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "Alice <alice@example.org>", "bob@example.net", "Document"
    m.set_content("See the attached document.")
    m.add_attachment(
        buf.getvalue(),
        maintype="application",
        subtype="vnd.openxmlformats-officedocument.wordprocessingml.document",
        filename="report.docx",
    )
    return m.as_bytes()


def with_attachment(name: str, data: bytes, body: str = "See the attached document.") -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "Alice <alice@example.org>", "bob@example.net", "Document"
    m.set_content(body)
    m.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return m.as_bytes()


def pdf_of_lines(pages: int, lines: int, password: str = "") -> bytes:
    """A PDF of `pages` pages with `lines` lines of text each, locked with `password` if given."""
    from reportlab.lib import pdfencrypt
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, encrypt=pdfencrypt.StandardEncryption(password, strength=128) if password else None)
    for _ in range(pages):
        c.setFont("Helvetica", 1)
        for n in range(lines):
            c.drawString(10, 800 - n * 0.4, "tax refund claim your payment now " * 3)
        c.showPage()
    c.save()
    return buf.getvalue()


def zipped(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def docx_of_runs(n: int) -> bytes:
    """A .docx whose body is `n` one-word text runs."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        z.writestr("word/document.xml", "<w:document><w:body><w:p>" + "<w:r><w:t>refund </w:t></w:r>" * n + "</w:p></w:body></w:document>")
    return buf.getvalue()


def ole_of_entries(n: int) -> bytes:
    """An OLE compound file (version 3, 512-byte sectors) whose directory holds `n` empty streams,
    laid out as a balanced tree: what a reader of stream names must walk entry by entry."""
    dir_sectors = (n + 3) // 4
    fat_sectors = 1
    while (fat_sectors + dir_sectors + 127) // 128 > fat_sectors:
        fat_sectors += 1
    end, free, fat_mark = 0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFD
    fat = [fat_mark] * fat_sectors + [free] * (fat_sectors * 128 - fat_sectors)
    for k in range(dir_sectors):
        fat[fat_sectors + k] = fat_sectors + k + 1 if k < dir_sectors - 1 else end
    head = bytearray(512)
    head[0:8] = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
    struct.pack_into("<HHHHH", head, 24, 0x3E, 3, 0xFFFE, 9, 6)
    struct.pack_into("<IIIIIIIII", head, 44, fat_sectors, fat_sectors, 0, 4096, end, 0, end, 0, 0)
    struct.pack_into("<109I", head, 76, *(list(range(fat_sectors)) + [free] * (109 - fat_sectors)))
    entries = bytearray()
    for i in range(dir_sectors * 4):
        e = bytearray(128)
        left = right = child = free
        if i < n:
            name = ("Root Entry" if i == 0 else f"s{i}").encode("utf-16-le") + b"\0\0"
            e[0 : len(name)] = name
            struct.pack_into("<HBB", e, 64, len(name), 5 if i == 0 else 2, 1)
            if i == 0:
                child = 1
            else:
                left = 2 * i if 2 * i < n else free
                right = 2 * i + 1 if 2 * i + 1 < n else free
        struct.pack_into("<III", e, 68, left, right, child)
        struct.pack_into("<I", e, 116, end)
        entries += e
    return bytes(head) + struct.pack(f"<{len(fat)}I", *fat) + bytes(entries)


CASES: dict[str, Callable[[], bytes]] = {
    "ordinary 10 KB (reference)": lambda: message(ORDINARY * 40),
    "60,000 letters in one run": lambda: message("a" * 60_000),
    "60,000 letters in one run, HTML": lambda: message("<p>" + "a" * 60_000 + "</p>", ctype="text/html"),
    "display name of 60,000 letters": lambda: message(ORDINARY, display="a" * 60_000),
    "display name of 10,000 words, each a brand's first word": lambda: message(ORDINARY, display="bank " * 10_000),
    "display name of 50,000 quoted commas": lambda: message(ORDINARY, display='"x,' * 50_000),
    "References of 100,000 identifiers": lambda: message(
        ORDINARY, extra="References: " + " ".join(f"<{i}@example.org>" for i in range(100_000)) + "\r\n"
    ),
    "host of 20,000 labels": lambda: message("http://" + "www." * 20_000 + "example.com/"),
    "20,000 'www.' without scheme": lambda: message("www." * 20_000),
    "40,000 'a.'": lambda: message("a." * 40_000),
    "a combining stroke on 60,000 letters": lambda: message("a\u0336" * 60_000),
    "a variation selector after 60,000 letters": lambda: message("a\U000e0139" * 60_000),
    "120,000 Chinese characters": lambda: message("工资补贴领取扫码" * 15_000),
    "lure terms of six languages over 60,000 characters": lambda: message(
        "verify your account Ihr Konto wurde gesperrt vérifiez votre identité sua conta foi bloqueada "
        "u bent geselecteerd free spins sin depósito " * 500
    ),
    "subject of 900 letters": lambda: message(ORDINARY, subject="a" * 900),
    "subject of 990 digits and a %": lambda: message(ORDINARY, subject="1" * 990 + "%"),
    "200 links, each shown as 250 × 'a.'": lambda: message(
        "".join(f'<a href="https://t{i}.example.com/">{"a." * 250}</a>' for i in range(200)), ctype="text/html"
    ),
    ".docx relationship with a 20,000-letter run": lambda: docx_with_long_attribute(20_000),
    "200 hosts 's3-a-a-…' (120 parts each)": lambda: message(
        " ".join(f"https://s3{'-a' * 120}.x{i}.example/" for i in range(200))
    ),
    "200 links with a 20,000-letter base64 value": lambda: message(
        " ".join(f"https://t{i}.example.com/c?u=aHR0c{'A' * 20_000}" for i in range(200))
    ),
    "display name of 30,000 letters written apart": lambda: message(ORDINARY, display="a " * 30_000),
    "Subject split mid-word on 12,000 lines": lambda: message(
        ORDINARY, subject="=?utf-8?B?YWJj\r\n" + "ab?= =?utf-8?B?YWJj\r\n" * 12_000 + "ab?="
    ),
    "HTML: 16,000 unclosed '<head'": lambda: message("<head" * 16_000, ctype="text/html"),
    "HTML: 20,000 hidden elements under 20,000 open ones": lambda: message(
        "<span>" * 20_000 + "<b style='display:none'>x</b>" * 20_000 + "</span>" * 20_000, ctype="text/html"
    ),
    "HTML: 20,000 nested elements of font size zero": lambda: message(
        "<span style='font-size:0'>x" * 20_000 + "</span>" * 20_000, ctype="text/html"
    ),
    "HTML: 128,000 '<'": lambda: message("<" * 128_000, ctype="text/html"),
    "PDF of 10 pages × 2,000 lines of text": lambda: with_attachment("a.pdf", pdf_of_lines(10, 2_000)),
    "the same PDF locked, 12 wrong passwords in the body": lambda: with_attachment(
        "a.pdf", pdf_of_lines(10, 2_000, "right"), " ".join(f"password: wrong{i}" for i in range(12))
    ),
    ".docx of 400,000 text runs": lambda: with_attachment("a.docx", docx_of_runs(400_000)),
    "zip of 1,000 small PDFs": lambda: with_attachment(
        "a.zip", zipped({f"{i}.pdf": pdf_of_lines(1, 3) for i in range(1_000)})
    ),
    "OLE file of 40,000 directory entries (5 MB)": lambda: with_attachment("a.doc", ole_of_entries(40_000)),
    "RTF of 2,000,000 escaped bytes": lambda: with_attachment("a.rtf", b"{\\rtf1\\ansicpg936 " + b"\\'b2\\'b9" * 1_000_000 + b"}"),
    "HTML table of 25 × 25 cells, 4 KB colour values": lambda: message(
        "<table>"
        + "".join(
            "<tr>"
            + "".join(f'<td style="background: #{(r * 25 + c) % 2 * 0xffffff:06x} {r}x{c} ' + "a " * 2_000 + '"></td>' for c in range(25))
            + "</tr>"
            for r in range(25)
        )
        + "</table>",
        ctype="text/html",
    ),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings()
        settings.data_dir = data_dir
        # A small model, so that the classifier analyzer tokenises every message.
        model = BayesModel()
        model.learn_tokens(message_tokens(parse(message(ORDINARY))), False)
        model.learn_tokens(message_tokens(parse(message("Claim your prize at http://win.example.top/"))), True)
        model.save(model_path(settings))
        scanner = Scanner(settings)
        env = Envelope(mail_from="alice@example.org", rcpt_tos=["bob@example.net"])
        loop = asyncio.new_event_loop()
        rows: list[tuple[str, float, str]] = []
        for name, build in CASES.items():
            raw = build()
            best = float("inf")
            action = ""
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                result = loop.run_until_complete(scanner.scan(raw, env))
                best = min(best, time.perf_counter() - t0)
                action = result.verdict.action.value
            rows.append((name, best * 1000, action))
        loop.close()
    ref = rows[0][1]
    print(f"## Crafted text, full scanner, best of {args.repeat}\n")
    print("| case | ms | × ordinary | verdict |")
    print("|---|---:|---:|---|")
    for name, ms, action in rows:
        print(f"| {name} | {ms:.1f} | {ms / ref:.1f} | {action} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
