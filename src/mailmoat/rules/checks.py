"""Checks of a loaded rule that `mailmoat rules check` and the console's upload make before a rule
file is trusted, beyond what reading it already refuses (engine.parse_rule)."""

from __future__ import annotations

import math

from mailmoat.rules.engine import Rule


def plain_sample_name(name: str) -> bool:
    """Whether a sample name is a file name in the rule's samples/ folder: no folder in it, so that
    a rule file cannot have a file elsewhere read (`../../etc/passwd`) when its samples run."""
    return bool(name) and name not in (".", "..") and not any(c in name for c in "/\\\0")


def rule_problems(rule: Rule) -> list[str]:
    """What is wrong with a rule that loads: a score that is no number (YAML's `.nan` scores 0 and
    lists as null; `.inf` would outweigh every other sign), sample names that are not plain file
    names. A rule with a bad sample name must not have its samples run or looked for."""
    problems: list[str] = []
    if not math.isfinite(rule.score):
        problems.append(f"score must be a finite number, not {rule.score!r}")
    for name in (*rule.samples_hit, *rule.samples_miss):
        if not plain_sample_name(name):
            problems.append(f"sample {name!r} must be a plain file name in {rule.samples_dir.name}/")
    return problems
