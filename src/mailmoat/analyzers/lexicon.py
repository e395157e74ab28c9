"""Campaign-content lexicons: weighted lure wording (Chinese, English and the European languages of today's waves), strong when paired with a QR code or link.

The terms and weights are data (`mailmoat/data/lexicon_*.txt`), the symbols, thresholds and
combinations too (`mailmoat/data/lexicon_rules.yml`); this module only loads and matches them.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, ClassVar

from mailmoat.analyzers.base import AnalysisContext, BaseAnalyzer
from mailmoat.classify.tokens import HIDDEN
from mailmoat.model import Finding, Message, Symbol
from mailmoat.parse.hanzi import simplified
from mailmoat.parse.homoglyphs import unmask
from mailmoat.parse.qr import leads_somewhere
from mailmoat.parse.wallets import wallet_address
from mailmoat.rules.engine import load_yaml
from mailmoat.urlcheck import domains as dom

# Lure wording alone is a weak sign of content, capped together with the content heuristics
# (policy.group_caps.content); wording together with a QR code or link is a campaign, in a group
# of its own so that its full score counts beside them.
GROUP = "content"
CAMPAIGN_GROUP = "campaign"
MAX_TEXT = 200_000
# Where a clickable link can come from (images' src and CSS are not links; QR payloads have
# their own combinations).
LINK_SOURCES = {"text", "href", "form", "meta", "pdf", "office", "attachment", ""}
NEEDS = {"qr", "link", "phone", "wallet", "words"}


class LexiconError(ValueError):
    """A lexicon data file that cannot be used (the message says which line and why)."""


@dataclass
class Lexicon:
    symbol: str
    score: float
    threshold: float
    description: str
    terms: dict[str, float] = field(default_factory=dict)  # normalised term -> weight
    # When given, the lexicon fires only if one of these terms (what the lure asks the reader to
    # do) is found, or one term as heavy as the threshold on its own, or (act_weight) one term at
    # least that heavy: where every lure term outweighs every plain noun, a weight says it once.
    acts: frozenset[str] = frozenset()
    act_weight: float | None = None

    def fires(self, hit: LexiconHit) -> bool:
        if hit.weight < self.threshold:
            return False
        if not self.acts and self.act_weight is None:
            return True
        heavy = self.threshold if self.act_weight is None else min(self.act_weight, self.threshold)
        return any(t in self.acts or self.terms.get(t, 0.0) >= heavy for t in hit.terms)


@dataclass
class Combo:
    symbol: str
    lexicon: str
    needs: str  # "qr", "link", "phone" (a number to call and no link out), "wallet" (a crypto address to pay) or "words"
    score: float
    description: str
    # "words": nothing but the wording, so much of it (at least this weight, in at least this many
    # distinct terms) that the text is the lure itself
    min_weight: float = 0.0
    min_terms: int = 0


@dataclass
class LexiconSet:
    lexicons: dict[str, Lexicon]
    combos: list[Combo]
    # normalised term -> [(lexicon symbol, weight)]
    index: dict[str, list[tuple[str, float]]]
    # term -> (its ASCII letter/digit runs, its words with other characters): what must be in a
    # text for the term to match there (see `candidates`)
    needs: dict[str, tuple[frozenset[str], tuple[str, ...]]] = field(default_factory=dict)
    # normalised term -> the term as its file writes it (with its accents), for evidence
    spelling: dict[str, str] = field(default_factory=dict)

    def shown(self, terms: Iterable[str]) -> list[str]:
        """Terms as the lexicon files write them: "ausgewählt", not the bare "ausgewahlt" matched."""
        return [self.spelling.get(t, t) for t in terms]

    def candidates(self, text: str) -> tuple[str, ...]:
        """The terms that can match in `text` (normalised), longest first (`_order`).

        Every ASCII letter/digit run of a term is a whole run in the text wherever the term
        matches: the term's ends carry word boundaries and its inner runs are bordered by the
        term's own other characters. So a set lookup per run, and a substring test for the
        words with other characters (CJK), leave out terms that cannot match. A pattern built
        from the rest finds exactly what one of every term would find, at a fraction of the cost:
        that big alternation would try every term at every position of the text.
        """
        terms, by_atom, always, non_ascii = self._plan
        runs = _ascii_runs(text)
        # Each term is looked at only when its longest run is in the text; terms without runs
        # (Chinese words) only when the text is not ASCII.
        picked = [i for atom in runs & by_atom.keys() for i in by_atom[atom]]
        picked += always
        if not text.isascii():
            picked += non_ascii
        out = []
        for i in sorted(picked):
            k, atoms, words = terms[i]
            if atoms <= runs and all(w in text for w in words):
                out.append(k)
        return tuple(out)

    @functools.cached_property
    def _plan(
        self,
    ) -> tuple[tuple[tuple[str, frozenset[str], tuple[str, ...]], ...], dict[str, list[int]], list[int], list[int]]:
        """The terms, longest first; their positions by longest run; those with neither runs nor
        non-ASCII words (symbols only); those with non-ASCII words only."""
        needs = self.needs or _needs(self.index)
        terms = tuple((k, atoms, words) for k, (atoms, words) in needs.items())
        by_atom: dict[str, list[int]] = {}
        always: list[int] = []
        non_ascii: list[int] = []
        for i, (_, atoms, words) in enumerate(terms):
            if atoms:
                by_atom.setdefault(max(atoms, key=lambda a: (len(a), a)), []).append(i)
            elif words:
                non_ascii.append(i)
            else:
                always.append(i)
        return terms, by_atom, always, non_ascii

    @functools.cached_property
    def beginnings(self) -> dict[str, tuple[str, ...]]:
        """Term -> the shorter terms it begins with, longest first ("代开发票" -> "代开"): a match
        finds only the longest term at a position, and another lexicon may list the shorter one."""
        out: dict[str, tuple[str, ...]] = {}
        for term, entries in self.index.items():
            own = {sym for sym, _ in entries}
            # A head listed only by the term's own lexicons would never count: the longest term wins there.
            heads = [
                term[:i]
                for i in range(len(term) - 1, 0, -1)
                if any(sym not in own for sym, _ in self.index.get(term[:i], ()))
            ]
            if heads:
                out[term] = tuple(heads)
        return out

    def symbols(self) -> tuple[Symbol, ...]:
        out = [Symbol(lx.symbol, lx.score, GROUP, lx.description) for lx in self.lexicons.values()]
        out += [Symbol(c.symbol, c.score, CAMPAIGN_GROUP, c.description) for c in self.combos]
        return tuple(out)


_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# "工 资 补 贴", "工资\n补贴" and "工.资.补.贴", "工*资*补*贴" are written to dodge filters; a
# reader sees the words. Only spaces and signs that Chinese text never puts between two
# characters count: its own punctuation (，。、：) ends a word, and is kept.
_CJK_GAP = re.compile(f"(?<=[{_CJK}])(?:[\\s\u3000]+|[.*_/\\\\|~+#^=•·・-][\\s\u3000]*)(?=[{_CJK}])")
_SPACES = re.compile(r"\s+")
_WORD_CHAR = re.compile(r"\w")
_ASCII_RUN = re.compile(r"[a-z0-9]+")  # normalised text is lower-case


# ASCII letters and digits kept, every other byte a space: a text's runs in one translate and split.
_RUN_TABLE = bytes(c if 0x30 <= c <= 0x39 or 0x61 <= c <= 0x7A else 0x20 for c in range(256))


def _ascii_runs(text: str) -> set[str]:
    """The set of `_ASCII_RUN` matches in `text` (translate and split: twice as fast on ASCII text)."""
    if text.isascii():
        return set(text.encode("ascii").translate(_RUN_TABLE).decode("ascii").split())
    return set(_ASCII_RUN.findall(text))


# Accents on Latin letters: lures in German, French or Portuguese are often written without them
# ("intimacao", "Gluckwunsch"), so terms and text are both read bare.
_LATIN_MARKS = re.compile("[\u0300-\u036f]")
# Accented Latin letters as NFKC writes them (precomposed), or a mark it could not compose: a
# cheap test that spares Chinese text the decomposition.
_ACCENTED = re.compile("[\u00c0-\u024f\u1e00-\u1eff\u0300-\u036f]")


def _bare(text: str) -> str:
    """Latin letters without their accents ("ausgewählt" → "ausgewahlt"); kana, Hangul and CJK unchanged
    (NFD then NFC gives them back as they were, and their marks lie outside the Latin range)."""
    if not _ACCENTED.search(text):
        return text
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFC", _LATIN_MARKS.sub("", decomposed))


def normalise(text: str) -> str:
    text = text[:MAX_TEXT]
    if text.isascii():  # NFKC, accents, zero-width characters and CJK gaps change nothing in ASCII
        return text.lower()
    text = simplified(unicodedata.normalize("NFKC", text))
    text = _bare(unmask(HIDDEN.sub("", text)).lower())
    return _CJK_GAP.sub("", text)


def _term_key(term: str) -> str:
    return _SPACES.sub(" ", normalise(term).strip())


def _is_word_edge(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


def _term_pattern(term: str, bounded: bool = True) -> str:
    body = r"\s+".join(re.escape(w) for w in term.split(" "))
    if not bounded:
        return body
    # Whole words for alphabetic terms; Chinese has no spaces, so substrings.
    left = r"(?<!\w)" if _is_word_edge(term[0]) else ""
    right = r"(?!\w)" if _is_word_edge(term[-1]) else ""
    return left + body + right


def parse_terms(text: str, where: str) -> list[tuple[str, float, str]]:
    """Lines of `SYMBOL weight term...` (blank lines and # comments skipped)."""
    out: list[tuple[str, float, str]] = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(None, 2)
        if len(fields) != 3:
            raise LexiconError(f"{where}:{n}: expected 'SYMBOL weight term'")
        sym, weight_s, term = fields
        try:
            weight = float(weight_s)
        except ValueError as exc:
            raise LexiconError(f"{where}:{n}: weight {weight_s!r} is not a number") from exc
        out.append((sym, weight, term))
    return out


def build(rules: dict[str, Any], term_files: dict[str, str]) -> LexiconSet:
    """A matcher from the rules table and the term files' contents (name -> text)."""
    lexicons: dict[str, Lexicon] = {}
    for sym, spec in dict(rules.get("lexicons") or {}).items():
        try:
            lexicons[sym] = Lexicon(
                symbol=sym,
                score=float(spec["score"]),
                threshold=float(spec["threshold"]),
                description=str(spec.get("description", sym)),
                acts=frozenset(_term_key(str(t)) for t in spec.get("acts") or ()),
                act_weight=None if spec.get("act_weight") is None else float(spec["act_weight"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise LexiconError(f"lexicon {sym}: needs score and threshold; score, threshold and act_weight are numbers ({exc})") from exc
    combos: list[Combo] = []
    for sym, spec in dict(rules.get("combos") or {}).items():
        lex = str(spec.get("lexicon", ""))
        needs = str(spec.get("needs", ""))
        if lex not in lexicons:
            raise LexiconError(f"combo {sym}: unknown lexicon {lex!r}")
        if needs not in NEEDS:
            raise LexiconError(f"combo {sym}: needs must be one of {sorted(NEEDS)}")
        try:
            min_weight = float(spec.get("min_weight", 0.0))
            min_terms = int(spec.get("min_terms", 0))
        except (TypeError, ValueError) as exc:
            raise LexiconError(f"combo {sym}: min_weight and min_terms are numbers ({exc})") from exc
        if needs != "words" and ("min_weight" in spec or "min_terms" in spec):
            # A link, QR code, number or wallet is what those combinations wait for; a minimum of
            # wording there would be read by nothing.
            raise LexiconError(f"combo {sym}: min_weight and min_terms belong to needs: words only")
        if needs == "words" and min_weight <= lexicons[lex].threshold:
            # Wording at the lexicon's own threshold is its weak sign already, not a lure by itself.
            raise LexiconError(f"combo {sym}: needs words with a min_weight above {lex}'s threshold")
        combos.append(Combo(sym, lex, needs, float(spec["score"]), str(spec.get("description", sym)), min_weight, min_terms))
    index: dict[str, list[tuple[str, float]]] = {}
    spelling: dict[str, str] = {}
    for name, text in sorted(term_files.items()):
        for sym, weight, term in parse_terms(text, name):
            if sym not in lexicons:
                raise LexiconError(f"{name}: term {term!r} names unknown lexicon {sym}")
            key = _term_key(term)
            if key in lexicons[sym].terms:
                # Read bare, "prêmio" and "premio" are one term: listed twice, one weight would be lost.
                raise LexiconError(f"{name}: term {term!r} is already in {sym} (accents and case are not told apart)")
            if key:
                lexicons[sym].terms[key] = weight
                index.setdefault(key, []).append((sym, weight))
                spelling.setdefault(key, _SPACES.sub(" ", term.strip()))
    for lexicon in lexicons.values():
        if unknown := sorted(lexicon.acts - lexicon.terms.keys()):
            raise LexiconError(f"lexicon {lexicon.symbol}: acts {unknown} are none of its terms")
    return LexiconSet(lexicons, combos, index, _needs(index), spelling)


def _order(keys: Iterable[str]) -> tuple[str, ...]:
    # Longest first, so "工资补贴" is one match rather than "工资" and "补贴".
    return tuple(sorted(keys, key=lambda k: (-len(k), k)))


@functools.lru_cache(maxsize=512)
def _compile(keys: tuple[str, ...]) -> re.Pattern[str]:
    """One alternation of the terms; whole-word terms share one pair of boundary checks."""
    keys = _order(keys)
    worded = [k for k in keys if _is_word_edge(k[0]) and _is_word_edge(k[-1])]
    others = [k for k in keys if not (_is_word_edge(k[0]) and _is_word_edge(k[-1]))]
    alts: list[str] = []
    if worded:
        alts.append(r"(?<!\w)(?:" + "|".join(_term_pattern(k, bounded=False) for k in worded) + r")(?!\w)")
    alts += [_term_pattern(k) for k in others]
    return re.compile("|".join(alts) if alts else r"(?!x)x")


def _needs(index: dict[str, list[tuple[str, float]]]) -> dict[str, tuple[frozenset[str], tuple[str, ...]]]:
    return {
        k: (frozenset(_ASCII_RUN.findall(k)), tuple(w for w in k.split(" ") if not w.isascii()))
        for k in _order(index)
    }


def load_builtin() -> LexiconSet:
    pkg = resources.files("mailmoat") / "data"
    rules = load_yaml((pkg / "lexicon_rules.yml").read_text(encoding="utf-8")) or {}
    files = {
        entry.name: entry.read_text(encoding="utf-8")
        for entry in pkg.iterdir()
        if entry.name.startswith("lexicon_") and entry.name.endswith(".txt")
    }
    return build(rules, files)


@dataclass
class LexiconHit:
    symbol: str
    weight: float
    terms: list[str]
    documents: list[str] = field(default_factory=list)  # attached documents that added terms the message lacks


@functools.lru_cache(maxsize=512)
def _compile_overlapping(keys: tuple[str, ...]) -> re.Pattern[str]:
    """The terms' alternation inside a lookahead: a match at every position where a term starts,
    so that one lexicon's phrase does not hide another's word ("your subscription has expired"
    holds the credential lexicon's "expired")."""
    return re.compile(f"(?=({_compile(keys).pattern}))")


def _found(lexset: LexiconSet, text: str) -> dict[str, dict[str, float]]:
    """Per lexicon: the distinct terms in a normalised text, with their weights.

    Within one lexicon the longest term read from the left wins, as a plain scan would ("account"
    inside "verify your account" is not counted again); terms of different lexicons may overlap.
    """
    found: dict[str, dict[str, float]] = {}
    candidates = lexset.candidates(text)
    if not candidates:
        return found
    reach: dict[str, int] = {}  # per lexicon: where its last counted term ended
    index, beginnings = lexset.index, lexset.beginnings
    for m in _compile_overlapping(candidates).finditer(text):
        key = matched = m.group(1)
        entries = index.get(key)
        if entries is None:  # a line break or a run of spaces between the term's words
            key = _SPACES.sub(" ", matched)
            entries = index.get(key, [])
        start = m.start()
        end = start + len(matched)
        # Written out rather than shared with _count_heads: a call per match costs about 15% on
        # text where every position is a term (many invoice-sale paragraphs, a scratch timing).
        for sym, weight in entries:
            if start < reach.get(sym, 0):
                continue
            reach[sym] = end
            found.setdefault(sym, {})[key] = weight
        heads = beginnings.get(key)
        if heads and matched == key:
            _count_heads(heads, index, text, start, reach, found)
    return found


def _count_heads(
    heads: tuple[str, ...],
    index: dict[str, list[tuple[str, float]]],
    text: str,
    start: int,
    reach: dict[str, int],
    found: dict[str, dict[str, float]],
) -> None:
    """Another lexicon's shorter term at the same place ("代开" inside the bulk lexicon's "代开发票"),
    where it would match on its own: a whole word if it ends in a letter or digit."""
    for head in heads:
        end = start + len(head)
        if _is_word_edge(head[-1]) and end < len(text) and _WORD_CHAR.match(text, end):
            continue
        for sym, weight in index[head]:
            if start < reach.get(sym, 0):
                continue
            reach[sym] = end
            found.setdefault(sym, {})[head] = weight


def match(lexset: LexiconSet, message: Message) -> dict[str, LexiconHit]:
    """Per lexicon: summed weight and the distinct terms found (every lexicon that matched anything)."""
    # The sender's display name is read like the subject: the reader sees both before the body,
    # and spam puts its pitch there too ("Claim Your Free Spins", "Your Bonus Inside").
    found = _found(lexset, normalise("\n".join((message.from_.display, message.subject, message.text, message.html_text))))
    # An attached document is read too: a lure sent as "see the attached notice" says it there.
    from_documents: dict[str, list[str]] = {}
    for doc in message.documents:
        for sym, terms in _found(lexset, normalise(doc.text)).items():
            have = found.setdefault(sym, {})
            if terms.keys() - have.keys():
                have.update(terms)
                from_documents.setdefault(sym, []).append(doc.label)
    return {
        sym: LexiconHit(sym, sum(terms.values()), sorted(terms, key=lambda t: (-terms[t], t)), from_documents.get(sym, []))
        for sym, terms in found.items()
    }


# A telephone number as written in mail: an optional +country code, groups of digits separated by
# single spaces, dots, dashes or brackets ("+1 (808) 555-0143", "400-820-5555", "138 0013 8000").
# Two numbers written side by side ("013420942588  0755-81547669") are two, not one too long;
# and Chinese writes a number straight after its words ("联系人张诗杰13318787770"), so only a
# Latin letter or digit next to it makes it part of a longer code.
_PHONE = re.compile(r"(?<![A-Za-z0-9_+])(?:\+|\(|\d)(?:[\d().-]| (?=[\d(])){7,22}\d(?![A-Za-z0-9_])")
_PHONE_SPLIT = re.compile(r"[ ().-]")
_DATE_LIKE = re.compile(r"^(?:19|20)\d\d[.-]\d{1,2}[.-]\d{1,2}")


def phone_number(text: str) -> str | None:
    """The first telephone number in a text: 10 to 15 digits in at most five groups (long digit
    runs such as order or card numbers, and dates, are not numbers to call)."""
    text = text[:MAX_TEXT]
    if not text.isascii():
        # Full-width digits and brackets ("１３８００１３８０００", "（０２０）") are the same number to a reader.
        text = unicodedata.normalize("NFKC", text)
    for m in _PHONE.finditer(text):
        number = m.group(0)
        if number.count("(") > number.count(")"):
            # "013826588844(24小时)": a bracket opened after the number is a remark, not its area code.
            number = number[: number.rindex("(")]
        number = number.strip(" .-")
        digits = sum(c.isdigit() for c in number)
        groups = [g for g in _PHONE_SPLIT.split(number) if g]
        # One group of digits is a number only when it reads as one: +country code, a mobile, or
        # a Chinese number dialled with its trunk 0 (01065123456, and 013826588844 for a mobile).
        trunk = number[:1] == "0" and 11 <= digits <= 12
        grouped = len(groups) > 1 or number.startswith("+") or number[:1] == "1" or trunk
        if 10 <= digits <= 15 and len(groups) <= 5 and grouped and not _DATE_LIKE.match(number):
            return number
    return None


def has_link(message: Message, own: AbstractSet[str] = frozenset()) -> bool:
    """A web link to follow out of the organisation. Links into its own domains (`own`: the
    intranet in an HR or IT notice) or to an address of its own network are not where a lure
    sends anyone."""
    for u in message.urls:
        scheme = u.scheme or u.url.partition(":")[0].lower()
        if scheme in ("http", "https") and u.source in LINK_SOURCES:
            if own and u.host and dom.in_domains(dom.to_ascii(u.host), own):
                continue
            if u.host and dom.is_internal_address(u.host):
                continue
            return True
    return False


_BUILTIN = load_builtin()


class LexiconAnalyzer(BaseAnalyzer):
    name = "lexicon"
    symbols: ClassVar[tuple[Symbol, ...]] = _BUILTIN.symbols()

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        self.lexset = _BUILTIN
        self.own = dom.domain_set(env.settings.server.domains)

    async def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        msg = ctx.message
        hits = match(self.lexset, msg)
        findings: list[Finding] = []
        fired: dict[str, LexiconHit] = {}
        for sym, hit in hits.items():
            lex = self.lexset.lexicons[sym]
            if not lex.fires(hit):
                continue
            fired[sym] = hit
            where = f"; with the text of {', '.join(hit.documents[:3])}" if hit.documents else ""
            terms = self.lexset.shown(hit.terms)
            findings.append(
                self.finding(
                    sym,
                    f"matched {', '.join(terms[:12])} (weight {hit.weight:g} ≥ {lex.threshold:g}){where}",
                    {"terms": terms, "weight": hit.weight, "documents": hit.documents},
                )
            )
        if not fired:
            return findings
        qr = [q.payload for q in msg.qr_codes if leads_somewhere(q.payload)]
        link = has_link(msg, self.own)
        # What the reader is asked to do may be written in the attached document alone.
        said = f"{msg.subject}\n{msg.body_text}\n{msg.document_text}"
        with_qr: set[str] = set()
        # QR combinations first: a lure with a QR code is not counted again for its links.
        for combo in sorted(self.lexset.combos, key=lambda c: c.needs != "qr"):
            combo_hit = fired.get(combo.lexicon)
            if combo_hit is None or combo.lexicon in with_qr:
                continue
            if combo.needs == "qr" and qr:
                with_qr.add(combo.lexicon)
                what = f"QR code ({qr[0][:120]})"
            elif combo.needs == "link" and link:
                what = "a link"
            elif combo.needs == "phone" and not link and (phone := phone_number(said)):
                # Callback phishing gives a number to call instead of a link: URL checks see nothing.
                what = f"a number to call ({phone}) and no link"
            elif combo.needs == "wallet" and (wallet := wallet_address(said)):
                # Extortion needs no link either: it names the address to pay.
                what = f"a cryptocurrency address to pay ({wallet})"
            elif combo.needs == "words" and combo_hit.weight >= combo.min_weight and len(combo_hit.terms) >= combo.min_terms:
                # An advance-fee letter asks for a reply, nothing else: its words are the whole lure.
                what = f"{len(combo_hit.terms)} terms of weight {combo_hit.weight:g}: the wording alone is the lure"
            else:
                continue
            terms = self.lexset.shown(combo_hit.terms)
            findings.append(
                self.finding(
                    combo.symbol,
                    f"{', '.join(terms[:8])} with {what}",
                    {"terms": terms, "weight": combo_hit.weight, "needs": combo.needs},
                )
            )
        return findings
