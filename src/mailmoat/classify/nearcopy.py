"""Near copies of condemned mail: a small sketch of every message learnt as spam or phishing, and a lookup.

A campaign sends the same text again and again with small changes (the greeting, a tracking link,
a padding line). Each message is reduced to a bottom-k MinHash sketch of its runs of three words
and its Chinese 4-grams (the classifier's own tokens), and a new message whose sketch is close
to a remembered one is a near copy. Learning one recalled message is enough: the statistical
model moves little on one message, a near-copy match is immediate. Mail released or learnt as
ham forgets every sketch it matches, so an administrator's release corrects the memory.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import heapq
import json
import logging
import os
import threading
import time
from array import array
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mailmoat.classify.bayes import HAM, ModelError, token_hash

log = logging.getLogger("mailmoat.classify")

FORMAT = "mailmoat-near/1"
FILE_NAME = "near_copies.json"
K = 64  # sketch size: the K smallest shingle hashes
# Fewer distinct shingles than this and a message is too short to compare safely.
MIN_SHINGLES = 20
# Only the smallest few values of a sketch are indexed, and a remembered message is compared only
# when it shares MIN_SHARED of them: two sketches 0.7 alike share about 0.7 of those values, so
# fewer than 2 of 8 happens about once in 800, while common phrases (whose hashes sit in many
# sketches) no longer make every message a candidate. A small index keeps each worker small too.
INDEX_VALUES = 8
MIN_SHARED = 2
BEST_OF = 32  # candidates compared to find the closest
MAX_ENTRIES = 20_000  # oldest forgotten first
DEFAULT_SIMILARITY = 0.7


def sketch(tokens: Collection[str]) -> array[int] | None:
    """The bottom-k sketch of a message's classifier tokens, or None when it has too little text.

    Shingles are the body's runs of three words (not the subject's or the display name's: a
    campaign changes those first) and its CJK 4-grams.
    """
    hashes = {
        token_hash(t)
        for t in tokens
        if t.startswith("g:") or (t.count(" ") == 2 and not t.startswith(("s:", "fn:")))
    }
    if len(hashes) < MIN_SHINGLES:
        return None
    return array("Q", sorted(heapq.nsmallest(K, hashes)))


def similarity(a: Iterable[int], b: Iterable[int]) -> float:
    """Estimated Jaccard similarity of two sketches: the share of the union's K smallest values held by both."""
    sa, sb = set(a), set(b)
    union = sorted(sa | sb)[:K]
    if not union:
        return 0.0
    return len(sa.intersection(union, sb)) / len(union)


@dataclass(frozen=True)
class Entry:
    key: str  # store id of the message, or a name for mail learnt from files
    label: str  # "spam" or "phish"
    added: float
    values: array[int]


@dataclass(frozen=True)
class Match:
    similarity: float
    entry: Entry


class NearCopies:
    """The remembered sketches and an index of their smallest values."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        # Tuples, not sets: most values belong to one message, and a set costs four times as much.
        self._index: dict[int, tuple[str, ...]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, key: str, label: str, values: array[int], added: float | None = None) -> None:
        """Remember a condemned message (a key learnt again is replaced)."""
        with self._lock:
            self._drop(key)
            entry = Entry(key, label, time.time() if added is None else added, values)
            self.entries[key] = entry
            for v in values[:INDEX_VALUES]:
                self._index[v] = (*self._index.get(v, ()), key)
            while len(self.entries) > MAX_ENTRIES:
                # Dicts keep insertion order, and load() inserts oldest first.
                self._drop(next(iter(self.entries)))

    def remove(self, key: str) -> bool:
        with self._lock:
            return self._drop(key)

    def _drop(self, key: str) -> bool:
        entry = self.entries.pop(key, None)
        if entry is None:
            return False
        for v in entry.values[:INDEX_VALUES]:
            keys = tuple(k for k in self._index.get(v, ()) if k != key)
            if keys:
                self._index[v] = keys
            else:
                self._index.pop(v, None)
        return True

    def matches(self, values: array[int], threshold: float, limit: int | None = None) -> list[Match]:
        """Every remembered message at least `threshold` similar, most similar first.

        With `limit`, only that many candidates are compared, those sharing the most indexed values
        first: enough to find the closest, at a bounded cost when a campaign has many copies remembered.
        """
        with self._lock:
            shared: dict[str, int] = {}
            for v in values[:INDEX_VALUES]:
                for k in self._index.get(v, ()):
                    shared[k] = shared.get(k, 0) + 1
            keys = sorted((k for k, n in shared.items() if n >= MIN_SHARED), key=lambda k: (-shared[k], k))[:limit]
            found = [Match(similarity(values, self.entries[k].values), self.entries[k]) for k in keys]
        found = [m for m in found if m.similarity >= threshold]
        found.sort(key=lambda m: (-m.similarity, m.entry.key))
        return found

    def best(self, values: array[int], threshold: float) -> Match | None:
        """The closest remembered message at least `threshold` similar, among the BEST_OF likeliest."""
        found = self.matches(values, threshold, limit=BEST_OF)
        return found[0] if found else None

    def forget_like(self, values: array[int], threshold: float) -> int:
        """Forget every remembered message this one resembles (it was judged legitimate); how many."""
        gone = 0
        for m in self.matches(values, threshold):
            gone += self.remove(m.entry.key)
        return gone

    # -- persistence ----------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Written whole to a temporary file and moved into place: readers see the old or the new file."""
        with self._lock:
            rows = [
                [e.key, e.label, round(e.added, 3), base64.b64encode(pack(e.values)).decode("ascii")]
                for e in sorted(self.entries.values(), key=lambda e: e.added)
            ]
        body = json.dumps(rows, separators=(",", ":"))
        doc = {"format": FORMAT, "k": K, "entries": len(rows), "checksum": hashlib.blake2b(body.encode()).hexdigest()[:32]}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(doc) + "\n" + body + "\n", encoding="utf-8")
        tmp.replace(path)

    @staticmethod
    def count(path: Path) -> int:
        """How many messages a saved file remembers, from its first line only; ModelError if it is not one."""
        with open(path, encoding="utf-8") as fh:
            head = fh.readline()
        try:
            doc = json.loads(head)
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("entries"), int):
            raise ModelError(f"{path}: not a {FORMAT} file")
        return int(doc["entries"])

    @classmethod
    def load(cls, path: Path) -> NearCopies:
        """Read a saved file; ModelError with the reason when it is damaged or of another format."""
        text = path.read_text(encoding="utf-8")
        head, _, body = text.partition("\n")
        try:
            doc = json.loads(head)
        except ValueError as exc:
            raise ModelError(f"{path}: not a near-copy file ({exc})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("k") != K:
            raise ModelError(f"{path}: not a {FORMAT} file with k={K}")
        body = body.rstrip("\n")
        if hashlib.blake2b(body.encode()).hexdigest()[:32] != doc.get("checksum"):
            raise ModelError(f"{path}: damaged (checksum mismatch)")
        out = cls()
        try:
            for key, label, added, packed in json.loads(body):
                out.add(str(key), str(label), unpack(base64.b64decode(packed)), float(added))
        except (ValueError, TypeError) as exc:
            raise ModelError(f"{path}: damaged ({exc})") from None
        return out


@dataclass(frozen=True)
class Change:
    """One verdict to apply to the file: a condemned message to remember, or a legitimate one whose
    look-alikes are forgotten (with its key, if it was remembered under that key before)."""

    key: str
    label: str  # "ham", "spam" or "phish"
    values: array[int]
    at: float = 0.0


def apply(path: Path, changes: Sequence[Change], *, clear: bool = False, threshold: float = DEFAULT_SIMILARITY) -> int:
    """Read the file, apply the changes in order, write it back; how many entries it holds then.

    Under an exclusive lock beside the file, so the gateway's recall and release hooks and the
    scheduled learning on the same machine never write over each other's changes. A damaged file
    is reported and started again: what it held is derived from verdicts the store still has.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        memory = NearCopies()
        if not clear:
            try:
                memory = NearCopies.load(path)
            except FileNotFoundError:
                pass
            except (OSError, ModelError) as exc:
                log.error("near copies %s not read, starting empty: %s", path, exc)
        apply_changes(memory, changes, threshold)
        memory.save(path)
        return len(memory)


def apply_changes(memory: NearCopies, changes: Iterable[Change], threshold: float = DEFAULT_SIMILARITY) -> None:
    """Condemned messages are remembered; a legitimate one forgets what it resembles, and its own key."""
    for c in changes:
        if c.label == HAM:
            memory.forget_like(c.values, threshold)
            memory.remove(c.key)
        else:
            memory.add(c.key, c.label, c.values, c.at or None)


def pack(values: array[int]) -> bytes:
    """A sketch as bytes (little-endian uint64), for the file and the store."""
    return _le(values).tobytes()


def unpack(data: bytes) -> array[int]:
    """The sketch `pack` wrote; ValueError when the bytes are not one."""
    if len(data) % 8 or len(data) > 8 * K:
        raise ValueError(f"not a sketch ({len(data)} bytes)")
    values = array("Q")
    values.frombytes(data)
    return _le(values)


def _le(values: array[int]) -> array[int]:
    """The same values in little-endian byte order, whichever order this machine uses."""
    if array("H", [1]).tobytes() == b"\x01\x00":
        return values
    out = array("Q", values)
    out.byteswap()
    return out
