"""YARA rules from `attachments.yara_dir` over attachments and unpacked members; recompiled when files change."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any, ClassVar

from mailmoat.analyzers.base import AnalysisContext, AnalyzerEnv, BaseAnalyzer
from mailmoat.attach.scan import scan_message
from mailmoat.model import Finding, Symbol

log = logging.getLogger(__name__)

RULE_SUFFIXES = (".yar", ".yara")
MAX_SCAN = 64 * 1024 * 1024  # bytes of one file handed to YARA


class YaraRules:
    """Compiled rules of one directory, rebuilt when a rule file is added, removed or changed."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)
        self.rules: Any = None
        self.error = ""
        self._stamp: tuple[tuple[str, int, int], ...] | None = None
        self._lock = threading.Lock()

    def _files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.rglob("*") if p.suffix.lower() in RULE_SUFFIXES and p.is_file())

    def stamp(self) -> tuple[tuple[str, int, int], ...]:
        out = []
        for p in self._files():
            try:
                st = p.stat()
            except OSError:
                continue
            out.append((str(p), st.st_mtime_ns, st.st_size))
        return tuple(out)

    def current(self) -> Any:
        """The compiled rules, recompiling first if the directory changed; a broken edit keeps the last good set."""
        import yara

        stamp = self.stamp()
        if stamp == self._stamp:
            return self.rules
        with self._lock:
            if stamp == self._stamp:
                return self.rules
            self._stamp = stamp
            if not stamp:
                self.rules, self.error = None, f"no rule files in {self.directory}"
                return None
            namespaces = {}
            for path, _m, _s in stamp:
                rel = Path(path).relative_to(self.directory)
                namespaces[str(rel.with_suffix("")).replace("/", ".")] = path
            try:
                self.rules = yara.compile(filepaths=namespaces)
                self.error = ""
                log.info("compiled %d YARA rule files from %s", len(namespaces), self.directory)
            except yara.Error as exc:
                self.error = str(exc)
                log.error("YARA rules in %s do not compile (keeping the previous set): %s", self.directory, exc)
            return self.rules


class YaraAnalyzer(BaseAnalyzer):
    name = "yara"
    enabled_by_default = False
    symbols: ClassVar[tuple[Symbol, ...]] = (
        Symbol("YARA_MATCH", 10.0, "malware", "A site YARA rule matched an attachment (a numeric `score` in the rule's meta overrides)"),
        Symbol("YARA_RULES_ERROR", 0.0, "system", "The YARA rule directory has a rule that does not compile (the last good rules are used)"),
    )

    def __init__(self, env: AnalyzerEnv) -> None:
        super().__init__(env)
        self.rules = YaraRules(env.settings.attachments.yara_dir) if env.settings.attachments.yara_dir else None
        if self.rules is not None:
            self.rules.current()  # compile once at start-up; errors are logged and reported per message

    def enabled(self) -> bool:
        return self.rules is not None

    async def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        if self.rules is None:
            return []
        rules = await asyncio.to_thread(self.rules.current)
        out: list[Finding] = []
        if self.rules.error and self.rules._stamp:
            out.append(self.finding("YARA_RULES_ERROR", self.rules.error[:300], {"error": self.rules.error}))
        if rules is None:
            return out
        exp = await scan_message(ctx.message, ctx.settings.attachments, ctx.deadline)
        targets = [(f.location, f.data) for f in exp.files if f.data is not None]
        matches = await asyncio.to_thread(self._match, rules, targets, max(int(ctx.time_left()), 1))
        for (namespace, rule), info in matches.items():
            score = info["meta"].get("score")
            out.append(self.finding(
                "YARA_MATCH",
                f"{rule} in {', '.join(info['files'][:3])}",
                {"rule": rule, "namespace": namespace, "tags": info["tags"], "meta": info["meta"], "files": info["files"][:50]},
                score=float(score) if isinstance(score, int | float) and not isinstance(score, bool) else None,
            ))
        return out

    @staticmethod
    def _match(rules: Any, targets: list[tuple[str, bytes]], timeout: int) -> dict[tuple[str, str], dict[str, Any]]:
        import yara

        found: dict[tuple[str, str], dict[str, Any]] = {}
        for location, data in targets:
            if not data:
                continue
            try:
                hits = rules.match(data=data[:MAX_SCAN], timeout=timeout)
            except yara.TimeoutError:
                log.warning("YARA timed out on %s", location)
                continue
            except yara.Error as exc:
                log.warning("YARA failed on %s: %s", location, exc)
                continue
            for m in hits:
                key = (m.namespace, m.rule)
                entry = found.setdefault(key, {"tags": list(m.tags), "meta": dict(m.meta), "files": []})
                entry["files"].append(location)
        return found
