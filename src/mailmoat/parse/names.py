"""How a display name is read when it is checked for the organisation's own names.

Traditional Chinese is read as Simplified, characters that draw nothing are dropped, words
disguised with look-alike letters are read plainly, and a name written apart to dodge the check
(财 务 部, 财.务.部, T E M U) is found too. The impersonation analyzer and the account profiles read display
names the same way, so a claim one of them sees the other sees.
"""

from __future__ import annotations

import functools
import re
import unicodedata

from mailmoat.classify.tokens import HIDDEN
from mailmoat.parse.hanzi import simplified
from mailmoat.parse.homoglyphs import unmask

CJK_CHARS = "\u3400-\u9fff\uf900-\ufaff"
# Where a Chinese department's name ends (财务部, 信息中心): such a name may run on into other words.
DEPARTMENT_END = re.compile(r"(?:部|处|科|中心|办公室)$")
# Spaces and signs put between the characters of a word to dodge filters, as the lexicons read
# them (财 务 部, 财.务.部, 人-事-部); Chinese punctuation (，、) is not among them.
_APART = r"(?:[\s\u3000]+|[.*_/\\|~+#^=•·・-][\s\u3000]*)"


# Trade and service marks stand apart from the name they follow; NFKC would write them as letters
# joined to it ("Mcafee™" → "McafeeTM"), where no name is found.
_MARKS = str.maketrans(dict.fromkeys("\u2122\u2120", " "))


def norm(text: str, compat: bool = True) -> str:
    """NFKC (unless `compat` is False: the name as written), trade marks and quotes and outer spaces
    stripped, runs of spaces as one."""
    t = text.translate(_MARKS)
    if compat:
        t = unicodedata.normalize("NFKC", t)
    return re.sub(r"\s+", " ", t.strip().strip("\"'").strip())


def fold(text: str) -> str:
    """`norm`, Traditional Chinese written in Simplified, characters that draw nothing dropped and
    words disguised with look-alike letters written plainly: what claims are matched on, so that
    財務部 and 财\u200b务部 claim 财务部, and "PаyPаl" (Cyrillic а) claims PayPal."""
    return unmask(simplified(norm(HIDDEN.sub("", text))))


@functools.lru_cache(maxsize=256)
def apart_pattern(term: str) -> re.Pattern[str]:
    """The term with one of `_APART` between every two of its characters. Not right after another
    Chinese character ("某人 事务所" is no 人事), and, unless the term ends as a department does
    (部, 处, 中心 ...), not right before one either."""
    body = _APART.join(re.escape(c) for c in term)
    after = "" if DEPARTMENT_END.search(term) else f"(?![{CJK_CHARS}])"
    return re.compile(f"(?<![{CJK_CHARS}]){body}{after}")


def written_apart(term: str, name: str) -> bool:
    """True when `name` holds the (folded, CJK) term with its characters written apart."""
    return len(term) >= 2 and apart_pattern(term).search(name) is not None


_APART_RE = re.compile(_APART)
# Three or more single letters, each apart from the next ("T E M U", "T-e-m-u", "P.a.y.P.a.l"):
# a word written so, where no name is.
_LETTERS_APART = re.compile(rf"(?<![^\W\d_])[^\W\d_](?:{_APART}[^\W\d_]){{2,}}(?![^\W\d_])")


def joined_letters(name: str) -> str:
    """The name with every word written letter by letter joined up: "T E M U" reads "TEMU"."""
    return _LETTERS_APART.sub(lambda m: _APART_RE.sub("", m.group()), name)
