"""Turn a parsed Message into classifier tokens: content only, never the era of the mail.

Words, word pairs and runs of three for alphabetic text, character bigrams and trigrams for
Chinese (and other CJK) runs, typographic shapes, the sender's display name, the domains of URLs
and the words of their subdomains and paths, and the true types of attachments. Headers that
date a message (Date, Received, X-Mailer / User-Agent, Message-ID, relay host names) are never
read, and bare numbers (years, times, version numbers) are dropped, so the model cannot learn how
old its training mail is.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection

from mailmoat.model import Message, Url
from mailmoat.parse.hanzi import simplified
from mailmoat.parse.homoglyphs import unmask

# How much text is worth reading: the first part of a body carries the signal, and a cap keeps
# a hostile 20 MB text part from costing seconds.
MAX_TEXT = 60_000
MIN_WORD = 2
MAX_WORD = 24

_URL_RE = re.compile(r"(?:https?://|ftp://|www\.)[^\s<>\"'()\[\]{}]+", re.IGNORECASE)
# The local part starts where a run of its characters starts and is at most 64 long (RFC 5321):
# unanchored, a 60,000-letter run without "@" was tried from every position (seconds per text).
_EMAIL_RE = re.compile(r"(?<![\w.+-])[\w.+-]{1,64}@([\w-]+(?:\.[\w-]+)+)")
# Han, Hiragana/Katakana and Hangul: scripts written without spaces, cut into n-grams.
_CJK_RUN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]+")
# Words of letters (any alphabet), allowing inner apostrophes and hyphens, and letter-digit mixes
# like "win32" or "covid19"; pure numbers are left out on purpose.
_WORD_RE = re.compile(r"[^\W\d_](?:[^\W_]|['’-](?=[^\W\d_]))*", re.UNICODE)
_DIGITS = re.compile(r"\d")
# Drawn as nothing (zero-width, soft hyphen, the combining grapheme joiner, variation selectors,
# tags) or as a stroke over the letter before: written inside words so that "ver\u200bify",
# "E\u034fV\u034fR\u034fi", "b\U000e0139ank" or "P\u0336ending" match no
# filter. The lexicons read text through the same set.
HIDDEN = re.compile(
    "[\u00ad\u034f\u180e\u200b-\u200f\u2060-\u2064\ufeff\u0332-\u0338\ufe00-\ufe0f\U000e0000-\U000e007f\U000e0100-\U000e01ef]"
)
_CAPS_RE = re.compile(r"\b[A-Z]{3,15}\b")
_BANGS_RE = re.compile(r"!{2,}")
_MONEY_RE = re.compile(r"[$€£¥]\s?\d")
_PCT_RE = re.compile(r"\d\s?%")


# Pairs of these ("of the", "as far") are writing style shared by every kind of mail; as
# bigrams they only let long messages drown their telling tokens.
_STOP_TEXT = (
    "a an the of to in on at by for with from and or but as is are was were be been it its this that "
    "these those i you he she we they me him her us them my your his our their not no so if then than "
    "there here what which who when where how all any some can could would should will may might must "
    "do does did have has had just also very more most such only about into over after before"
)
STOPWORDS = frozenset(_STOP_TEXT.split())


def normalise(text: str) -> str:
    """NFKC (full-width letters and digits become ASCII) and lower case."""
    return unicodedata.normalize("NFKC", text).lower()


def _cjk_tokens(run: str, prefix: str, out: set[str]) -> None:
    """Character bigrams and trigrams: most Chinese words are two or three characters, and
    overlapping n-grams find them without a dictionary (trigrams added ~1 point of Chinese spam
    recall at the same false-positive rate in bench/detection_eval.py)."""
    n = len(run)
    if n == 1:
        out.add(prefix + run)
        return
    for i in range(n - 1):
        out.add(prefix + run[i : i + 2])
        if i + 3 <= n:
            out.add(prefix + run[i : i + 3])


_SPACES = re.compile(r"\s+")
_DIGIT_RUN = re.compile(r"\d+")
# Words of a link's subdomain and path ("login", "secure", "wp-admin", "remove", "unsubscribe"):
# runs of letters and digits, kept only when they hold no digit (ids, dates, hashes).
_LINK_WORD = re.compile(r"[a-z0-9]{3,20}")
MAX_LINK_PATH = 300
_CJK_CHAR = re.compile(_CJK_RUN.pattern[:-1])
# 4-grams are read from the first part of a text only: they are many, and the start says enough.
MAX_GRAM_TEXT = 20_000


def _cjk_gram_tokens(text: str, prefix: str, out: set[str]) -> None:
    """Character 4-grams that touch a CJK character, across punctuation, digits and Latin
    letters too ("扫码领取", "#元/月", "加qq群"): they catch the phrases and mixed-script
    patterns that bigrams and trigrams of pure CJK runs cut apart (about one point more Chinese
    spam at the same false-positive rate, by 5-fold cross-validation in bench/classifier_cv.py)."""
    # A run of digits becomes "#": "2006年" and "5年" are the same token, so no year is learnt.
    t = _DIGIT_RUN.sub("#", _SPACES.sub(" ", text[:MAX_GRAM_TEXT]))
    cjk = [m.start() for m in _CJK_CHAR.finditer(t)]
    if not cjk:
        return
    # A window [i, i+4) holds a CJK character iff one lies within 3 positions after i.
    starts: set[int] = set()
    last = len(t) - 4
    for pos in cjk:
        starts.update(range(max(0, pos - 3), min(pos, last) + 1))
    for i in starts:
        out.add(prefix + "g:" + t[i : i + 4])


def _shape_tokens(text: str, prefix: str, out: set[str]) -> None:
    """Typographic habits of bulk mail: shouted words, runs of "!", money and percentages."""
    for word in _CAPS_RE.findall(text):
        out.add(f"{prefix}caps:{word.lower()}")
    if _BANGS_RE.search(text):
        out.add(prefix + "shape:!!")
    if _MONEY_RE.search(text):
        out.add(prefix + "shape:money")
    if _PCT_RE.search(text):
        out.add(prefix + "shape:pct")


def text_tokens(text: str, prefix: str = "", bigrams: bool = True) -> set[str]:
    """Tokens of free text: URL and e-mail domains, words, word pairs and runs of three, CJK n-grams, shapes."""
    out: set[str] = set()
    text = unicodedata.normalize("NFKC", text[:MAX_TEXT])
    if not text.isascii():
        text = simplified(HIDDEN.sub("", text))
    _shape_tokens(_URL_RE.sub(" ", text), prefix, out)
    text = text.lower()

    def _url(m: re.Match[str]) -> str:
        host = re.sub(r"^(?:https?://|ftp://)", "", m.group(0)).split("/", 1)[0].split(":", 1)[0]
        dom = _reg_domain(host)
        if dom:
            out.add("url:" + dom)
        return " "

    def _email(m: re.Match[str]) -> str:
        out.add("email:" + _reg_domain(m.group(1)))
        return " "

    text = _URL_RE.sub(_url, text)
    text = _EMAIL_RE.sub(_email, text)
    # After the links: a look-alike letter in a host is the link's own business (URL checks).
    text = unmask(text)
    if bigrams:
        _cjk_gram_tokens(text, prefix, out)
    for run in _CJK_RUN.findall(text):
        _cjk_tokens(run, prefix, out)
    text = _CJK_RUN.sub(" | ", text)
    prev2 = prev = ""
    for word in _WORD_RE.findall(text):
        n = len(word)
        if n < MIN_WORD:
            prev2 = prev = ""
            continue
        if n > MAX_WORD:
            # Long runs are hashes, base64 or glued words: keep only their shape.
            out.add(f"{prefix}skip:{word[0]}{n // 10 * 10}")
            prev2 = prev = ""
            continue
        if _DIGITS.search(word) and sum(c.isdigit() for c in word) * 2 >= n:
            prev2 = prev = ""
            continue  # mostly digits: serials, dates, versions
        out.add(prefix + word)
        if bigrams and prev:
            stop = prev in STOPWORDS and word in STOPWORDS
            if not stop:
                # Word pairs ("verify your", "click here") say much more than either word.
                out.add(f"{prefix}{prev} {word}")
            if prev2 and not (stop and prev2 in STOPWORDS):
                # And runs of three ("to be removed", "your account will") more than pairs.
                out.add(f"{prefix}{prev2} {prev} {word}")
        prev2, prev = prev, word
    return out


def _reg_domain(host: str) -> str:
    """Last two labels (three when the second-level label is a common public one): enough for
    a token; the parser's registrable_domain is preferred when it is known."""
    host = host.strip(".").lower()
    labels = [x for x in host.split(".") if x]
    if len(labels) <= 2:
        return ".".join(labels)
    if labels[-2] in {"co", "com", "net", "org", "gov", "edu", "ac"} and len(labels[-1]) == 2:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def _link_tokens(url: Url, out: set[str]) -> None:
    """A link's registrable domain, and the words of its subdomain ("uh:") and path ("up:"): what
    the sender chose to write in a link says as much as its domain ("secure-login", "/remove.php",
    "/wp-includes/"). By 5-fold cross-validation on the train halves (bench/classifier_cv.py) they
    raised phishing at p ≥ 0.8 from 96.8% to 97.1% (95.6% to 96.6% on the older halves by date),
    with no more ham above any cut-off."""
    host = url.host.lower()
    dom = url.registrable_domain or _reg_domain(host)
    if dom:
        out.add("url:" + dom)
    if url.source == "qr":
        out.add("meta:qr-url")
    if url.is_ip:
        out.add("meta:ip-url")
    sub = host[: -len(dom)].rstrip(".") if dom and host.endswith(dom) else ""
    for word in _LINK_WORD.findall(sub):
        if not _DIGITS.search(word):
            out.add("uh:" + word)
    path = url.url.split("://", 1)[-1].partition("/")[2][:MAX_LINK_PATH].lower()
    for word in _LINK_WORD.findall(path):
        if not _DIGITS.search(word):
            out.add("up:" + word)


def message_tokens(message: Message) -> set[str]:
    """The token set the classifier sees for one message."""
    out: set[str] = set()
    out |= text_tokens(message.subject, prefix="s:")
    # Display names ("IT Support", "工资发放中心") are content the sender chose; the address
    # and relay details are not read.
    if message.from_.display:
        out |= text_tokens(message.from_.display, prefix="fn:", bigrams=False)
    # Plain and HTML alternatives usually repeat each other; tokens are a set, so reading both
    # costs nothing and catches mail whose two alternatives differ.
    out |= text_tokens(message.text)
    out |= text_tokens(message.html_text)
    for url in message.urls[:200]:
        _link_tokens(url, out)
    if message.qr_codes:
        out.add("meta:qr")
    for part in message.attachments[:50]:
        if part.true_type:
            out.add("att:" + part.true_type.lower())
        ext = part.filename.rpartition(".")[2].lower() if "." in part.filename else ""
        if ext and len(ext) <= 5 and ext.isalnum():
            out.add("attext:" + ext)
    if not out:
        out.add("meta:empty")
    return out


# A message "is written in" CJK when this share of its tokens holds a CJK character; Chinese text
# gives several n-grams per character, so any real Chinese body is far above it, and a Chinese
# display name or a line of Chinese in an English mail stays below.
CJK_SHARE = 0.2


def script_of(tokens: Collection[str]) -> str:
    """'cjk' for a message written mostly in Chinese, Japanese or Korean, else 'latin'."""
    cjk = sum(1 for t in tokens if _CJK_CHAR.search(t))
    return "cjk" if tokens and cjk > CJK_SHARE * len(tokens) else "latin"
