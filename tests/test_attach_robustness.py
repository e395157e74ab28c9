"""Damaged and hostile inputs: every engine gives a report, never an exception (deterministic mutations)."""

from __future__ import annotations

import random

from mailmoat.analyzers.archives import ArchiveAnalyzer
from mailmoat.analyzers.filetypes import FileTypeAnalyzer
from mailmoat.analyzers.htmlattach import HtmlAttachmentAnalyzer
from mailmoat.analyzers.office import OfficeAnalyzer
from mailmoat.analyzers.pdf import PdfAnalyzer
from mailmoat.attach.scan import expand_message
from mailmoat.config import Settings
from tests.support import attachgen as g


def _samples() -> list[tuple[str, bytes]]:
    return [
        ("a.docm", g.docm()),
        ("a.zip", g.zip_bytes({"x/e.com": g.EICAR, "y.zip": g.zip_bytes({"z.txt": b"z" * 500})})),
        ("a.pdf", g.pdf_openaction_js()),
        ("a.rtf", g.rtf_package("x.exe", b"MZ" * 50)),
        ("a.iso", g.iso_bytes({"a.lnk": g.lnk_bytes()})),
        ("a.rar", g.rar4({"e.com": g.EICAR})),
        ("a.html", g.html_smuggling(g.zip_bytes({"a.exe": b"MZ" * 800}))),
    ]


def _mutations(data: bytes, rng: random.Random) -> list[bytes]:
    out = [data[: len(data) * k // 8] for k in range(1, 8)]
    for _ in range(6):
        b = bytearray(data)
        for _ in range(max(1, len(b) // 200)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        out.append(bytes(b))
    return out


async def test_mutated_samples_never_raise(settings: Settings) -> None:
    rng = random.Random(20241128)
    for name, data in _samples():
        for i, mutated in enumerate(_mutations(data, rng)):
            msg = g.message([(name, mutated)])
            expand_message(msg, settings.attachments)
            findings = await g.run_analyzers(
                msg, settings, FileTypeAnalyzer, ArchiveAnalyzer, OfficeAnalyzer, PdfAnalyzer, HtmlAttachmentAnalyzer
            )
            assert all(f.symbol.isupper() for f in findings), (name, i)
