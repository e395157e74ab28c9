"""URLs: found in text, normalised, with host, port, registrable domain and IP/IDN flags."""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import Iterable, Iterator
from functools import lru_cache
from urllib.parse import unquote

import tldextract

from mailmoat.model import Url

# Offline: the public suffix list snapshot bundled with tldextract, loaded once per process.
_TLD = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

MAX_URL_LEN = 4096
MAX_DATA_URL_LEN = 256
# Schemes that are not places on the web (mail and phone handlers, in-message references, anchors).
_SKIP_SCHEMES = frozenset({"mailto", "tel", "cid", "mid", "sms", "callto", "about", "fax", "skype", "im", "xmpp"})
_AUTHORITY_SCHEMES = frozenset({"http", "https", "ftp", "ftps", "file", "ws", "wss", "sftp", "smb", "ssh", "git", "hxxp", "hxxps"})
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]{0,30}):")
_INVISIBLE = re.compile(r"[\x00-\x20\x7f\u00ad\u200b-\u200f\u2028\u2029\u2060\ufeff]")
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": ".", "\\": "/"})
# In free text: scheme URLs and www. hosts; stop at whitespace, quotes, brackets and CJK text/punctuation
# (Chinese mail writes URLs straight into sentences) but keep other scripts (homoglyph hosts).
_URL_CHARS = r"[^\s<>\"'`{}|\\^\[\]\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef\u3000-\u303f]"
TEXT_URL = re.compile(rf"(?i)(?<![a-z0-9.\-])(?:(?:https?|ftp|hxxps?)://(?:\[[0-9a-f:.]+\])?|www\.){_URL_CHARS}*")
_TRAIL = ".,;:!?*'\"~"
_PAIRS = {")": "(", "]": "[", "}": "{", ">": "<"}
_NUMERIC_LABEL = re.compile(r"^(?:0x[0-9a-f]*|0[0-7]*|[1-9][0-9]*)$")


def _trim_text_url(url: str) -> str:
    while url:
        last = url[-1]
        if last in _TRAIL or (last in _PAIRS and url.count(_PAIRS[last]) < url.count(last)):
            url = url[:-1]
        else:
            break
    return url


_SCHEMES = ("hxxps", "https", "hxxp", "http", "ftp")  # longest first: "https" before "http"


def _url_starts(text: str, low: str) -> list[int]:
    """Every position where TEXT_URL could start: a scheme before each "://", each "www."."""
    starts: list[int] = []
    i = low.find("://")
    while i != -1:
        for scheme in _SCHEMES:
            if low.startswith(scheme, i - len(scheme)) and i >= len(scheme):
                starts.append(i - len(scheme))
                break
        i = low.find("://", i + 3)
    j = low.find("www.")
    while j != -1:
        starts.append(j)
        j = low.find("www.", j + 4)
    starts.sort()
    return starts


def find_text_urls(text: str) -> Iterator[str]:
    """Raw URL strings in free text, in order (what TEXT_URL.finditer finds, matched only where one
    can start: scanning every position of a long text with the pattern cost more than the rest).
    Lazy, so a caller that stops at its URL limit stops the search too."""
    low = text.lower()
    if "://" not in low and "www." not in low:
        return
    if len(low) != len(text):  # lower-casing moved positions (rare scripts): scan the plain way
        matches: Iterable[re.Match[str] | None] = TEXT_URL.finditer(text)
    else:
        matches = _matches_at_starts(text, low)
    for m in matches:
        if m is not None and not (url := _trim_text_url(m.group(0))).endswith(("://", "www.")):
            yield url


def _matches_at_starts(text: str, low: str) -> Iterator[re.Match[str] | None]:
    end = 0
    for start in _url_starts(text, low):
        if start < end:
            continue  # inside the URL just found, as finditer would skip it
        m = TEXT_URL.match(text, start)
        if m is not None:
            end = m.end()
        yield m


def _ipv4_from_parts(host: str) -> str | None:
    """inet_aton semantics, as browsers use: 3232235777, 0xC0A80001, 0300.0250.0.1, 192.168.1 ..."""
    parts = host.split(".")
    if parts and parts[-1] == "":
        parts = parts[:-1]
    if not 1 <= len(parts) <= 4 or not all(_NUMERIC_LABEL.match(p) for p in parts):
        return None
    try:
        nums = [int(p, 16) if p.startswith("0x") else (int(p, 8) if len(p) > 1 and p.startswith("0") else int(p or "0")) for p in parts]
    except ValueError:
        return None
    last_max = 1 << (8 * (5 - len(parts)))
    if any(n > 255 for n in nums[:-1]) or nums[-1] >= last_max:
        return None
    value = nums[-1]
    for i, n in enumerate(nums[:-1]):
        value |= n << (8 * (3 - i))
    return str(ipaddress.IPv4Address(value))


@lru_cache(maxsize=8192)
def host_facts(host: str) -> tuple[str, bool, bool, str]:
    """(canonical host, is_ip, is_idn, registrable domain) for a lower-cased host as written."""
    if not host:
        return "", False, False, ""
    if host.startswith("[") and host.endswith("]"):
        try:
            return str(ipaddress.IPv6Address(host[1:-1].split("%", 1)[0])), True, False, ""
        except ValueError:
            return host, False, False, ""
    if host[0].isdigit() or host.startswith("0x"):
        ip = _ipv4_from_parts(host)
        if ip is not None:
            return ip, True, False, ""
    canonical = host.rstrip(".")
    is_idn = False
    if not canonical.isascii():
        is_idn = True
        try:
            canonical = canonical.encode("idna").decode("ascii")
        except (UnicodeError, ValueError):
            with contextlib.suppress(UnicodeError, ValueError):
                canonical = ".".join(
                    lab if lab.isascii() else "xn--" + lab.encode("punycode").decode("ascii") for lab in canonical.split(".")
                )
    if "xn--" in canonical:
        is_idn = True
    try:
        ext = _TLD(canonical)
        domain = ext.top_domain_under_public_suffix if ext.suffix else ""
    except Exception:  # a library surprise must not cost the URL
        domain = ""
    return canonical, False, is_idn, domain.lower()


def make_url(raw: str, source: str, anchor_text: str = "", part_path: str = "") -> Url | None:
    """A normalised Url from a raw reference, or None when it is not a web location (mailto:, #, relative)."""
    value = raw.strip().strip("\"'")
    if not value or value.startswith("#"):
        return None
    if _INVISIBLE.search(value):
        # browsers drop tabs/newlines inside URLs; zero-width characters are an evasion trick
        value = _INVISIBLE.sub("", value)
    if value.startswith("//"):
        value = "http:" + value
    m = _SCHEME.match(value)
    if m is None:
        if value.lower().startswith("www."):
            value = "http://" + value
            m = _SCHEME.match(value)
        if m is None:
            return None
    scheme = m.group(1).lower()
    if scheme in _SKIP_SCHEMES:
        return None
    rest = value[m.end() :]
    if scheme == "data":
        url = "data:" + rest[: MAX_DATA_URL_LEN - 5]
        return Url(url=url, scheme=scheme, source=source, anchor_text=anchor_text, part_path=part_path)
    if scheme not in _AUTHORITY_SCHEMES:
        return Url(url=f"{scheme}:{rest}"[:MAX_URL_LEN], scheme=scheme, source=source, anchor_text=anchor_text, part_path=part_path)
    rest = rest.lstrip("/\\")
    if scheme in ("http", "https", "hxxp", "hxxps") and "\\" in rest:
        rest = rest.replace("\\", "/")
    end = len(rest)
    for sep in "/?#":
        i = rest.find(sep)
        if i != -1 and i < end:
            end = i
    authority, path = rest[:end], rest[end:]
    hostport = authority.rpartition("@")[2]
    port: int | None = None
    if hostport.startswith("["):
        close = hostport.find("]")
        host = hostport[: close + 1] if close != -1 else hostport
        port_s = hostport[close + 2 :] if close != -1 and hostport[close + 1 : close + 2] == ":" else ""
    else:
        host, _, port_s = hostport.partition(":")
    if port_s and port_s.isdigit() and len(port_s) <= 5 and int(port_s) <= 65535:
        port = int(port_s)
    if not host.isascii():
        host = host.translate(_DOTS)
    host = host.lower()
    if "%" in host:
        host = unquote(host).lower()
    canonical, is_ip, is_idn, domain = host_facts(host)
    url = f"{scheme}://{authority[: len(authority) - len(hostport)]}{host}{':' + port_s if port_s else ''}{path}"
    return Url(
        url=url[:MAX_URL_LEN],
        scheme=scheme,
        host=canonical,
        port=port,
        registrable_domain=domain,
        source=source,
        anchor_text=anchor_text,
        is_ip=is_ip,
        is_idn=is_idn,
        part_path=part_path,
    )


class UrlCollector:
    """Collects Urls, de-duplicated per (url, source), within a limit."""

    def __init__(self, limit: int = 2000) -> None:
        self.urls: list[Url] = []
        self._seen: dict[tuple[str, str], Url] = {}
        # The same link written again (newsletters repeat theirs) is not normalised again.
        self._raw: dict[tuple[str, str], Url] = {}
        self.limit = limit
        self.overflow = False

    def add(self, raw: str, source: str, anchor_text: str = "", part_path: str = "") -> Url | None:
        known = self._raw.get((raw, source))
        if known is not None:
            if not known.anchor_text and anchor_text:
                known.anchor_text = anchor_text
            return known
        if len(self.urls) >= self.limit:
            self.overflow = True
            return None
        try:
            u = make_url(raw, source, anchor_text, part_path)
        except (ValueError, UnicodeError, TypeError):
            return None
        if u is None:
            return None
        added = self.add_url(u)
        if added is not None:
            self._raw[(raw, source)] = added
        return added

    def add_url(self, u: Url) -> Url | None:
        key = (u.url, u.source)
        seen = self._seen.get(key)
        if seen is not None:
            if not seen.anchor_text and u.anchor_text:
                seen.anchor_text = u.anchor_text
            return seen
        if len(self.urls) >= self.limit:
            self.overflow = True
            return None
        self._seen[key] = u
        self.urls.append(u)
        return u

    def add_text(self, text: str, source: str = "text", part_path: str = "") -> None:
        for raw in find_text_urls(text):
            self.add(raw, source, "", part_path)
            if self.overflow:
                return
