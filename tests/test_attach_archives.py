"""Archives: recursive unpacking, passwords from the body, encrypted archives, bombs within bounded memory."""

from __future__ import annotations

import io
import tarfile

import pytest

from mailmoat.analyzers.archives import ArchiveAnalyzer
from mailmoat.analyzers.filetypes import FileTypeAnalyzer
from mailmoat.attach.archives import passwords_from_text
from mailmoat.attach.scan import expand_message
from mailmoat.config import Settings
from tests.support import attachgen as g

EICAR = g.EICAR


def _eicar_locations(msg: g.Message, settings: Settings) -> list[str]:
    exp = expand_message(msg, settings.attachments)
    return [f.location for f in exp.files if f.data == EICAR]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The password: 1234", ["1234"]),
        ("附件密码：1234，请查收", ["1234"]),
        ("解压口令 8899", ["8899"]),
        ("附件密碼：5566，請查收", ["5566"]),  # Traditional characters
        ("解壓碼為 HX2026", ["HX2026"]),
        ("pwd=Inv2024!", ["Inv2024"]),
        ("Password is \"Q3-report\". Thanks", ["Q3-report"]),
        ("Nothing to see here", []),
        # a few words may say what the password opens when a colon follows them
        ("Senha do arquivo em anexo: 123", ["123"]),
        ("The password for the attached PDF: Qx7 thanks", ["Qx7"]),
        ("Please reset your password today. Regards: me", ["today"]),  # not across a sentence
        ("SU CONTRASENA PERSONAL  {0808}", ["0808"]),
        ("解压密码【8899】", ["8899"]),
        ("Password [Q3-2026] for the report", ["Q3-2026"]),
    ],
)
def test_passwords_from_text(text: str, expected: list[str]) -> None:
    assert passwords_from_text(text) == expected


def test_eicar_plain_zipped_double_zipped(settings: Settings) -> None:
    once = g.zip_bytes({"eicar.com": EICAR})
    twice = g.zip_bytes({"inner.zip": once})
    msg = g.message([("eicar.com", EICAR), ("one.zip", once), ("two.zip", twice)])
    assert _eicar_locations(msg, settings) == ["eicar.com", "one.zip > eicar.com", "two.zip > inner.zip > eicar.com"]


@pytest.mark.parametrize("text", ["Invoice attached. Password: 1234", "发票见附件，密码：1234"])
async def test_password_zip_opened_with_body_password(settings: Settings, text: str) -> None:
    msg = g.message([("invoice.zip", g.aes_zip({"invoice.com": EICAR}, "1234"))], text=text)
    assert _eicar_locations(msg, settings) == ["invoice.zip > invoice.com"]
    found = g.by_symbol(await g.run_analyzers(msg, settings, ArchiveAnalyzer))
    assert "ARCHIVE_PASSWORD_IN_BODY" in found and "ARCHIVE_ENCRYPTED" not in found


async def test_password_zip_holding_only_documents_is_a_weaker_sign(settings: Settings) -> None:
    import docx

    buf = io.BytesIO()
    docx.Document().save(buf)
    text = "附件是报价单，按保密要求已加密，解压密码：HX2026"
    docs = g.aes_zip({"报价单.docx": buf.getvalue()}, "HX2026")
    found = g.by_symbol(await g.run_analyzers(g.message([("quote.zip", docs)], text=text), settings, ArchiveAnalyzer))
    f = found["ARCHIVE_PASSWORD_IN_BODY"]
    assert f.score == 1.5 and f.evidence.endswith("only documents inside (docx)")
    # A macro document or a program inside keeps the full weight, also beside a documents-only one.
    for other in ({"quote.docm": g.docm()}, {"run.exe": EICAR}):
        msg = g.message([("quote.zip", docs), ("more.zip", g.aes_zip(other, "HX2026"))], text=text)
        found = g.by_symbol(await g.run_analyzers(msg, settings, ArchiveAnalyzer))
        assert found["ARCHIVE_PASSWORD_IN_BODY"].score == 4.0


async def test_password_zip_without_password_is_flagged_and_names_still_checked(settings: Settings) -> None:
    msg = g.message([("invoice.zip", g.aes_zip({"invoice.exe": EICAR}, "s3cret"))], text="see attachment")
    found = g.by_symbol(await g.run_analyzers(msg, settings, ArchiveAnalyzer, FileTypeAnalyzer))
    assert "ARCHIVE_ENCRYPTED" in found
    assert "invoice.zip > invoice.exe" in found["ATTACH_BLOCKED_TYPE"].evidence


def test_seven_zip_tar_gz_bz2_xz(settings: Settings) -> None:
    import bz2
    import gzip
    import lzma

    import py7zr

    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w") as z:
        z.writestr(EICAR, "a/eicar.com")
    sz = buf.getvalue()
    enc = io.BytesIO()
    with py7zr.SevenZipFile(enc, "w", password="pw77") as z:
        z.writestr(EICAR, "e.com")
    tbuf = io.BytesIO()
    with tarfile.open(fileobj=tbuf, mode="w") as tf:
        info = tarfile.TarInfo("t/eicar.com")
        info.size = len(EICAR)
        tf.addfile(info, io.BytesIO(EICAR))
    msg = g.message(
        [("a.7z", sz), ("e.7z", enc.getvalue()), ("b.tar.gz", gzip.compress(tbuf.getvalue())),
         ("c.bz2", bz2.compress(EICAR)), ("d.xz", lzma.compress(EICAR))],
        text="password: pw77",
    )
    assert _eicar_locations(msg, settings) == [
        "a.7z > a/eicar.com", "e.7z > e.com", "b.tar.gz > b.tar > t/eicar.com", "c.bz2 > c", "d.xz > d",
    ]


async def test_zip_bomb_is_a_finding_and_memory_stays_bounded(settings: Settings) -> None:
    settings.attachments.archive_max_member = 4 * 1024 * 1024
    bomb = g.zip_bomb(256 * 1024 * 1024)  # 256 MiB of zeros in about 250 KB
    msg = g.message([("report.zip", bomb)])
    exp = expand_message(msg, settings.attachments)
    member = [f for f in exp.files if f.depth == 1]
    assert member and member[0].data is None  # never held in memory
    found = g.by_symbol(await g.run_analyzers(msg, settings, ArchiveAnalyzer))
    assert found["ARCHIVE_BOMB"].score >= settings.policy.thresholds.quarantine


async def test_nested_archive_bomb(settings: Settings) -> None:
    settings.attachments.archive_max_total = 16 * 1024 * 1024
    bomb = g.nested_bomb(levels=5, copies=6, base=2 * 1024 * 1024)  # 15 GiB if fully expanded
    msg = g.message([("42.zip", bomb)])
    exp = expand_message(msg, settings.attachments)
    assert sum(f.size for f in exp.files if f.depth) <= 16 * 1024 * 1024 + 2 * 1024 * 1024
    found = g.by_symbol(await g.run_analyzers(msg, settings, ArchiveAnalyzer))
    assert {"ARCHIVE_BOMB", "ARCHIVE_TOO_DEEP"} & set(found)
    assert "ARCHIVE_NESTED" in found


async def test_member_count_limit(settings: Settings) -> None:
    settings.attachments.archive_max_members = 10
    msg = g.message([("many.zip", g.zip_bytes({f"f{i}.txt": b"x" for i in range(50)}))])
    found = g.by_symbol(await g.run_analyzers(msg, settings, ArchiveAnalyzer))
    assert "ARCHIVE_LIMIT" in found


async def test_names_past_the_member_limit_are_still_checked(settings: Settings) -> None:
    """Thousands of dummy files, then the program: past the member limit a zip's names are read
    already, and a blocked one is blocked by its name (it was delivered at 4)."""
    settings.attachments.archive_max_members = 10
    members = {f"scan{i:04d}.txt": b"x" for i in range(40)} | {"invoice.exe": b"MZ" + bytes(300)}
    msg = g.message([("invoices.zip", g.zip_bytes(members))])
    found = g.by_symbol(await g.run_analyzers(msg, settings, ArchiveAnalyzer, FileTypeAnalyzer))
    assert "ARCHIVE_LIMIT" in found
    assert "invoices.zip > invoice.exe" in found["ATTACH_BLOCKED_TYPE"].evidence


async def test_corrupt_archive(settings: Settings) -> None:
    broken = g.zip_bytes({"a.txt": b"hello" * 100})[:-30]
    found = g.by_symbol(await g.run_analyzers(g.message([("a.zip", broken)]), settings, ArchiveAnalyzer))
    assert "ARCHIVE_CORRUPT" in found


def test_zip_member_names_in_gbk(settings: Settings) -> None:
    # Chinese archivers write GBK names without the UTF-8 flag: patch the raw bytes in
    raw = g.zip_bytes({"XXXX.exe": b"MZ"}).replace(b"XXXX.exe", "发票.exe".encode("gbk"))
    exp = expand_message(g.message([("a.zip", raw)]), settings.attachments)
    assert [f.name for f in exp.files if f.depth] == ["发票.exe"]


async def test_rar_stored_members_and_unreadable_compressed_member(settings: Settings) -> None:
    stored = g.rar4({"eicar.com": EICAR, "x/run.exe": b"MZ" + b"\0" * 60})
    packed = g.rar4({"a.exe": b"MZ" * 100}, method=0x33)  # declares compression, carries junk
    msg = g.message([("a.rar", stored), ("b.rar", packed)])
    assert _eicar_locations(msg, settings) == ["a.rar > eicar.com"]
    found = g.by_symbol(await g.run_analyzers(msg, settings, ArchiveAnalyzer, FileTypeAnalyzer))
    assert {"ARCHIVE_UNSUPPORTED", "ARCHIVE_CORRUPT"} & set(found)
    blocked = {f["location"] for f in found["ATTACH_BLOCKED_TYPE"].data["files"]}
    assert {"a.rar > x/run.exe", "b.rar > a.exe"} <= blocked  # names count even when the bytes cannot be read


async def test_encrypted_7z_without_password(settings: Settings) -> None:
    import py7zr

    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w", password="hidden") as z:
        z.writestr(EICAR, "e.com")
    found = g.by_symbol(await g.run_analyzers(g.message([("e.7z", buf.getvalue())]), settings, ArchiveAnalyzer))
    assert "ARCHIVE_ENCRYPTED" in found


async def test_an_encrypted_7z_bomb_is_not_unpacked_to_test_its_password(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The message gives the password of an encrypted 7z whose header declares more than the
    limits: testing the password would unpack it all (a 156 KB attachment took 10 s and 555 MB)."""
    import py7zr

    settings.attachments.archive_max_member = 1024 * 1024
    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w", password="Qx7341", header_encryption=True) as z:
        z.writestr(bytes(4 * 1024 * 1024), "big.bin")

    def unpacks(self: object) -> None:
        raise AssertionError("the password was tested by unpacking the archive")

    monkeypatch.setattr(py7zr.SevenZipFile, "testzip", unpacks)
    msg = g.message([("payroll.7z", buf.getvalue())], text="Password: Qx7341")
    found = g.by_symbol(await g.run_analyzers(msg, settings, ArchiveAnalyzer))
    assert "ARCHIVE_BOMB" in found and "declares" in found["ARCHIVE_BOMB"].evidence


async def test_cabinet_files_are_said_to_be_unopened(settings: Settings) -> None:
    cab = b"MSCF\x00\x00\x00\x00" + bytes(64)  # a Cabinet header: sniffed as an archive, not unpacked here
    found = g.by_symbol(await g.run_analyzers(g.message([("invoice.cab", cab)]), settings, ArchiveAnalyzer))
    assert "ARCHIVE_UNSUPPORTED" in found and "CAB archives are not unpacked" in found["ARCHIVE_UNSUPPORTED"].evidence
