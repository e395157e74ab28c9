"""Traditional Chinese folded into Simplified (OpenCC t2s), so one vocabulary reads both scripts.

A lure written 工資補貼 is the lure 工资补贴: the lexicons, the department names and the
classifier's n-grams are written (and mostly trained) in Simplified characters, and without this
the same fraud in Traditional characters, from Hong Kong or Taiwan or written so on purpose,
matched none of them.
"""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger("mailmoat.parse")

# Han ideographs (the only characters t2s changes); text without them is returned as it is.
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")

_converter: Any = None
_failed = False
_lock = threading.Lock()


def _config() -> str:
    """The t2s configuration shipped inside the opencc package, by absolute path: given a bare
    name, OpenCC reads a file of that name in the working directory first."""
    import opencc

    share = getattr(opencc, "_opencc_share_dir", None) or str(Path(opencc.__file__).parent / "clib" / "share" / "opencc")
    path = Path(share) / "t2s.json"
    if not path.is_file():
        raise FileNotFoundError(f"OpenCC's t2s.json is not at {path}")
    return str(path)


def _t2s() -> Any:
    global _converter, _failed
    if _converter is None and not _failed:
        with _lock:
            if _converter is None and not _failed:
                try:
                    import opencc

                    _converter = opencc.OpenCC(_config())
                except Exception as exc:  # a broken install must not stop the scanning of Chinese mail
                    _failed = True
                    log.error("Traditional Chinese is not folded to Simplified: OpenCC failed to load: %s", exc)
    return _converter


def simplified(text: str) -> str:
    """`text` with Traditional characters and phrases written in Simplified (about 1 ms for 30,000
    characters); anything else, Simplified Chinese included, is left as it is (and all of it when
    OpenCC cannot be loaded)."""
    if text.isascii() or not _HAN.search(text):
        return text
    converter = _t2s()
    return text if converter is None else str(converter.convert(text))
