"""Shared pytest set-up: keep every test's data under its own temporary directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailmoat.config import Settings

SAMPLES = Path(__file__).parent / "samples"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded-default settings with the data dir in a fresh temp dir."""
    s = Settings()
    s.data_dir = str(tmp_path / "var")
    return s
