"""mailmoat.example.toml documents every setting: it loads, and its keys match the settings dataclasses."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

from mailmoat import config
from mailmoat.config import Settings

EXAMPLE = Path(__file__).resolve().parent.parent / "mailmoat.example.toml"


def _missing_and_unknown(obj: Any, table: dict[str, Any], where: str) -> tuple[list[str], list[str]]:
    missing: list[str] = []
    names = {f.name for f in dataclasses.fields(obj)}
    unknown = [f"{where}{k}" for k in table if k not in names]
    for f in dataclasses.fields(obj):
        key = f"{where}{f.name}"
        if f.name not in table:
            missing.append(key)
            continue
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            m, u = _missing_and_unknown(value, table[f.name], key + ".")
            missing += m
            unknown += u
    return missing, unknown


def test_example_loads() -> None:
    settings = config.load(EXAMPLE)
    assert isinstance(settings, Settings)


def test_example_covers_every_setting() -> None:
    table = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    missing, unknown = _missing_and_unknown(Settings(), table, "")
    assert not missing, f"settings missing from mailmoat.example.toml: {missing}"
    assert not unknown, f"keys in mailmoat.example.toml that are not settings: {unknown}"


def test_example_shows_the_embedded_defaults() -> None:
    # The file documents the defaults; a changed default must be changed here too.
    assert config.load(EXAMPLE) == Settings()
