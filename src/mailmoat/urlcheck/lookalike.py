"""Lookalike domains: Unicode confusable skeletons, edit distance and brand names hidden in host names."""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from mailmoat.parse.homoglyphs import CONFUSABLE as _CONFUSABLE
from mailmoat.urlcheck import domains as dom
from mailmoat.urlcheck.links import load_list

# Brand labels that are also everyday words or very short: only exact homoglyph skeletons and
# whole hyphen/dot tokens count for them, never edit distance or substrings.
GENERIC_LABELS = frozenset(
    {
        "office",
        "target",
        "zoom",
        "slack",
        "wise",
        "ledger",
        "booking",
        "box",
        "steam",
        "visa",
        "chase",
        "apple",
        "live",
        "outlook",
        "citi",
        "ing",
        "me",
        "sc",
        "td",
        "db",
        "fb",
        "mi",
        "x",
        "ups",
        "anz",
        "ubs",
        "gls",
        "dpd",
        "evri",
        "hermes",
        "interac",
        "mastercard",
        "trip",
        "meta",
        "stripe",
        "gemini",
        "phantom",
        "exodus",
        "orange",
        "spectrum",
        "kraken",
        "aruba",
        "electrum",
        "caixa",
        "post",
        "att",
        "bb",
        "kbc",
        "ctt",
        "max",
        "usa",
        "canada",
        "cash",
        "lowes",
        "gov",
        "ripple",
        "tether",
    }
)
_MIN_TOKEN = 3  # shorter brand labels (qq, x, db) are never matched as tokens
_MIN_TYPO = 6  # edit distance only for labels at least this long


_ASCII_SEQ = (("rn", "m"), ("vv", "w"), ("0", "o"), ("1", "l"), ("|", "l"))


@functools.lru_cache(maxsize=50_000)
def skeleton(label: str) -> str:
    """A canonical form under which visually confusable labels are equal ('pаypa1' → 'paypal')."""
    s = unicodedata.normalize("NFKC", label).lower()
    s = "".join(_CONFUSABLE.get(ch, ch) for ch in s)
    s = s.replace("-", "").replace("_", "")
    for a, b in _ASCII_SEQ:
        s = s.replace(a, b)
    return s


def edit_distance(a: str, b: str, limit: int) -> int:
    """Damerau–Levenshtein (optimal string alignment) distance, or limit+1 once it exceeds limit."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > limit:
            return limit + 1
        prev2, prev = prev, cur
    return prev[-1]


def scripts_of(label: str) -> set[str]:
    """Unicode scripts of the letters of a label (COMMON characters such as digits are left out)."""
    from confusable_homoglyphs import categories

    out: set[str] = set()
    for ch in label:
        if ch.isalpha():
            out.add(categories.alias(ch))
    return out


@dataclass(frozen=True)
class Brand:
    """A well-known brand: its main domain, the other domains it uses and names it goes by."""

    name: str
    domains: tuple[str, ...]
    names: tuple[str, ...]


@dataclass(frozen=True)
class Lookalike:
    """A host that imitates a domain: what it imitates and how."""

    host: str
    target: str  # the real domain imitated
    kind: str  # "homoglyph", "idn-homograph", "typo", "brand-in-name", "other-suffix"
    brand: str  # brand name, or "" when the target is one of the organisation's own domains
    protected: bool

    def describe(self) -> str:
        what = f"the organisation's domain {self.target}" if self.protected else f"{self.brand} ({self.target})"
        how = {
            "homoglyph": "look-alike characters",
            "idn-homograph": "an internationalised (punycode) homograph",
            "typo": "a one- or two-letter change",
            "brand-in-name": "the brand name inside an unrelated domain",
            "other-suffix": "the same name under another suffix",
        }.get(self.kind, self.kind)
        shown = dom.to_unicode(self.host)
        shown = f"{shown} ({self.host})" if shown != self.host else shown
        return f"{shown} imitates {what} by {how}"


@dataclass(frozen=True)
class _Target:
    label: str
    skel: str
    domain: str
    brand: str
    protected: bool
    primary: bool = True  # the brand's main domain (typos are only sought for it, not for its CDNs)


def _brand_file() -> str:
    return resources.files("mailmoat").joinpath("data/brand_domains.txt").read_text(encoding="utf-8")


def parse_brands(text: str) -> list[Brand]:
    """Brands from the data-file format: `domain | other.domain | Display Name ...` per line."""
    brands: list[Brand] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = [f.strip() for f in line.split("|") if f.strip()]
        doms = tuple(f.lower() for f in fields if "." in f and " " not in f and f.isascii())
        names = tuple(f for f in fields if f not in doms and f.lower() not in doms)
        if not doms:
            continue
        name = names[0] if names else dom.label_of(doms[0]) or doms[0]
        brands.append(Brand(name=name, domains=doms, names=names))
    return brands


_SAAS_TENANTS = load_list("saas_tenants.txt")


def saas_tenant(host: str) -> tuple[str, str] | None:
    """(tenant, platform) when host is a customer's own subdomain of business software listed in
    saas_tenants.txt: ("acme", "zendesk.com") for acme.zendesk.com and mail.acme.zendesk.com."""
    platform = dom.listed_parent(host, _SAAS_TENANTS)
    if not platform:
        return None
    rest = dom.to_ascii(host).removesuffix("." + platform)
    if rest == dom.to_ascii(host) or not rest:
        return None
    return rest.rsplit(".", 1)[-1], platform


@functools.lru_cache(maxsize=1)
def builtin_brands() -> tuple[Brand, ...]:
    return tuple(parse_brands(_brand_file()))


class DomainCatalog:
    """The organisation's own domains and the brands' domains, with lookalike checks against them."""

    def __init__(self, protected: list[str], extra_brands: list[str] | None = None, brand_file: str | Path | None = None) -> None:
        text = Path(brand_file).read_text(encoding="utf-8") if brand_file else None
        brands = list(parse_brands(text) if text is not None else builtin_brands())
        for extra in extra_brands or []:
            brands.extend(parse_brands(extra))
        self.brands = brands
        self.protected = dom.domain_set(protected)
        self.brand_domains: dict[str, Brand] = {}
        for b in brands:
            for d in b.domains:
                self.brand_domains[dom.to_ascii(d)] = b
        self.legit = set(self.protected) | set(self.brand_domains)
        targets: list[_Target] = []
        for d in sorted(self.protected):
            label = dom.label_of(d)
            if label:
                targets.append(_Target(label, skeleton(label), d, "", True))
        for b in brands:
            for i, d in enumerate(b.domains):
                label = dom.label_of(d)
                if label:
                    targets.append(_Target(label, skeleton(label), dom.to_ascii(d), b.name, False, primary=i == 0))
        self._targets = targets
        self._cache: dict[str, Lookalike | None] = {}

    def brand_of(self, host: str) -> Brand | None:
        """The brand that really owns host (host is one of its domains or below one)."""
        owner = dom.listed_parent(host, self.brand_domains.keys())
        return self.brand_domains[owner] if owner else None

    def is_legit(self, host: str) -> bool:
        return dom.in_domains(host, self.legit)

    def is_protected(self, host: str) -> bool:
        return dom.in_domains(host, self.protected)

    def check(self, host: str) -> Lookalike | None:
        """The domain host imitates, or None; the organisation's own domains and real brand domains are never lookalikes."""
        h = dom.to_ascii(host)
        if h in self._cache:
            return self._cache[h]
        result = self._check(h)
        if len(self._cache) > 50_000:
            self._cache.clear()
        self._cache[h] = result
        return result

    def _check(self, h: str) -> Lookalike | None:
        if not h or dom.is_ip(h) or self.is_legit(h):
            return None
        sub, label, _suffix = dom.split(h)
        if not label:
            return None
        ulabel = dom.to_unicode(label)
        skel = skeleton(ulabel)
        is_idn = label.startswith("xn--")
        best: Lookalike | None = None
        rank = {"idn-homograph": 5, "homoglyph": 4, "typo": 3, "brand-in-name": 2, "other-suffix": 1}

        def consider(t: _Target, kind: str) -> None:
            nonlocal best
            cand = Lookalike(host=h, target=t.domain, kind=kind, brand=t.brand, protected=t.protected)
            if best is None or (rank[kind], t.protected) > (rank[best.kind], best.protected):
                best = cand

        sub_tokens = {tok for part in sub.split(".") for tok in part.split("-") if tok}
        # Hyphen-bounded runs, so that a hyphenated name ("acme-corp") is found whole in a
        # subdomain such as acme-corp-mail.example-login.top.
        sub_runs = "-" + sub.replace(".", "-") + "-"
        # <our name>.zendesk.com is our own help desk, not someone posing as us.
        tenant = dom.registrable(h) in _SAAS_TENANTS
        label_tokens = [tok for tok in label.split("-") if tok] if "-" in label else []
        token_skels = [(tok, skeleton(tok)) for tok in label_tokens if len(tok) >= 4]
        if is_idn:
            # A Chinese (or other non-Latin) IDN spelling out a brand's name: 中国银行.com
            for b in self.brands:
                for name in b.names:
                    if not name.isascii() and len(name) >= 2 and name in ulabel:
                        consider(_Target(label, skel, b.domains[0], b.name, False), "brand-in-name")
        for t in self._targets:
            if skel == t.skel:
                if label != t.label:
                    consider(t, "idn-homograph" if is_idn else "homoglyph")
                elif t.protected:
                    # The organisation's name under another suffix; for brands this is usually
                    # their own country site (yahoo.ca, ebay.com.cn), so it is not reported.
                    consider(t, "other-suffix")
                continue
            if is_idn:
                # Non-Latin IDNs (Chinese, Cyrillic words) are only lookalikes through their skeleton.
                continue
            generic = t.label in GENERIC_LABELS
            if not generic and t.primary and len(t.label) >= _MIN_TYPO and len(skel) >= _MIN_TYPO:
                # Two edits only for long names and only when the length barely changes, so that
                # dropping a prefix ('wetransfer' → 'transfer') is not a lookalike.
                limit = 2 if len(t.label) >= 10 and abs(len(skel) - len(t.skel)) <= 1 else 1
                if edit_distance(skel, t.skel, limit) <= limit:
                    consider(t, "typo")
                    continue
            hit = ""
            for tok, tskel in token_skels:
                if tskel == t.skel and tok != t.label:
                    hit = "homoglyph"
                elif not generic and t.primary and tok != t.label and len(tskel) >= _MIN_TYPO and edit_distance(tskel, t.skel, 1) <= 1:
                    hit = hit or "typo"
            if hit:
                consider(t, hit)
                continue
            if len(t.label) < _MIN_TOKEN:
                continue
            # The brand as a whole hyphen token of the name (icbc-cn.top, apple-id.com), as a
            # subdomain word of an unrelated domain (paypal.com.verify.example; only longer,
            # distinctive names), or inside the name (securepaypal.com; longer names only).
            in_label = t.label in label_tokens and (not generic or len(t.label) >= 5)
            in_sub = (t.label in sub_tokens or f"-{t.label}-" in sub_runs) and not generic and len(t.label) >= 5 and not tenant
            inside = not generic and len(t.label) >= _MIN_TYPO and t.label in label
            if in_label or in_sub or inside:
                consider(t, "brand-in-name")
        return best
