"""The trained statistical classifier as an analyzer: BAYES_SPAM / BAYES_HAM scaled by probability.

The model (`mailmoat train`) is loaded once and reloaded when its file changes; with no model
the analyzer says nothing (`no_model_note` is what `mailmoat scan` prints about it).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import ClassVar

from mailmoat.analyzers.base import AnalysisContext, AnalyzerEnv, BaseAnalyzer
from mailmoat.classify import Classifier, ModelError, model_path, model_source
from mailmoat.classify.bayes import logit
from mailmoat.config import ClassifierSettings, Settings
from mailmoat.model import Finding, Symbol

log = logging.getLogger(__name__)

GROUP = "bayes"
# BAYES_SPAM starts at SPAM_FROM and reaches its full score at SPAM_FULL, linearly in log-odds
# (the defaults of `classifier.spam_from` / `classifier.spam_full`: 0.5 → 0, 0.6 → 2.9,
# 0.7 → 6.1, 0.8 → full). The probability is Fisher-combined: it stays near 0.5 whenever the
# evidence pulls both ways, so 0.8 already means the spam evidence clearly outweighs the ham
# evidence; on a split of the training mail (bench/detection_eval.py --dev) no more legitimate
# mail reached 0.8 than 0.9. A merely likely message gets part of the score and needs another
# engine (URLs, impersonation, content heuristics) to agree.
SPAM_FROM = ClassifierSettings().spam_from
SPAM_FULL = ClassifierSettings().spam_full
HAM_FROM = 0.10
HAM_FULL = 0.001
RELOAD_CHECK = 30.0  # seconds between checks for a retrained model file

BAYES_SPAM = Symbol("BAYES_SPAM", 10.0, GROUP, "The trained classifier finds the content spam-like (scaled by probability)")
BAYES_HAM = Symbol("BAYES_HAM", -2.0, GROUP, "The trained classifier finds the content like legitimate mail (scaled)")


_VIEW_NAMES = {
    "all": "all kinds together",
    "spam/latin": "as bulk spam, Latin script",
    "spam/cjk": "as bulk spam, CJK script",
    "phish/latin": "as phishing, Latin script",
    "phish/cjk": "as phishing, CJK script",
}


def scale(prob: float, start: float, full: float) -> float:
    """0 at `start`, 1 at `full` (and beyond), linear in log-odds; works in both directions."""
    a, b, x = logit(start), logit(full), logit(prob)
    return min(max((x - a) / (b - a), 0.0), 1.0)


def no_model_note(settings: Settings) -> str | None:
    """What `mailmoat scan` tells the operator when the classifier has no model yet (None if it has)."""
    if not settings.classifier.enabled:
        return None
    path = model_path(settings)
    if model_source(path) is not None:
        return None
    return f"note: no classifier model trained yet ({path}); train one with `mailmoat train --ham DIR --spam DIR`"


class ClassifierAnalyzer(BaseAnalyzer):
    name = "classifier"
    symbols: ClassVar[tuple[Symbol, ...]] = (BAYES_SPAM, BAYES_HAM)

    _noted: ClassVar[bool] = False

    def __init__(self, env: AnalyzerEnv) -> None:
        super().__init__(env)
        self.path = model_path(env.settings)
        self.classifier: Classifier | None = None
        self._loaded: tuple[Path, float] | None = None  # (file read, its mtime)
        self._failed: tuple[Path, float] | None = None  # the file that could not be read, until it changes
        self._checked = 0.0
        self._load()
        if self.classifier is None and env.settings.classifier.enabled and not ClassifierAnalyzer._noted:
            ClassifierAnalyzer._noted = True
            # `mailmoat scan` prints no_model_note() itself (once, not once per worker process).
            log.info("%s", no_model_note(env.settings) or f"classifier model at {self.path} is not usable")

    def enabled(self) -> bool:
        return self.env.settings.classifier.enabled

    def _load(self) -> None:
        # The legacy bayes.json until the first save writes bayes.model (model_source): a change
        # of file is a change of model even when the times match.
        source = model_source(self.path)
        try:
            stamp = (source, os.stat(source).st_mtime) if source is not None else None
        except OSError:
            stamp = None
        if stamp is None:
            self.classifier = None
            return
        if (self.classifier is not None and stamp == self._loaded) or stamp == self._failed:
            return
        try:
            # Mapped, not read: every worker process of the machine shares one copy of the model.
            clf = Classifier.open(self.path, shared=True)
        except (OSError, ModelError) as exc:
            # Said once per file: the next check (30 s on) tries again only when the file changed.
            log.error("classifier model %s not loaded: %s", source, exc)
            self._failed = stamp
            return  # keep the previous model, if any
        self.classifier = clf if clf.trained else None
        self._loaded = stamp

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if now - self._checked >= RELOAD_CHECK:
            self._checked = now
            self._load()

    async def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        self._maybe_reload()
        clf = self.classifier
        if clf is None:
            return []
        result = clf.model.classify_tokens(ctx.classifier_tokens())
        p = result.prob
        cfg = ctx.settings.classifier
        spam_from = min(max(cfg.spam_from, 0.5), 0.999)
        spam_full = min(max(cfg.spam_full, spam_from + 1e-6), 0.999999)
        if p >= spam_from:
            factor = scale(p, spam_from, spam_full)
            clues = [c.token for c in result.top(8, spammy=True)]
            return [
                self.finding(
                    "BAYES_SPAM",
                    f"spam probability {p:.4f} ({_VIEW_NAMES.get(result.view, result.view)}); "
                    f"strongest clues: {', '.join(clues)}",
                    {"prob": round(p, 6), "clues": clues, "view": result.view},
                    score=round(BAYES_SPAM.score * factor, 3),
                )
            ]
        if p <= HAM_FROM:
            factor = scale(p, HAM_FROM, HAM_FULL)
            clues = [c.token for c in result.top(8, spammy=False)]
            return [
                self.finding(
                    "BAYES_HAM",
                    f"spam probability {p:.4f}; strongest clues: {', '.join(clues)}",
                    {"prob": round(p, 6), "clues": clues},
                    score=round(BAYES_HAM.score * factor, 3),
                )
            ]
        return []
