"""Copies still in the delivery queue when their message is recalled or marked a threat are withheld
when their turn comes, and go out after all when the recall is restored or the mark taken back."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import update

from mailmoat import metrics
from mailmoat.config import Settings
from mailmoat.deliver.service import DeliveryService
from mailmoat.model import Action
from mailmoat.recall.auto import condemn_message, uncondemn_message
from mailmoat.recall.engine import RecallEngine
from mailmoat.recall.selection import Selector
from mailmoat.store.db import Store
from mailmoat.store.models import DeliveryRow
from tests.support.gateway import maildir_copies
from tests.support.webkit import record_and_deliver

ALICE, ZOE = "alice@victim-corp.com", "zoe@victim-corp.com"


def queue_zoes_copy(settings: Settings, store: Store, mail_id: str) -> None:
    """Zoe's mailbox refused the copy for now: it waits in the queue, due at once."""
    with store.session() as s:
        s.execute(update(DeliveryRow).where(DeliveryRow.message_id == mail_id, DeliveryRow.recipient == ZOE)
                  .values(status="deferred", next_attempt=0.0, reply="452 mailbox busy"))
        s.commit()
    for files in maildir_copies(settings.mail_dir, ZOE).values():
        for f in files:
            f.unlink()


def zoe(store: Store, mail_id: str) -> tuple[str, str]:
    with store.session() as s:
        row = s.query(DeliveryRow).filter(DeliveryRow.message_id == mail_id, DeliveryRow.recipient == ZOE).one()
        return row.status, row.reply


def retry(settings: Settings, store: Store) -> None:
    service = DeliveryService(settings, store)
    try:
        asyncio.run(service.retry_due(now=10**10))
    finally:
        service.close()


def test_a_queued_copy_of_recalled_mail_is_withheld_until_the_recall_is_restored(settings: Settings) -> None:
    store = Store(settings.db_url, raw_dir=settings.raw_dir)
    try:
        mid = record_and_deliver(settings, store, "clean", Action.DELIVER, [ALICE, ZOE])
        queue_zoes_copy(settings, store, mid)
        engine = RecallEngine(settings, store)
        job = engine.plan(Selector(mail_id=mid, since="0"), "analyst", "campaign")
        assert asyncio.run(engine.run(job, "analyst"))["counts"] == {"recalled": 1}  # Alice's; Zoe's was queued
        retry(settings, store)
        status, reply = zoe(store, mid)
        assert status == "withheld" and f"recalled (job {job})" in reply
        assert not maildir_copies(settings.mail_dir, ZOE)
        asyncio.run(engine.restore(job, "analyst"))  # a mistake after all: Zoe gets it too
        assert zoe(store, mid)[0] == "deferred"
        delivered = metrics.DELIVERIES.labels(status="delivered")._value.get()
        retry(settings, store)
        assert zoe(store, mid)[0] == "delivered" and maildir_copies(settings.mail_dir, ZOE)
        assert metrics.DELIVERIES.labels(status="delivered")._value.get() == delivered + 1  # retries count too
    finally:
        store.close()


def test_a_queued_copy_of_mail_marked_a_threat_is_withheld_until_the_mark_is_taken_back(settings: Settings) -> None:
    settings.recall.auto = "off"  # the mark alone
    store = Store(settings.db_url, raw_dir=settings.raw_dir)
    try:
        mid = record_and_deliver(settings, store, "clean", Action.DELIVER, [ALICE, ZOE])
        queue_zoes_copy(settings, store, mid)
        engine = RecallEngine(settings, store)
        asyncio.run(condemn_message(engine, mid, "analyst", "phish"))
        retry(settings, store)
        assert zoe(store, mid) == ("withheld", "withheld: its message is marked as a threat")
        uncondemn_message(settings, store, mid, "analyst", "not a threat")
        retry(settings, store)
        assert zoe(store, mid)[0] == "delivered"
    finally:
        store.close()


def test_the_held_copies_of_recalled_mail_are_not_released(settings: Settings) -> None:
    """Held, released to Alice, then Alice's copy recalled: releasing Zoe's would deliver what the
    recall took away. Restoring the recall makes the release possible again."""
    from mailmoat.deliver.service import ReleaseError

    store = Store(settings.db_url, raw_dir=settings.raw_dir)
    service = DeliveryService(settings, store)
    try:
        mid = record_and_deliver(settings, store, "held", Action.QUARANTINE, [ALICE, ZOE])
        assert [o.status for o in asyncio.run(service.release(mid, [ALICE]))] == ["delivered"]
        engine = RecallEngine(settings, store)
        job = engine.plan(Selector(mail_id=mid, since="0"), "analyst", "campaign")
        asyncio.run(engine.run(job, "analyst"))
        try:
            with pytest.raises(ReleaseError, match=f"recalled \\(job {job}\\); restore that recall first"):
                asyncio.run(service.release(mid, [ZOE]))
            asyncio.run(engine.restore(job, "analyst"))
            assert [o.status for o in asyncio.run(service.release(mid, [ZOE]))] == ["delivered"]
        finally:
            service.close()
    finally:
        store.close()
