"""Collects per-file hits into one finding per symbol, so ten bad members do not score ten times."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mailmoat.model import Finding

MAX_FILES_IN_DATA = 50
MAX_IN_EVIDENCE = 3


class Hits:
    def __init__(self) -> None:
        self._by_symbol: dict[str, list[dict[str, Any]]] = {}
        self._scores: dict[str, float] = {}

    def add(self, symbol: str, location: str, detail: str = "", score: float | None = None, **data: Any) -> None:
        items = self._by_symbol.setdefault(symbol, [])
        if score is not None:
            self._scores[symbol] = max(score, self._scores.get(symbol, score))
        if any(i["location"] == location and i["detail"] == detail for i in items):
            return
        if len(items) < MAX_FILES_IN_DATA:
            items.append({"location": location, "detail": detail, **data})

    def __contains__(self, symbol: str) -> bool:
        return symbol in self._by_symbol

    def findings(self, make: Callable[..., Finding]) -> list[Finding]:
        """`make` is BaseAnalyzer.finding: one Finding per symbol, evidence naming the first few files."""
        out: list[Finding] = []
        for symbol, items in self._by_symbol.items():
            shown = [f"{i['location']}: {i['detail']}" if i["detail"] else i["location"] for i in items[:MAX_IN_EVIDENCE]]
            more = f" (+{len(items) - MAX_IN_EVIDENCE} more)" if len(items) > MAX_IN_EVIDENCE else ""
            out.append(make(symbol, "; ".join(shown) + more, {"files": items}, self._scores.get(symbol)))
        return out
