"""The words and links of Office documents as their reader sees them: OOXML (Word, PowerPoint, Excel), OpenDocument and RTF."""

from __future__ import annotations

import codecs
import io
import re
import struct
import zipfile
import zlib
from html import unescape

MAX_RTF = 8 * 1024 * 1024  # bytes of an RTF file read for text
MAX_XML = 8 * 1024 * 1024  # bytes of one OOXML part we look into
# What zipfile raises on a damaged package: a bad deflate stream is zlib.error, a bad header struct.error.
ZIP_ERRORS = (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, RuntimeError, zlib.error, struct.error)
# relationship types that fetch content from elsewhere when the document opens
_REMOTE_TYPES = ("attachedtemplate", "oleobject", "frame", "subdocument", "externallinkpath", "control", "package")

_REL_RE = re.compile(rb"<(?:\w+:)?Relationship\b([^>]*)>", re.IGNORECASE)
# The name starts where a word starts: from inside a long run without "=" it was tried at every
# position (quadratic in a crafted attribute run).
_ATTR_RE = re.compile(rb"""(?<!\w)(\w+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")

# Word and PowerPoint text runs, Excel's shared strings; the end of a paragraph or cell is a line
# end, a tab or break a space.
_OOXML_TEXT_PARTS = re.compile(r"^(?:word/(?:document|header\d*|footer\d*)\.xml|ppt/slides/slide\d+\.xml|xl/sharedStrings\.xml)$")
_OOXML_TEXT_RE = re.compile(rb"<(?:w:|a:)?t(?:\s[^>]*)?>([^<]*)</(?:w:|a:)?t>|</(?:w:p|a:p|si)>|<(?:w:tab|w:br|a:br)\b[^>]*/?>")
# OpenDocument keeps its text in content.xml, inside paragraphs and headings.
_ODF_TEXT_RE = re.compile(rb"</text:(?:p|h)>|<text:line-break\b[^>]*/>|<text:(?:s|tab)\b[^>]*/>|<[^>]*>|([^<]+)")


def office_text(data: bytes, limit: int) -> str:
    """The words of a Word, PowerPoint, Excel or OpenDocument file, in reading order, up to `limit` characters."""
    out = _Text(limit)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = [i for i in zf.infolist()[:2000] if i.file_size <= MAX_XML]
            parts = [i for i in infos if _OOXML_TEXT_PARTS.match(i.filename)]
            # The body before headers and footers; slides in their numbered order.
            parts.sort(key=lambda i: (not i.filename.startswith(("word/document", "ppt/", "xl/")), _number(i.filename)))
            for info in parts:
                for m in _OOXML_TEXT_RE.finditer(read_member(zf, info)):
                    if m.group(1) is not None:
                        out.add(unescape(m.group(1).decode("utf-8", "replace")))
                    else:
                        out.add("\n" if m.group(0).startswith(b"</") else " ")
                    if out.full:
                        return out.text
                out.add("\n")
            if not parts:
                for info in (i for i in infos if i.filename == "content.xml"):
                    for m in _ODF_TEXT_RE.finditer(read_member(zf, info)):
                        tag = m.group(0)
                        if m.group(1) is not None:
                            out.add(unescape(m.group(1).decode("utf-8", "replace")))
                        elif tag.startswith((b"</text:", b"<text:line-break")):
                            out.add("\n")
                        elif tag.startswith((b"<text:s", b"<text:tab")):
                            out.add(" ")
                        if out.full:
                            return out.text
    except ZIP_ERRORS:
        pass
    return out.text


def _number(name: str) -> tuple[int, str]:
    digits = re.sub(r"\D", "", name.rsplit("/", 1)[-1])
    return (int(digits) if digits else 0, name)


class _Text:
    """Pieces of text up to a limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.pieces: list[str] = []
        self.size = 0

    def add(self, piece: str) -> None:
        self.pieces.append(piece)
        self.size += len(piece)

    @property
    def full(self) -> bool:
        return self.size >= self.limit

    @property
    def text(self) -> str:
        # RTF writes a character beyond the BMP as two \uN surrogates: join the pairs, replace strays
        # (a lone surrogate cannot be encoded as UTF-8 anywhere later).
        text = "".join(self.pieces)[: self.limit]
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


# ---------------------------------------------------------------- RTF

_RTF_TOKEN = re.compile(rb"\\([a-zA-Z]{1,32})(-?\d{1,10})? ?|\\'([0-9a-fA-F]{2})|\\([^a-zA-Z'])|([{}])|([^\\{}\r\n]+)|[\r\n]+")
# Groups that hold no text a reader sees: tables of fonts, colours and styles, metadata, pictures,
# embedded objects, field instructions (the field's result is shown, its code is not).
_RTF_HIDDEN = frozenset({
    "fonttbl", "colortbl", "stylesheet", "info", "pict", "object", "objdata", "datastore", "themedata",
    "colorschememapping", "latentstyles", "listtable", "listoverridetable", "rsidtbl", "generator",
    "xmlnstbl", "mmathPr", "fldinst", "filetbl", "revtbl", "pgdsctbl",
})
_RTF_BREAKS = {"par": "\n", "line": "\n", "row": "\n", "sect": "\n", "page": "\n", "tab": "\t", "cell": "\t"}


def _codepage(number: int) -> str:
    try:
        return codecs.lookup(f"cp{number}").name
    except LookupError:
        return "cp1252"


def rtf_text(data: bytes, limit: int) -> str:
    """The visible words of an RTF document, up to `limit` characters: hidden groups skipped, `\\uN`
    characters and `\\'hh` bytes (in the document's code page: GBK for `\\ansicpg936`) decoded."""
    if not data.lstrip().startswith(b"{\\rtf"):
        return ""
    out = _Text(limit)
    codepage = "cp1252"
    stack: list[tuple[bool, int]] = []
    hidden, uc = False, 1  # whether this group is shown; fallback characters after each \uN
    to_skip = 0  # fallback characters still to skip after a \uN
    group_start = False
    pending = bytearray()  # \'hh bytes: a GBK character is two of them

    def flush() -> None:
        if pending:
            out.add(pending.decode(codepage, "replace"))
            pending.clear()

    for m in _RTF_TOKEN.finditer(data[:MAX_RTF]):
        if out.full or len(stack) > 1000:
            break
        word, arg, hexbyte, symbol, brace, text = m.groups()
        starts = group_start
        group_start = False
        if brace is not None:
            flush()
            if brace == b"{":
                stack.append((hidden, uc))
                group_start = True
            elif stack:
                hidden, uc = stack.pop()
            to_skip = 0
        elif word is not None:
            name = word.decode("ascii")
            if starts and name in _RTF_HIDDEN:
                hidden = True
            elif name == "ansicpg" and arg:
                codepage = _codepage(int(arg))
            elif name == "uc" and arg:
                uc = max(0, min(int(arg), 10))
            elif name == "u" and arg and not hidden:
                flush()
                out.add(chr(int(arg) % 65536))
                to_skip = uc
            elif name in _RTF_BREAKS and not hidden:
                flush()
                out.add(_RTF_BREAKS[name])
        elif symbol is not None:
            if symbol == b"*" and starts:
                hidden = True  # an ignorable destination: readers that do not know it show nothing
            elif not hidden and symbol in (b"\\", b"{", b"}"):
                flush()
                out.add(symbol.decode("ascii"))
            elif not hidden and symbol == b"~":
                flush()
                out.add("\u00a0")
        elif hexbyte is not None:
            if to_skip:
                to_skip -= 1
            elif not hidden:
                pending.append(int(hexbyte, 16))
                if len(pending) >= 4 * limit:  # enough bytes for the limit: stop reading
                    flush()
        elif text is not None and not hidden:
            if to_skip:
                skipped = min(to_skip, len(text))
                text, to_skip = text[skipped:], to_skip - skipped
            if text:
                flush()
                out.add(text.decode(codepage, "replace"))
    flush()
    return out.text


def _attrs(raw: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for m in _ATTR_RE.finditer(raw):
        out[m.group(1).decode("latin-1").lower()] = unescape((m.group(2) or m.group(3) or b"").decode("utf-8", "replace"))
    return out


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """One member's bytes, or none when it is damaged: the others are still read."""
    try:
        return zf.read(info)
    except ZIP_ERRORS:
        return b""


def ooxml_relationships(data: bytes) -> tuple[list[tuple[str, str]], list[str]]:
    """(remote relationships fetched on open, hyperlinks) of an OOXML package, without loading it whole."""
    remote: list[tuple[str, str]] = []
    links: list[str] = []
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for info in zf.infolist()[:2000]:
                if not info.filename.endswith(".rels") or info.file_size > MAX_XML:
                    continue
                for m in _REL_RE.finditer(read_member(zf, info)):
                    a = _attrs(m.group(1))
                    if a.get("targetmode", "").lower() != "external":
                        continue
                    rtype = a.get("type", "").rsplit("/", 1)[-1]
                    target = a.get("target", "")
                    if rtype.lower() == "hyperlink":
                        if len(links) < 500:
                            links.append(target)
                    elif rtype.lower() in _REMOTE_TYPES or target.lower().startswith(("\\\\", "file:", "mhtml:")):
                        remote.append((rtype, target))
    except ZIP_ERRORS:
        pass
    return remote, links
