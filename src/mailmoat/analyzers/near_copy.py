"""Near copies of mail already condemned: NEAR_COPY_CONDEMNED when a message closely resembles one learnt as spam or phishing.

What is remembered comes from two places (see `mailmoat.classify.nearcopy`): the file beside the
model, which `mailmoat train` and the scheduled learning from the store write on each node, and
the store's `near_copy_verdicts`, which recalls and releases write at once and every node reads.
Both are read again within 30 s of a change; with neither the analyzer says nothing.
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
from mailmoat.classify.nearcopy import MAX_ENTRIES, Change, NearCopies, apply_changes, sketch
from mailmoat.classify.store_learning import stored_verdicts
from mailmoat.model import Finding, Symbol

log = logging.getLogger(__name__)

RELOAD_CHECK = 30.0  # seconds between looks at the file and the store
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
        self.memory = NearCopies()
        self._stamp: float | None = None  # mtime of the file read, or of the one that failed
        self._file = NearCopies()  # what the file held when last read
        self._verdicts: list[Change] = []  # the store's verdicts read so far, in order
        self._last_id = 0
        self._store_failed = False
        self._checked = 0.0
        self._refresh()

    def enabled(self) -> bool:
        cfg = self.env.settings.classifier
        return cfg.enabled and cfg.near_copies

    def _refresh(self) -> None:
        if self._read_file():
            # The file changed: start again from it, with every verdict of the store on top.
            memory = NearCopies()
            apply_changes(memory, self._file_changes())
            apply_changes(memory, self._verdicts, self._threshold())
            self.memory = memory
        new = self._read_store()
        if new:
            apply_changes(self.memory, new, self._threshold())

    def _threshold(self) -> float:
        return min(max(self.env.settings.classifier.near_copy_similarity, 0.3), 1.0)

    def _file_changes(self) -> list[Change]:
        return [Change(e.key, e.label, e.values, e.added) for e in self._file.entries.values()]

    def _read_file(self) -> bool:
        """True when the file is not what was read last (read it, or forget it when it is gone)."""
        try:
            stamp: float | None = os.stat(self.path).st_mtime
        except OSError:
            stamp = None
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        if stamp is None:
            self._file = NearCopies()
            return True
        try:
            self._file = NearCopies.load(self.path)
        except (OSError, ModelError) as exc:
            # Said once per version of the file; what was read before stays in use.
            log.error("near copies %s not loaded: %s", self.path, exc)
            return False
        return True

    def _read_store(self) -> list[Change]:
        """The verdicts written since the last look (none without a store, or when it does not answer)."""
        if self.env.store is None:
            return []
        try:
            self._last_id, new = stored_verdicts(self.env.store, self._last_id)
        except Exception as exc:
            if not self._store_failed:
                log.warning("near-copy verdicts not read from the store: %s", exc)
            self._store_failed = True
            return []
        self._store_failed = False
        self._verdicts = (self._verdicts + new)[-MAX_ENTRIES:]
        return new

    async def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        now = time.monotonic()
        if now - self._checked >= RELOAD_CHECK:
            self._checked = now
            self._refresh()
        if not len(self.memory):
            return []
        values = sketch(ctx.classifier_tokens())
        if values is None:
            return []
        match = self.memory.best(values, self._threshold())
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
