"""The function library rule expressions may call (pure helpers plus per-message closures)."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from typing import Any

from mailmoat.model import Message
from mailmoat.parse.hanzi import simplified
from mailmoat.urlcheck.links import FREEMAIL


def words(text: str) -> list[str]:
    """Whitespace-separated words (for long constant lists)."""
    return text.split()


@functools.lru_cache(maxsize=1024)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def matches(text: Any, pattern: str) -> bool:
    """`re.search` (Python syntax; use (?i) for case-insensitive); compiled patterns are cached."""
    return isinstance(text, str) and _regex(pattern).search(text) is not None


def _fold(text: str) -> str:
    """Lower case, and Traditional Chinese as Simplified: "case-insensitive" for Chinese means 工資 finds 工资."""
    return simplified(text).lower()


# Several rules search the same subject and body, so the last few folded texts are kept; only a
# few, since a body may be megabytes (one held twice, as key and as value). The rules' own
# strings are short and many.
_fold_text = functools.lru_cache(maxsize=4)(_fold)
_fold_needle = functools.lru_cache(maxsize=4096)(_fold)


def icontains(text: Any, needle: str) -> bool:
    """Case-insensitive (and Traditional or Simplified Chinese alike) substring."""
    return isinstance(text, str) and _fold_needle(needle) in _fold_text(text)


def contains_any(text: Any, needles: list[str]) -> bool:
    """Case-insensitive (and Traditional or Simplified Chinese alike): does the text contain any of the strings?"""
    if not isinstance(text, str):
        return False
    low = _fold_text(text)
    return any(_fold_needle(n) in low for n in needles)


def count_any(text: Any, needles: list[str]) -> int:
    """Case-insensitive (and Traditional or Simplified Chinese alike): how many of the strings occur in the text."""
    if not isinstance(text, str):
        return 0
    low = _fold_text(text)
    return sum(1 for n in needles if _fold_needle(n) in low)


# Greetings open a message: a name further down is not one.
GREETING_REACH = 600
# What `greets` looks for when a rule names no words of its own: the openings of the languages
# the lures come in.
GREETINGS = (
    "dear", "hello", "hi", "hey", "greetings", "good morning", "good afternoon", "good day", "attention",
    "hallo", "guten tag", "liebe", "lieber", "sehr geehrte", "sehr geehrter",
    "bonjour", "salut", "cher", "chère", "beste", "hoi", "geachte",
    "olá", "ola", "oi", "prezado", "prezada", "prezado(a)", "caro", "cara", "hola", "estimado", "estimada",
    "您好", "你好", "尊敬的", "亲爱的",
)


@functools.lru_cache(maxsize=64)
def _greeting(words: tuple[str, ...]) -> re.Pattern[str]:
    alts = "|".join(re.escape(_fold(w)) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<![a-z])(?:{alts})[\s,:;!.-]{{0,3}}<?")


# What may follow a greeted name: not more of a name or of an address ("jane@example.org.uk").
_NAME_GOES_ON = re.compile(r"[a-z0-9_-]|\.[a-z0-9]")


def greets(text: Any, name: Any, words: list[str] | None = None) -> bool:
    """The opening of the text greets `name` with one of the greeting words (`GREETINGS` unless
    given): "Dear jane@example.org", "Hallo jane@example.org,"; case-insensitive, Traditional and
    Simplified Chinese alike."""
    if not isinstance(text, str) or not isinstance(name, str) or not name:
        return False
    opening, want = _fold_text(text[:GREETING_REACH]), _fold(name)
    return any(
        opening.startswith(want, end) and not _NAME_GOES_ON.match(opening, end + len(want))
        for end in _greeting_ends(opening, tuple(words or GREETINGS))
    )


@functools.lru_cache(maxsize=16)
def _greeting_ends(opening: str, words: tuple[str, ...]) -> tuple[int, ...]:
    # One search per message, however many recipients a rule asks about.
    return tuple(m.end() for m in _greeting(words).finditer(opening))


# A Chinese, Japanese or Korean character (or a full-width sign) says about what three Latin
# letters do: a two-character word is an English word of five or six letters.
CJK_WEIGHT = 3
_WIDE = re.compile("[\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")


def text_size(text: Any) -> int:
    """Length of a text as a reader weighs it: a CJK character or full-width sign counts CJK_WEIGHT."""
    if not isinstance(text, str):
        return 0
    return len(text) + (CJK_WEIGHT - 1) * len(_WIDE.findall(text))


def lower(text: Any) -> str:
    return text.lower() if isinstance(text, str) else ""


def join(items: Any, sep: str = "") -> str:
    """Strings of a list joined with a separator (`names.join(" ")`)."""
    if not isinstance(items, list):
        return ""
    return sep.join(str(x) for x in items)


# An address as a letter writes it out for the reader to answer at ("Email: jane.doe@gmail.com").
_ADDRESS = re.compile(r"(?<![\w.+-])[\w.+-]{1,64}@((?:[a-z0-9-]{1,63}\.)+[a-z]{2,24})(?![\w-])", re.IGNORECASE)
MAX_ADDRESS_TEXT = 60_000


def address_domains(text: Any) -> list[str]:
    """Domains of the e-mail addresses written in a text, lower case, each once, in order."""
    if not isinstance(text, str):
        return []
    out: dict[str, None] = {}
    for m in _ADDRESS.finditer(text[:MAX_ADDRESS_TEXT]):
        out.setdefault(m.group(1).lower(), None)
        if len(out) >= 50:
            break
    return list(out)


def domain_in(domain: Any, domains: list[str]) -> bool:
    """True when the domain equals one of the listed domains or is a sub-domain of one."""
    if not isinstance(domain, str) or not domain:
        return False
    d = domain.lower().rstrip(".")
    for entry in domains:
        e = entry.lower().rstrip(".")
        if d == e or d.endswith("." + e):
            return True
    return False


def is_freemail(domain: Any) -> bool:
    return isinstance(domain, str) and domain.lower().rstrip(".") in FREEMAIL


def ext(name: Any) -> str:
    """Lower-case extension of a file name ('' when none)."""
    if not isinstance(name, str) or "." not in name:
        return ""
    return name.rsplit(".", 1)[1].strip().lower()


_DOUBLE_EXT = re.compile(
    r"\.[a-z0-9]{2,5}\s*\.(?:exe|scr|com|pif|bat|cmd|js|jse|vbs|vbe|wsf|hta|lnk|msi|ps1|jar)\s*$", re.I
)


def has_double_ext(name: Any) -> bool:
    """A document-looking name ending in an executable extension, e.g. 'invoice.pdf.exe'."""
    return isinstance(name, str) and _DOUBLE_EXT.search(name) is not None


@functools.lru_cache(maxsize=1)
def _tld() -> Any:
    import tldextract

    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


@functools.lru_cache(maxsize=4096)
def registrable(host: str) -> str:
    """Registrable domain of a host name (public suffix list, offline)."""
    if not isinstance(host, str) or not host:
        return ""
    return str(_tld()(host).top_domain_under_public_suffix) or host.lower()


STATIC_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "matches": matches,
    "icontains": icontains,
    "contains_any": contains_any,
    "count_any": count_any,
    "lower": lower,
    "text_size": text_size,
    "greets": greets,
    "address_domains": address_domains,
    "join": join,
    "domain_in": domain_in,
    "is_freemail": is_freemail,
    "ext": ext,
    "has_double_ext": has_double_ext,
    "registrable": registrable,
}


def _url_hosts(message: Message) -> Iterable[tuple[str, str]]:
    for u in message.urls:
        yield u.host.lower(), (u.registrable_domain or u.host).lower()


def message_functions(message: Message) -> dict[str, Callable[..., Any]]:
    """Helpers bound to one message (cheap closures; built only when a rule uses them)."""

    def any_url_domain_in(domains: list[str]) -> bool:
        return any(domain_in(host, domains) or domain_in(reg, domains) for host, reg in _url_hosts(message))

    def any_url_matches(pattern: str) -> bool:
        rx = _regex(pattern)
        return any(rx.search(u.url) for u in message.urls)

    def any_attachment_ext_in(exts: list[str]) -> bool:
        wanted = {e.lower().lstrip(".") for e in exts}
        return any(
            ext(p.filename) in wanted or (p.true_ext and p.true_ext.lower() in wanted)
            for p in message.attachments
        )

    return {
        "any_url_domain_in": any_url_domain_in,
        "any_url_matches": any_url_matches,
        "any_attachment_ext_in": any_attachment_ext_in,
    }


MESSAGE_FUNCTION_NAMES = frozenset(message_functions(Message()))
FUNCTION_NAMES = frozenset(STATIC_FUNCTIONS) | MESSAGE_FUNCTION_NAMES
