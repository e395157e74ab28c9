"""Link tricks: URL shorteners, open redirects (the target hidden in the URL), domains shown in anchor
text; and the packaged domain lists they and the sender checks read (free hosting, abused TLDs,
free mail)."""

from __future__ import annotations

import base64
import binascii
import re
from importlib import resources
from urllib.parse import parse_qsl, unquote, urlsplit

from mailmoat.urlcheck import domains as dom


def load_list(name: str) -> frozenset[str]:
    """A packaged data list (`mailmoat/data/<name>`): one lower-case entry per line, '# comments'."""
    text = resources.files("mailmoat").joinpath(f"data/{name}").read_text(encoding="utf-8")
    return frozenset(ln.split("#", 1)[0].strip().lower() for ln in text.splitlines() if ln.split("#", 1)[0].strip())


SHORTENERS = load_list("url_shorteners.txt")
_HOSTING = load_list("abused_hosting.txt")
FREE_HOSTING = frozenset(e for e in _HOSTING if "/" not in e)
# Entries with a path ("docs.google.com/forms"): only that part of a host anyone can publish to.
FREE_HOSTING_PATHS: dict[str, tuple[str, ...]] = {}
for _entry in sorted(e for e in _HOSTING if "/" in e):
    _host, _, _path = _entry.partition("/")
    FREE_HOSTING_PATHS[_host] = (*FREE_HOSTING_PATHS.get(_host, ()), "/" + _path.rstrip("/"))
ABUSED_TLDS = load_list("abused_tlds.txt")


def _load_pages() -> dict[str, tuple[tuple[str, str], ...]]:
    """shared_pages.txt as host -> ((path prefix, what names the page), ...), longest prefix first."""
    pages: dict[str, list[tuple[str, str]]] = {}
    for entry in load_list("shared_pages.txt"):
        where, _, how = entry.partition(" ")
        host, _, prefix = where.partition("/")
        pages.setdefault(host, []).append(("/" + prefix.rstrip("/") if prefix else "", how.strip()))
    return {h: tuple(sorted(v, key=lambda e: -len(e[0]))) for h, v in pages.items()}


SHARED_PAGES = _load_pages()
FREEMAIL = load_list("freemail_domains.txt")


def sender_identity(addr: str, domain: str) -> str:
    """Who sent a message, when counting unrelated senders: the registrable domain of the From, or
    the whole address at a free-mail provider, whose accounts belong to unrelated people."""
    reg = dom.registrable(domain.strip().lower()) if domain.strip() else ""
    return addr.strip().lower() if reg in FREEMAIL and "@" in addr else reg


# Amazon S3's endpoints are named by region and kind (bucket.s3.us-east-1.amazonaws.com,
# s3-website-eu-west-1.amazonaws.com, s3.dualstack.ap-south-1.amazonaws.com): too many to list,
# and every name under amazonaws.com is Amazon's to give, so the pattern may be loose. Each part
# is one separator and a run without one: "[a-z0-9-]+" there let a name like s3-a-a-a-… be split
# in exponentially many ways before failing.
_S3_ENDPOINT = re.compile(r"(?:^|\.)(s3(?:[.-][a-z0-9]+)*\.amazonaws\.com(?:\.cn)?)$")


def free_hosting(host: str, path: str = "") -> str:
    """The free-hosting / tenant platform a host (and, for path entries, a URL path) lives on ('' when none)."""
    found = dom.listed_parent(host, FREE_HOSTING)
    if not found:
        s3 = _S3_ENDPOINT.search(dom.to_ascii(host))
        found = s3.group(1) if s3 else ""
    if found or not path:
        return found
    h = dom.to_ascii(host)
    low = path.lower()
    for prefix in FREE_HOSTING_PATHS.get(h, ()):
        if low == prefix or low.startswith(prefix + "/"):
            return h + prefix
    return ""


def shared_page(host: str, url: str) -> str:
    """The page a link opens on a platform whose host everyone shares (shared_pages.txt), as
    "host/prefix/<page>" or "host/prefix?name=<value>" ('' for any other link). The page's own
    part keeps its case: form and file ids are case-sensitive."""
    h = dom.to_ascii(host).removeprefix("www.")
    entries = SHARED_PAGES.get(h)
    if not entries and _S3_ENDPOINT.fullmatch(h):  # a regional endpoint, path-style: the bucket is the first segment
        entries = SHARED_PAGES.get("s3.amazonaws.com")
    if not entries:
        return ""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    path = parts.path or "/"
    low = path.lower().rstrip("/")
    for prefix, how in entries:
        if how.startswith("?"):
            if low != prefix:
                continue
            name = how[1:]
            value = next((v for k, v in parse_qsl(parts.query) if k.lower() == name), "").strip()
            return f"{h}{prefix}?{name}={value}" if value else ""
        if low != prefix and not low.startswith(prefix + "/"):
            continue
        n = int(how) if how.isdigit() else 1
        segments = [s for s in path[len(prefix):].split("/") if s][:n]
        return f"{h}{prefix}/{'/'.join(segments)}" if len(segments) == n else ""
    return ""


def abused_tld(host: str) -> str:
    """The host's top-level domain when it is one of the much-abused ones ('' otherwise)."""
    tld = dom.to_ascii(host).rpartition(".")[2]
    return tld if tld in ABUSED_TLDS else ""

# Hosts whose redirect endpoints are abused to launder a phishing link behind a trusted name.
_PATH_REDIRECTS = (re.compile(r"^/amp/s/(?P<t>.+)$"), re.compile(r"^/(?:redirect|r|out|go|link|url)/(?P<t>https?(?::|%3a).+)$", re.I))
_URL_IN_VALUE = re.compile(r"^(?:https?:)?//[^\s/?#]+\.[^\s/?#]+", re.I)


def is_shortener(host: str) -> bool:
    h = dom.to_ascii(host)
    return h in SHORTENERS or (h.startswith("www.") and h[4:] in SHORTENERS)


# "http" in base64 begins "aHR0c". Mail services' click trackers (ActiveCampaign's redirectUrl,
# Mailjet's links) and phishing redirectors carry their target that way, where a filter that
# reads only percent-encoding sees no URL at all.
_BASE64_URL = re.compile(r"aHR0c[A-Za-z0-9+/_-]{6,}")
# Where the decoded target ends: bytes that are no part of a URL (the value may run on past it).
_DECODED_END = re.compile(r"[\x00-\x20\x7f-\x9f\ufffd\\\"'<>]")


def _from_base64(value: str) -> str | None:
    """The URL a base64-encoded value holds (standard or URL-safe alphabet, padding optional)."""
    m = _BASE64_URL.match(value.replace(" ", "+"))  # a query string reads "+" as a space
    if not m:
        return None
    text = m.group(0).replace("-", "+").replace("_", "/")
    text = text[: len(text) - len(text) % 4 if len(text) % 4 == 1 else len(text)]
    try:
        decoded = base64.b64decode(text + "=" * (-len(text) % 4)).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return None
    return _as_url(_DECODED_END.split(decoded, maxsplit=1)[0], base64_too=False)


def _as_url(value: str, base64_too: bool = True) -> str | None:
    v = value.strip()
    for _ in range(3):  # links are often encoded two or three times over
        if _URL_IN_VALUE.match(v):
            return v if not v.startswith("//") else "https:" + v
        if base64_too and v.startswith("aHR0c"):
            return _from_base64(v)
        if base64_too and v.startswith("a1aHR0c"):  # Bing's click redirect (/ck/a?...&u=a1<base64>)
            return _from_base64(v[2:])
        if "%" not in v:
            break
        v = unquote(v)
    return None


# Redirect targets followed per link: a tracker or an open redirect carries one, and a link
# crafted to carry hundreds must not cost hundreds of checks.
MAX_TARGETS = 3


def redirect_targets(url: str, base64_too: bool = True) -> list[str]:
    """URLs carried inside a URL's query string or path (open redirects, tracking and AMP links);
    with `base64_too` False, only those written plainly or percent-encoded."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found: list[str] = []
    for _, value in parse_qsl(parts.query, keep_blank_values=False):
        t = _as_url(value, base64_too)
        if t:
            found.append(t)
    for rx in _PATH_REDIRECTS:
        m = rx.match(parts.path)
        if m:
            target = unquote(m.group("t"))
            if parts.path.startswith("/amp/s/"):
                target = "https://" + target
            found.append(target)
    for segment in parts.path.split("/") if base64_too else ():
        if segment.startswith("aHR0c"):
            t = _from_base64(unquote(segment))
            if t:
                found.append(t)
    if parts.fragment:
        t = _as_url(parts.fragment.lstrip("!/"), base64_too)
        if t:
            found.append(t)
    return found


def destination_hosts(url: str, host: str) -> list[str]:
    """Where a link can take the reader: its own host and those of the targets it carries (a click
    tracker's or an open redirect's, at most MAX_TARGETS), lower case."""
    return [host.lower(), *(host_of(t) for t in redirect_targets(url)[:MAX_TARGETS])]


def host_of(url: str) -> str:
    """Lower-case host of a URL ('' when it has none or cannot be parsed)."""
    try:
        return (urlsplit(url.strip()).hostname or "").rstrip(".").lower()
    except ValueError:
        return ""


# A host starts where a run of host characters starts: tried from inside "a.a.a.a...", the labels
# were matched again from every position (quadratic in the run).
_HOST_IN_TEXT = re.compile(
    r"(?<![\w.-])(?:(?:https?://)?(?P<host>(?:[\w-]{1,63}\.)+(?:[a-z]{2,24}|xn--[a-z0-9-]{2,59})))(?=$|[\s/:?#,;)\]>\"'])",
    re.I,
)
_FILE_LIKE = re.compile(r"\.(?:pdf|docx?|xlsx?|pptx?|zip|rar|7z|png|jpe?g|gif|txt|html?|exe|csv|eml|msg|svg)$", re.I)


def hosts_in_text(text: str) -> list[str]:
    """Host names a reader would take for a web address in visible text ('www.bank.com', 'https://x.y/')."""
    out: list[str] = []
    for m in _HOST_IN_TEXT.finditer(text.strip()):
        host = m.group("host").lower().rstrip(".")
        if _FILE_LIKE.search(host) or "@" in text[max(0, m.start() - 1) : m.start()]:
            continue
        _, label, suffix = dom.split(host)
        if label and suffix:
            out.append(host)
    return out
