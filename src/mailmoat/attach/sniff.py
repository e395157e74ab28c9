"""The attachment engines' view of a file's true type (from `parse.filetype`) and their classes of extensions."""

from __future__ import annotations

from mailmoat.parse.filetype import mime_of
from mailmoat.parse.filetype import sniff as _sniff

ARCHIVE_EXTS = frozenset({"zip", "7z", "rar", "tar", "gz", "bz2", "xz", "iso", "jar", "cab", "ace", "arj"})
OFFICE_EXTS = frozenset({"doc", "xls", "ppt", "docx", "docm", "xlsx", "xlsm", "xlsb", "pptx", "pptm", "rtf", "ole", "office-encrypted"})
# true types that run code when opened or mounted
EXECUTABLE_EXTS = frozenset({"exe", "dll", "elf", "macho", "msi", "lnk", "iso", "vhd", "vhdx", "one", "jar", "class", "apk"})
# Zip packages no engine reads on its own: unpacked as the zip they are, so what they carry (a
# VBA project in a Visio drawing, a page in an e-book) is still scanned.
_READ_AS_ZIP = frozenset({"vsdx", "ooxml", "epub", "odg"})


def sniff(data: bytes) -> str:
    """The true extension of a file the recipient opens ("" when unknown), whatever its name says.

    Text with HTML tags anywhere in its first kilobyte is "html" here: that is how a browser
    renders it, and how an HTML-smuggling page hides behind a line of text."""
    return engine_ext(_sniff(data, html_anywhere=True)[1])


def engine_ext(ext: str) -> str:
    """The engines' name for a true extension (an attachment's `Part.true_ext`, sniffed once by the parser)."""
    return "zip" if ext in _READ_AS_ZIP else ext


__all__ = ["ARCHIVE_EXTS", "EXECUTABLE_EXTS", "OFFICE_EXTS", "engine_ext", "mime_of", "sniff"]
