"""A trainable token classifier (Robinson-Fisher / chi-square combining, as in SpamBayes), kept as JSON.

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
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailmoat.classify.tokens import script_of

FORMAT = "mailmoat-bayes/2"
FORMAT_V1 = "mailmoat-bayes/1"  # one spam and one ham count per token; read as Latin bulk spam

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
    """Token counts per (label, script) cell plus the number of messages learnt in each cell."""

    def __init__(self) -> None:
        self.n = [0] * NCELLS
        # token -> messages containing it, per cell
        self.counts: dict[str, list[int]] = {}
        self._lock = threading.Lock()

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

    def learn_tokens(self, tokens: Iterable[str], label: bool | str) -> None:
        toks = set(tokens)
        idx = cell(as_label(label), script_of(toks))
        with self._lock:
            for tok in toks:
                c = self.counts.get(tok)
                if c is None:
                    c = self.counts[tok] = [0] * NCELLS
                c[idx] += 1
            self.n[idx] += 1

    def unlearn_tokens(self, tokens: Iterable[str], label: bool | str) -> None:
        """Take back an earlier learn (e.g. an administrator reverses a verdict)."""
        toks = set(tokens)
        idx = cell(as_label(label), script_of(toks))
        with self._lock:
            for tok in toks:
                c = self.counts.get(tok)
                if c is None:
                    continue
                c[idx] = max(0, c[idx] - 1)
                if not any(c):
                    del self.counts[tok]
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
        known = [(tok, c) for tok in toks if (c := self.counts.get(tok)) is not None]
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

    # -- persistence --------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "labels": LABELS, "scripts": SCRIPTS, "n": self.n, "tokens": self.counts}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BayesModel:
        fmt = d.get("format")
        if fmt not in (FORMAT, FORMAT_V1):
            raise ModelError(f"not a {FORMAT} model (format={fmt!r})")
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
                    m.counts[str(k)] = row
                return m
            if tuple(d["labels"]) != LABELS or tuple(d["scripts"]) != SCRIPTS:
                raise ModelError(f"model cells {d['labels']} × {d['scripts']} are not {LABELS} × {SCRIPTS}")
            m.n = [int(x) for x in d["n"]]
            counts = d["tokens"]
            # The parsed rows are kept as they are (a copy would double the load's time and
            # memory), so they are checked instead.
            if (
                len(m.n) != NCELLS
                or not isinstance(counts, dict)
                or not all(type(v) is list and len(v) == NCELLS and all(type(x) is int for x in v) for v in counts.values())
            ):
                raise ModelError(f"damaged model: rows are not {NCELLS} counts each")
            m.counts = counts
        except ModelError:
            raise
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ModelError(f"damaged model: {exc}") from exc
        return m

    def save(self, path: Path) -> None:
        """Write atomically (temp file + rename), so a reader never sees half a model."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            data = json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        fd, tmp = tempfile.mkstemp(prefix=".bayes-", suffix=".json", dir=path.parent)
        try:
            os.chmod(tmp, 0o644)  # mkstemp makes it private; the gateway may run as another user
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path) -> BayesModel:
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path}: {exc}") from exc
        if not isinstance(d, dict):
            raise ModelError(f"{path}: not a model")
        return cls.from_dict(d)

    def prune(self, min_count: int = 2) -> int:
        """Drop tokens seen in fewer than `min_count` messages (keeps the file small); returns how many."""
        with self._lock:
            drop = [t for t, c in self.counts.items() if sum(c) < min_count]
            for t in drop:
                del self.counts[t]
        return len(drop)
