"""Colleagues' reports of suspect mail: what each report points at (`intake`), and the reported mail as the security team triages it (`triage`)."""

from mailmoat.reports.intake import Reported, reported_in, take_report
from mailmoat.reports.triage import condemn_reported, dismiss, on_report, reported, reports_of

__all__ = ["Reported", "condemn_reported", "dismiss", "on_report", "reported", "reported_in", "reports_of", "take_report"]
