"""mailmoat: an email security gateway (SMTP in, scan, decide, act, record, recall)."""

__version__ = "0.1.0"
