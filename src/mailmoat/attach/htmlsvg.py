"""HTML and SVG attachments: scripts, credential forms, HTML smuggling, redirects (read, never rendered)."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from urllib.parse import urlsplit

from selectolax.lexbor import LexborHTMLParser as HTMLParser

from mailmoat.attach.sniff import ARCHIVE_EXTS, EXECUTABLE_EXTS, OFFICE_EXTS, sniff

MAX_HTML = 10 * 1024 * 1024
_BLOB_RE = re.compile(r"new\s+(?:(?:window|self|globalThis)\.)?Blob\s*\(|\bmsSaveOrOpenBlob\b|\bmsSaveBlob\b|\bnew\s+File\s*\(\s*\[")
# Names written apart ('Bl'+'ob') and read by brackets (window['Blob']): joined and dotted before
# the patterns look (window.Blob), so splitting a name does not hide it.
_CONCAT_RE = re.compile(r"""(['"])\s*\+\s*\1""")
_BRACKET_RE = re.compile(r"""\[\s*(['"])([A-Za-z_$][\w$]*)\1\s*\]""")
# A file written out as numbers ([77,90,144,0,...]): a payload as much as base64 is.
_BYTE_ARRAY_RE = re.compile(r"\[\s*((?:(?:0x[0-9a-fA-F]{1,2}|\d{1,3})\s*,\s*){255,}(?:0x[0-9a-fA-F]{1,2}|\d{1,3}))\s*\]")
_OBJURL_RE = re.compile(r"createObjectURL|msSaveOrOpenBlob|msSaveBlob")
_DOWNLOAD_RE = re.compile(r"\.download\s*=|[\"']download[\"']|\.click\s*\(\s*\)|dispatchEvent\s*\(")
_DECODE_RE = re.compile(r"\batob\s*\(|Uint8Array|charCodeAt|fromCharCode|base64")
_OBFUSCATION_RE = re.compile(
    r"\beval\s*\(|document\.write\s*\(\s*(?:unescape|decodeURIComponent|atob)|\bunescape\s*\(|"
    r"(?:\\x[0-9a-fA-F]{2}){20}|(?:%[0-9a-fA-F]{2}){40}|String\.fromCharCode\s*\((?:\s*\d+\s*,){20}"
)
_JS_REDIRECT_RE = re.compile(
    r"""(?:window\.|document\.|top\.|self\.)?location(?:\.href)?\s*=\s*["'`](https?://[^"'`\s]+)|"""
    r"""location\.(?:replace|assign)\s*\(\s*["'`](https?://[^"'`\s]+)"""
)
_B64_RE = re.compile(r"[A-Za-z0-9+/]{1024,}={0,2}")
_DATA_URI_RE = re.compile(r"data:([\w.+-]+/[\w.+-]+)?(?:;[\w=.-]+)*;base64,([A-Za-z0-9+/=\s]{512,})", re.IGNORECASE)
_META_URL_RE = re.compile(r"url\s*=\s*['\"]?([^'\";\s>]+)", re.IGNORECASE)
# document.write(unescape("%3C...")) and friends: the page is a string literal decoded at run time
_WRAPPED_RE = re.compile(
    r"""(unescape|decodeURIComponent|decodeURI|atob)\s*\(\s*(["'`])((?:(?!\2).){40,}?)\2\s*\)""", re.DOTALL
)
MAX_UNWRAP = 2
# "Paste and run" (ClickFix): a fake check puts a command on the clipboard and tells the reader
# to open the Run box (Win+R) or a terminal and paste it. Writing to the clipboard is ordinary;
# a command interpreter in the same script is not.
_CLIPBOARD_RE = re.compile(
    r"""clipboard\s*\.\s*write(?:Text)?\s*\(|execCommand\s*\(\s*["'`]copy["'`]|clipboardData\s*\.\s*setData\s*\(""",
    re.IGNORECASE,
)
LAUNCHER_RE = re.compile(
    r"\b(?:powershell|pwsh|mshta|rundll32|regsvr32|certutil|bitsadmin|wscript|cscript|conhost|msiexec|osascript)\b"
    r"|\bcmd(?:\.exe)?\s+/[ck]\b|\binvoke-expression\b|\biex\s*[(\x22']|\bcurl\s[^\n]{0,200}\|\s*(?:ba|z)?sh\b",
    re.IGNORECASE,
)
_SMUGGLED_EXTS = ARCHIVE_EXTS | EXECUTABLE_EXTS | OFFICE_EXTS | {"pdf", "html", "hta", "svg"}


@dataclass
class HtmlReport:
    kind: str  # "html" or "svg"
    scripts: int = 0
    event_handlers: int = 0
    javascript_urls: int = 0
    smuggling: list[str] = field(default_factory=list)  # why it looks like HTML smuggling
    password_forms: list[str] = field(default_factory=list)  # form actions ("" = posted by script)
    forms: list[str] = field(default_factory=list)
    meta_refresh: list[str] = field(default_factory=list)  # remote targets
    js_redirects: list[str] = field(default_factory=list)
    iframes: list[str] = field(default_factory=list)
    obfuscation: list[str] = field(default_factory=list)
    paste_and_run: list[str] = field(default_factory=list)  # a command the script puts on the clipboard
    foreign_object: bool = False
    links: list[str] = field(default_factory=list)
    children: list[tuple[str, bytes]] = field(default_factory=list)  # decoded payloads to scan in turn
    errors: list[str] = field(default_factory=list)


def _decode_text(data: bytes) -> str:
    if data.startswith(b"\xff\xfe"):
        return data[2:].decode("utf-16-le", "replace")
    if data.startswith(b"\xfe\xff"):
        return data[2:].decode("utf-16-be", "replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _remote(url: str) -> bool:
    try:
        return urlsplit(url.strip()).scheme.lower() in ("http", "https", "ftp") and bool(urlsplit(url.strip()).netloc)
    except ValueError:
        return False


def _payloads(text: str, report: HtmlReport) -> None:
    """Large base64 blobs that decode to a file worth scanning: the payload a smuggling page would drop."""
    blobs = [m.group(0) for m in _B64_RE.finditer(text)]
    blobs += [re.sub(r"\s", "", m.group(2)) for m in _DATA_URI_RE.finditer(text)]
    blobs.sort(key=len, reverse=True)
    found: list[bytes] = []
    for blob in blobs[:5]:
        try:
            found.append(base64.b64decode(blob + "=" * (-len(blob) % 4), validate=False))
        except (binascii.Error, ValueError):
            continue
    for m in islice(_BYTE_ARRAY_RE.finditer(text), 5):
        numbers = [int(n, 0) for n in re.split(r"\s*,\s*", m.group(1))]
        if all(n < 256 for n in numbers):
            found.append(bytes(numbers))
    for i, raw in enumerate(found):
        ext = sniff(raw)
        if ext in _SMUGGLED_EXTS:
            report.children.append((f"smuggled-{i}.{ext}", raw))


def _decoded_literals(js: str) -> Iterator[str]:
    """Encoded string literals (atob, unescape ...), decoded without running anything, lazily."""
    from urllib.parse import unquote

    for m in _WRAPPED_RE.finditer(js[:MAX_HTML]):
        fn, body = m.group(1), m.group(3)
        try:
            yield base64.b64decode(body + "=" * (-len(body) % 4)).decode("utf-8", "replace") if fn == "atob" else unquote(body)
        except (binascii.Error, ValueError):
            continue


def _unwrap(js: str) -> list[str]:
    """Markup hidden in encoded string literals (one level): the first five."""
    return list(islice((t for t in _decoded_literals(js) if "<" in t), 5))


def inspect(data: bytes, kind: str, _level: int = 0) -> HtmlReport:
    """Analyse one HTML or SVG file; never raises."""
    report = HtmlReport(kind=kind)
    try:
        _inspect(data[:MAX_HTML], report, _level)
    except Exception as exc:  # hostile markup must not stop the scan
        report.errors.append(f"{type(exc).__name__}: {exc}")
    return report


def _merge(into: HtmlReport, inner: HtmlReport) -> None:
    into.scripts += inner.scripts
    into.event_handlers += inner.event_handlers
    into.javascript_urls += inner.javascript_urls
    into.foreign_object = into.foreign_object or inner.foreign_object
    for name in (
        "smuggling", "password_forms", "forms", "meta_refresh", "js_redirects", "iframes", "obfuscation", "paste_and_run",
        "links", "children",
    ):
        getattr(into, name).extend(x for x in getattr(inner, name) if x not in getattr(into, name))


def _inspect(data: bytes, report: HtmlReport, level: int = 0) -> None:
    text = _decode_text(data)
    tree = HTMLParser(text)
    scripts: list[str] = []
    for node in tree.css("script"):
        report.scripts += 1
        scripts.append(node.text(deep=True) or "")
    for node in tree.css("*"):
        attrs = node.attributes
        for name, value in attrs.items():
            lname = name.lower()
            if lname.startswith("on") and value:
                report.event_handlers += 1
                scripts.append(value)
            if lname in ("href", "xlink:href", "src", "action") and value:
                v = value.strip()
                if v.lower().startswith("javascript:"):
                    report.javascript_urls += 1
                    scripts.append(v[11:])
                elif _remote(v) and len(report.links) < 200:
                    report.links.append(v)
        if node.tag == "foreignobject":
            report.foreign_object = True
        if node.tag == "iframe":
            src = (attrs.get("src") or "").strip()
            if src:
                report.iframes.append(src[:500])
        if node.tag == "meta" and (attrs.get("http-equiv") or "").lower() == "refresh":
            m = _META_URL_RE.search(attrs.get("content") or "")
            if m and _remote(m.group(1)):
                report.meta_refresh.append(m.group(1)[:500])
    for form in tree.css("form"):
        action = (form.attributes.get("action") or "").strip()
        report.forms.append(action[:500])
        if form.css_first('input[type="password" i]') is not None:
            report.password_forms.append(action[:500])
    if not report.password_forms and tree.css_first('input[type="password" i]') is not None:
        report.password_forms.append("")  # a password box outside any form: a script sends it
    js = _BRACKET_RE.sub(r".\2", _CONCAT_RE.sub("", "\n".join(scripts)[:MAX_HTML]))
    if js:
        blob = _BLOB_RE.search(js)
        objurl = _OBJURL_RE.search(js)
        download = _DOWNLOAD_RE.search(js) or tree.css_first("a[download]") is not None
        decode = _DECODE_RE.search(js)
        if blob and objurl and (download or decode):
            report.smuggling.append("script builds a Blob, turns it into a URL and saves it as a download")
        for m in _JS_REDIRECT_RE.finditer(js):
            target = m.group(1) or m.group(2)
            if target and len(report.js_redirects) < 20:
                report.js_redirects.append(target[:500])
        report.obfuscation = sorted({m.group(0)[:40] for m in _OBFUSCATION_RE.finditer(js[:2_000_000])})[:10]
        if _CLIPBOARD_RE.search(js):
            # The command is often encoded (atob("cG93ZXJzaGVsbCAt...")); look inside the literals too.
            launcher = LAUNCHER_RE.search(js[:2_000_000]) or next(
                (m for t in islice(_decoded_literals(js), 10) if (m := LAUNCHER_RE.search(t))), None
            )
            if launcher:
                report.paste_and_run.append(f"script copies a command ({launcher.group(0).strip()[:40]}) to the clipboard")
    for a in tree.css("a[download]"):
        href = (a.attributes.get("href") or "").strip().lower()
        if href.startswith("data:") and len(href) > 512:
            report.smuggling.append("link downloads a file embedded as a data: URI")
            break
    _payloads(text if len(text) < MAX_HTML else text[:MAX_HTML], report)
    if js and level < MAX_UNWRAP:
        for hidden in _unwrap(js):
            _merge(report, inspect(hidden.encode("utf-8", "replace"), report.kind, level + 1))
    if report.children and js and _DECODE_RE.search(js) and not report.smuggling:
        report.smuggling.append(f"script decodes an embedded {report.children[0][0].rsplit('.', 1)[-1]} file")
