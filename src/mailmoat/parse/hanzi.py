"""Traditional Chinese folded into Simplified (OpenCC t2s), so one vocabulary reads both scripts.

A lure written 工資補貼 is the lure 工资补贴: the lexicons, the department names and the
classifier's n-grams are written (and mostly trained) in Simplified characters, and without this
the same fraud in Traditional characters, from Hong Kong or Taiwan or written so on purpose,
matched none of them.
"""

from __future__ import annotations

import re
import threading
from typing import Any

# Han ideographs (the only characters t2s changes); text without them is returned as it is.
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")

_converter: Any = None
_lock = threading.Lock()


def _t2s() -> Any:
    global _converter
    if _converter is None:
        with _lock:
            if _converter is None:
                import opencc

                _converter = opencc.OpenCC("t2s")
    return _converter


def simplified(text: str) -> str:
    """`text` with Traditional characters and phrases written in Simplified (about 1 ms for 30,000
    characters); anything else, Simplified Chinese included, is left as it is."""
    if text.isascii() or not _HAN.search(text):
        return text
    return str(_t2s().convert(text))
