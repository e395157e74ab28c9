"""The language a message is written in, roughly: enough to warn that a model learnt a language only from spam.

A model learns words, so a language it has seen only in spam and phishing reads as spam in any
message: trained on public corpora whose German mail is all phishing, it holds a German
colleague's invoice. `mailmoat train` counts the languages of what it learns and says when one
has no ham. Scripts decide Chinese, Japanese and Korean; for alphabetic text the commonest short
words decide, and a text too short or too mixed to tell is "".
"""

from __future__ import annotations

import re

from mailmoat.model import Message

NAMES = {
    "en": "English",
    "de": "German",
    "fr": "French",
    "nl": "Dutch",
    "pt": "Portuguese",
    "es": "Spanish",
    "it": "Italian",
    "zh": "Chinese",
    "ja": "Japanese",
    "ko": "Korean",
}

# Words every text of the language is full of. Neighbours share a few ("está" in Portuguese and
# Spanish, "con" in Spanish and Italian), which is why a winner needs a margin.
_COMMON = {
    "en": "the and you your for this with are have that from will our",
    "de": "und der die das sie ihr ihre nicht mit ist wir für auf werden",
    "fr": "vous votre les des est pour une dans avec sur nous pas",
    "nl": "het een van voor niet met zijn wij uw ons jouw",
    "pt": "você voce seu sua não nao uma dos são pelo está",
    "es": "usted los las con una del por está su",
    "it": "il di che per con una sono della questo tuo",
}
_WORDS_OF = {lang: frozenset(words.split()) for lang, words in _COMMON.items()}
_WORD = re.compile(r"[^\W\d_]+")
_KANA = re.compile(r"[\u3040-\u30ff]")
_HANGUL = re.compile(r"[\uac00-\ud7af]")
_HAN = re.compile(r"[\u4e00-\u9fff]")
SAMPLE = 5_000  # the start of a message says its language; reading more only costs time
MIN_WORDS = 10


def language_of_text(text: str) -> str:
    """A language code of `NAMES`, or "" when the text is too short or too mixed to tell."""
    sample = text[:SAMPLE]
    kana, hangul, han = (len(rx.findall(sample)) for rx in (_KANA, _HANGUL, _HAN))
    if kana >= 10:
        return "ja"
    if hangul >= 10:
        return "ko"
    if han >= 20:
        return "zh"
    words = _WORD.findall(sample.lower())
    if len(words) < MIN_WORDS:
        return ""
    counts = sorted(((sum(w in common for w in words), lang) for lang, common in _WORDS_OF.items()), reverse=True)
    (best, lang), (second, _) = counts[0], counts[1]
    if best < 3 or best < 1.5 * second:
        return ""
    return lang


def language_of(message: Message) -> str:
    """The language of what the reader sees first: the subject and the text."""
    return language_of_text(f"{message.subject}\n{message.body_text}")


# A language needs this many spam and phishing messages before its missing ham is worth a
# warning, and ham under this share of them counts as missing.
WARN_MIN_SPAM = 20
WARN_HAM_SHARE = 0.05


def count(languages: dict[str, list[int]], language: str, label: str) -> None:
    """Add one learnt message to per-language [ham, spam and phishing] counts (unknown: not counted)."""
    if language:
        languages.setdefault(language, [0, 0])[label != "ham"] += 1


def uncount(languages: dict[str, list[int]], language: str, label: str) -> None:
    """Take one message back out of the counts (a verdict learnt again under another label)."""
    counts = languages.get(language)
    if counts is not None and counts[label != "ham"] > 0:
        counts[label != "ham"] -= 1


def spam_only(languages: dict[str, list[int]]) -> list[str]:
    """The languages learnt (almost) only from spam and phishing, most messages first."""
    return [
        lang
        for lang, (ham, bad) in sorted(languages.items(), key=lambda kv: -sum(kv[1]))
        if bad >= WARN_MIN_SPAM and ham < WARN_HAM_SHARE * bad
    ]


def coverage(languages: dict[str, list[int]]) -> tuple[str, list[str]]:
    """From per-language [ham, spam and phishing] counts: one summary line, and a warning for each
    language learnt (almost) only from spam and phishing."""
    ordered = sorted(languages.items(), key=lambda kv: -sum(kv[1]))
    summary = "languages learnt (ham / spam and phishing): " + (
        ", ".join(f"{NAMES.get(lang, lang)} {ham} / {bad}" for lang, (ham, bad) in ordered) or "none recognised"
    )
    warnings = [
        f"warning: {bad} spam and phishing messages in {NAMES.get(lang, lang)} and {ham} ham: legitimate "
        f"{NAMES.get(lang, lang)} mail will read as spam; add {NAMES.get(lang, lang)} ham (--ham DIR) "
        f"before the model judges mail in that language"
        for lang in spam_only(languages)
        for ham, bad in [languages[lang]]
    ]
    return summary, warnings
