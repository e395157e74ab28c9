"""Words disguised with look-alike letters of another alphabet ('pаssword' with a Cyrillic а,
'Lеԁgеr'), and the plain word each one shows.

Such a word matches no lexicon term, no classifier token and no brand name, while a reader sees
the word. Only words that mix plain Latin letters with look-alikes from Cyrillic, Greek and the
like are read: Russian or Greek text, written in its own alphabet throughout, is left alone.
"""

from __future__ import annotations

import re

from confusable_homoglyphs import categories, confusables


def _build_confusable_map() -> dict[str, str]:
    """Non-ASCII character → the ASCII letters it imitates, from Unicode's confusables data."""
    out: dict[str, str] = {}
    for char, glyphs in confusables.confusables_data.items():
        if len(char) != 1 or (char.isascii() and char.isalnum()):
            continue
        for g in glyphs:
            c = str(g.get("c", "")).lower()
            if c and c.isascii() and c.isalnum():
                out[char] = c
                break
    return out


CONFUSABLE = _build_confusable_map()

# Alphabets whose letters pass for Latin ones; Latin's own accented and extra letters (é, æ, ß)
# are ordinary writing, but its phonetic letters (ɑ, ɡ, ɩ) and small capitals (ᴄ, ᴠ) are not.
_FOREIGN = frozenset({"CYRILLIC", "GREEK", "ARMENIAN", "CHEROKEE", "COPTIC", "LISU"})


def _is_disguise(ch: str, plain: str) -> bool:
    if not (ch.isalpha() and len(plain) == 1 and "a" <= plain <= "z"):
        return False
    o = ord(ch)
    return categories.alias(ch) in _FOREIGN or 0x250 <= o <= 0x2AF or 0x1D00 <= o <= 0x1D2B


DISGUISE = {ch: plain for ch, plain in CONFUSABLE.items() if _is_disguise(ch, plain)}
_ANY = re.compile("[" + "".join(re.escape(c) for c in sorted(DISGUISE)) + "]")
_WORD = re.compile(r"[^\W\d_]+")
_LATIN = re.compile(r"[A-Za-z]")


# Greek letters that may end a Latin name: science writes TNFα and PPARγ. A Cyrillic е ending
# "Applе" is still a disguise.
_GREEK_SUFFIX = "".join(sorted(ch for ch in DISGUISE if categories.alias(ch) == "GREEK"))


def _disguised(word: str) -> bool:
    """Latin letters with a look-alike among them, other than Greek letters ending the word."""
    return bool(_LATIN.search(word)) and _ANY.search(word.rstrip(_GREEK_SUFFIX)) is not None


def _plain(m: re.Match[str]) -> str:
    word = m.group(0)
    return "".join(DISGUISE.get(ch, ch) for ch in word) if _disguised(word) else word


def disguised_words(text: str) -> list[str]:
    """The words of the text that mix Latin letters with look-alikes, as written."""
    if text.isascii() or not _ANY.search(text):
        return []
    return [w for w in _WORD.findall(text) if _disguised(w)]


def unmask(text: str) -> str:
    """The text with every disguised word written in plain Latin letters ('pаssword' → 'password')."""
    if text.isascii() or not _ANY.search(text):
        return text
    return _WORD.sub(_plain, text)
