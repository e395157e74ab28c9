"""Mend header lines that a broken mailer split inside an encoded word without the folding blank."""

from __future__ import annotations

import re

# The header block is read at most this far: a real one is a few kilobytes, and a message whose
# "headers" run for megabytes is left to the parser's own limits.
MAX_HEAD = 256 * 1024
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_HEADER_LINE = re.compile(rb"[!-9;-~]+[ \t]*:")
# An encoded word opened on a line and not closed there: "=?gb2312?B?UmU6IMfr...u1".
_OPEN_WORD = re.compile(rb"=\?[^?\s]+\?[bBqQ]\?[^?\s]*$")
# The rest of that word at the start of the next line, up to its "?=": "xMs=?=".
_WORD_TAIL = re.compile(rb"[^?\s]*\?=")


def mend_split_words(data: bytes, defects: list[str]) -> bytes:
    """`data` with every header line that only ends an encoded word the line before it opened
    joined to that line, or `data` itself when there is none.

    Some mailers wrap a long encoded Subject in the middle of the word, with no blank at the
    start of the next line ("=?gb2312?B?UmU6...u1" / "xMs=?="). Read as written, that line is
    no header, so the header block ends there: the Subject is never decoded and every header
    after it (Content-Type included) is read as body text. Joined, the message reads as its
    sender meant. Only such a tail is joined, never other text, so a line cannot be moved
    from the body into the headers this way."""
    m = _BLANK_LINE.search(data, 0, MAX_HEAD)
    end = m.start() if m else min(len(data), MAX_HEAD)
    head = data[:end]
    if b"=?" not in head:
        return data
    lines = head.split(b"\n")
    # Whether each line is glued to the one before it instead of starting a line of its own.
    glued = [False] * len(lines)
    for i in range(1, len(lines)):
        # Only the line before is read, never what was joined so far: a hostile header of
        # thousands of such lines costs one pass, not one pass per line.
        text = lines[i].rstrip(b"\r")
        glued[i] = bool(
            text
            and text[:1] not in b" \t"
            and not _HEADER_LINE.match(text)
            and _WORD_TAIL.match(text)
            and _OPEN_WORD.search(lines[i - 1].rstrip(b"\r"))
        )
    mended = sum(glued)
    if not mended:
        return data
    defects.append(f"header:split-encoded-word {mended} line(s) joined")
    out = bytearray(lines[0])
    for i in range(1, len(lines)):
        if glued[i]:
            if out.endswith(b"\r"):
                del out[-1]
        else:
            out += b"\n"
        out += lines[i]
    return bytes(out) + data[end:]
