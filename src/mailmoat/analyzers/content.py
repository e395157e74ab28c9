"""Content heuristics: small, independent signs of bulk and phishing mail, each its own modest symbol.

Each heuristic looks at how the message is written, never at when or by what software it was
sent. Every one was kept only if it fires on a clearly larger share of spam and phishing than of
legitimate mail on the training half of the development corpora (figures in docs/detection.md);
alone none of them moves a verdict, and the group is capped (`policy.group_caps.content`), so
their job is to tip a message the classifier already finds likely spam over the line.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from typing import ClassVar

from mailmoat.analyzers.base import AnalysisContext, BaseAnalyzer
from mailmoat.model import Finding, Message, Symbol
from mailmoat.parse.homoglyphs import disguised_words, unmask

GROUP = "content"
# Only the start of a long body is read: the signs are in the first screens, and a cap keeps a
# hostile multi-megabyte text part cheap.
MAX_TEXT = 20_000

CONTENT_SUBJECT_MONEY = Symbol(
    "CONTENT_SUBJECT_MONEY", 1.5, GROUP, "The subject talks money: a currency sign or a percentage"
)
CONTENT_SUBJECT_CAPS = Symbol("CONTENT_SUBJECT_CAPS", 1.5, GROUP, "The subject is written mostly in capitals")
CONTENT_SUBJECT_EXCLAIM = Symbol(
    "CONTENT_SUBJECT_EXCLAIM", 1.0, GROUP, "The subject contains an exclamation mark"
)
CONTENT_SUBJECT_GAP = Symbol(
    "CONTENT_SUBJECT_GAP",
    2.5,
    GROUP,
    "The subject hides a tail behind a long run of spaces (a per-recipient tag)",
)
CONTENT_DISPLAY_NAME_PUNCT = Symbol(
    "CONTENT_DISPLAY_NAME_PUNCT", 2.0, GROUP, "The sender's display name contains '!' or '$'"
)
CONTENT_DISPLAY_NAME_LURE = Symbol(
    "CONTENT_DISPLAY_NAME_LURE",
    2.0,
    GROUP,
    "The sender's display name is an advertisement or a lure (Todays Winner!, Claim Your Jackpot, Bitget Airdrop, Viagra/Cialis)",
)
CONTENT_ZERO_WIDTH = Symbol(
    "CONTENT_ZERO_WIDTH",
    2.5,
    GROUP,
    "Invisible characters inside words of the sender's name, the subject or the text (filter evasion)",
)
CONTENT_HIDDEN_IN_WORDS = Symbol(
    "CONTENT_HIDDEN_IN_WORDS",
    2.5,
    GROUP,
    "Hidden HTML text placed inside words the reader sees whole (filter evasion)",
)
CONTENT_MARKED_LETTERS = Symbol(
    "CONTENT_MARKED_LETTERS",
    2.5,
    GROUP,
    "Words written with a combining stroke or underline on every letter (filter evasion)",
)
CONTENT_STYLED_LETTERS = Symbol(
    "CONTENT_STYLED_LETTERS",
    2.5,
    GROUP,
    "Words spelt in mathematical, circled or squared letters (𝘿𝙊𝘾𝙏𝙊𝙍, Ⓕⓡⓔⓔ) instead of plain ones (filter evasion)",
)
CONTENT_LOOKALIKE_LETTERS = Symbol(
    "CONTENT_LOOKALIKE_LETTERS",
    2.5,
    GROUP,
    "Words spelt with look-alike letters of another alphabet among Latin ones (pаssword with a Cyrillic а) (filter evasion)",
)
CONTENT_IMAGE_ONLY = Symbol(
    "CONTENT_IMAGE_ONLY",
    2.5,
    GROUP,
    "The body says next to nothing in words: remote pictures and a link to follow (image spam, which text filters cannot read)",
)
CONTENT_BODY_CAPS = Symbol(
    "CONTENT_BODY_CAPS", 1.5, GROUP, "More than a quarter of the body's words are in capitals"
)
CONTENT_LINKS_ONE_DOMAIN = Symbol(
    "CONTENT_LINKS_ONE_DOMAIN",
    1.0,
    GROUP,
    "Three or more links all lead to one domain other than the sender's",
)
CONTENT_CLICK_HERE = Symbol("CONTENT_CLICK_HERE", 1.0, GROUP, "The text asks to 'click here'")
CONTENT_BULK_NO_LIST = Symbol(
    "CONTENT_BULK_NO_LIST",
    1.0,
    GROUP,
    "Unsubscribe or opt-out wording without a List-Unsubscribe or List-Id header",
)
CONTENT_MONEY_TALK = Symbol(
    "CONTENT_MONEY_TALK", 1.0, GROUP, "The text quotes sums of money three or more times"
)
CONTENT_UNDECODABLE = Symbol(
    "CONTENT_UNDECODABLE", 2.0, GROUP, "The text is not valid in the character set it declares"
)
CONTENT_GARBLED = Symbol(
    "CONTENT_GARBLED",
    2.5,
    GROUP,
    "Much of the text is control, private-use or replacement characters: unreadable",
)

# Only inside a word ("ver\u200bify"): that splits a word a filter looks for, while the runs of
# zero-width joiners between spaces that newsletters use to pad their preview text are harmless.
_INVISIBLE = "\u200b\u200c\u200d\u2060-\u2064\ufeff\u034f\u180e"
# Variation selectors and tag characters draw nothing after a Latin, Greek or Cyrillic letter
# ("b\U000e0139a\U000e0139nk"); after a Han character a selector picks a glyph variant (Japanese
# names), so there it is not counted.
_SELECTORS = "\ufe00-\ufe0f\U000e0000-\U000e007f\U000e0100-\U000e01ef"
_NOT_CJK_LETTER = "[^\\W\\d_\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\U00020000-\U0003134f]"
_ZERO_WIDTH = re.compile(
    f"(?<=[^\\W\\d_])[{_INVISIBLE}]+(?=[^\\W\\d_])|(?<={_NOT_CJK_LETTER})[{_INVISIBLE}{_SELECTORS}]+(?=[^\\W\\d_])"
)
_ZERO_WIDTH_ANY = re.compile(f"[{_INVISIBLE}{_SELECTORS}]")  # cheap pre-check
# Four or more letters in a row each struck through or underlined by a combining mark
# ("P\u0336e\u0336n\u0336d\u0336"): the reader sees the word, a filter sees none.
_MARKED_LETTERS = re.compile("(?:[^\\W\\d_][\u0332-\u0338]+){4,}")
_MARKS_ANY = re.compile("[\u0332-\u0338]")  # cheap pre-check
# Four or more letters in a row from the Unicode blocks that draw Latin letters in another style:
# mathematical bold/italic/script/sans (U+1D400-U+1D7FF), circled (U+24B6-U+24E9), squared and
# negative squared (U+1F130-U+1F189). People read "DOCTOR"; a filter sees no word it knows.
# Fullwidth letters are left out: they are ordinary in Chinese and Japanese text.
_STYLED_LETTERS = re.compile("[\U0001d400-\U0001d7ff\u24b6-\u24e9\U0001f130-\U0001f189]{4,}")
_SUBJ_MONEY = re.compile(r"[$€£¥]\s?[\d.,]*\d|[$€£¥]|(?<![\d.,])\d+(?:[.,]\d+)?\s?%")
_SUBJ_GAP = re.compile(r"\S\s{5,}\S")
_CAPS_WORD = re.compile(r"\b[A-Z]{2,}\b")
_ASCII_WORD = re.compile(r"[A-Za-z]{2,}")
# These three run on the lower-cased text, each only when a plain substring test finds the words it
# needs: most mail has none, and a substring test is far cheaper than a case-insensitive search.
_CLICK = re.compile(r"click\s+here|点击这里|点击此处")
_CLICK_NEEDS = ("click", "点击")
_UNSUB = re.compile(r"unsubscribe|opt[- ]?out\b|remove(?:d)? from (?:our|this|the) (?:mailing |e-?mail )?list|退订|取消订阅")
_UNSUB_NEEDS = ("unsubscribe", "opt", "remove", "退订", "取消订阅")
_MONEY = re.compile(r"[$€£¥]\s?\d|\d\s?(?:usd|dollars|euros?)\b|\d\s?(?:美元|万元|元)")
_MONEY_NEEDS = ("$", "€", "£", "¥", "usd", "dollars", "euro", "元")
# Fewer capitalised words than this cannot be a quarter of the 30 words CONTENT_BODY_CAPS needs.
_MIN_CAPS = 8
# Words that make a sender's name an advertisement: people and companies are not called this.
# Left out on purpose, as real senders' names: rewards, bonus, gift, refund and lottery (loyalty
# programmes, shops, national lotteries), "Winners" (a retailer), "... Singles" (dating services).
_NAME_LURE = re.compile(
    r"(?<![^\W_])(?:airdrop|jackpot|sex|winner|gewinner|winnaar|gagnant|ganhador|prizes?|claim your|giveaway"
    r"|congratulations|payout|free spins|viagra|cialis)(?![^\W_])"
    r"|中奖|大奖|领奖",  # Chinese words have no edges to match: a part of a longer run of characters
    re.I,
)
# Words a reader sees: two letters or more, or one Han character.
_SEEN_WORD = re.compile(r"[^\W\d_]{2,}|[\u3400-\u9fff]")
# At most this many words beside the pictures: a banner's alt text or a one-line caption.
IMAGE_ONLY_WORDS = 10
_GARBAGE = re.compile("[\ufffd\ue000-\uf8ff\x00-\x08\x0b\x0c\x0e-\x1f]")
# ASCII text: `\b` needs a word character on one side only, so a `_CAPS_WORD` match is a whole run
# of word characters ([A-Za-z0-9_]) that is all capitals. Splitting on everything else and testing
# the runs is what the pattern finds, without trying it at every position of the text.
_NOT_WORD = bytes(c if (chr(c).isalnum() and c < 128) or c == 0x5F else 0x20 for c in range(256))
_CONTROL_KEEP = bytes(c for c in range(256) if not (c <= 0x08 or c in (0x0B, 0x0C) or 0x0E <= c <= 0x1F))


def _count_caps_words(text: str) -> int:
    """len(_CAPS_WORD.findall(text))."""
    if not text.isascii():
        return len(_CAPS_WORD.findall(text))
    upper = [w for w in text.encode("ascii").translate(_NOT_WORD).split() if w.isupper()]
    return sum(1 for w in upper if len(w) > 1 and w.isalpha())


def _count_garbage(text: str) -> int:
    """len(_GARBAGE.findall(text)): in ASCII text only control characters can match."""
    if text.isascii():
        return len(text.encode("ascii").translate(None, _CONTROL_KEEP))
    return len(_GARBAGE.findall(text))


def _search(pattern: re.Pattern[str], needs: tuple[str, ...], text: str, low: str) -> str | None:
    """The first match in the lower-cased text, as written in the original (None when none)."""
    if not any(n in low for n in needs):
        return None
    m = pattern.search(low)
    if m is None:
        return None
    # Lower-casing keeps the length of nearly every text; when it does not, show the lower case.
    return text[m.start() : m.end()] if len(low) == len(text) else m.group(0)


def _findall(pattern: re.Pattern[str], needs: tuple[str, ...], text: str, low: str) -> list[str]:
    if not any(n in low for n in needs):
        return []
    if len(low) != len(text):
        return [m.group(0) for m in pattern.finditer(low)]
    return [text[m.start() : m.end()] for m in pattern.finditer(low)]


def _subject_caps(subject: str) -> bool:
    letters = [c for c in subject if c.isascii() and c.isalpha()]
    return len(letters) >= 10 and sum(c.isupper() for c in letters) / len(letters) > 0.7


def _links_one_domain(message: Message) -> tuple[str, int] | None:
    """The domain that three or more of the message's links go to, when it is not the sender's."""
    doms = Counter(
        (u.registrable_domain or u.host).lower()
        for u in message.urls[:200]
        if u.source in ("href", "text") and (u.registrable_domain or u.host)
    )
    if not doms:
        return None
    dom, n = doms.most_common(1)[0]
    sender = message.from_.domain
    if n >= 3 and sender and sender != dom and not sender.endswith("." + dom):
        return dom, n
    return None


def _image_only(m: Message) -> str | None:
    """Evidence when the body is pictures fetched from the web and a link, with next to no words.
    Attached documents and inline (cid) pictures are the reader's content, not this."""
    if m.attachments or m.documents:
        return None
    pictures = [u for u in m.urls if u.source in ("src", "css") and u.scheme in ("http", "https")]
    links = [u for u in m.urls if u.source == "href" and u.scheme in ("http", "https")]
    if not pictures or not links:
        return None
    words = max(len(_SEEN_WORD.findall(t[:MAX_TEXT])) for t in (m.text, m.html_text))
    if words > IMAGE_ONLY_WORDS:
        return None
    return f"{words} word(s) beside {len(pictures)} remote picture(s); link to {links[0].host or links[0].url[:60]}"


class ContentAnalyzer(BaseAnalyzer):
    name: ClassVar[str] = "content"
    symbols: ClassVar[tuple[Symbol, ...]] = (
        CONTENT_SUBJECT_MONEY,
        CONTENT_SUBJECT_CAPS,
        CONTENT_SUBJECT_EXCLAIM,
        CONTENT_SUBJECT_GAP,
        CONTENT_DISPLAY_NAME_PUNCT,
        CONTENT_DISPLAY_NAME_LURE,
        CONTENT_ZERO_WIDTH,
        CONTENT_HIDDEN_IN_WORDS,
        CONTENT_MARKED_LETTERS,
        CONTENT_STYLED_LETTERS,
        CONTENT_LOOKALIKE_LETTERS,
        CONTENT_IMAGE_ONLY,
        CONTENT_BODY_CAPS,
        CONTENT_LINKS_ONE_DOMAIN,
        CONTENT_CLICK_HERE,
        CONTENT_BULK_NO_LIST,
        CONTENT_MONEY_TALK,
        CONTENT_UNDECODABLE,
        CONTENT_GARBLED,
    )

    async def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        return self.check(ctx.message)

    def check(self, m: Message) -> list[Finding]:
        out: list[Finding] = []
        subject = m.subject[:1000]
        body = m.body_text[:MAX_TEXT]

        if found := _SUBJ_MONEY.search(subject):
            out.append(self.finding("CONTENT_SUBJECT_MONEY", f"subject contains {found.group(0)!r}"))
        if _subject_caps(subject):
            out.append(self.finding("CONTENT_SUBJECT_CAPS", f"subject {subject[:80]!r}"))
        if "!" in subject or "！" in subject:
            out.append(self.finding("CONTENT_SUBJECT_EXCLAIM", f"subject {subject[:80]!r}"))
        if _SUBJ_GAP.search(subject.rstrip()):
            tail = subject.rstrip().rsplit(None, 1)[-1]
            out.append(
                self.finding("CONTENT_SUBJECT_GAP", f"subject ends {tail[:30]!r} after a run of spaces")
            )
        display = m.from_.display
        if "!" in display or "$" in display:
            out.append(self.finding("CONTENT_DISPLAY_NAME_PUNCT", f"display name {display[:80]!r}"))
        if lure := _NAME_LURE.search(display):
            out.append(self.finding("CONTENT_DISPLAY_NAME_LURE", f"display name {display[:80]!r} says {lure.group(0)!r}"))
        # Invisible characters and combining marks are not ASCII: ASCII texts need no search.
        non_ascii = [t for t in (subject, display, m.text[:MAX_TEXT], m.html_text[:MAX_TEXT]) if not t.isascii()]
        zw = sum(len(_ZERO_WIDTH.findall(t)) for t in non_ascii if _ZERO_WIDTH_ANY.search(t))
        if zw:
            out.append(self.finding("CONTENT_ZERO_WIDTH", f"{zw} invisible character(s) inside words", {"count": zw}))
        if m.hidden_in_words:
            out.append(
                self.finding(
                    "CONTENT_HIDDEN_IN_WORDS",
                    f"{m.hidden_in_words} hidden HTML element(s) with text inside words",
                    {"count": m.hidden_in_words},
                )
            )
        marked = [w for t in non_ascii if _MARKS_ANY.search(t) for w in _MARKED_LETTERS.findall(t)]
        if marked:
            shown = _MARKS_ANY.sub("", marked[0])[:40]
            out.append(
                self.finding("CONTENT_MARKED_LETTERS", f"{len(marked)} marked word(s), e.g. {shown!r}", {"count": len(marked)})
            )
        styled = [w for t in non_ascii for w in _STYLED_LETTERS.findall(t)]
        if styled:
            shown = unicodedata.normalize("NFKC", styled[0])[:40]
            out.append(
                self.finding("CONTENT_STYLED_LETTERS", f"{len(styled)} styled word(s), e.g. {styled[0][:40]} = {shown!r}", {"count": len(styled)})
            )

        # Two at least: one such word can be a name or a unit (a Greek letter in "αβ-test").
        lookalike = [w for t in (subject, display, body) for w in disguised_words(t)]
        if len(lookalike) >= 2:
            shown = ", ".join(f"{w!r} = {unmask(w)!r}" for w in dict.fromkeys(lookalike[:3]))
            out.append(
                self.finding("CONTENT_LOOKALIKE_LETTERS", f"{len(lookalike)} disguised word(s), e.g. {shown}", {"count": len(lookalike)})
            )

        low = body.lower()
        caps = _count_caps_words(body)
        if caps >= _MIN_CAPS:
            words = len(_ASCII_WORD.findall(body))
            if words >= 30 and caps / words > 0.25:
                out.append(self.finding("CONTENT_BODY_CAPS", f"{caps} of {words} words in capitals"))
        if one := _links_one_domain(m):
            out.append(
                self.finding("CONTENT_LINKS_ONE_DOMAIN", f"{one[1]} links to {one[0]}", {"domain": one[0]})
            )
        if click := _search(_CLICK, _CLICK_NEEDS, body, low):
            out.append(self.finding("CONTENT_CLICK_HERE", f"text says {click!r}"))
        if (unsub := _search(_UNSUB, _UNSUB_NEEDS, body, low)) and not m.header("List-Unsubscribe") and not m.header("List-Id"):
            out.append(self.finding("CONTENT_BULK_NO_LIST", f"text says {unsub!r}; no List-Unsubscribe/List-Id"))
        sums = _findall(_MONEY, _MONEY_NEEDS, body, low)
        if len(sums) >= 3:
            out.append(self.finding("CONTENT_MONEY_TALK", f"{len(sums)} sums of money, e.g. {sums[0]!r}"))

        if image_only := _image_only(m):
            out.append(self.finding("CONTENT_IMAGE_ONLY", image_only))

        bad = [d for d in m.defects if d.startswith("charset:undecodable")]
        if bad:
            out.append(self.finding("CONTENT_UNDECODABLE", "; ".join(bad[:3])[:300]))
        if len(body) >= 50:
            garbage = _count_garbage(body)
            if garbage / len(body) > 0.15:
                out.append(
                    self.finding(
                        "CONTENT_GARBLED",
                        f"{garbage} of {len(body)} characters unreadable",
                        {"count": garbage},
                    )
                )
        return out
