"""A trainable token classifier (Robinson-Fisher / chi-square combining, as in SpamBayes), kept as JSON.

Each token's spam probability is Robinson's smoothed estimate from how many spam and ham
messages contained it; a message's probability combines its most telling tokens with Fisher's
chi-square method. Unlike a plain naive Bayes product this says "unsure" (near 0.5) when the
evidence pulls both ways, so only a message with strong one-sided evidence gets an extreme
probability. Counting is per message (presence), so learning one more verdict is cheap.
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

FORMAT = "mailmoat-bayes/1"

# Robinson's prior: a token seen in few messages stays close to 0.5 ("unknown").
PRIOR_STRENGTH = 0.45
PRIOR_PROB = 0.5
# Only tokens that say something take part, and at most this many of them (SpamBayes uses 150;
# Chinese text gives 3-4 overlapping n-grams per character, so a long Chinese message needs
# more to be read as a whole: 300 gave 0.6 points more Chinese spam and the same false positives
# in bench/classifier_cv.py).
MIN_STRENGTH = 0.1
MAX_CLUES = 300
# Probabilities are kept out of 0 and 1 so one token never decides alone.
CLAMP = 0.01


class ModelError(ValueError):
    """A model file that cannot be read, with the reason."""


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

    def top(self, n: int = 8, spammy: bool = True) -> list[Clue]:
        """The strongest clues in one direction, strongest first (for evidence)."""
        sel = [c for c in self.clues if (c.prob > 0.5) == spammy]
        # Many clues sit at the clamp; among equals, the one seen most often explains best.
        sel.sort(key=lambda c: (abs(c.prob - 0.5), c.seen), reverse=True)
        return sel[:n]


class BayesModel:
    """Token counts per class plus the number of messages learnt of each class."""

    def __init__(self) -> None:
        self.nspam = 0
        self.nham = 0
        # token -> [spam messages containing it, ham messages containing it]
        self.counts: dict[str, list[int]] = {}
        self._lock = threading.Lock()

    # -- learning -----------------------------------------------------------------------

    def learn_tokens(self, tokens: Iterable[str], is_spam: bool) -> None:
        idx = 0 if is_spam else 1
        with self._lock:
            for tok in set(tokens):
                c = self.counts.get(tok)
                if c is None:
                    c = self.counts[tok] = [0, 0]
                c[idx] += 1
            if is_spam:
                self.nspam += 1
            else:
                self.nham += 1

    def unlearn_tokens(self, tokens: Iterable[str], is_spam: bool) -> None:
        """Take back an earlier learn (e.g. an administrator reverses a verdict)."""
        idx = 0 if is_spam else 1
        with self._lock:
            for tok in set(tokens):
                c = self.counts.get(tok)
                if c is None:
                    continue
                c[idx] = max(0, c[idx] - 1)
                if c[0] == 0 and c[1] == 0:
                    del self.counts[tok]
            if is_spam:
                self.nspam = max(0, self.nspam - 1)
            else:
                self.nham = max(0, self.nham - 1)

    @property
    def trained(self) -> bool:
        return self.nspam > 0 and self.nham > 0

    # -- scoring ------------------------------------------------------------------------

    def token_prob(self, token: str) -> float | None:
        """Robinson's f(w), or None for a token never seen."""
        c = self.counts.get(token)
        if c is None:
            return None
        s, h = c
        n = s + h
        if n == 0:
            return None
        sr = s / self.nspam if self.nspam else 0.0
        hr = h / self.nham if self.nham else 0.0
        p = sr / (sr + hr) if sr + hr > 0 else PRIOR_PROB
        f = (PRIOR_STRENGTH * PRIOR_PROB + n * p) / (PRIOR_STRENGTH + n)
        return min(max(f, CLAMP), 1.0 - CLAMP)

    def classify_tokens(self, tokens: Iterable[str]) -> Classification:
        if not self.trained:
            return Classification(0.5)
        clues: list[Clue] = []
        for tok in set(tokens):
            p = self.token_prob(tok)
            if p is None or abs(p - 0.5) < MIN_STRENGTH:
                continue
            c = self.counts[tok]
            clues.append(Clue(tok, p, c[0] + c[1]))
        # Strongest first; ties broken by token so the result never depends on set order.
        clues.sort(key=lambda c: (-abs(c.prob - 0.5), c.token))
        clues = clues[:MAX_CLUES]
        if not clues:
            return Classification(0.5)
        ln_h = sum(math.log(c.prob) for c in clues)
        ln_s = sum(math.log(1.0 - c.prob) for c in clues)
        n = len(clues)
        s = 1.0 - _chi2q(-2.0 * ln_s, 2 * n)
        h = 1.0 - _chi2q(-2.0 * ln_h, 2 * n)
        return Classification((s - h + 1.0) / 2.0, clues)

    # -- persistence --------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "nspam": self.nspam, "nham": self.nham, "tokens": self.counts}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BayesModel:
        if d.get("format") != FORMAT:
            raise ModelError(f"not a {FORMAT} model (format={d.get('format')!r})")
        m = cls()
        try:
            m.nspam = int(d["nspam"])
            m.nham = int(d["nham"])
            m.counts = {str(k): [int(v[0]), int(v[1])] for k, v in dict(d["tokens"]).items()}
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
            drop = [t for t, (s, h) in self.counts.items() if s + h < min_count]
            for t in drop:
                del self.counts[t]
        return len(drop)
