"""True file type from magic bytes (and container structure), in the vocabulary the attachment engines use."""

from __future__ import annotations

import io
import zipfile

from mailmoat.parse.filetype import is_pdf

# extension -> mime type, for every type the engines care about
MIME: dict[str, str] = {
    "exe": "application/x-dosexec",
    "dll": "application/x-dosexec",
    "elf": "application/x-executable",
    "macho": "application/x-mach-binary",
    "msi": "application/x-msi",
    "lnk": "application/x-ms-shortcut",
    "iso": "application/x-iso9660-image",
    "vhd": "application/x-vhd",
    "vhdx": "application/x-vhdx",
    "one": "application/onenote",
    "cab": "application/vnd.ms-cab-compressed",
    "jar": "application/java-archive",
    "apk": "application/vnd.android.package-archive",
    "zip": "application/zip",
    "7z": "application/x-7z-compressed",
    "rar": "application/vnd.rar",
    "tar": "application/x-tar",
    "gz": "application/gzip",
    "bz2": "application/x-bzip2",
    "xz": "application/x-xz",
    "ace": "application/x-ace-compressed",
    "arj": "application/x-arj",
    "pdf": "application/pdf",
    "rtf": "text/rtf",
    "doc": "application/msword",
    "xls": "application/vnd.ms-excel",
    "ppt": "application/vnd.ms-powerpoint",
    "msg": "application/vnd.ms-outlook",
    "ole": "application/x-ole-storage",
    "office-encrypted": "application/x-ole-encrypted-package",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "docm": "application/vnd.ms-word.document.macroenabled.12",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "xlsm": "application/vnd.ms-excel.sheet.macroenabled.12",
    "xlsb": "application/vnd.ms-excel.sheet.binary.macroenabled.12",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "pptm": "application/vnd.ms-powerpoint.presentation.macroenabled.12",
    "odt": "application/vnd.oasis.opendocument.text",
    "ods": "application/vnd.oasis.opendocument.spreadsheet",
    "odp": "application/vnd.oasis.opendocument.presentation",
    "png": "image/png",
    "jpg": "image/jpeg",
    "gif": "image/gif",
    "bmp": "image/bmp",
    "tif": "image/tiff",
    "webp": "image/webp",
    "ico": "image/x-icon",
    "svg": "image/svg+xml",
    "html": "text/html",
    "eml": "message/rfc822",
    "txt": "text/plain",
    "swf": "application/x-shockwave-flash",
    "p7m": "application/pkcs7-mime",
    "plist": "application/x-plist",
    "ics": "text/calendar",
    "class": "application/java-vm",
}

ARCHIVE_EXTS = frozenset({"zip", "7z", "rar", "tar", "gz", "bz2", "xz", "iso", "jar", "cab", "ace", "arj"})
OFFICE_EXTS = frozenset({"doc", "xls", "ppt", "docx", "docm", "xlsx", "xlsm", "xlsb", "pptx", "pptm", "rtf", "ole", "office-encrypted"})
# true types that run code when opened or mounted
EXECUTABLE_EXTS = frozenset({"exe", "dll", "elf", "macho", "msi", "lnk", "iso", "vhd", "vhdx", "one", "jar", "class", "apk"})

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ONENOTE_MAGIC = bytes.fromhex("e4525c7b8cd8a74daeb15378d02996d3")
_LNK_MAGIC = bytes.fromhex("4c0000000114020000000000c000000000000046")
_MSI_CLSID = bytes.fromhex("84100c0000000000c000000000000046")  # {000C1084-...} little-endian


def mime_of(ext: str) -> str:
    return MIME.get(ext, "application/octet-stream" if ext else "")


def _pe_kind(data: bytes) -> str:
    if len(data) < 0x40:
        return "exe"  # a bare MZ stub still runs as a DOS program
    off = int.from_bytes(data[0x3C:0x40], "little")
    if off + 24 <= len(data) and data[off : off + 4] == b"PE\0\0":
        characteristics = int.from_bytes(data[off + 22 : off + 24], "little")
        return "dll" if characteristics & 0x2000 else "exe"
    return "exe"


def _zip_kind(data: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = zf.namelist()[:5000]
            mimetype = b""
            if "mimetype" in names:
                info = zf.getinfo("mimetype")
                if info.file_size < 200:
                    mimetype = zf.read("mimetype")
    except Exception:  # zipfile raises many types on damaged input (zlib.error, struct.error ...)
        return "zip"
    lower = {n.lower() for n in names}
    if "[content_types].xml" in lower:
        macro = any(n.endswith("vbaproject.bin") for n in lower)
        if any(n.startswith("word/") for n in lower):
            return "docm" if macro else "docx"
        if any(n.startswith("xl/") for n in lower):
            if any(n.endswith(".bin") and n.startswith("xl/worksheets/") for n in lower) or "xl/workbook.bin" in lower:
                return "xlsb"
            return "xlsm" if macro else "xlsx"
        if any(n.startswith("ppt/") for n in lower):
            return "pptm" if macro else "pptx"
    if mimetype.startswith(b"application/vnd.oasis.opendocument."):
        kind = mimetype.rsplit(b".", 1)[-1]
        return {b"text": "odt", b"spreadsheet": "ods", b"presentation": "odp"}.get(kind, "zip")
    if "androidmanifest.xml" in lower and "classes.dex" in lower:
        return "apk"
    if "meta-inf/manifest.mf" in lower and any(n.endswith(".class") for n in lower):
        return "jar"
    return "zip"


def _ole_kind(data: bytes) -> str:
    import olefile

    try:
        ole = olefile.OleFileIO(data)
    except Exception:  # olefile raises many types on damaged input
        return "ole"
    try:
        names = {"/".join(e).lower() for e in ole.listdir(streams=True, storages=True)}
        root_clsid = (ole.root.clsid or "").upper() if ole.root is not None else ""
    finally:
        ole.close()
    if root_clsid == "000C1084-0000-0000-C000-000000000046":
        return "msi"
    if "encryptedpackage" in names:
        return "office-encrypted"
    if "worddocument" in names:
        return "doc"
    if "workbook" in names or "book" in names:
        return "xls"
    if "powerpoint document" in names:
        return "ppt"
    if any(n.startswith("__substg1.0_") for n in names):
        return "msg"
    return "ole"


def _text_kind(data: bytes) -> str:
    head = data[:4096]
    if head.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        if head.startswith(b"\xef\xbb\xbf"):
            head = head[3:]
        else:
            codec = "utf-16-le" if head.startswith(b"\xff\xfe") else "utf-16-be"
            head = head[2:].decode(codec, "ignore").encode("utf-8", "ignore")
    lower = head.lower().lstrip()
    if b"<svg" in lower[:2048] and (lower.startswith((b"<svg", b"<?xml", b"<!doctype svg", b"<!--"))):
        return "svg"
    html_marks = (b"<html", b"<!doctype html", b"<head", b"<body", b"<script", b"<meta", b"<iframe", b"<form", b"<title")
    if lower.startswith(html_marks) or any(m in lower[:1024] for m in html_marks):
        return "html"
    if lower.startswith(b"{\\rt"):
        return "rtf"
    if lower.startswith(b"begin:vcalendar"):
        return "ics"
    if b"<plist" in lower[:512] and lower.startswith((b"<?xml", b"<!doctype plist", b"<plist")):
        return "plist"
    first = lower.split(b"\n", 1)[0]
    if any(first.startswith(h) for h in (b"received:", b"return-path:", b"from:", b"mime-version:", b"message-id:", b"delivered-to:")):
        return "eml"
    if not head:
        return ""
    controls = sum(1 for b in head if b < 9 or 13 < b < 32)
    if controls * 100 <= len(head):
        return "txt"
    return ""


def sniff(data: bytes) -> str:
    """The true extension of `data` ("" when unknown): what the bytes are, whatever the name says."""
    if not data:
        return ""
    if data.startswith(b"MZ"):
        return _pe_kind(data)
    if data.startswith(b"\x7fELF"):
        return "elf"
    if data[:4] in (b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe", b"\xfe\xed\xfa\xcf", b"\xfe\xed\xfa\xce"):
        return "macho"
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")):
        return _zip_kind(data)
    if data.startswith(OLE_MAGIC):
        return _ole_kind(data)
    if is_pdf(data):
        return "pdf"
    if data.startswith(b"{\\rt"):
        return "rtf"
    if data.startswith(b"Rar!\x1a\x07"):
        return "rar"
    if data.startswith(b"7z\xbc\xaf\x27\x1c"):
        return "7z"
    if data.startswith(b"\x1f\x8b"):
        return "gz"
    if data.startswith(b"BZh") and data[3:4].isdigit():
        return "bz2"
    if data.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if data[257:262] == b"ustar":
        return "tar"
    if any(data[o : o + 5] in (b"CD001", b"BEA01", b"NSR02", b"NSR03") for o in (0x8001, 0x8801, 0x9001)):
        return "iso"
    if data.startswith(_LNK_MAGIC):
        return "lnk"
    if data.startswith(b"conectix") or data[-512:-504] == b"conectix":
        return "vhd"
    if data.startswith(b"vhdxfile"):
        return "vhdx"
    if data.startswith(_ONENOTE_MAGIC):
        return "one"
    if data.startswith(b"MSCF"):
        return "cab"
    if data[7:14] == b"**ACE**":
        return "ace"
    if data.startswith(b"\x60\xea"):
        return "arj"
    if data.startswith(b"0\x82") and b"\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07" in data[:40]:
        return "p7m"  # CMS/PKCS#7, e.g. a signed Apple configuration profile
    if data.startswith(b"bplist0"):
        return "plist"
    if data.startswith(b"\xca\xfe\xba\xbe"):
        return "class"
    if data.startswith((b"FWS", b"CWS", b"ZWS")):
        return "swf"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if data.startswith(b"BM") and len(data) > 26:
        return "bmp"
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return "tif"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "webp"
    if data.startswith(b"\x00\x00\x01\x00"):
        return "ico"
    return _text_kind(data)
