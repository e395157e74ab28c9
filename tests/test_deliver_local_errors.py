"""Local Maildir delivery errors: which are permanent, and what their replies (read by senders in DSNs) say."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mailmoat.config import Settings
from mailmoat.deliver import DeliveryService
from mailmoat.model import Action, Envelope, Message, Verdict
from mailmoat.store.db import Store

MSG = b"From: Alice <alice@example.org>\r\nTo: bob@localhost\r\nSubject: hello\r\n\r\nHello Bob.\r\n"


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    s = Store(settings.db_url)
    yield s
    s.close()


async def deliver(svc: DeliveryService, env: Envelope) -> list[tuple[str, str]]:
    out = await svc.deliver(env, MSG, Verdict(Action.DELIVER, 0.0), Message(raw=MSG, subject="hello"))
    return [(o.status, o.reply) for o in out]


async def test_a_mailbox_name_too_long_for_the_store_fails_for_good(settings: Settings, store: Store) -> None:
    """QA: a 300-octet local part was deferred with ENAMETOOLONG and retried for days, its reply
    showing the data directory. It will not go away on a retry: a permanent failure, without the path."""
    svc = DeliveryService(settings, store)
    env = Envelope("alice@example.org", ["a" * 300 + "@localhost", "bob@localhost"])
    (failed, reply), (ok, _) = await deliver(svc, env)
    assert (failed, ok) == ("failed", "delivered")
    assert reply.startswith("550 5.1.3") and "too long" in reply.lower()
    assert "/" not in reply and "Errno" not in reply and "a" * 100 not in reply
    d = store.get_delivery(env.tracking_id(0))
    assert d is not None and d.status == "failed" and d.next_attempt == 0.0
    assert await svc.retry_due(now=env.received_at + 3600) == 0  # nothing queued to retry


async def test_a_temporary_local_failure_names_no_path(settings: Settings, store: Store) -> None:
    """A deferred copy's reply ends up in the sender's DSN once it expires: no internal path in it."""
    svc = DeliveryService(settings, store)
    settings.mail_dir.mkdir(parents=True)
    (settings.mail_dir / "bob@localhost").write_text("not a directory")  # fixable by the operator: retried
    ((status, reply),) = await deliver(svc, Envelope("alice@example.org", ["bob@localhost"]))
    assert status == "deferred" and reply.startswith("local delivery failed")
    assert str(settings.mail_dir) not in reply and "/" not in reply
