"""Scoring policy: findings → effective scores, composites, caps, lists, thresholds → Verdict."""

from mailmoat.policy.decide import ALLOWLISTED, DENYLISTED, POLICY_SYMBOLS, Policy, PolicyError

__all__ = ["ALLOWLISTED", "DENYLISTED", "POLICY_SYMBOLS", "Policy", "PolicyError"]
