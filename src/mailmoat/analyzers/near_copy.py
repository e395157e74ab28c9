"""Near copies of mail already condemned: NEAR_COPY_CONDEMNED when a message closely resembles one learnt as spam or phishing.

What is remembered comes from the same learning as the classifier (`mailmoat train`, recalls and
releases learnt from the store); see `mailmoat.classify.nearcopy`. The file is reloaded when it
changes, and with none the analyzer says nothing.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import ClassVar

from mailmoat.analyzers.base import AnalysisContext, AnalyzerEnv, BaseAnalyzer
from mailmoat.classify import model_path, near_copy_path
from mailmoat.classify.bayes import ModelError
from mailmoat.classify.nearcopy import NearCopies, sketch
from mailmoat.model import Finding, Symbol

log = logging.getLogger(__name__)

RELOAD_CHECK = 30.0  # seconds between checks for a changed file
_KIND = {"phish": "phishing", "spam": "spam"}

NEAR_COPY_CONDEMNED = Symbol(
    "NEAR_COPY_CONDEMNED", 10.0, "nearcopy", "Near copy of a message already learnt as spam or phishing (recalled, or trained)"
)


class NearCopyAnalyzer(BaseAnalyzer):
    name = "near_copy"
    symbols: ClassVar[tuple[Symbol, ...]] = (NEAR_COPY_CONDEMNED,)

    def __init__(self, env: AnalyzerEnv) -> None:
        super().__init__(env)
        self.path: Path = near_copy_path(model_path(env.settings))
        self.memory: NearCopies | None = None
        self._stamp: float | None = None  # mtime of the file read, or of the one that failed
        self._checked = 0.0
        self._load()

    def enabled(self) -> bool:
        cfg = self.env.settings.classifier
        return cfg.enabled and cfg.near_copies

    def _load(self) -> None:
        try:
            stamp: float | None = os.stat(self.path).st_mtime
        except OSError:
            stamp = None
        if stamp is None:
            self.memory, self._stamp = None, None
            return
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            memory = NearCopies.load(self.path)
        except (OSError, ModelError) as exc:
            # Said once per version of the file; the previous memory, if any, stays in use.
            log.error("near copies %s not loaded: %s", self.path, exc)
            return
        self.memory = memory if len(memory) else None

    async def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        now = time.monotonic()
        if now - self._checked >= RELOAD_CHECK:
            self._checked = now
            self._load()
        memory = self.memory
        if memory is None:
            return []
        values = sketch(ctx.classifier_tokens())
        if values is None:
            return []
        threshold = min(max(ctx.settings.classifier.near_copy_similarity, 0.3), 1.0)
        match = memory.best(values, threshold)
        if match is None:
            return []
        e = match.entry
        learnt = time.strftime("%Y-%m-%d", time.gmtime(e.added))
        return [
            self.finding(
                "NEAR_COPY_CONDEMNED",
                f"{match.similarity:.0%} like {e.key}, learnt as {_KIND.get(e.label, e.label)} on {learnt}",
                {"similarity": round(match.similarity, 3), "like": e.key, "label": e.label, "learnt_at": e.added},
            )
        ]
