"""YARA: rules from the configured directory, compiled once, recompiled on change, matched on archive members."""

from __future__ import annotations

import os
from pathlib import Path

from mailmoat.analyzers.base import AnalyzerEnv
from mailmoat.analyzers.yara import YaraAnalyzer
from mailmoat.config import Settings
from tests.support import attachgen as g

RULE = """
rule Mailmoat_Test_Eicar : test
{
    meta:
        description = "EICAR test string"
        score = 12
    strings:
        $a = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE"
    condition:
        $a
}
"""


def _analyzer(settings: Settings, rules_dir: Path) -> YaraAnalyzer:
    settings.attachments.yara_dir = str(rules_dir)
    return YaraAnalyzer(AnalyzerEnv(settings=settings))


async def _findings(analyzer: YaraAnalyzer, settings: Settings, files: list[tuple[str, bytes]]) -> dict:  # type: ignore[type-arg]
    from mailmoat.analyzers.base import AnalysisContext
    from mailmoat.model import Envelope

    ctx = AnalysisContext(message=g.message(files), envelope=Envelope("a@example.org", ["b@example.com"]), settings=settings)
    return g.by_symbol(await analyzer.analyze(ctx))


async def test_match_in_nested_archive_with_meta_score(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "eicar.yar").write_text(RULE)
    analyzer = _analyzer(settings, tmp_path)
    assert analyzer.enabled()
    nested = g.zip_bytes({"inner.zip": g.zip_bytes({"e.com": g.EICAR})})
    found = await _findings(analyzer, settings, [("docs.zip", nested), ("clean.txt", b"hello")])
    match = found["YARA_MATCH"]
    assert match.data["rule"] == "Mailmoat_Test_Eicar"
    assert match.data["meta"]["description"] == "EICAR test string"
    assert match.data["tags"] == ["test"]
    assert match.data["files"] == ["docs.zip > inner.zip > e.com"]
    assert match.score == 12.0


async def test_rules_recompiled_on_change_and_bad_edit_keeps_last_good(settings: Settings, tmp_path: Path) -> None:
    rule_file = tmp_path / "site.yara"
    rule_file.write_text('rule Marker_One { strings: $a = "marker-one" condition: $a }')
    analyzer = _analyzer(settings, tmp_path)
    files = [("a.txt", b"xx marker-one marker-two xx")]
    assert (await _findings(analyzer, settings, files))["YARA_MATCH"].data["rule"] == "Marker_One"
    compiled = analyzer.rules.rules if analyzer.rules else None

    # unchanged directory: the compiled rules are reused
    await _findings(analyzer, settings, files)
    assert analyzer.rules is not None and analyzer.rules.rules is compiled

    rule_file.write_text('rule Marker_Two { strings: $a = "marker-two" condition: $a }')
    os.utime(rule_file, ns=(1, 2_000_000_000_000_000_000))  # a distinct mtime even on coarse clocks
    assert (await _findings(analyzer, settings, files))["YARA_MATCH"].data["rule"] == "Marker_Two"

    rule_file.write_text("rule Broken { condition: nonsense }")
    found = await _findings(analyzer, settings, files)
    assert found["YARA_MATCH"].data["rule"] == "Marker_Two"
    assert "YARA_RULES_ERROR" in found and found["YARA_RULES_ERROR"].score == 0


async def test_no_match_and_disabled_without_dir(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "eicar.yar").write_text(RULE)
    assert await _findings(_analyzer(settings, tmp_path), settings, [("a.txt", b"benign")]) == {}
    settings.attachments.yara_dir = ""
    assert not YaraAnalyzer(AnalyzerEnv(settings=settings)).enabled()
