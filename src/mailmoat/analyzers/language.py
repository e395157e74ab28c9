"""Language: inbound mail written in a language nobody at the site reads (`org.languages`)."""

from __future__ import annotations

from typing import ClassVar

from mailmoat.analyzers.base import AnalysisContext, AnalyzerEnv, BaseAnalyzer
from mailmoat.classify.language import NAMES, language_of
from mailmoat.model import Direction, Finding, Symbol

SYMBOLS = (
    Symbol(
        "LANGUAGE_NOT_READ_HERE", 3.0, "language",
        "Inbound mail written in a language the organisation does not read (org.languages)",
    ),
)


class LanguageAnalyzer(BaseAnalyzer):
    """A site that reads English and Chinese gets Korean, Japanese or Portuguese mail only as spam.

    Off until the administrator lists the languages read there; a text too short or too mixed to
    tell is left alone, and so is mail between colleagues.
    """

    name: ClassVar[str] = "language"
    symbols: ClassVar[tuple[Symbol, ...]] = SYMBOLS

    def __init__(self, env: AnalyzerEnv) -> None:
        super().__init__(env)
        self.read_here = frozenset(env.settings.org.languages)

    def enabled(self) -> bool:
        return bool(self.read_here)

    async def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        if ctx.envelope.direction != Direction.INBOUND or not self.read_here:
            return []
        lang = language_of(ctx.message)
        if not lang or lang in self.read_here:
            return []
        read = ", ".join(NAMES[code] for code in sorted(self.read_here))
        return [
            self.finding(
                "LANGUAGE_NOT_READ_HERE",
                f"written in {NAMES[lang]}; the organisation reads {read}",
                {"language": lang},
            )
        ]
