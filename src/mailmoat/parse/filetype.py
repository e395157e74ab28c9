"""True file type from the bytes alone: the one sniffer for parsed parts, attachment engines and the QR image gate."""

from __future__ import annotations

import codecs
import contextlib
import io
import re
import struct
import zipfile

FileType = tuple[str, str]  # (mime type, extension); ("", "") when unknown

_UNKNOWN: FileType = ("", "")

# The vocabulary: every extension sniff() can answer, with its one mime type. The attachment
# engines (attach/sniff.py) and the rules speak in these extensions.
MIME: dict[str, str] = {
    # pictures
    "png": "image/png", "jpg": "image/jpeg", "gif": "image/gif", "tif": "image/tiff", "bmp": "image/bmp",
    "webp": "image/webp", "ico": "image/x-icon", "cur": "image/x-icon", "avif": "image/avif", "heic": "image/heic",
    "svg": "image/svg+xml",
    # documents
    "pdf": "application/pdf", "rtf": "application/rtf",
    "doc": "application/msword", "xls": "application/vnd.ms-excel", "ppt": "application/vnd.ms-powerpoint",
    "msg": "application/vnd.ms-outlook", "msi": "application/x-msi", "ole": "application/x-ole-storage",
    "office-encrypted": "application/x-ole-encrypted-ooxml",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "docm": "application/vnd.ms-word.document.macroEnabled.12",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "xlsm": "application/vnd.ms-excel.sheet.macroEnabled.12",
    "xlsb": "application/vnd.ms-excel.sheet.binary.macroEnabled.12",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "pptm": "application/vnd.ms-powerpoint.presentation.macroEnabled.12",
    "vsdx": "application/vnd.ms-visio.drawing", "ooxml": "application/vnd.openxmlformats-package",
    "odt": "application/vnd.oasis.opendocument.text", "ods": "application/vnd.oasis.opendocument.spreadsheet",
    "odp": "application/vnd.oasis.opendocument.presentation", "odg": "application/vnd.oasis.opendocument.graphics",
    "epub": "application/epub+zip", "one": "application/onenote", "chm": "application/vnd.ms-htmlhelp",
    # archives and disk images
    "zip": "application/zip", "jar": "application/java-archive", "apk": "application/vnd.android.package-archive",
    "7z": "application/x-7z-compressed", "rar": "application/vnd.rar", "gz": "application/gzip",
    "bz2": "application/x-bzip2", "xz": "application/x-xz", "zst": "application/zstd", "tar": "application/x-tar",
    "cab": "application/vnd.ms-cab-compressed", "ace": "application/x-ace-compressed", "arj": "application/x-arj",
    "a": "application/x-archive", "iso": "application/x-iso9660-image", "img": "application/x-raw-disk-image",
    "vhd": "application/x-vhd", "vhdx": "application/x-vhdx",
    # programs
    "exe": "application/x-dosexec", "dll": "application/x-msdownload", "elf": "application/x-executable",
    "macho": "application/x-mach-binary", "class": "application/java-vm", "lnk": "application/x-ms-shortcut",
    "wasm": "application/wasm", "swf": "application/x-shockwave-flash", "hta": "application/hta",
    "sh": "text/x-script",
    # media and fonts
    "ogg": "audio/ogg", "mp3": "audio/mpeg", "flac": "audio/flac", "wav": "audio/wav", "avi": "video/x-msvideo",
    "mp4": "video/mp4", "webm": "video/webm", "woff": "font/woff", "woff2": "font/woff2",
    # text
    "html": "text/html", "xml": "application/xml", "plist": "application/x-plist", "bplist": "application/x-bplist",
    "eml": "message/rfc822", "ics": "text/calendar", "vcf": "text/vcard", "asc": "application/pgp-encrypted",
    "p7m": "application/pkcs7-mime", "txt": "text/plain",
}

# Fixed signatures at offset 0, checked in order (longer/more specific first).
_IMAGE_PREFIXES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"II*\x00", "tif"),
    (b"MM\x00*", "tif"),
)
_PREFIXES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "pdf"),
    (b"{\\rt", "rtf"),  # Word opens "{\rt" as RTF; kits drop the rest of "{\rtf1" to slip past filters
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"Rar!\x1a\x07", "rar"),
    (b"\x1f\x8b", "gz"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zst"),
    (b"MSCF\x00\x00\x00\x00", "cab"),
    (b"ITSF", "chm"),
    (b"\x7fELF", "elf"),
    (b"\xcf\xfa\xed\xfe", "macho"),  # 64-bit, little-endian
    (b"\xce\xfa\xed\xfe", "macho"),  # 32-bit, little-endian
    (b"\xfe\xed\xfa\xcf", "macho"),  # 64-bit, big-endian
    (b"\xfe\xed\xfa\xce", "macho"),  # 32-bit, big-endian
    (b"vhdxfile", "vhdx"),
    (b"conectix", "vhd"),
    (b"\x4c\x00\x00\x00\x01\x14\x02\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00\x46", "lnk"),
    (b"\xe4\x52\x5c\x7b\x8c\xd8\xa7\x4d\xae\xb1\x53\x78\xd0\x29\x96\xd3", "one"),
    (b"bplist0", "bplist"),
    (b"OggS", "ogg"),
    (b"ID3", "mp3"),
    (b"fLaC", "flac"),
    (b"\x1aE\xdf\xa3", "webm"),
    (b"wOFF", "woff"),
    (b"wOF2", "woff2"),
    (b"-----BEGIN PGP", "asc"),
    (b"\x00asm", "wasm"),
    (b"!<arch>\n", "a"),
    (b"#!", "sh"),
)
# What Pillow opens (the QR decoder's gate): the pictures above less SVG (read by its own path)
# and HEIC (Pillow needs a plugin for it).
RASTER_EXTS = frozenset({"png", "jpg", "gif", "tif", "bmp", "webp", "ico", "cur", "avif"})

OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_MSI_CLSID = b"\x84\x10\x0c\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00\x46"
_MSI_CLSID_TEXT = "000C1084-0000-0000-C000-000000000046"
_PKCS7_OID = b"\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07"
# ESC is not here: ISO-2022-JP text is full of it.
_TEXT_CTRL = re.compile(rb"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\x7f]")
_HEADER_LINE = re.compile(rb"^[A-Za-z0-9][A-Za-z0-9-]{0,60}:[ \t]?\S", re.M)
_EML_HEADERS = re.compile(
    rb"^(?:from|to|subject|date|received|return-path|message-id|mime-version|delivered-to|x-[a-z0-9-]+):", re.I | re.M
)
_HTML_START = re.compile(
    rb"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body|meta|script|title|iframe|div|table|p|a|form|style|svg|center|font|span)\b",
    re.I | re.S,
)
# Tags that make a browser render a file as a page wherever they stand in its first kilobyte, also
# behind a line of text: an HTML-smuggling attachment opens with words and then its <script>. The
# whole tag name: "<metapackage>" or "<header>" in a text about software is no page.
_HTML_MARK = re.compile(rb"<(?:html|!doctype\s+html|head|body|script|meta|iframe|form|title)[\s/>]", re.I)
_ODF = {
    b"application/vnd.oasis.opendocument.text": "odt",
    b"application/vnd.oasis.opendocument.spreadsheet": "ods",
    b"application/vnd.oasis.opendocument.presentation": "odp",
    b"application/vnd.oasis.opendocument.graphics": "odg",
    b"application/epub+zip": "epub",
}
# The byte scans of damaged containers (zipfile or olefile cannot read them) stop here: local zip
# headers carry member names, so the start and the end of a huge file are enough. A zip of more
# members than _MAX_ZIP_NAMES is scanned the same way rather than parsed entry by entry.
_ZIP_SCAN = 4 * 1024 * 1024
_MAX_ZIP_NAMES = 5000


def mime_of(ext: str) -> str:
    """The mime type of a true extension ("application/octet-stream" for one outside the vocabulary)."""
    return MIME.get(ext, "application/octet-stream" if ext else "")


def sniff(data: bytes, *, html_anywhere: bool = False) -> FileType:
    """(mime type, extension) of data from its bytes alone; ("", "") when nothing matches; never raises.

    Text is HTML when it starts as a page or names <html>/<!doctype html> in its first 2 KB, so a
    message that talks about tags stays text. `html_anywhere` is for a file the recipient opens (an
    attachment, an archive member, a smuggled payload): then any of <script>, <form>, <iframe>,
    <meta>, <head>, <body>, <title> in the first kilobyte makes it HTML too, as a browser renders it."""
    try:
        ext = _sniff(data, html_anywhere)
    except Exception:  # a check that trips on hostile bytes must not cost the message its parse
        ext = ""
    return (MIME[ext], ext) if ext else _UNKNOWN


def raster_ext(data: bytes) -> str:
    """The extension of a picture Pillow can open ("" otherwise), from its header alone (cheap)."""
    ext = _image(data[:64])
    return ext if ext in RASTER_EXTS else ""


def is_image(ftype: FileType) -> bool:
    return ftype[0].startswith("image/")


def is_pdf(data: bytes) -> bool:
    """A PDF as readers see one: the header at the start, or within the first kilobyte after
    other bytes (`_pdf_after_junk`). The one test of "is this a PDF" for file types, attachment
    kinds, documents read and QR codes looked for."""
    return data.startswith(b"%PDF-") or _pdf_after_junk(data)


def _sniff(data: bytes, html_anywhere: bool) -> str:
    if not data:
        return ""
    head = data[:64]
    if head.startswith(_ZIP):
        return _zip_type(data)
    if head.startswith(OLE2_MAGIC):
        return _ole_type(data)
    if head.startswith(b"MZ"):
        return _pe_type(data, html_anywhere)
    image = _image(head)
    if image:
        return image
    for sig, ext in _PREFIXES:
        if head.startswith(sig):
            return ext
    if head.startswith(b"\xca\xfe\xba\xbe") and len(head) >= 8:
        # the same magic opens a Java class (minor and major version: 45 and up) and a universal
        # Mach-O binary (a handful of architectures)
        return "macho" if 0 < int.from_bytes(head[4:8], "big") < 45 else "class"
    if len(head) > 3 and head.startswith(b"BZh") and 0x31 <= head[3] <= 0x39:  # block size 1-9
        return "bz2"
    if head[:1] == b"\x30" and _PKCS7_OID in head[:40]:
        # DER PKCS#7 (signed .mobileconfig profiles, .p7m/.p7s): ASN.1 SEQUENCE with a pkcs7 content-type OID
        return "p7m"
    if head.startswith(b"RIFF") and len(head) >= 12:
        kind = head[8:12]
        if kind == b"WAVE":
            return "wav"
        if kind == b"AVI ":
            return "avi"
    if head[4:8] == b"ftyp":
        return "mp4"  # the picture brands (AVIF, HEIC) were taken by _image
    if head[7:14] == b"**ACE**":
        return "ace"
    if head.startswith(b"\x60\xea") and 0 < int.from_bytes(head[2:4], "little") <= 2600:
        return "arj"  # the basic header is at most 2600 bytes
    if len(head) > 3 and head[:3] in (b"FWS", b"CWS", b"ZWS") and 0 < head[3] < 64:  # then the Flash version
        return "swf"
    if _pdf_after_junk(data):
        return "pdf"
    if len(data) > 0x8006:
        for off in (0x8001, 0x8801, 0x9001):
            if data[off : off + 5] in (b"CD001", b"BEA01", b"NSR02", b"NSR03"):
                return "iso"
    if len(data) >= 262 and data[257:262] == b"ustar":
        return "tar"
    if len(data) >= 512 and data[-512:-504] == b"conectix":  # fixed VHD keeps its footer at the end
        return "vhd"
    if len(data) >= 512 and data[510:512] == b"\x55\xaa" and (
        data[0x36:0x3B] in (b"FAT12", b"FAT16") or data[0x52:0x57] == b"FAT32" or data[3:11] == b"NTFS    "
        or data[0] in (0xEB, 0xE9)
    ):
        return "img"
    return _text_type(data, html_anywhere)


def _image(head: bytes) -> str:
    """A picture's extension from its first bytes; "" when it is none."""
    for sig, ext in _IMAGE_PREFIXES:
        if head.startswith(sig):
            return ext
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        # a generic HEIF brand ("mif1") names AVIF among the compatible brands after it
        compatible = {head[i : i + 4] for i in range(16, min(int.from_bytes(head[:4], "big"), len(head)) - 3, 4)}
        if brand in (b"avif", b"avis") or (brand in (b"mif1", b"msf1") and b"avif" in compatible):
            return "avif"
        if brand in (b"heic", b"heix", b"mif1", b"msf1", b"hevc"):
            return "heic"
        return ""
    # BMP and ICO have short magics that text can start with: check the header behind them too
    if head.startswith(b"BM") and len(head) >= 18 and head[14] in (12, 16, 40, 52, 56, 64, 108, 124) and head[15:18] == b"\0\0\0":
        return "bmp"
    if head.startswith((b"\x00\x00\x01\x00", b"\x00\x00\x02\x00")) and len(head) >= 22:
        count = head[4] | head[5] << 8
        if 0 < count <= 256 and head[9] == 0:
            return "ico" if head[2] == 1 else "cur"
    return ""


def _pdf_after_junk(data: bytes) -> bool:
    """A PDF whose header follows other bytes: readers (and pdfium) look for it in the first
    kilobyte, so a kit prepends junk to hide the file's type from filters (a 2023 phishing PDF in
    the corpus does). Text that merely names the header has no objects after it."""
    at = data.find(b"%PDF-", 0, 1024)
    return at > 0 and b" obj" in data[at : at + 65536]


def _zip_type(data: bytes) -> str:
    if data[30:38] == b"mimetype":  # ODF/EPUB store their type uncompressed as the first member
        for key, ext in _ODF.items():
            if data[38 : 38 + len(key)] == key:
                return ext
    read = None if _zip_too_many(data) else _zip_names(data)
    if read is None:
        return _zip_scan(data)
    names, mimetype = read
    if "[content_types].xml" in names:
        macro = any(n.endswith("vbaproject.bin") for n in names)
        if any(n.startswith("word/") for n in names):
            return "docm" if macro else "docx"
        if any(n.startswith("xl/") for n in names):
            if "xl/workbook.bin" in names or any(n.startswith("xl/worksheets/") and n.endswith(".bin") for n in names):
                return "xlsb"
            return "xlsm" if macro else "xlsx"
        if any(n.startswith("ppt/") for n in names):
            return "pptm" if macro else "pptx"
        if any(n.startswith("visio/") for n in names):
            return "vsdx"
        return "ooxml"
    if mimetype in _ODF:
        return _ODF[mimetype]
    if "androidmanifest.xml" in names and "classes.dex" in names:
        return "apk"
    if "meta-inf/manifest.mf" in names and any(n.endswith(".class") for n in names):
        return "jar"
    return "zip"


def _zip_too_many(data: bytes) -> bool:
    """The end-of-central-directory record declares more members (or a bigger directory) than
    _MAX_ZIP_NAMES: zipfile parses every entry, a fifth of a second for 50,000 of them."""
    at = data.rfind(b"PK\x05\x06", max(0, len(data) - 65557))
    if at < 0 or at + 16 > len(data):
        return False  # no record: zipfile fails at once and the byte scan reads the names
    count = int.from_bytes(data[at + 10 : at + 12], "little")  # 0xFFFF: the real count is in a zip64 record
    size = int.from_bytes(data[at + 12 : at + 16], "little")
    return count > _MAX_ZIP_NAMES or size > _MAX_ZIP_NAMES * 400


def _zip_names(data: bytes) -> tuple[set[str], bytes] | None:
    """Member names (lower case) from the central directory and the content of an ODF "mimetype"
    member; None when zipfile cannot read the archive."""
    mimetype = b""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
            for info in infos:
                if info.filename == "mimetype" and info.file_size < 200:
                    # a damaged member: the names still say what the package is
                    with contextlib.suppress(Exception):
                        mimetype = zf.read(info).strip()
                    break
    except Exception:  # zipfile raises many types on damaged input (BadZipFile, zlib.error, struct.error ...)
        return None
    return {i.filename.lower() for i in infos}, mimetype


def _zip_scan(data: bytes) -> str:
    """A zip that zipfile cannot read (truncated, damaged central directory): the member names in
    its local headers, within the scan budget."""
    scan = data if len(data) <= 2 * _ZIP_SCAN else data[:_ZIP_SCAN] + data[-_ZIP_SCAN:]
    if b"[Content_Types].xml" in scan:
        macro = b"vbaProject.bin" in scan
        if b"word/" in scan:
            return "docm" if macro else "docx"
        if b"xl/" in scan:
            if b"xl/workbook.bin" in scan:
                return "xlsb"
            return "xlsm" if macro else "xlsx"
        if b"ppt/" in scan:
            return "pptm" if macro else "pptx"
        if b"visio/" in scan:
            return "vsdx"
        return "ooxml"
    if b"AndroidManifest.xml" in scan and b"classes.dex" in scan:
        return "apk"
    if b"META-INF/MANIFEST.MF" in scan and b".class" in scan:
        return "jar"
    return "zip"


# A compound file whose directory holds more entries than this is not handed to olefile: it
# reads every entry, each reader again (0.4 s for 40,000 entries in a 5 MB file, and the Office
# engines read it several times). Word, Excel and PowerPoint files hold tens of entries, an
# Outlook message with many attachments a few thousand.
MAX_OLE_ENTRIES = 5000
_FREESECT, _ENDOFCHAIN = 0xFFFFFFFF, 0xFFFFFFFE


def ole_too_big(data: bytes) -> bool:
    """A compound file of more than MAX_OLE_ENTRIES directory entries: not for olefile."""
    return ole_entries(data, MAX_OLE_ENTRIES) > MAX_OLE_ENTRIES


def ole_entries(data: bytes, stop: int) -> int:
    """How many directory entries a compound file holds, counted from its header and FAT without
    parsing them; stop+1 as soon as there are more than `stop`, 0 when the header is not one."""
    if len(data) < 512 or not data.startswith(OLE2_MAGIC):
        return 0
    shift = int.from_bytes(data[30:32], "little")
    if shift not in (9, 12):
        return 0
    size = 1 << shift
    per_fat = size // 4
    fat_sectors = list(struct.unpack_from("<109I", data, 76))
    difat = int.from_bytes(data[68:72], "little")
    seen_difat = 0
    sector = int.from_bytes(data[48:52], "little")
    count = 0
    steps = 0
    while sector not in (_ENDOFCHAIN, _FREESECT) and steps <= stop:
        steps += 1
        count += size // 128
        if count > stop:
            return stop + 1
        index = sector // per_fat
        while index >= len(fat_sectors) and difat not in (_ENDOFCHAIN, _FREESECT) and seen_difat < 1 << 16:
            at = (difat + 1) * size
            if at + size > len(data):
                return count
            fat_sectors += struct.unpack_from(f"<{per_fat - 1}I", data, at)
            difat = int.from_bytes(data[at + size - 4 : at + size], "little")
            seen_difat += 1
        if index >= len(fat_sectors) or fat_sectors[index] in (_ENDOFCHAIN, _FREESECT):
            return count
        at = (fat_sectors[index] + 1) * size + (sector % per_fat) * 4
        if at + 4 > len(data):
            return count
        sector = int.from_bytes(data[at : at + 4], "little")
    return count if steps <= stop else stop + 1


def _ole_type(data: bytes) -> str:
    import olefile

    if ole_too_big(data):
        return _ole_scan(data)
    try:
        # a BytesIO always: olefile takes bytes shorter than 1536 for a file name to open
        ole = olefile.OleFileIO(io.BytesIO(data))
    except Exception:  # olefile raises many types on damaged input
        return _ole_scan(data)
    try:
        names = {"/".join(e).lower() for e in ole.listdir(streams=True, storages=True)}
        root_clsid = (ole.root.clsid or "").upper() if ole.root is not None else ""
    except Exception:  # a damaged directory read lazily
        return _ole_scan(data)
    finally:
        ole.close()
    if root_clsid == _MSI_CLSID_TEXT:
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


def _ole_scan(data: bytes) -> str:
    """A compound file olefile cannot read (truncated, damaged FAT): stream names in its
    directory sectors, within the scan budget."""
    scan = data[: 2 * 1024 * 1024] if len(data) > 4 * 1024 * 1024 else data
    if _MSI_CLSID in scan:
        return "msi"
    if "EncryptedPackage".encode("utf-16-le") in scan:
        return "office-encrypted"
    if "WordDocument".encode("utf-16-le") in scan:
        return "doc"
    if "Workbook".encode("utf-16-le") in scan or "Book".encode("utf-16-le") + b"\x00\x00" in scan:
        return "xls"
    if "PowerPoint Document".encode("utf-16-le") in scan:
        return "ppt"
    if "__substg1.0_".encode("utf-16-le") in scan:
        return "msg"
    return "ole"


def _pe_type(data: bytes, html_anywhere: bool) -> str:
    if len(data) >= 0x40:
        (pe_off,) = struct.unpack_from("<I", data, 0x3C)
        if 0x40 <= pe_off <= len(data) - 24 and data[pe_off : pe_off + 4] == b"PE\x00\x00":
            (characteristics,) = struct.unpack_from("<H", data, pe_off + 22)
            return "dll" if characteristics & 0x2000 else "exe"
    if len(data) >= 28 and _TEXT_CTRL.search(data[:512]):
        return "exe"  # DOS stub without a PE header
    return _text_type(data, html_anywhere)


def _text_head(data: bytes) -> bytes | None:
    """The first 2 KB as UTF-8-ish bytes (UTF-16 decoded, BOM dropped); None when it is not text:
    more than one control byte in a hundred."""
    head = data[:2048]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            # incremental: a character cut at the 4 KB mark is not an error
            text = codecs.getincrementaldecoder("utf-16")().decode(data[:4096], final=False)
        except UnicodeDecodeError:
            return None
        head = text.encode("utf-8", "replace")[:2048]
    elif head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    if not head:
        return None
    # a stray NUL or form feed in a text file leaves it text; binary data has them everywhere
    if len(_TEXT_CTRL.findall(head)) * 100 > len(head):
        return None
    return head


def _text_type(data: bytes, html_anywhere: bool) -> str:
    head = _text_head(data)
    if head is None:
        return ""
    lower = head.lower()
    start = lower.lstrip()
    if b"<svg" in lower and start.startswith((b"<svg", b"<?xml", b"<!doctype svg", b"<!--")):
        return "svg"
    if _HTML_START.match(head):
        return _html(lower)
    if start.startswith(b"{\\rt"):
        return "rtf"
    if start.startswith(b"begin:vcalendar"):
        return "ics"
    if start.startswith(b"begin:vcard"):
        return "vcf"
    if b"<plist" in start[:512] and start.startswith((b"<?xml", b"<!doctype plist", b"<plist")):
        return "plist"
    # a message's headers come first even when its body is a page
    if _HEADER_LINE.match(head) and len(_EML_HEADERS.findall(head)) >= 2:
        return "eml"
    if b"<html" in lower or b"<!doctype html" in lower or (html_anywhere and _HTML_MARK.search(start, 0, 1024)):
        return _html(lower)
    if start.startswith(b"<?xml"):
        return "xml"
    return "txt"


def _html(lower: bytes) -> str:
    return "hta" if b"<hta:application" in lower else "html"
