"""Compromised internal accounts: sending profiles, signals, containment and incidents."""

from __future__ import annotations

from mailmoat.accounts.containment import Incident, observe

__all__ = ["Incident", "observe"]
