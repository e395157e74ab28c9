"""Delivery to the mail system: relay (SMTP/LMTP) or the embedded Maildir store, retry queue, DSN."""

from mailmoat.deliver.service import DeliveryOutcome, DeliveryService, ReleaseError

__all__ = ["DeliveryOutcome", "DeliveryService", "ReleaseError"]
