"""A trainable token classifier (Robinson-Fisher / chi-square combining, as in SpamBayes), kept compact.

Each token's spam probability is Robinson's smoothed estimate from how many spam and ham
messages contained it; a message's probability combines its most telling tokens with Fisher's
chi-square method. Unlike a plain naive Bayes product this says "unsure" (near 0.5) when the
evidence pulls both ways, so only a message with strong one-sided evidence gets an extreme
probability. Counting is per message (presence), so learning one more verdict is cheap.

Unwanted mail comes in kinds (bulk spam, phishing) and in scripts (Latin, CJK), and counts are
kept per kind and script. Besides the pooled view (every kind against all ham) a message is also
read by one view per kind, against ham of its own script; when such a view finds it more
spam-like, the probability moves halfway (in log-odds) toward that view. Pooled, a token seen in
a third of the bulk spam looks weak once the spam class is two-thirds phishing, and an English
token looks hammy when Chinese mail fills the other class.

Tokens are kept as 64-bit hashes in a sorted array beside a flat array of their counts (32 bytes
a token, where a dict of strings and lists took about 240), and saved as those arrays' bytes
after one JSON header line, so a model loads in a fraction of a second. The strings are not
needed: a message's own tokens are hashed to look them up, and clues name those tokens.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import mmap
import os
import re
import sys
import tempfile
import threading
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import IO, Any, TypeAlias

from mailmoat.classify.tokens import script_of

FORMAT = "mailmoat-bayes/3"  # header line, then the hash array and the count array, little-endian
FORMAT_V2 = "mailmoat-bayes/2"  # JSON, token -> six counts; read and converted
FORMAT_V1 = "mailmoat-bayes/1"  # JSON, one spam and one ham count per token; read as Latin bulk spam
HASH = "blake2b-64"
# A saved model starts with these bytes (the writer puts "format" first), which tells it from JSON.
_MAGIC = b'{"format":"' + FORMAT.encode() + b'"'
_HEADER_MAX = 4096  # a longer first line is damage, not a header
_LEGACY_START = re.compile(rb'\s*\{\s*"format"\s*:\s*"mailmoat-bayes/[12]"')
_KEY = "Q"  # unsigned 64-bit
_COUNT = "I"  # unsigned 32-bit (a platform where it is not would find every file the wrong size)
# A lookup bisects only the keys that share the hash's top bits, about 22 of 1.5 million: 5 steps
# instead of 21, which took a third off the lookups, for a table of 0.5 MB built in 0.06 s.
_BUCKET_BITS = 16
_SHIFT = 64 - _BUCKET_BITS

HAM = "ham"
# Kinds of unwanted mail that get a view of their own; `True` as a label means "spam".
KINDS = ("spam", "phish")
LABELS = (HAM, *KINDS)
SCRIPTS = ("latin", "cjk")
# Counts are kept per (label, script): cell = label index * len(SCRIPTS) + script index.
NCELLS = len(LABELS) * len(SCRIPTS)
# A kind's view is read only when it has learnt this many messages of that kind and of ham in
# the script: fewer, and single tokens reach extreme probabilities on too little evidence.
MIN_VIEW = 50
# How far (in log-odds) a more spam-like kind view moves the pooled probability: halfway.
KIND_WEIGHT = 0.5

# Robinson's prior: a token seen in few messages stays close to 0.5 ("unknown").
PRIOR_STRENGTH = 0.45
PRIOR_PROB = 0.5
# Only tokens that say something take part, and at most this many of them (SpamBayes uses 150;
# Chinese text gives 3-4 overlapping n-grams per character, so a long Chinese message needs
# more to be read as a whole: 300 gave 0.6 points more Chinese spam and the same false positives
# in bench/classifier_cv.py; with runs of three words as tokens, 450 gave 0.8 points more English
# spam at p >= 0.8 and the same false positives there, and 600 no more than 450).
MIN_STRENGTH = 0.1
MAX_CLUES = 450
# Probabilities are kept out of 0 and 1 so one token never decides alone.
CLAMP = 0.01


def token_hash(tok: str) -> int:
    """A token's stable 64-bit key (Python's own hash() of a string changes from run to run).

    Two tokens with the same key would share their counts. With 1.5 million tokens the chance
    that any pair of them does is about n² / 2⁶⁵ ≈ 1e-7, so nothing is done about it.
    """
    return int.from_bytes(hashlib.blake2b(tok.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


# The arrays: owned by the model, or read-only views of a mapped file (load(shared=True)).
_Ints: TypeAlias = "array[int] | memoryview"


def _owned(a: _Ints, code: str) -> array[int]:
    """`a` as an array of the model's own (a copy of a mapped view)."""
    if isinstance(a, array):
        return a
    out = array(code)
    out.frombytes(a.cast("B"))
    return out


def _bucket_starts(keys: _Ints) -> array[int]:
    """Where the keys with each value of the top _BUCKET_BITS start in `keys`, and their end."""
    return array(_KEY, [bisect_left(keys, b << _SHIFT) for b in range(1 << _BUCKET_BITS)] + [len(keys)])


def cell(label: str, script: str) -> int:
    return LABELS.index(label) * len(SCRIPTS) + SCRIPTS.index(script)


def as_label(label: bool | str) -> str:
    """'ham', 'spam' or 'phish' (True = spam, False = ham); ValueError for anything else."""
    if isinstance(label, bool):
        return KINDS[0] if label else HAM
    if label not in LABELS:
        raise ValueError(f"unknown label {label!r} (expected one of {', '.join(LABELS)})")
    return label


_SPAM_CELLS = tuple(cell(k, sc) for k in KINDS for sc in SCRIPTS)
_HAM_CELLS = tuple(cell(HAM, sc) for sc in SCRIPTS)


class ModelError(ValueError):
    """A model file that cannot be read, with the reason."""


def logit(p: float) -> float:
    """Log-odds of a probability, kept finite at 0 and 1."""
    p = min(max(p, 1e-12), 1.0 - 1e-12)
    return math.log(p / (1.0 - p))


def sigmoid(z: float) -> float:
    """The probability of log-odds `z` (without overflow for large |z|)."""
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def _chi2q(x2: float, dof: int) -> float:
    """P(chi-square with `dof` degrees of freedom >= x2), dof even."""
    m = x2 / 2.0
    total = term = math.exp(-m)
    for i in range(1, dof // 2):
        term *= m / i
        total += term
    return min(total, 1.0)


@dataclass
class Clue:
    token: str
    prob: float
    seen: int = 0  # training messages that contained the token


@dataclass
class Classification:
    prob: float  # 0 = surely ham, 1 = surely spam, 0.5 = no idea
    clues: list[Clue] = field(default_factory=list)
    view: str = "all"  # "all" (pooled), or the kind view "<kind>/<script>" that moved it; the clues are its

    def top(self, n: int = 8, spammy: bool = True) -> list[Clue]:
        """The strongest clues in one direction, strongest first (for evidence)."""
        sel = [c for c in self.clues if (c.prob > 0.5) == spammy]
        # Many clues sit at the clamp; among equals, the one seen most often explains best.
        sel.sort(key=lambda c: (abs(c.prob - 0.5), c.seen), reverse=True)
        return sel[:n]


class BayesModel:
    """Token counts per (label, script) cell plus the number of messages learnt in each cell.

    A token's counts are in one of two places, never both: the sorted arrays (what a saved model
    loads into) or, for a token learnt since, the overlay dict keyed by the token itself.
    `compact()`, and `save`, move the overlay into the arrays. Training from scratch fills only
    the overlay, so it costs what a dict of strings costs and hashes each token once, at the end.
    """

    def __init__(self) -> None:
        self.n = [0] * NCELLS
        self._keys: _Ints = array(_KEY)  # sorted token hashes
        self._rows: _Ints = array(_COUNT)  # NCELLS counts per hash: row i at [i * NCELLS, (i + 1) * NCELLS)
        self._starts = array(_KEY)  # _bucket_starts(_keys), when there are keys
        self._new: dict[str, list[int]] = {}  # tokens whose hash is not in _keys
        # Rows unlearnt down to all zeros: read as unknown tokens, dropped at the next compaction.
        self._empty: set[int] = set()
        self._lock = threading.Lock()
        # Messages learnt per language: [ham, spam and phishing] (classify.language);
        # kept in the header so that `train --status` and the console can say which language the
        # model has seen only in spam. Verdicts learnt one by one count too (`Classifier.learn`).
        self.languages: dict[str, list[int]] = {}

    def _set_arrays(self, keys: _Ints, rows: _Ints) -> None:
        self._keys, self._rows = keys, rows
        self._starts = _bucket_starts(keys) if keys else array(_KEY)

    def __len__(self) -> int:
        """Distinct tokens learnt (and not unlearnt since)."""
        return len(self._keys) - len(self._empty) + len(self._new)

    @property
    def nspam(self) -> int:
        return sum(self.n[i] for i in _SPAM_CELLS)

    @property
    def nham(self) -> int:
        return sum(self.n[i] for i in _HAM_CELLS)

    def learnt(self, label: str) -> int:
        """Messages learnt with this label, all scripts."""
        return sum(self.n[cell(label, sc)] for sc in SCRIPTS)

    # -- learning -----------------------------------------------------------------------

    def _row(self, tok: str) -> int:
        """Index of the token's row in the arrays, or -1."""
        keys = self._keys
        if not keys:
            return -1
        h = token_hash(tok)
        b = h >> _SHIFT
        hi = self._starts[b + 1]
        i = bisect_left(keys, h, self._starts[b], hi)
        return i if i < hi and keys[i] == h else -1

    def learn_tokens(self, tokens: Iterable[str], label: bool | str) -> None:
        toks = set(tokens)
        idx = cell(as_label(label), script_of(toks))
        with self._lock:
            new, rows, empty = self._new, self._rows, self._empty
            for tok in toks:
                c = new.get(tok)
                if c is None:
                    i = self._row(tok)
                    if i >= 0:
                        rows[i * NCELLS + idx] += 1
                        empty.discard(i)
                        continue
                    c = new[tok] = [0] * NCELLS
                c[idx] += 1
            self.n[idx] += 1

    def unlearn_tokens(self, tokens: Iterable[str], label: bool | str) -> None:
        """Take back an earlier learn (e.g. an administrator reverses a verdict)."""
        toks = set(tokens)
        idx = cell(as_label(label), script_of(toks))
        with self._lock:
            new, rows = self._new, self._rows
            for tok in toks:
                c = new.get(tok)
                if c is not None:
                    c[idx] = max(0, c[idx] - 1)
                    if not any(c):
                        del new[tok]
                    continue
                i = self._row(tok)
                if i < 0:
                    continue
                at = i * NCELLS
                if rows[at + idx]:
                    rows[at + idx] -= 1
                if not any(rows[at : at + NCELLS]):
                    self._empty.add(i)
            self.n[idx] = max(0, self.n[idx] - 1)

    @property
    def trained(self) -> bool:
        return self.nspam > 0 and self.nham > 0

    # -- scoring ------------------------------------------------------------------------

    def _views(self, script: str) -> list[tuple[str, tuple[int, ...], tuple[int, ...]]]:
        """(name, spam cells, ham cells) of every view that may read a message of this script."""
        views = [("all", _SPAM_CELLS, _HAM_CELLS)]
        ham = cell(HAM, script)
        if self.n[ham] < MIN_VIEW:
            return views
        for kind in KINDS:
            own = cell(kind, script)
            # A cell holding all the unwanted mail learnt would only repeat the pooled view.
            if self.n[own] >= MIN_VIEW and self.n[own] < self.nspam:
                views.append((f"{kind}/{script}", (own,), (ham,)))
        return views

    @staticmethod
    def _f(s: int, h: int, nspam: int, nham: int) -> float | None:
        """Robinson's f(w) from spam and ham message counts, or None for a token never seen."""
        n = s + h
        if n == 0:
            return None
        sr = s / nspam if nspam else 0.0
        hr = h / nham if nham else 0.0
        p = sr / (sr + hr) if sr + hr > 0 else PRIOR_PROB
        f = (PRIOR_STRENGTH * PRIOR_PROB + n * p) / (PRIOR_STRENGTH + n)
        return min(max(f, CLAMP), 1.0 - CLAMP)

    def classify_tokens(self, tokens: Iterable[str]) -> Classification:
        """The pooled view, moved halfway (in log-odds) toward the most spam-like kind view above it."""
        if not self.trained:
            return Classification(0.5)
        toks = tokens if isinstance(tokens, (set, frozenset)) else set(tokens)
        known = self._known(toks)
        read: list[tuple[float, list[tuple[str, float, int]], str]] = []
        for name, spam_cells, ham_cells in self._views(script_of(toks)):
            if len(spam_cells) == 1:
                si, hi = spam_cells[0], ham_cells[0]
                pairs = [(tok, c[si], c[hi]) for tok, c in known]
            else:
                pairs = [(tok, sum(c[i] for i in spam_cells), sum(c[i] for i in ham_cells)) for tok, c in known]
            prob, clues = self._combine(pairs, sum(self.n[i] for i in spam_cells), sum(self.n[i] for i in ham_cells))
            read.append((prob, clues, name))
        pooled = read[0]
        kind = max(read[1:], key=lambda r: r[0], default=None)
        if kind is None or kind[0] <= pooled[0]:
            prob, clues, name = pooled
        else:
            # Halfway, not the kind view alone: a view trained on fewer messages is surer than it
            # should be, and taken alone it put commercial newsletters that the pooled view calls
            # clearly legitimate into quarantine (0.64% of English ham instead of 0.46% by
            # cross-validation, bench/classifier_cv.py with bench/detection_ceiling.py).
            prob = sigmoid((1.0 - KIND_WEIGHT) * logit(pooled[0]) + KIND_WEIGHT * logit(kind[0]))
            _, clues, name = kind
        return Classification(prob, [Clue(tok, p, seen) for tok, p, seen in clues], name)

    def _known(self, toks: Iterable[str]) -> list[tuple[str, Sequence[int]]]:
        """(token, its counts) of every token of the message that the model has counts for.

        A row unlearnt down to zeros is among them until the next compaction; `_f` reads it as a
        token never seen, as if it were gone.
        """
        out: list[tuple[str, Sequence[int]]] = []
        # Under the lock: a compaction swaps both arrays, and a lookup must not see one of each.
        with self._lock:
            new, keys, rows, starts = self._new, self._keys, self._rows, self._starts
            for tok in toks:
                c: Sequence[int] | None = new.get(tok)
                if c is None and keys:
                    # _row(), inline: this runs for every token of every message.
                    h = token_hash(tok)
                    b = h >> _SHIFT
                    hi = starts[b + 1]
                    i = bisect_left(keys, h, starts[b], hi)
                    if i < hi and keys[i] == h:
                        c = rows[i * NCELLS : (i + 1) * NCELLS]
                if c is not None:
                    out.append((tok, c))
        return out

    @classmethod
    def _combine(
        cls, pairs: list[tuple[str, int, int]], nspam: int, nham: int
    ) -> tuple[float, list[tuple[str, float, int]]]:
        """Fisher's combination of the telling tokens: (probability, clues as (token, f(w), seen))."""
        clues: list[tuple[str, float, int]] = []
        for tok, s, h in pairs:
            p = cls._f(s, h, nspam, nham)
            if p is None or abs(p - 0.5) < MIN_STRENGTH:
                continue
            clues.append((tok, p, s + h))
        # Strongest first; ties broken by token so the result never depends on set order.
        clues.sort(key=lambda c: (-abs(c[1] - 0.5), c[0]))
        clues = clues[:MAX_CLUES]
        if not clues:
            return 0.5, []
        ln_h = sum(math.log(c[1]) for c in clues)
        ln_s = sum(math.log(1.0 - c[1]) for c in clues)
        n = len(clues)
        spamminess = 1.0 - _chi2q(-2.0 * ln_s, 2 * n)
        hamminess = 1.0 - _chi2q(-2.0 * ln_h, 2 * n)
        return (spamminess - hamminess + 1.0) / 2.0, clues

    # -- compaction ---------------------------------------------------------------------

    def compact(self) -> None:
        """Move the tokens learnt since loading into the sorted arrays and drop unlearnt rows."""
        with self._lock:
            self._compact()

    def _compact(self) -> None:
        if not self._new and not self._empty:
            return
        added: dict[int, list[int]] = {}
        for tok, c in self._new.items():
            if not any(c):
                continue  # reads as an unknown token (older files may hold such rows)
            h = token_hash(tok)
            prev = added.get(h)
            # Two tokens with one hash share their counts (see token_hash).
            added[h] = c if prev is None else [a + b for a, b in zip(prev, c, strict=True)]
        hashes = sorted(added)  # plain ints sort much faster than (hash, row) pairs
        keys, rows, w = _owned(self._keys, _KEY), _owned(self._rows, _COUNT), NCELLS
        if not keys:
            out_k = array(_KEY, hashes)
            out_r = array(_COUNT, chain.from_iterable(map(added.__getitem__, hashes)))
        else:
            # Copy the old arrays in slices between the edits: a verdict learnt into a large model
            # costs a copy of the arrays, not a loop over every token.
            out_k, out_r = array(_KEY), array(_COUNT)
            drops = sorted(self._empty)
            at = j = 0  # next old row to copy, next row to drop
            for h in hashes:
                c = added[h]
                p = bisect_left(keys, h)  # never an old key: a token found there is counted there
                while j < len(drops) and drops[j] < p:
                    d = drops[j]
                    out_k += keys[at:d]
                    out_r += rows[at * w : d * w]
                    at, j = d + 1, j + 1
                out_k += keys[at:p]
                out_r += rows[at * w : p * w]
                at = p
                out_k.append(h)
                out_r.extend(c)
            for d in drops[j:]:
                out_k += keys[at:d]
                out_r += rows[at * w : d * w]
                at = d + 1
            out_k += keys[at:]
            out_r += rows[at * w :]
        self._set_arrays(out_k, out_r)
        self._new, self._empty = {}, set()

    def prune(self, min_count: int = 2) -> int:
        """Drop tokens seen in fewer than `min_count` messages (keeps the file small); returns how many."""
        with self._lock:
            drop = [t for t, c in self._new.items() if sum(c) < min_count]
            for t in drop:
                del self._new[t]
            rows = self._rows
            sums = map(sum, zip(*(rows[k::NCELLS] for k in range(NCELLS)), strict=True))
            weak = {i for i, s in enumerate(sums) if s < min_count}
            dropped = len(drop) + len(weak - self._empty)
            self._empty |= weak
            self._compact()
        return dropped

    # -- persistence --------------------------------------------------------------------

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BayesModel:
        """A model from a mailmoat-bayes/1 or /2 JSON document, converted to the compact form."""
        fmt = d.get("format")
        if fmt not in (FORMAT_V2, FORMAT_V1):
            raise ModelError(f"not a {FORMAT_V2} model (format={fmt!r})")
        m = cls()
        try:
            if fmt == FORMAT_V1:
                # Its counts did not know kind nor script: Latin bulk spam and Latin ham, which
                # read exactly as the pooled view did.
                s_idx, h_idx = cell("spam", "latin"), cell(HAM, "latin")
                m.n[s_idx], m.n[h_idx] = int(d["nspam"]), int(d["nham"])
                for k, v in dict(d["tokens"]).items():
                    row = [0] * NCELLS
                    row[s_idx], row[h_idx] = int(v[0]), int(v[1])
                    m._new[str(k)] = row
            else:
                if tuple(d["labels"]) != LABELS or tuple(d["scripts"]) != SCRIPTS:
                    raise ModelError(f"model cells {d['labels']} × {d['scripts']} are not {LABELS} × {SCRIPTS}")
                m.n = [int(x) for x in d["n"]]
                counts = d["tokens"]
                # The parsed rows become the overlay as they are (a copy would double the
                # conversion's memory), so they are checked instead.
                if (
                    len(m.n) != NCELLS
                    or not isinstance(counts, dict)
                    or not all(
                        type(v) is list and len(v) == NCELLS and all(type(x) is int and x >= 0 for x in v)
                        for v in counts.values()
                    )
                ):
                    raise ModelError(f"damaged model: rows are not {NCELLS} counts each")
                m._new = counts
            m._compact()
        except ModelError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, OverflowError) as exc:
            raise ModelError(f"damaged model: {exc}") from exc
        return m

    def save(self, path: Path) -> None:
        """Write atomically (temp file, fsync, rename), so a reader never sees half a model."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".bayes-", suffix=".tmp", dir=path.parent)
        try:
            os.chmod(tmp, 0o644)  # mkstemp makes it private; the gateway may run as another user
            with os.fdopen(fd, "wb") as fh:
                # Written under the lock so counts and totals match; the fsync can wait outside.
                with self._lock:
                    self._compact()
                    self._write(fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _write(self, fh: IO[bytes]) -> None:
        arrays: list[_Ints] = [self._keys, self._rows]
        if sys.byteorder != "little":
            swapped = [array(own.typecode, own) for own in (_owned(self._keys, _KEY), _owned(self._rows, _COUNT))]
            for sw in swapped:
                sw.byteswap()
            arrays = list(swapped)
        digest = hashlib.blake2b(digest_size=16)
        for data in arrays:
            digest.update(memoryview(data).cast("B"))
        header = {
            "format": FORMAT,  # first: it is what load() recognises (_MAGIC)
            "labels": LABELS,
            "scripts": SCRIPTS,
            "n": self.n,
            "tokens": len(self._keys),
            "hash": HASH,
            "byteorder": "little",
            # Of the bytes after the header: a damaged block would otherwise load silently (and
            # hashes out of order would make lookups miss without a word).
            "checksum": digest.hexdigest(),
        }
        if self.languages:
            header["languages"] = self.languages
        fh.write(json.dumps(header, separators=(",", ":")).encode("ascii") + b"\n")
        for data in arrays:
            fh.write(memoryview(data).cast("B"))

    @classmethod
    def load(cls, path: Path, shared: bool = False) -> BayesModel:
        """A model written by `save`, or a mailmoat-bayes/1 or /2 JSON one (the next save rewrites it).

        `shared`: map the file instead of reading it, so every process that loads the same file
        shares one copy in the page cache (the gateway's workers). Learning still works (a
        written page becomes the process's own) and saving writes a new file, as always.
        """
        try:
            with path.open("rb") as fh:
                if fh.read(len(_MAGIC)) == _MAGIC:
                    return cls._read(fh, path, shared)
                fh.seek(0)
                d = json.loads(fh.read().decode("utf-8"))
        except (FileNotFoundError, ModelError):
            raise
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path}: {exc}") from exc
        if not isinstance(d, dict):
            raise ModelError(f"{path}: not a model")
        return cls.from_dict(d)

    @staticmethod
    def describe(path: Path) -> dict[str, Any]:
        """What a model file holds, from its header alone (a console page must not load 50 MB):
        format, messages learnt per label and tokens; an older JSON model gives its format only.
        FileNotFoundError when there is none, ModelError when its header is damaged."""
        with path.open("rb") as fh:
            if fh.read(len(_MAGIC)) != _MAGIC:
                fh.seek(0)
                # Older versions wrote their JSON with sorted keys, so "format" comes first.
                if not _LEGACY_START.match(fh.read(_HEADER_MAX)):
                    raise ModelError(f"{path}: not a classifier model")
                return {"format": "json", "messages": None, "tokens": None, "languages": {}}
            head = BayesModel._header(fh, path)
        n: list[int] = head["n"]
        return {
            "format": FORMAT,
            "messages": {label: sum(n[cell(label, sc)] for sc in SCRIPTS) for label in LABELS},
            "tokens": head["tokens"],
            "languages": _languages(head.get("languages")),
        }

    @staticmethod
    def _header(fh: io.BufferedIOBase, path: Path) -> dict[str, Any]:
        """The checked header line of a saved model, after its first bytes (_MAGIC) have been read."""
        line = fh.readline(_HEADER_MAX)
        if not line.endswith(b"\n"):
            raise ModelError(f"{path}: damaged model: no complete header line")
        try:
            head = json.loads(_MAGIC + line)
        except ValueError as exc:
            raise ModelError(f"{path}: damaged model header: {exc}") from exc
        ntok, n = head.get("tokens"), head.get("n")
        if (head.get("labels"), head.get("scripts")) != (list(LABELS), list(SCRIPTS)):
            raise ModelError(f"{path}: model cells {head.get('labels')} × {head.get('scripts')} are not {LABELS} × {SCRIPTS}")
        if head.get("hash") != HASH or head.get("byteorder") != "little":
            raise ModelError(f"{path}: unknown token hash or byte order {head.get('hash')!r}/{head.get('byteorder')!r}")
        if (
            type(ntok) is not int
            or ntok < 0
            or not isinstance(n, list)
            or len(n) != NCELLS
            or not all(type(x) is int and x >= 0 for x in n)
        ):
            raise ModelError(f"{path}: damaged model header: token count or message totals")
        return dict(head)

    @classmethod
    def _read(cls, fh: io.BufferedIOBase, path: Path, shared: bool = False) -> BayesModel:
        """The rest of a saved model, after its first bytes (_MAGIC) have been read."""
        head = cls._header(fh, path)
        ntok, n = head["tokens"], head["n"]
        need = ntok * (array(_KEY).itemsize + NCELLS * array(_COUNT).itemsize)
        have = os.fstat(fh.fileno()).st_size - fh.tell()
        if have != need:
            what = "truncated" if have < need else "trailing bytes"
            raise ModelError(f"{path}: damaged model ({what}): {ntok} tokens need {need} bytes after the header, found {have}")
        m = cls()
        m.n = n
        m.languages = _languages(head.get("languages"))
        digest = hashlib.blake2b(digest_size=16)
        if shared and need and sys.byteorder == "little":
            # Copy-on-write: a page is the process's own only once it is written (a verdict
            # learnt into this model); until then every process shares the page cache's copy.
            # The map outlives the file's replacement by a retrain (rename keeps the old inode).
            body = memoryview(mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_COPY))[fh.tell() :]
            digest.update(body)
            if digest.hexdigest() != head.get("checksum"):
                raise ModelError(f"{path}: damaged model: its checksum does not match its contents")
            split = ntok * array(_KEY).itemsize
            m._set_arrays(body[:split].cast("Q"), body[split:].cast("I"))  # _KEY, _COUNT
            return m
        # Sized first and read into place: fromfile() would hold a second copy while it reads.
        keys, rows = array(_KEY, [0]) * ntok, array(_COUNT, [0]) * (ntok * NCELLS)
        for a in (keys, rows):
            view = memoryview(a).cast("B")
            if fh.readinto(view) != len(view):
                raise ModelError(f"{path}: damaged model: the file ended while it was read")
            digest.update(view)
        if digest.hexdigest() != head.get("checksum"):
            raise ModelError(f"{path}: damaged model: its checksum does not match its contents")
        if sys.byteorder != "little":
            keys.byteswap()
            rows.byteswap()
        m._set_arrays(keys, rows)
        return m


def _languages(value: Any) -> dict[str, list[int]]:
    """A header's language counts, or none: they only inform, so a malformed entry is dropped
    rather than refusing the model."""
    if not isinstance(value, dict):
        return {}
    return {
        str(lang): [int(pair[0]), int(pair[1])]
        for lang, pair in value.items()
        if isinstance(pair, list) and len(pair) == 2 and all(type(x) is int and x >= 0 for x in pair)
    }
