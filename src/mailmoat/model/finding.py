"""Symbols (what a check can say) and findings (what it said about one message, with evidence)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Symbol:
    """A named signal declared by the check that emits it; scores are tunable by policy."""

    name: str
    score: float
    group: str
    description: str


@dataclass
class Finding:
    """One symbol raised for one message, with human-readable evidence and structured data."""

    symbol: str
    score: float
    evidence: str = ""
    source: str = ""
    group: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "score": self.score,
            "evidence": self.evidence,
            "source": self.source,
            "group": self.group,
            "data": self.data,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Finding:
        return cls(
            symbol=str(d["symbol"]),
            score=float(d.get("score", 0.0)),
            evidence=str(d.get("evidence", "")),
            source=str(d.get("source", "")),
            group=str(d.get("group", "")),
            data=dict(d.get("data", {})),
        )
