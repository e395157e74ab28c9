"""PDF structure scan (no rendering, no execution): JavaScript, auto actions, Launch, embedded files, forms, URIs."""

from __future__ import annotations

import base64
import binascii
import re
import zlib
from dataclasses import dataclass, field

MAX_STREAM = 8 * 1024 * 1024  # decoded bytes per stream
MAX_DECODED = 64 * 1024 * 1024  # decoded bytes per document
MAX_OBJECTS = 50_000
MAX_URIS = 500

_OBJ_RE = re.compile(rb"(?<![0-9])(\d{1,10})\s+(\d{1,5})\s+obj\b")
_NAME_ESC_RE = re.compile(rb"#([0-9A-Fa-f]{2})")
_NAME_RE = re.compile(rb"/[^\s/<>\[\]()%{}]+")
_REF_RE = re.compile(rb"(\d{1,10})\s+\d{1,5}\s+R\b")


@dataclass
class PdfReport:
    javascript: list[str] = field(default_factory=list)  # snippets
    open_action: bool = False
    additional_actions: bool = False  # /AA on pages, fields or the document
    auto_js: bool = False  # JavaScript run on open (OpenAction or AA reaching JS)
    launch: list[str] = field(default_factory=list)
    embedded: list[str] = field(default_factory=list)  # embedded file names
    submit: list[str] = field(default_factory=list)  # SubmitForm targets
    uris: list[str] = field(default_factory=list)
    remote_goto: list[str] = field(default_factory=list)
    xfa: bool = False
    acroform: bool = False
    encrypted: bool = False
    objects: int = 0
    errors: list[str] = field(default_factory=list)
    children: list[tuple[str, bytes]] = field(default_factory=list)


def _norm_names(raw: bytes) -> bytes:
    """Undo #xx escapes in names (/J#61vaScript is /JavaScript to a reader)."""
    return _NAME_RE.sub(lambda m: _NAME_ESC_RE.sub(lambda e: bytes([int(e.group(1), 16)]), m.group(0)), raw)


def read_string(buf: bytes, pos: int) -> tuple[bytes, int]:
    """Parse the literal (...) or hex <...> string starting at or after `pos`; returns (value, end)."""
    n = len(buf)
    while pos < n and buf[pos] in b" \t\r\n\f\x00":
        pos += 1
    if pos >= n:
        return b"", pos
    if buf[pos : pos + 1] == b"(":
        out = bytearray()
        depth = 1
        i = pos + 1
        while i < n and depth:
            c = buf[i]
            if c == 0x5C and i + 1 < n:  # backslash
                nxt = buf[i + 1]
                esc = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("f"): 12}
                if nxt in esc:
                    out.append(esc[nxt])
                    i += 2
                elif 0x30 <= nxt <= 0x37:
                    j = i + 1
                    while j < n and j < i + 4 and 0x30 <= buf[j] <= 0x37:
                        j += 1
                    out.append(int(buf[i + 1 : j], 8) & 0xFF)
                    i = j
                elif nxt in (10, 13):
                    i += 2
                else:
                    out.append(nxt)
                    i += 2
                continue
            if c == 0x28:
                depth += 1
            elif c == 0x29:
                depth -= 1
                if depth == 0:
                    i += 1
                    break
            out.append(c)
            i += 1
        return bytes(out), i
    if buf[pos : pos + 1] == b"<" and buf[pos + 1 : pos + 2] != b"<":
        end = buf.find(b">", pos)
        if end < 0:
            return b"", n
        hexs = re.sub(rb"\s", b"", buf[pos + 1 : end])
        if len(hexs) % 2:
            hexs += b"0"
        try:
            return binascii.unhexlify(hexs), end + 1
        except binascii.Error:
            return b"", end + 1
    return b"", pos


def _text(b: bytes) -> str:
    if b.startswith(b"\xfe\xff"):
        return b[2:].decode("utf-16-be", "replace")
    if b.startswith(b"\xff\xfe"):
        return b[2:].decode("utf-16-le", "replace")
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b.decode("latin-1")


def _value_after(body: bytes, key: bytes) -> list[bytes]:
    """Every string or reference that follows `key` in a normalised dictionary."""
    vals: list[bytes] = []
    for m in re.finditer(re.escape(key) + rb"(?![A-Za-z])", body):
        s, end = read_string(body, m.end())
        if s:
            vals.append(s)
            continue
        ref = _REF_RE.match(body, end)
        if ref:
            vals.append(b"@ref:" + ref.group(1))
    return vals


MAX_PREDICTED = 8 * 1024 * 1024  # bytes of a predicted stream undone (row by row, in Python)


def _unpredict(head: bytes, data: bytes) -> bytes:
    """Undo a stream's PNG predictor (/DecodeParms << /Predictor 10-15 /Columns n >>), as object and
    cross-reference streams use: without it, JavaScript in a predicted object stream read as noise
    and a PDF that runs a script on open scored 0. Other predictors are left as they are."""
    pm = re.search(rb"/Predictor\s+(\d+)", head)
    if not pm or int(pm.group(1)) < 10:
        return data
    def param(name: bytes, default: int) -> int:
        m = re.search(rb"/" + name + rb"\s+(\d+)", head)
        return int(m.group(1)) if m else default
    bpp = max(1, param(b"Colors", 1) * param(b"BitsPerComponent", 8) // 8)
    width = param(b"Columns", 1) * bpp
    if width <= 0 or width > 1 << 20 or len(data) > MAX_PREDICTED:
        return data
    out = bytearray()
    prev = bytearray(width)
    for i in range(0, len(data) - width, width + 1):
        kind, row = data[i], bytearray(data[i + 1 : i + 1 + width])
        if kind == 2:  # "up", what nearly every predicted object stream uses
            row = bytearray((a + b) & 0xFF for a, b in zip(row, prev, strict=True))
        for x in range(width if kind in (1, 3, 4) else 0):
            left = row[x - bpp] if x >= bpp else 0
            up, corner = prev[x], (prev[x - bpp] if x >= bpp else 0)
            if kind == 1:
                row[x] = (row[x] + left) & 0xFF
            elif kind == 3:
                row[x] = (row[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                pa, pb, pc = abs(up - corner), abs(left - corner), abs(left + up - 2 * corner)
                row[x] = (row[x] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        out += row
        prev = row
    return bytes(out)


class _Doc:
    def __init__(self, data: bytes, report: PdfReport) -> None:
        self.data = data
        self.report = report
        self.decoded_total = 0
        self.objects: dict[int, tuple[bytes, bytes | None]] = {}  # num -> (normalised dict text, decoded stream)
        self.alternates: dict[int, list[tuple[bytes, bytes | None]]] = {}  # other definitions of a number

    def candidates(self, num: int) -> list[tuple[bytes, bytes | None]]:
        first = self.objects.get(num)
        return ([first] if first else []) + self.alternates.get(num, [])

    def every(self) -> list[tuple[int, tuple[bytes, bytes | None]]]:
        return [*self.objects.items(), *((n, o) for n, alts in self.alternates.items() for o in alts)]

    def decode(self, head: bytes, raw: bytes) -> bytes | None:
        filters = re.findall(rb"/(FlateDecode|Fl|ASCIIHexDecode|AHx|ASCII85Decode|A85|[A-Za-z0-9]+Decode)\b", head)
        out = raw
        for f in filters:
            budget = min(MAX_STREAM, MAX_DECODED - self.decoded_total)
            if budget <= 0:
                return None
            if f in (b"FlateDecode", b"Fl"):
                d = zlib.decompressobj()
                try:
                    out = d.decompress(out, budget)
                except zlib.error:
                    try:  # damaged trailing data is common; keep what inflated
                        out = zlib.decompressobj(-15).decompress(out[2:], budget)
                    except zlib.error:
                        return None
                out = _unpredict(head, out)
            elif f in (b"ASCIIHexDecode", b"AHx"):
                hexs = re.sub(rb"[^0-9A-Fa-f]", b"", out.split(b">", 1)[0])
                if len(hexs) % 2:
                    hexs += b"0"
                out = binascii.unhexlify(hexs)
            elif f in (b"ASCII85Decode", b"A85"):
                body = re.sub(rb"\s", b"", out).removeprefix(b"<~").split(b"~>", 1)[0]
                try:
                    out = base64.a85decode(body)
                except ValueError:
                    return None
            else:
                return None  # image codecs and the like: nothing to read for us
        self.decoded_total += len(out)
        return out[:MAX_STREAM]

    def parse(self) -> None:
        data = self.data
        heads = list(_OBJ_RE.finditer(data))
        for k, m in enumerate(heads):
            if len(self.objects) >= MAX_OBJECTS:
                self.report.errors.append("too many objects")
                break
            num = int(m.group(1))
            start = m.end()
            end = data.find(b"endobj", start)
            if end < 0:
                # No endobj: the object ends where the next begins. A megabyte after each one, kept
                # for every such object, let a 1 MB PDF of 400 of them take 519 MB and 15 s.
                end = min(len(data), start + 1_000_000, heads[k + 1].start() if k + 1 < len(heads) else len(data))
            body = data[start:end]
            stream: bytes | None = None
            sm = re.search(rb"\bstream\r?\n", body)
            if sm:
                head = body[: sm.start()]
                raw = body[sm.end() :]
                es = raw.rfind(b"endstream")
                if es >= 0:
                    raw = raw[:es]
                stream = self.decode(_norm_names(head), raw.rstrip(b"\r\n"))
                body = head
            self.objects[num] = (_norm_names(body), stream)
        # Objects packed into object streams are where modern PDFs keep their actions.
        for _num, (head, stream) in list(self.objects.items()):
            if stream is None or b"/ObjStm" not in head:
                continue
            first = re.search(rb"/First\s+(\d+)", head)
            count = re.search(rb"/N\s+(\d+)", head)
            if not first or not count:
                continue
            off0 = int(first.group(1))
            nums = re.findall(rb"\d+", stream[:off0])
            pairs = [(int(nums[i]), int(nums[i + 1])) for i in range(0, min(len(nums) - 1, 2 * int(count.group(1))), 2)]
            for i, (onum, off) in enumerate(pairs):
                end = pairs[i + 1][1] if i + 1 < len(pairs) else len(stream) - off0
                if len(self.objects) >= MAX_OBJECTS:
                    break
                packed = (_norm_names(stream[off0 + off : off0 + end]), None)
                if onum in self.objects:
                    # Defined twice: a stray "6 0 obj null endobj" the reader skips hid the packed
                    # action it runs. Both are looked at; either may be the one a reader uses.
                    self.alternates.setdefault(onum, []).append(packed)
                else:
                    self.objects[onum] = packed
        self.report.objects = len(self.objects)

    def js_of(self, head: bytes) -> str:
        for v in _value_after(head, b"/JS"):
            if v.startswith(b"@ref:"):
                obj = self.objects.get(int(v[5:]))
                if obj and obj[1] is not None:
                    return _text(obj[1])
                if obj:
                    s, _ = read_string(obj[0], 0)
                    return _text(s)
            else:
                return _text(v)
        return ""


def _reaches_js(doc: _Doc, head: bytes, key: bytes, seen: set[int] | None = None) -> bool:
    """Does the action under `key` (inline or by reference, following /Next chains shallowly) run JavaScript?"""
    seen = seen if seen is not None else set()
    idx = head.find(key)
    if idx < 0:
        return False
    tail = head[idx : idx + 4000]
    if b"/JavaScript" in tail or b"/JS" in tail:
        return True
    for ref in _REF_RE.finditer(tail[:600]):
        n = int(ref.group(1))
        if n in seen or len(seen) > 50:
            continue
        seen.add(n)
        for obj in doc.candidates(n):
            if b"/JavaScript" in obj[0] or b"/JS" in obj[0] or _reaches_js(doc, obj[0], b"/Next", seen):
                return True
    return False


def inspect(data: bytes) -> PdfReport:
    """Analyse one PDF; never raises (damaged or hostile input gives errors in the report)."""
    report = PdfReport()
    try:
        _inspect(data, report)
    except Exception as exc:  # hostile PDFs must not stop the scan
        report.errors.append(f"{type(exc).__name__}: {exc}")
    return report


def _inspect(data: bytes, report: PdfReport) -> None:
    doc = _Doc(data, report)
    doc.parse()
    report.encrypted = b"/Encrypt" in _norm_names(data[-4096:]) or any(b"/Encrypt" in h for h, _ in doc.objects.values() if b"/Root" in h)
    names_for_stream: dict[int, str] = {}
    for head, _stream in doc.objects.values():
        if b"/EF" in head:
            fname = ""
            for key in (b"/UF", b"/F"):
                vals = [v for v in _value_after(head, key) if not v.startswith(b"@ref:")]
                if vals:
                    fname = _text(vals[0])
                    break
            ef = head.find(b"/EF")
            for ref in _REF_RE.finditer(head[ef : ef + 300]):
                names_for_stream[int(ref.group(1))] = fname or "embedded.bin"
    for num, (head, stream) in doc.every():
        if b"/JavaScript" in head or b"/JS" in head:
            js = doc.js_of(head)
            if len(report.javascript) < 20:
                report.javascript.append(js[:300] if js else "(JavaScript action)")
        if b"/OpenAction" in head:
            report.open_action = True
            if _reaches_js(doc, head, b"/OpenAction"):
                report.auto_js = True
        if b"/AA" in head:
            report.additional_actions = True
            if _reaches_js(doc, head, b"/AA"):
                report.auto_js = True
        if b"/Launch" in head:
            targets = [_text(v) for v in _value_after(head, b"/F") if not v.startswith(b"@ref:")]
            report.launch.append(targets[0][:300] if targets else "(Launch action)")
        if b"/SubmitForm" in head:
            targets = [_text(v) for v in _value_after(head, b"/F") if not v.startswith(b"@ref:")]
            report.submit.append(targets[0][:500] if targets else "(SubmitForm)")
        if b"/GoToR" in head or b"/GoToE" in head:
            targets = [_text(v) for v in _value_after(head, b"/F") if not v.startswith(b"@ref:")]
            report.remote_goto.append(targets[0][:300] if targets else "(remote GoTo)")
        if b"/URI" in head:
            for v in _value_after(head, b"/URI"):
                if not v.startswith(b"@ref:") and len(report.uris) < MAX_URIS:
                    u = _text(v).strip()
                    if u and u not in report.uris:
                        report.uris.append(u)
        if b"/XFA" in head:
            report.xfa = True
        if b"/AcroForm" in head:
            report.acroform = True
        if (b"/EmbeddedFile" in head or num in names_for_stream) and stream is not None:
            name = names_for_stream.get(num, f"embedded-{num}.bin")
            report.embedded.append(name)
            if len(report.children) < 50:
                report.children.append((name, stream))
