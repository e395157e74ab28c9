"""True file type from magic bytes: a small ordered table plus container checks (OOXML, OLE2, PE, ISO)."""

from __future__ import annotations

import re
import struct

FileType = tuple[str, str]  # (mime type, extension); ("", "") when unknown

_UNKNOWN: FileType = ("", "")

# Fixed signatures at offset 0, checked in order (longer/more specific first).
_PREFIXES: tuple[tuple[bytes, FileType], ...] = (
    (b"\x89PNG\r\n\x1a\n", ("image/png", "png")),
    (b"\xff\xd8\xff", ("image/jpeg", "jpg")),
    (b"GIF87a", ("image/gif", "gif")),
    (b"GIF89a", ("image/gif", "gif")),
    (b"II*\x00", ("image/tiff", "tif")),
    (b"MM\x00*", ("image/tiff", "tif")),
    (b"%PDF-", ("application/pdf", "pdf")),
    (b"{\\rtf", ("application/rtf", "rtf")),
    (b"7z\xbc\xaf\x27\x1c", ("application/x-7z-compressed", "7z")),
    (b"Rar!\x1a\x07", ("application/vnd.rar", "rar")),
    (b"\x1f\x8b", ("application/gzip", "gz")),
    (b"BZh", ("application/x-bzip2", "bz2")),
    (b"\xfd7zXZ\x00", ("application/x-xz", "xz")),
    (b"\x28\xb5\x2f\xfd", ("application/zstd", "zst")),
    (b"MSCF\x00\x00\x00\x00", ("application/vnd.ms-cab-compressed", "cab")),
    (b"ITSF", ("application/vnd.ms-htmlhelp", "chm")),
    (b"\x7fELF", ("application/x-executable", "elf")),
    (b"vhdxfile", ("application/x-vhdx", "vhdx")),
    (b"conectix", ("application/x-vhd", "vhd")),
    (b"\x4c\x00\x00\x00\x01\x14\x02\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00\x46", ("application/x-ms-shortcut", "lnk")),
    (b"\xe4\x52\x5c\x7b\x8c\xd8\xa7\x4d\xae\xb1\x53\x78\xd0\x29\x96\xd3", ("application/onenote", "one")),
    (b"\xca\xfe\xba\xbe", ("application/java-vm", "class")),
    (b"\xcf\xfa\xed\xfe", ("application/x-mach-binary", "macho")),
    (b"OggS", ("audio/ogg", "ogg")),
    (b"ID3", ("audio/mpeg", "mp3")),
    (b"fLaC", ("audio/flac", "flac")),
    (b"\x1aE\xdf\xa3", ("video/webm", "webm")),
    (b"wOFF", ("font/woff", "woff")),
    (b"wOF2", ("font/woff2", "woff2")),
    (b"-----BEGIN PGP", ("application/pgp-encrypted", "asc")),
    (b"\x00asm", ("application/wasm", "wasm")),
    (b"!<arch>\n", ("application/x-archive", "a")),
    (b"#!", ("text/x-script", "sh")),
    (b"BEGIN:VCALENDAR", ("text/calendar", "ics")),
    (b"BEGIN:VCARD", ("text/vcard", "vcf")),
)
OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_MSI_CLSID = b"\x84\x10\x0c\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00\x46"
_TEXT_CTRL = re.compile(rb"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\x7f]")
_HEADER_LINE = re.compile(rb"^[A-Za-z0-9][A-Za-z0-9-]{0,60}:[ \t]?\S", re.M)
_EML_HEADERS = re.compile(
    rb"^(?:from|to|subject|date|received|return-path|message-id|mime-version|delivered-to|x-[a-z0-9-]+):", re.I | re.M
)
_HTML_START = re.compile(
    rb"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body|meta|script|title|iframe|div|table|p|a|form|style|svg|center|font|span)\b",
    re.I | re.S,
)
_ODF = {
    b"application/vnd.oasis.opendocument.text": ("application/vnd.oasis.opendocument.text", "odt"),
    b"application/vnd.oasis.opendocument.spreadsheet": ("application/vnd.oasis.opendocument.spreadsheet", "ods"),
    b"application/vnd.oasis.opendocument.presentation": ("application/vnd.oasis.opendocument.presentation", "odp"),
    b"application/vnd.oasis.opendocument.graphics": ("application/vnd.oasis.opendocument.graphics", "odg"),
    b"application/epub+zip": ("application/epub+zip", "epub"),
}
# How far into a zip we look for member names (local headers carry them; the central directory is at the end).
_ZIP_SCAN = 4 * 1024 * 1024


def sniff(data: bytes) -> FileType:
    """(mime type, extension) of data from its bytes alone; ("", "") when nothing matches."""
    if not data:
        return _UNKNOWN
    head = data[:64]
    if head.startswith(_ZIP):
        return _zip_type(data)
    if head.startswith(OLE2_MAGIC):
        return _ole_type(data)
    if head.startswith(b"MZ"):
        return _pe_type(data)
    for sig, ftype in _PREFIXES:
        if head.startswith(sig):
            return ftype
    if head[:1] == b"\x30" and b"\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07" in head[:40]:
        # DER PKCS#7 (signed .mobileconfig profiles, .p7m/.p7s): ASN.1 SEQUENCE with a pkcs7 content-type OID
        return ("application/pkcs7-mime", "p7m")
    if head.startswith(b"RIFF") and len(head) >= 12:
        kind = head[8:12]
        if kind == b"WEBP":
            return ("image/webp", "webp")
        if kind == b"WAVE":
            return ("audio/wav", "wav")
        if kind == b"AVI ":
            return ("video/x-msvideo", "avi")
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return ("image/avif", "avif")
        if brand in (b"heic", b"heix", b"mif1", b"msf1", b"hevc"):
            return ("image/heic", "heic")
        return ("video/mp4", "mp4")
    if head.startswith(b"BM") and len(head) >= 18 and head[14] in (12, 40, 52, 56, 64, 108, 124) and head[15:18] == b"\0\0\0":
        return ("image/bmp", "bmp")
    if head.startswith((b"\x00\x00\x01\x00", b"\x00\x00\x02\x00")) and len(head) >= 22:
        count = head[4] | head[5] << 8
        if 0 < count <= 256 and head[9] == 0:
            return ("image/x-icon", "ico") if head[2] == 1 else ("image/x-icon", "cur")
    if _pdf_after_junk(data):
        return ("application/pdf", "pdf")
    if len(data) > 0x8006:
        for off in (0x8001, 0x8801, 0x9001):
            if data[off : off + 5] in (b"CD001", b"BEA01", b"NSR02", b"NSR03"):
                return ("application/x-iso9660-image", "iso")
    if len(data) >= 262 and data[257:262] == b"ustar":
        return ("application/x-tar", "tar")
    if len(data) >= 512 and data[-512:-504] == b"conectix":  # fixed VHD keeps its footer at the end
        return ("application/x-vhd", "vhd")
    if len(data) >= 512 and data[510:512] == b"\x55\xaa" and (
        data[0x36:0x3B] in (b"FAT12", b"FAT16") or data[0x52:0x57] == b"FAT32" or data[3:11] == b"NTFS    "
        or data[0] in (0xEB, 0xE9)
    ):
        return ("application/x-raw-disk-image", "img")
    return _text_type(data)


def is_pdf(data: bytes) -> bool:
    """A PDF as readers see one: the header at the start, or within the first kilobyte after
    other bytes (`_pdf_after_junk`). The one test of "is this a PDF" for file types, attachment
    kinds, documents read and QR codes looked for."""
    return data.startswith(b"%PDF-") or _pdf_after_junk(data)


def _pdf_after_junk(data: bytes) -> bool:
    """A PDF whose header follows other bytes: readers (and pdfium) look for it in the first
    kilobyte, so a kit prepends junk to hide the file's type from filters (a 2023 phishing PDF in
    the corpus does). Text that merely names the header has no objects after it."""
    at = data.find(b"%PDF-", 0, 1024)
    return at > 0 and b" obj" in data[at : at + 65536]


def _zip_type(data: bytes) -> FileType:
    if data[30:38] == b"mimetype":  # ODF/EPUB store their type uncompressed as the first member
        for key, ftype in _ODF.items():
            if data[38 : 38 + len(key)] == key:
                return ftype
    scan = data if len(data) <= 2 * _ZIP_SCAN else data[:_ZIP_SCAN] + data[-_ZIP_SCAN:]
    if b"[Content_Types].xml" in scan:
        macro = b"vbaProject.bin" in scan
        if b"word/" in scan:
            return ("application/vnd.ms-word.document.macroEnabled.12", "docm") if macro else (
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx")
        if b"xl/" in scan:
            return ("application/vnd.ms-excel.sheet.macroEnabled.12", "xlsm") if macro else (
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx")
        if b"ppt/" in scan:
            return ("application/vnd.ms-powerpoint.presentation.macroEnabled.12", "pptm") if macro else (
                "application/vnd.openxmlformats-officedocument.presentationml.presentation", "pptx")
        if b"visio/" in scan:
            return ("application/vnd.ms-visio.drawing", "vsdx")
        return ("application/vnd.openxmlformats-package", "ooxml")
    if b"AndroidManifest.xml" in scan and b"classes.dex" in scan:
        return ("application/vnd.android.package-archive", "apk")
    if b"META-INF/MANIFEST.MF" in scan or b".class" in scan:
        return ("application/java-archive", "jar")
    return ("application/zip", "zip")


def _ole_type(data: bytes) -> FileType:
    scan = data[: 2 * 1024 * 1024] if len(data) > 4 * 1024 * 1024 else data
    if _MSI_CLSID in scan[:4096] or _MSI_CLSID in scan:
        return ("application/x-msi", "msi")
    if "WordDocument".encode("utf-16-le") in scan:
        return ("application/msword", "doc")
    if "Workbook".encode("utf-16-le") in scan or "Book".encode("utf-16-le") + b"\x00\x00" in scan:
        return ("application/vnd.ms-excel", "xls")
    if "PowerPoint Document".encode("utf-16-le") in scan:
        return ("application/vnd.ms-powerpoint", "ppt")
    if "__substg1.0_".encode("utf-16-le") in scan:
        return ("application/vnd.ms-outlook", "msg")
    if "EncryptedPackage".encode("utf-16-le") in scan:
        return ("application/x-ole-encrypted-ooxml", "ole")
    return ("application/x-ole-storage", "ole")


def _pe_type(data: bytes) -> FileType:
    if len(data) >= 0x40:
        (pe_off,) = struct.unpack_from("<I", data, 0x3C)
        if 0x40 <= pe_off <= len(data) - 24 and data[pe_off : pe_off + 4] == b"PE\x00\x00":
            (characteristics,) = struct.unpack_from("<H", data, pe_off + 22)
            if characteristics & 0x2000:
                return ("application/x-msdownload", "dll")
            return ("application/x-dosexec", "exe")
    if len(data) >= 28 and _TEXT_CTRL.search(data[:512]):
        return ("application/x-dosexec", "exe")  # DOS stub without a PE header
    return _text_type(data)


def _text_type(data: bytes) -> FileType:
    head = data[:2048]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            head = data[:4096].decode("utf-16").encode("utf-8", "replace")[:2048]
        except UnicodeDecodeError:
            return _UNKNOWN
    elif head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    if _TEXT_CTRL.search(head):
        return _UNKNOWN
    lower = head.lower()
    if b"<svg" in lower and (lower.lstrip().startswith((b"<svg", b"<?xml", b"<!doctype svg", b"<!--"))):
        return ("image/svg+xml", "svg")
    if _HTML_START.match(head) or b"<html" in lower or b"<!doctype html" in lower:
        if b"<hta:application" in lower:
            return ("application/hta", "hta")
        return ("text/html", "html")
    if lower.lstrip().startswith(b"<?xml"):
        return ("application/xml", "xml")
    if _HEADER_LINE.match(head) and len(_EML_HEADERS.findall(head)) >= 2:
        return ("message/rfc822", "eml")
    return ("text/plain", "txt")


def is_image(ftype: FileType) -> bool:
    return ftype[0].startswith("image/")
