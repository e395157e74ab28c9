"""ClamAV through clamd INSTREAM: attachments, members decrypted with a body password, or the raw message."""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar

from mailmoat.analyzers.base import AnalysisContext, BaseAnalyzer
from mailmoat.attach.clamd import ClamdError, instream
from mailmoat.attach.scan import scan_message
from mailmoat.model import Finding, Symbol

log = logging.getLogger(__name__)


class ClamavAnalyzer(BaseAnalyzer):
    name = "clamav"
    enabled_by_default = False
    symbols: ClassVar[tuple[Symbol, ...]] = (
        Symbol("CLAMAV_VIRUS", 15.0, "malware", "ClamAV found malware"),
        Symbol(
            "CLAMAV_UNAVAILABLE", 4.0, "system",
            "ClamAV (clamd) could not scan the message; data.tempfail says whether policy should defer it",
        ),
    )

    def enabled(self) -> bool:
        return self.env.settings.attachments.clamav.enabled

    async def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        cfg = ctx.settings.attachments.clamav
        targets: list[tuple[str, bytes]] = []
        if cfg.scan in ("message", "both") and ctx.message.raw:
            targets.append(("message", ctx.message.raw))
        if cfg.scan in ("attachments", "both"):
            exp = await scan_message(ctx.message, ctx.settings.attachments, ctx.deadline)
            for f in exp.files:
                # clamd unpacks ordinary archives itself; what it cannot open is what a body password decrypted
                if f.data and (f.depth == 0 or (f.decrypted and f.encrypted)):
                    targets.append((f.location, f.data))
        found: list[dict[str, Any]] = []
        skipped: list[str] = []
        for location, data in targets:
            if len(data) > cfg.max_size:
                skipped.append(location)
                continue
            budget = min(cfg.timeout, max(ctx.time_left() - 0.2, 0.5))
            started = time.monotonic()
            try:
                result = await instream(cfg.address, data, budget)
            except (OSError, TimeoutError, ClamdError) as exc:
                why = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
                log.warning("clamd %s: %s", cfg.address, why)
                return [self._unavailable(cfg.on_failure, f"clamd at {cfg.address} {why}", location), *self._found(found)]
            log.debug("clamd scanned %s in %.3fs", location, time.monotonic() - started)
            if result.infected:
                found.append({"location": location, "signature": result.signature})
        out = self._found(found)
        if skipped:
            log.info("clamd: %d objects over max_size not scanned: %s", len(skipped), skipped[:5])
        return out

    def _found(self, found: list[dict[str, Any]]) -> list[Finding]:
        if not found:
            return []
        sigs = sorted({f["signature"] for f in found})
        ev = "; ".join(f"{f['location']}: {f['signature']}" for f in found[:3])
        return [self.finding("CLAMAV_VIRUS", ev, {"signatures": sigs, "files": found[:50]})]

    def _unavailable(self, on_failure: str, why: str, location: str) -> Finding:
        return self.finding("CLAMAV_UNAVAILABLE", why, {"tempfail": on_failure == "tempfail", "error": why, "location": location})
