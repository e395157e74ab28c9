"""Mend header blocks that a broken mailer split: inside an encoded word without the folding blank,
or by a blank line before a header's folded continuation."""

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
# A folded line that holds an encoded word: " =?GB2312?B?MDAwvNI=?=".
_FOLDED_WORD = re.compile(rb"[ \t]+=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
_SPLIT_BLOCK_MAX = 100  # header lines read after such a blank line
_SPLIT_RUNS_MAX = 8  # blank lines read inside one folded header


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


def mend_blank_fold(data: bytes, defects: list[str]) -> bytes:
    """`data` without the blank line that a broken mailer wrote inside a folded encoded header,
    or `data` itself when there is none.

    One bulk mailer writes a long encoded Subject, then a blank line, then the Subject's folded
    rest (" =?GB2312?B?...?=") and the remaining headers (To, Content-Type, Reply-To, Date).
    Read as written, the header block ends at the blank line: the charset, Reply-To and Date are
    lost and the headers are read as the body's first words. Only this shape is mended: the
    header before the blank line ends in an encoded word, the line after it continues one, and
    every line up to the next blank line is a header or a fold, so a body that merely starts
    with indented text or "Name: value" lines stays the body."""
    m = _BLANK_LINE.search(data, 0, MAX_HEAD)
    if m is None:
        return data
    before = data[: m.start()].rsplit(b"\n", 1)[-1].rstrip(b"\r")
    if not before.endswith(b"?=") or b"=?" not in before:
        return data
    pieces = [data[: m.start()]]
    blank = m
    # Some copies hold a blank line before each folded line of the Subject: read a few such runs.
    for run in range(1, _SPLIT_RUNS_MAX + 1):
        start = blank.end()
        end = _BLANK_LINE.search(data, start, start + MAX_HEAD)
        if end is None:
            return data
        lines = data[start : end.start()].split(b"\n")
        if len(lines) > _SPLIT_BLOCK_MAX or not _FOLDED_WORD.match(lines[0].rstrip(b"\r")):
            return data
        headers = 0
        for line in lines[1:]:
            text = line.rstrip(b"\r")
            if _HEADER_LINE.match(text):
                headers += 1
            elif text[:1] not in (b" ", b"\t"):
                return data
        newline = blank.group(0)
        pieces.append(newline[: newline.index(b"\n") + 1] + data[start : end.start()])
        if headers:
            defects.append(f"header:blank-line-in-fold {headers} header(s) after {run} blank line(s)")
            return b"".join(pieces) + data[end.start() :]
        blank = end
    return data
