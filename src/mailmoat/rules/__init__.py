"""Detection rules as data: YAML files with a CEL expression over the message model."""

from mailmoat.rules.engine import (
    BUILTIN_DIR,
    Hit,
    Rule,
    RuleError,
    RuleLibrary,
    RuleSet,
    SampleResult,
    load_dir,
    load_rule,
    missing_samples,
    parse_rule,
    sample_results,
)

__all__ = [
    "BUILTIN_DIR",
    "Hit",
    "Rule",
    "RuleError",
    "RuleLibrary",
    "RuleSet",
    "SampleResult",
    "load_dir",
    "load_rule",
    "missing_samples",
    "parse_rule",
    "sample_results",
]
