"""Traditional Chinese folded into Simplified: the right configuration wherever the process runs, and never a crash."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from mailmoat.parse import hanzi


def test_folding_ignores_a_file_named_like_the_configuration_in_the_working_directory(tmp_path: Path) -> None:
    # OpenCC reads a bare config name from the working directory first: a gateway started in a
    # directory holding some t2s.json must still fold correctly.
    (tmp_path / "t2s.json").write_text('["not", "a", "configuration"]')
    (tmp_path / "t2s").write_text("nonsense")
    code = "from mailmoat.parse.hanzi import simplified; print(simplified('財務部 工資補貼'))"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "财务部 工资补贴", out.stderr


def test_without_opencc_text_is_left_as_it_is(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> str:
        raise FileNotFoundError("no t2s.json")

    monkeypatch.setattr(hanzi, "_config", broken)
    monkeypatch.setattr(hanzi, "_converter", None)
    monkeypatch.setattr(hanzi, "_failed", False)
    with caplog.at_level(logging.ERROR, logger="mailmoat"):
        assert hanzi.simplified("財務部") == "財務部" and hanzi.simplified("工資") == "工資"
    assert sum("OpenCC failed to load" in r.getMessage() for r in caplog.records) == 1  # said once
