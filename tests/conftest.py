"""Shared pytest set-up: keep every test's data under its own temporary directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mailmoat.config import Settings
from mailmoat.store.db import Store

SAMPLES = Path(__file__).parent / "samples"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded-default settings with the data dir in a fresh temp dir."""
    s = Settings()
    s.data_dir = str(tmp_path / "var")
    return s


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    """A store on the settings' embedded database and raw-message directory, closed afterwards."""
    s = Store(settings.db_url, raw_dir=settings.raw_dir)
    yield s
    s.close()


@pytest.fixture
def roomy_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """`mailmoat status` never finds the disk low, whatever the test machine's disk holds."""
    import mailmoat.status

    monkeypatch.setattr(mailmoat.status, "DISK_LOW_FRACTION", 0.0)
    monkeypatch.setattr(mailmoat.status, "DISK_LOW_BYTES", 0)
