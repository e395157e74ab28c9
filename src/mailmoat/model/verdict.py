"""The decision about one message: the action, the total score and the findings that explain it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mailmoat.model.finding import Finding


class Action(StrEnum):
    DELIVER = "deliver"
    TAG = "tag"
    QUARANTINE = "quarantine"
    REJECT = "reject"
    TEMPFAIL = "tempfail"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {
    Action.DELIVER: 0,
    Action.TAG: 1,
    Action.TEMPFAIL: 2,
    Action.QUARANTINE: 3,
    Action.REJECT: 4,
}


@dataclass
class Verdict:
    action: Action
    score: float
    findings: list[Finding] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    @property
    def symbols(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for f in self.findings:
            out[f.symbol] = out.get(f.symbol, 0.0) + f.score
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action.value,
            "score": round(self.score, 3),
            "symbols": {k: round(v, 3) for k, v in self.symbols.items()},
            "findings": [f.to_dict() for f in self.findings],
            "reasons": list(self.reasons),
        }
